//! One stream's reads of the ledger: after the cursor, up to what a snapshot committed,
//! a page at a time, each row's balance and alerts sent with its position.

use std::time::Duration;

use axum::response::sse::Event;
use chrono::{DateTime, Utc};
use schemas::consistency::ConsistencyToken;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use super::{AlertEvent, BalanceEvent, PositionEvent, Wake};
use crate::ReadState;

/// Most ledger rows one read takes.
const PAGE: i64 = 500;
/// Shortest time between two reads of one stream.
const PACE: Duration = Duration::from_millis(100);
/// Longest time between two reads of one stream (a lost notice is caught by then).
pub(super) const SWEEP: Duration = Duration::from_secs(10);
/// Farther behind than this many offsets of its partition, a client is told to `reset`.
const MAX_BEHIND: i64 = 100_000;

/// One stream's reads of the ledger.
pub(super) struct Feed {
    pub(super) state: ReadState,
    pub(super) store: i64,
    pub(super) partition: i32,
    /// Offset of the last record of the partition the client has seen the effect of.
    pub(super) cursor: Option<i64>,
    /// The highest offset a notice said is committed.
    pub(super) target: Option<i64>,
    pub(super) expires_at: i64,
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
    pub(super) async fn run(
        mut self,
        mut notices: broadcast::Receiver<Wake>,
        events: &Sender,
    ) -> anyhow::Result<()> {
        let expiry = DateTime::from_timestamp(self.expires_at, 0).unwrap_or_else(Utc::now);
        let expires = tokio::time::sleep((expiry - Utc::now()).to_std().unwrap_or_default());
        tokio::pin!(expires);
        // The notices of what was committed before the stream subscribed went to nobody:
        // the first read waits for the standby to have replayed it (a reconnect after a
        // burst of sales would otherwise see them only at the next sweep).
        self.target = self
            .state
            .standby
            .committed_on_primary(self.partition)
            .await?;
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
