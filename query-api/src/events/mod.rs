//! `GET /v1/stores/{id}/events`: a store's balance changes and alerts as server-sent
//! events, for dashboards that show stock live.
//!
//! Read from the ledger, so a stream says exactly what the processors committed, in their
//! order. A store's records are one partition of the movements topic
//! ([`schemas::topics::store_partition`]); every event's id is a consistency token naming
//! its place there. A client that reconnects sends the last id it saw (`Last-Event-ID`,
//! which browsers and SSE clients send by themselves) and the stream goes on after it:
//! nothing is lost across a dropped connection. The first event, `ready`, carries the
//! position the stream starts from: an inventory read with it as `consistency_token` is at
//! least as new, and the events that follow apply on top of it.
//!
//! Each stream reads (`feed`) after a notice of the processors names its store (the
//! notices the balance copies follow), and every 10 s in case one was lost, at most every
//! 100 ms, a page at a time. A snapshot's rows are complete up to the partition's offset
//! committed in it, so a read of the standby is never half a batch; the first read waits
//! (as a consistency token does) until the standby has what the primary had committed when
//! the stream opened, whose notices it could not hear. Bounded: a stream
//! holds [`QUEUED`] events for a slow client (then reads stop until it takes them), one
//! token subject may hold `QUERY_EVENT_STREAMS_PER_SUBJECT` streams, a stream ends when
//! its token expires (the client reconnects with a new one), and a client too far behind
//! is told to `reset` (read the inventory again) rather than replayed a backlog.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use schemas::StoreId;
use schemas::cache::BalancesChanged;
use schemas::consistency::ConsistencyToken;
use serde::{Deserialize, Serialize};
use service_kit::auth::{Permission, Principal};
use service_kit::problem::responses::{InvalidParameter, NoSuchStore};
use service_kit::problem::{ApiError, Problem};
use service_kit::query::Query;
use service_kit::redis::Redis;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::ReadState;
use crate::inventory::require_store;

mod feed;

use feed::{Feed, SWEEP};

/// Events waiting for a slow client.
const QUEUED: usize = 64;
/// How long after losing the notices' subscription it is tried again.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// A balance that changed: the product's quantity after the movement that changed it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceEvent {
    pub product_id: i64,
    /// The balance after the movement.
    pub quantity: i64,
    pub movement_id: Uuid,
    /// The movement's kind (`sale`, `stock_in`, …) and quantity.
    pub kind: String,
    pub moved: i64,
    pub recorded_at: DateTime<Utc>,
}

/// An alert the movement raised (as `GET /v1/alerts` lists it).
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertEvent {
    pub product_id: i64,
    /// `low_stock`, `out_of_stock`, `recovered` or `phantom_stock`.
    pub kind: String,
    pub quantity: i64,
    pub reorder_point: Option<i64>,
    pub movement_id: Uuid,
    pub raised_at: DateTime<Utc>,
}

/// Where a stream stands: `ready` (it starts here), `reset` (it skipped ahead: read the
/// inventory again with this position), `position` (nothing for the store up to here).
#[derive(Debug, Serialize, ToSchema)]
pub struct PositionEvent {
    /// A consistency token for inventory reads; absent before the processors have
    /// processed anything.
    pub position: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Start after this position (an event id or a consistency token) instead of now;
    /// `Last-Event-ID` takes precedence.
    pub after: Option<String>,
}

/// A processors' notice, or `None`: every stream reads (notices may have been missed while
/// the subscription was being made).
type Wake = Option<Arc<BalancesChanged>>;

/// The open streams, and the processors' notices that wake them.
#[derive(Debug)]
pub struct EventStreams {
    notices: broadcast::Sender<Wake>,
    per_subject: Mutex<HashMap<String, usize>>,
    max_per_subject: usize,
    /// Ends every stream (at shutdown: the server waits for open connections).
    pub stop: CancellationToken,
}

impl EventStreams {
    pub fn new(max_per_subject: usize) -> Arc<Self> {
        Arc::new(Self {
            notices: broadcast::channel(256).0,
            per_subject: Mutex::default(),
            max_per_subject,
            stop: CancellationToken::new(),
        })
    }

    /// Follows the processors' balance notices until `stop`, subscribing again whenever
    /// the subscription is lost (streams then read every [`SWEEP`]).
    pub async fn follow(self: Arc<Self>, redis: Redis, stop: CancellationToken) {
        let channel = redis.key(&schemas::cache::balances_changed_channel());
        while !stop.is_cancelled() {
            if let Err(error) = self.subscribed(&redis, &channel, &stop).await {
                tracing::debug!(%error, "The balance notices are not followed; event streams read every {SWEEP:?}.");
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
            }
        }
    }

    async fn subscribed(
        &self,
        redis: &Redis,
        channel: &str,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut pubsub = redis.pubsub().await?;
        pubsub.subscribe(channel).await?;
        // What was committed before this subscription was announced to nobody.
        let _ = self.notices.send(None);
        let mut notices = pubsub.into_on_message();
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                message = notices.next() => {
                    let message = message.ok_or_else(|| anyhow::anyhow!("the subscription ended"))?;
                    let text: String = message.get_payload()?;
                    // No stream listening is fine.
                    let _ = self.notices.send(Some(Arc::new(serde_json::from_str(&text)?)));
                }
            }
        }
    }

    /// Counts a stream of `subject`, if it may open one more.
    fn open(self: &Arc<Self>, subject: &str) -> Option<Opened> {
        let mut open = self
            .per_subject
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(subject.to_owned()).or_default();
        if *count >= self.max_per_subject {
            return None;
        }
        *count += 1;
        Some(Opened {
            streams: self.clone(),
            subject: subject.to_owned(),
        })
    }
}

/// One open stream, counted until dropped.
struct Opened {
    streams: Arc<EventStreams>,
    subject: String,
}

impl Drop for Opened {
    fn drop(&mut self) {
        let mut open = self
            .streams
            .per_subject
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.subject) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.subject);
            }
        }
    }
}

/// A store's balance changes and alerts, live.
#[utoipa::path(get, path = "/v1/stores/{id}/events", tag = "inventory",
    params(
        ("id" = i64, Path, description = "Store id"),
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received: the stream goes on after it"),
        EventParams,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`text/event-stream` of events `ready` and `reset` (data: `PositionEvent`), `balance` (`BalanceEvent`), `alert` (`AlertEvent`) and `position` (`PositionEvent`), each with an id to resume after. Ends when the token expires.", content_type = "text/event-stream", body = String),
        InvalidParameter,
        (status = 403, description = "Not one of the token's stores, or the role may not read inventory", body = Problem, content_type = "application/problem+json"),
        NoSuchStore,
        (status = 429, description = "The token's subject has as many streams open as it may (`rate_limited`); `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No processor has started yet, or the database is busy (`unavailable`); `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(actor = %principal.subject, store_id = store))]
pub async fn store_events(
    State(state): State<ReadState>,
    principal: Principal,
    Path(store): Path<i64>,
    Query(params): Query<EventParams>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    principal.require(Permission::InventoryRead)?;
    require_store(&state, &principal, store).await?;
    let after = match headers.get("last-event-id") {
        Some(value) => Some(("Last-Event-ID", value.to_str().unwrap_or_default())),
        None => params.after.as_deref().map(|after| ("after", after)),
    };
    let after = after
        .map(|(field, text)| {
            ConsistencyToken::decode(text).ok_or_else(|| {
                ApiError::validation(field, "invalid", "not an event id or consistency token")
            })
        })
        .transpose()?;
    let opened = state
        .events
        .open(&principal.subject)
        .ok_or(ApiError::RateLimited {
            retry_after: Duration::from_secs(5),
        })?;
    let partition = partition_of(&state, store).await?;
    let stream = Feed {
        state: state.clone(),
        store,
        partition,
        cursor: after.and_then(|token| token.positions().get(&partition).copied()),
        target: None,
        expires_at: principal.expires_at,
    };
    let (events, queued) = mpsc::channel(QUEUED);
    let notices = state.events.notices.subscribe();
    let stop = state.events.stop.clone();
    tokio::spawn(async move {
        let _opened = opened;
        tokio::select! {
            () = stop.cancelled() => {}
            ended = stream.run(notices, &events) => if let Err(error) = ended {
                tracing::debug!(%error, "An event stream ended.");
            }
        }
    });
    let events = futures::stream::unfold(queued, |mut queued| async move {
        queued.recv().await.map(|event| (Ok(event), queued))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The partition of the movements topic `store`'s records are on: that of its latest
/// ledger row, or, for a store without any, where Kafka's partitioner puts it among the
/// partitions the processors have taken on (none yet: `503`).
async fn partition_of(state: &ReadState, store: i64) -> Result<i32, ApiError> {
    let (latest, partitions): (Option<i32>, i64) = sqlx::query_as(
        "SELECT (SELECT source_partition FROM movements WHERE store_id = $3 \
                 ORDER BY recorded_at DESC LIMIT 1), \
                (SELECT count(*) FROM processor_offsets WHERE consumer_group = $1 AND topic = $2)",
    )
    .bind(state.standby.group())
    .bind(state.standby.topic())
    .bind(store)
    .fetch_one(state.standby.pool_for(None).await)
    .await?;
    if let Some(partition) = latest {
        return Ok(partition);
    }
    match u32::try_from(partitions) {
        Ok(partitions) if partitions > 0 => {
            Ok(schemas::topics::store_partition(StoreId(store), partitions))
        }
        _ => Err(ApiError::Unavailable {
            code: "unavailable",
            detail: "no processor has started yet".into(),
            retry_after: Duration::from_secs(1),
        }),
    }
}
