//! A record can fail; a partition cannot stop. When a batch fails, the failure is either
//! transient (Postgres or Kafka unreachable, a timeout: the batch is retried with backoff
//! and its partitions wait) or deterministic (Postgres refused the data itself: a class 22
//! data exception, 23 integrity violation or 54 limit — retrying the same batch would fail
//! forever). A deterministic failure is isolated: the partitions of the failed batch are
//! then processed one record at a time up to where that batch ended; the record that
//! fails alone is poisoned, and when it comes again it goes to the dead-letter topic with
//! the database's error, its source partition and offset — and the partition goes on.

use std::collections::{BTreeMap, HashMap};

use rdkafka::Message;
use rdkafka::message::OwnedMessage;

use crate::ledger::CommitError;

/// The SQLSTATE of a Postgres refusal that no retry can change, with its message.
pub fn deterministic(error: &anyhow::Error) -> Option<String> {
    if matches!(error.downcast_ref(), Some(CommitError::Fenced)) {
        return None;
    }
    let database = error.chain().find_map(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .or_else(|| match cause.downcast_ref() {
                Some(CommitError::Database(error)) => Some(error),
                _ => None,
            })
            .and_then(sqlx::Error::as_database_error)
    })?;
    let code = database.code()?;
    matches!(code.get(..2), Some("22" | "23" | "54"))
        .then(|| format!("SQLSTATE {code}: {}", database.message()))
}

/// The offsets of one partition a batch covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub partition: i32,
    pub first: i64,
    pub last: i64,
}

/// The spans of a polled batch.
pub fn spans(batch: &BTreeMap<i32, Vec<OwnedMessage>>) -> Vec<Span> {
    batch
        .iter()
        .filter_map(|(partition, messages)| {
            Some(Span {
                partition: *partition,
                first: messages.first()?.offset(),
                last: messages.last()?.offset(),
            })
        })
        .collect()
}

#[derive(Debug, Default)]
pub struct Isolation {
    /// Partitions processed one record at a time, up to this offset (inclusive).
    until: BTreeMap<i32, i64>,
    /// Records that failed alone, with the reason: dead letters when they come again.
    poisoned: HashMap<(i32, i64), String>,
}

impl Isolation {
    /// A batch covering `spans` failed deterministically: a single record is poisoned,
    /// a larger batch is taken apart.
    pub fn failed(&mut self, spans: &[Span], reason: String) {
        match spans {
            [span] if span.first == span.last => {
                tracing::error!(
                    partition = span.partition,
                    offset = span.first,
                    %reason,
                    "A movement fails deterministically in Postgres; it goes to the dead-letter topic and its partition goes on."
                );
                self.poisoned.insert((span.partition, span.first), reason);
            }
            _ => {
                tracing::warn!(
                    ?spans,
                    %reason,
                    "A batch fails deterministically in Postgres; taking it apart one movement at a time to find the record."
                );
                for span in spans {
                    let until = self.until.entry(span.partition).or_insert(span.last);
                    *until = (*until).max(span.last);
                }
            }
        }
    }

    /// The reason `partition`'s record at `offset` was poisoned, once.
    pub fn take_poisoned(&mut self, partition: i32, offset: i64) -> Option<String> {
        self.poisoned.remove(&(partition, offset))
    }

    /// While partitions are being taken apart, cuts `batch` to one record of one of them.
    /// Returns where each partition whose polled records were dropped must be fetched
    /// again from.
    pub fn narrow(
        &mut self,
        batch: &mut BTreeMap<i32, Vec<OwnedMessage>>,
        positions: &HashMap<i32, i64>,
    ) -> Vec<(i32, i64)> {
        self.until.retain(|partition, until| {
            positions
                .get(partition)
                .is_some_and(|position| position <= until)
        });
        let Some(chosen) = self
            .until
            .keys()
            .copied()
            .find(|partition| batch.contains_key(partition))
        else {
            return Vec::new();
        };
        let mut refetch: Vec<(i32, i64)> = batch
            .keys()
            .filter(|partition| **partition != chosen)
            .filter_map(|partition| Some((*partition, *positions.get(partition)?)))
            .collect();
        batch.retain(|partition, _| *partition == chosen);
        if let Some(messages) = batch.get_mut(&chosen) {
            messages.truncate(1);
            // The rest of the chosen partition was polled too.
            if let Some(kept) = messages.first() {
                refetch.push((chosen, kept.offset() + 1));
            }
        }
        refetch
    }

    pub fn is_active(&self) -> bool {
        !self.until.is_empty()
    }

    /// Partitions no longer this processor's: nothing to isolate there.
    pub fn forget(&mut self, partitions: &[i32]) {
        self.until
            .retain(|partition, _| !partitions.contains(partition));
        self.poisoned
            .retain(|(partition, _), _| !partitions.contains(partition));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::message;

    #[test]
    fn a_failed_batch_is_taken_apart_and_a_record_failing_alone_is_poisoned() {
        let mut isolation = Isolation::default();
        isolation.failed(
            &[
                Span {
                    partition: 0,
                    first: 10,
                    last: 12,
                },
                Span {
                    partition: 1,
                    first: 5,
                    last: 5,
                },
            ],
            "SQLSTATE 22021".into(),
        );
        let positions = HashMap::from([(0, 10), (1, 5), (2, 0)]);
        let mut batch = BTreeMap::from([
            (0, vec![message(0, 10), message(0, 11)]),
            (2, vec![message(2, 0)]),
        ]);
        let refetch = isolation.narrow(&mut batch, &positions);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[&0].len(), 1, "one record at a time");
        assert_eq!(refetch, [(2, 0), (0, 11)]);

        isolation.failed(
            &[Span {
                partition: 0,
                first: 10,
                last: 10,
            }],
            "SQLSTATE 22021".into(),
        );
        assert_eq!(
            isolation.take_poisoned(0, 10).as_deref(),
            Some("SQLSTATE 22021")
        );
        assert_eq!(isolation.take_poisoned(0, 10), None);

        // Once past where the failed batch ended, partitions go back to whole batches.
        let positions = HashMap::from([(0, 13), (1, 6)]);
        let mut batch = BTreeMap::from([(0, vec![message(0, 13), message(0, 14)])]);
        assert!(isolation.narrow(&mut batch, &positions).is_empty());
        assert_eq!(batch[&0].len(), 2);
        assert!(!isolation.is_active());
    }
}
