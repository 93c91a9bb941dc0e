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
//! Each stream reads after a notice of the processors names its store (the notices the
//! balance copies follow), and every [`SWEEP`] in case one was lost, at most every
//! [`PACE`], a page at a time. A snapshot's rows are complete up to the partition's offset
//! committed in it, so a read of the standby is never half a batch. Bounded: a stream
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

/// Most ledger rows one read takes.
const PAGE: i64 = 500;
/// Events waiting for a slow client.
const QUEUED: usize = 64;
/// Shortest time between two reads of one stream.
const PACE: Duration = Duration::from_millis(100);
/// Longest time between two reads of one stream (a lost notice is caught by then).
const SWEEP: Duration = Duration::from_secs(10);
/// Farther behind than this many offsets of its partition, a client is told to `reset`.
const MAX_BEHIND: i64 = 100_000;
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

/// One stream's reads of the ledger.
struct Feed {
    state: ReadState,
    store: i64,
    partition: i32,
    /// Offset of the last record of the partition the client has seen the effect of.
    cursor: Option<i64>,
    /// The highest offset a notice said is committed.
    target: Option<i64>,
    expires_at: i64,
}

/// A ledger row with one of its alerts (or none), as read.
#[derive(sqlx::FromRow)]
struct Row {
    committed: i64,
    source_offset: Option<i64>,
    product_id: Option<i64>,
    kind: Option<String>,
    quantity: Option<i64>,
    balance_after: Option<i64>,
    movement_id: Option<Uuid>,
    recorded_at: Option<DateTime<Utc>>,
    alert_kind: Option<String>,
    alert_quantity: Option<i64>,
    reorder_point: Option<i64>,
    raised_at: Option<DateTime<Utc>>,
}

type Sender = mpsc::Sender<Event>;

impl Feed {
    async fn run(
        mut self,
        mut notices: broadcast::Receiver<Wake>,
        events: &Sender,
    ) -> anyhow::Result<()> {
        let expiry = DateTime::from_timestamp(self.expires_at, 0).unwrap_or_else(Utc::now);
        let expires = tokio::time::sleep((expiry - Utc::now()).to_std().unwrap_or_default());
        tokio::pin!(expires);
        let mut first = true;
        loop {
            let (mut rows, committed, mut full) = self.read().await?;
            if first {
                first = false;
                if !self.start(committed, events).await? {
                    (rows, full) = (Vec::new(), false);
                }
            }
            self.send(rows, committed, full, events).await?;
            if full {
                continue;
            }
            tokio::time::sleep(PACE).await;
            tokio::select! {
                () = &mut expires => return Ok(()),
                () = events.closed() => return Ok(()),
                () = tokio::time::sleep(SWEEP) => {}
                () = self.notified(&mut notices) => {}
            }
        }
    }

    /// Waits for a notice naming the store (or for lost ones).
    async fn notified(&mut self, notices: &mut broadcast::Receiver<Wake>) {
        loop {
            match notices.recv().await {
                Ok(None) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                Ok(Some(notice)) if notice.stores.contains(&self.store) => {
                    if let Some((_, next)) = notice
                        .progress
                        .iter()
                        .find(|(partition, _)| *partition == self.partition)
                    {
                        self.target = self.target.max(Some(next - 1));
                    }
                    return;
                }
                Ok(Some(_)) => {}
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }

    /// The first event: where the stream starts. Whether it goes on from the client's
    /// position (else it starts now: no position given, or one too far behind).
    async fn start(&mut self, committed: i64, events: &Sender) -> anyhow::Result<bool> {
        let now = committed - 1;
        let (kind, resumed) = match self.cursor {
            Some(cursor) if cursor <= now && now - cursor <= MAX_BEHIND => ("ready", true),
            Some(_) => {
                self.cursor = Some(now);
                ("reset", false)
            }
            None => {
                self.cursor = (now >= 0).then_some(now);
                ("ready", false)
            }
        };
        self.position(kind, events).await?;
        Ok(resumed)
    }

    async fn position(&self, kind: &str, events: &Sender) -> anyhow::Result<()> {
        let position = self
            .cursor
            .map(|offset| ConsistencyToken::at(self.partition, offset).encode());
        let mut event = Event::default().event(kind).json_data(PositionEvent {
            position: position.clone(),
        })?;
        if let Some(position) = position {
            event = event.id(position);
        }
        events.send(event).await?;
        Ok(())
    }

    /// The store's applied movements after the cursor, up to what the snapshot committed,
    /// with their alerts; that committed offset; whether the page was full.
    async fn read(&self) -> anyhow::Result<(Vec<Row>, i64, bool)> {
        let target = self
            .target
            .filter(|target| *target >= 0)
            .map(|target| ConsistencyToken::at(self.partition, target));
        let pool = self.state.standby.pool_for(target.as_ref()).await;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT o.next_offset AS committed, m.source_offset, m.product_id, m.kind, m.quantity, \
               m.balance_after, m.movement_id, m.recorded_at, a.kind AS alert_kind, \
               a.quantity AS alert_quantity, a.reorder_point, a.raised_at \
             FROM processor_offsets o \
             LEFT JOIN LATERAL ( \
               SELECT source_offset, product_id, kind, quantity, balance_after, movement_id, recorded_at \
               FROM movements \
               WHERE source_partition = o.partition AND source_offset > $4 \
                 AND source_offset < o.next_offset AND store_id = $5 AND status = 'applied' \
                 AND balance_after IS NOT NULL \
               ORDER BY source_offset LIMIT $6) m ON true \
             LEFT JOIN alerts a ON a.store_id = $5 AND a.movement_id = m.movement_id \
             WHERE o.consumer_group = $1 AND o.topic = $2 AND o.partition = $3 \
             ORDER BY m.source_offset, a.id",
        )
        .bind(self.state.standby.group())
        .bind(self.state.standby.topic())
        .bind(self.partition)
        .bind(self.cursor.unwrap_or(-1))
        .bind(self.store)
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
        let committed = rows.first().map_or(0, |row| row.committed);
        let mut movements = rows.iter().map(|row| row.source_offset).collect::<Vec<_>>();
        movements.dedup();
        let full = movements.len() as i64 >= PAGE;
        Ok((rows, committed, full))
    }

    /// Sends the rows' events, each with its position; then, when the page was not full,
    /// the position the snapshot reached if no event carried it.
    async fn send(
        &mut self,
        rows: Vec<Row>,
        committed: i64,
        full: bool,
        events: &Sender,
    ) -> anyhow::Result<()> {
        let mut last = None;
        let mut sent = false;
        for row in rows {
            let (Some(offset), Some(product_id), Some(movement_id)) =
                (row.source_offset, row.product_id, row.movement_id)
            else {
                continue;
            };
            let id = ConsistencyToken::at(self.partition, offset).encode();
            if last != Some(offset) {
                last = Some(offset);
                let balance = BalanceEvent {
                    product_id,
                    quantity: row.balance_after.unwrap_or_default(),
                    movement_id,
                    kind: row.kind.unwrap_or_default(),
                    moved: row.quantity.unwrap_or_default(),
                    recorded_at: row.recorded_at.unwrap_or_default(),
                };
                events
                    .send(
                        Event::default()
                            .event("balance")
                            .id(&id)
                            .json_data(balance)?,
                    )
                    .await?;
                sent = true;
            }
            if let (Some(kind), Some(raised_at)) = (row.alert_kind, row.raised_at) {
                let alert = AlertEvent {
                    product_id,
                    kind,
                    quantity: row.alert_quantity.unwrap_or_default(),
                    reorder_point: row.reorder_point,
                    movement_id,
                    raised_at,
                };
                events
                    .send(Event::default().event("alert").id(&id).json_data(alert)?)
                    .await?;
            }
            self.cursor = Some(offset);
        }
        if !full && committed > 0 && self.cursor < Some(committed - 1) {
            self.cursor = Some(committed - 1);
            if !sent {
                self.position("position", events).await?;
            }
        }
        Ok(())
    }
}
