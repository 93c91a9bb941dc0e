//! Preparing a batch, up to its write: the polled records decoded (or dead-lettered), what
//! the batch needs read from Postgres (concurrently), the batch decided in memory on the
//! held state, sales sent without a price stamped with the store's, and the dead letters
//! produced. The positions move on; `commit` writes what this returns.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use rdkafka::message::{Message, OwnedMessage};
use schemas::wire::schema_id;
use schemas::{MovementKind, ProductId, SchemaIds, StockMovement, StoreId, WireFormat};
use service_kit::schema_registry::SchemaCache;
use sqlx::PgPool;
use uuid::Uuid;

use crate::cache_writer::CachedBalance;
use crate::decide;
use crate::ledger::{self, Progress, Record};
use crate::metrics::ProcessorMetrics;
use crate::outputs::{DeadLetter, DeadLetters};
use crate::state::State;

/// A batch decided (its dead letters produced), to be written (then published).
pub(crate) struct Batch {
    pub(crate) records: Vec<Record>,
    pub(crate) outcomes: Vec<decide::Outcome>,
    pub(crate) dead: Vec<DeadLetter>,
    pub(crate) progress: Vec<Progress>,
    pub(crate) catalog: decide::BatchCatalog,
    /// Stores whose whole state this batch loaded (their cache entries are written whole).
    pub(crate) loaded: Vec<(StoreId, Vec<(ProductId, CachedBalance)>)>,
    /// The movements of earlier batches this batch's voids name, as the ledger has them.
    pub(crate) voided: HashMap<Uuid, ledger::Voided>,
    /// Kafka records covered, dead letters included.
    pub(crate) count: usize,
}

/// The first outcome recorded for each movement id a batch carries.
pub(crate) type Seen = HashMap<Uuid, decide::Original>;

/// What the batch in flight decided that Postgres may not hold yet: the first outcomes of
/// its movements, and the transfers its transfer-outs sent and its receives received.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(crate) seen: Seen,
    pub(crate) transfers: HashMap<Uuid, decide::Transfer>,
}

impl Pending {
    pub(crate) fn clear(&mut self) {
        self.seen.clear();
        self.transfers.clear();
    }
}

/// A polled batch decoded: its movements, its dead letters and where its partitions go.
pub(crate) struct Decoded {
    records: Vec<Record>,
    dead: Vec<DeadLetter>,
    progress: Vec<Progress>,
    count: usize,
}

impl Decoded {
    /// A batch of no record that moves `passed` partitions (partition, from, to) over the
    /// transaction markers their consumer position stepped past.
    pub(crate) fn markers(passed: &[(i32, i64, i64)]) -> Self {
        let progress = passed
            .iter()
            .map(|&(partition, expected, next)| Progress {
                partition,
                expected,
                next,
                published: None,
            })
            .collect();
        Self {
            records: Vec::new(),
            dead: Vec::new(),
            progress,
            count: 0,
        }
    }

    /// Whether the batch must be decided on a ledger that holds `pending` (the batch in
    /// flight): a void of one of its movements reverses its row, and a count takes the book
    /// as of its time from the ledger. (A transfer's state is carried in `pending`.)
    pub(crate) fn waits_for(&self, pending: &Pending) -> bool {
        !pending.seen.is_empty()
            && self.records.iter().any(|record| {
                let movement = &record.movement;
                movement.kind == MovementKind::Count
                    || movement
                        .voids_movement_id
                        .is_some_and(|id| pending.seen.contains_key(&id))
            })
    }
}

/// Prepares batches: Postgres reads, the decision, dead letters.
#[derive(Debug, Clone)]
pub(crate) struct Preparer {
    pub(crate) pool: PgPool,
    pub(crate) dead_letters: DeadLetters,
    pub(crate) schemas: SchemaCache,
    pub(crate) metrics: ProcessorMetrics,
}

impl Preparer {
    /// Asks the registry for the schema ids `polled` names that are not known yet (a
    /// producer upgraded after this processor started): rare, and never per record. An
    /// id it cannot resolve leaves its records to become dead letters.
    pub(crate) fn learn_schema_ids(
        &self,
        runtime: &tokio::runtime::Handle,
        polled: &BTreeMap<i32, Vec<OwnedMessage>>,
    ) {
        let known = self.schemas.ids();
        let unknown: Vec<u32> = polled
            .values()
            .flatten()
            .filter_map(|message| schema_id(message.payload().unwrap_or_default()))
            .filter(|id| !known.knows(*id))
            .collect();
        if !unknown.is_empty() {
            runtime.block_on(self.schemas.learn(unknown));
        }
    }

    /// Decodes a polled batch; records the isolation marks as poisoned become dead letters.
    pub(crate) fn decode(
        &self,
        state: &mut State,
        polled: BTreeMap<i32, Vec<OwnedMessage>>,
    ) -> Decoded {
        let mut records = Vec::new();
        let mut dead = Vec::new();
        let mut progress = Vec::with_capacity(polled.len());
        let mut count = 0;
        let ids = self.schemas.ids();
        for (partition, messages) in polled {
            let expected = state.positions.get(&partition).copied().unwrap_or(0);
            let next = messages.last().map_or(expected, |last| last.offset() + 1);
            progress.push(Progress {
                partition,
                expected,
                next,
                published: None,
            });
            count += messages.len();
            for message in messages {
                if let Some(reason) = state.isolation.take_poisoned(partition, message.offset()) {
                    self.metrics.poisoned.inc();
                    dead.push(DeadLetter::of(&message, "refused_by_database", reason));
                    continue;
                }
                match read(message, &ids) {
                    Ok(record) => records.push(record),
                    Err(letter) => dead.push(letter),
                }
            }
        }
        Decoded {
            records,
            dead,
            progress,
            count,
        }
    }

    /// Batch N+1 up to its write: reads what it needs (its movement ids also among
    /// `pending`, the first outcomes of batch N, still in flight), decides it on the state
    /// in memory, produces its dead letters, and moves the positions on. Returns the batch
    /// and the first outcomes it decided.
    pub(crate) async fn prepare(
        &self,
        state: &mut State,
        pending: &Pending,
        decoded: Decoded,
    ) -> anyhow::Result<(Batch, Pending)> {
        let mut clock = Instant::now();
        let Decoded {
            mut records,
            dead,
            progress,
            count,
        } = decoded;

        // What the batch needs from Postgres, read concurrently: the first outcomes of its
        // movement ids, of the movements its returns and voids name and of the transfer-ins
        // its receives confirm, the ledger rows of those its voids name (none for those this
        // batch decides first) and the transfers its transfer movements name.
        let mut ids: Vec<Uuid> = records
            .iter()
            .flat_map(|r| {
                let m = &r.movement;
                [
                    Some(m.movement_id),
                    m.original_movement_id,
                    m.voids_movement_id,
                    m.transfer_id
                        .filter(|_| m.kind == MovementKind::TransferReceive)
                        .map(schemas::transfer_in_id),
                ]
            })
            .flatten()
            .collect();
        let transfer_ids: Vec<Uuid> = unique_ids(
            records
                .iter()
                .filter(|r| {
                    matches!(
                        r.movement.kind,
                        MovementKind::TransferOut | MovementKind::TransferReceive
                    )
                })
                .filter_map(|r| r.movement.transfer_id),
        );
        ids.sort_unstable();
        ids.dedup();
        let voided_ids: Vec<Uuid> =
            unique_ids(records.iter().filter_map(|r| r.movement.voids_movement_id));
        // Once each (a resent count is in the batch twice).
        let counts: Vec<(Uuid, i64, i64, DateTime<Utc>)> = records
            .iter()
            .map(|r| &r.movement)
            .filter(|m| m.kind == MovementKind::Count)
            .map(|m| {
                (
                    m.movement_id,
                    (m.store_id.get(), m.product_id.get(), m.occurred_at),
                )
            })
            .collect::<HashMap<_, _>>()
            .into_iter()
            .map(|(id, (store, product, at))| (id, store, product, at))
            .collect();
        let stores: Vec<i64> = unique(records.iter().map(|r| r.movement.store_id.get()));
        let products: Vec<i64> = unique(records.iter().map(|r| r.movement.product_id.get()));
        // The catalog also knows the stores the batch's transfer-outs send to.
        let named_stores: Vec<i64> = unique(records.iter().flat_map(|r| {
            [Some(r.movement.store_id), r.movement.to_store_id]
                .into_iter()
                .flatten()
                .map(StoreId::get)
        }));
        let pairs: HashSet<(StoreId, ProductId)> = records
            .iter()
            .map(|r| (r.movement.store_id, r.movement.product_id))
            .collect();
        let missing: Vec<i64> = stores
            .iter()
            .copied()
            .filter(|store| !state.balances.contains_key(&StoreId(*store)))
            .collect();
        let since = state
            .settings_read
            .map(|at| at - service_kit::postgres::CHANGE_OVERLAP);
        let (mut seen, mut catalog, stored, settings, (read_at, changes), voided, later, transfers) =
            tokio::try_join!(
                ledger::seen(&self.pool, &ids),
                ledger::catalog(&self.pool, &named_stores, &products),
                ledger::balances(&self.pool, &missing),
                ledger::settings(&self.pool, &missing),
                ledger::settings_changed(&self.pool, since),
                ledger::voided(&self.pool, &voided_ids),
                ledger::later_changes(&self.pool, &counts),
                ledger::transfers(&self.pool, &transfer_ids),
            )?;
        catalog.later_changes = later;
        // Batch N's transfers are newer than Postgres's, which may not hold N yet.
        catalog.transfers = transfers;
        catalog.transfers.extend(
            pending
                .transfers
                .iter()
                .map(|(id, transfer)| (*id, *transfer)),
        );
        for (id, row) in &voided {
            if let Some(original) = seen.get_mut(id) {
                original.effect = Some(decide::Effect::of(&row.movement));
            }
        }
        // A voided return gives its sale the units back to return: that sale's first outcome
        // too (one more read, for a batch voiding a return of a sale it does not name).
        catalog.return_sales = voided
            .iter()
            .filter(|(_, row)| row.movement.kind == MovementKind::Return)
            .filter_map(|(id, row)| Some((*id, row.movement.original_movement_id?)))
            .collect();
        let sales = unique_ids(
            catalog
                .return_sales
                .values()
                .copied()
                .filter(|sale| !seen.contains_key(sale)),
        );
        if !sales.is_empty() {
            seen.extend(ledger::seen(&self.pool, &sales).await?);
            ids.extend(sales);
        }
        state.take_settings(read_at, changes, &missing, settings);
        catalog.reorder_points = state.reorder_points(&pairs);
        // Batch N's state of an id is newer than Postgres's, which may not hold N yet: its
        // first outcomes, and the returns it counted on a sale.
        for id in &ids {
            if let Some(original) = pending.seen.get(id) {
                seen.insert(*id, *original);
            }
        }
        self.metrics.stage("read", &mut clock);
        let loaded = state.hold(&missing, stored);
        for record in &records {
            state
                .partition_of
                .insert(record.movement.store_id, record.partition);
        }

        let outcomes = decide::decide(
            &mut state.balances,
            &mut seen,
            &catalog,
            records.iter().map(|record| &record.movement),
        );
        decide::carried::stamp_store_prices(&mut records, &outcomes, &state.settings);
        self.metrics.stage("decide", &mut clock);
        if !dead.is_empty() {
            self.dead_letters.send(&dead).await?;
            self.metrics.stage("dead_letters", &mut clock);
        }
        for step in &progress {
            state.positions.insert(step.partition, step.next);
        }
        let transfers = decide::carried::moved_transfers(&records, &outcomes, &catalog.transfers);
        let batch = Batch {
            records,
            outcomes,
            dead,
            progress,
            catalog,
            loaded,
            voided,
            count,
        };
        Ok((batch, Pending { seen, transfers }))
    }
}

/// A movement, or the dead letter it becomes.
fn read(message: OwnedMessage, ids: &SchemaIds) -> Result<Record, DeadLetter> {
    let payload = message.payload().unwrap_or_default();
    let dead = |error, detail: String| DeadLetter::of(&message, error, detail);
    let movement = match StockMovement::decode_with(ids, payload) {
        Ok(movement) => movement,
        Err(error) => return Err(dead("undecodable", error.to_string())),
    };
    if let Some(problem) = decide::invalid(&movement) {
        return Err(dead(problem, format!("movement {}", movement.movement_id)));
    }
    let recorded_at = message
        .timestamp()
        .to_millis()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .unwrap_or(movement.received_at);
    Ok(Record {
        partition: message.partition(),
        offset: message.offset(),
        recorded_at,
        movement,
        store_price_paise: None,
    })
}

fn unique_ids(values: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
    let set: HashSet<Uuid> = values.collect();
    set.into_iter().collect()
}

fn unique(values: impl Iterator<Item = i64>) -> Vec<i64> {
    let set: HashSet<i64> = values.collect();
    set.into_iter().collect()
}
