//! Polling a batch: up to `PROCESSOR_BATCH_MAX` records, bounded in time, and only the
//! records of owned partitions from each one's position on.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use service_kit::settings::ProcessorSettings;

use crate::metrics::ProcessorMetrics;
use crate::rebalance::Kafka;

/// How long an idle poll blocks before the loop looks at the shutdown signal again.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Up to `batch_max` messages: waits up to `IDLE_POLL` for the first one, then at most
/// `batch_wait` for the rest. `true`: Kafka refused a partition's position (it says
/// which partition only in its log; `halt_out_of_range` finds it).
pub(crate) fn poll_batch(
    consumer: &Kafka,
    limits: &ProcessorSettings,
    metrics: &ProcessorMetrics,
) -> (Vec<OwnedMessage>, bool) {
    let mut messages = Vec::new();
    let mut deadline: Option<Instant> = None;
    while messages.len() < limits.batch_max {
        let wait = match deadline {
            None => IDLE_POLL,
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
        };
        match consumer.poll(wait) {
            Some(Ok(message)) => {
                messages.push(message.detach());
                deadline.get_or_insert_with(|| Instant::now() + limits.batch_wait);
            }
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                return (messages, true);
            }
            Some(Err(error)) => {
                metrics.error("kafka");
                tracing::warn!(%error, "Polling failed.");
                if messages.is_empty() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                break;
            }
            None => break,
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
    }
    (messages, false)
}

/// The owned partitions (not halted) whose consumer position passed records no batch took,
/// with where they stand and where the consumer is: called when a poll returned nothing
/// and no batch is in flight, every record delivered was taken, so what was passed is
/// transaction markers only — the commit marker after the transfer-ins the processors
/// write to this topic. Left behind, the stored offset would stay one short of the log's
/// end (lag 1, a partition that looks stuck). librdkafka steps the position over them.
pub(crate) fn markers_passed(
    consumer: &Kafka,
    positions: &HashMap<i32, i64>,
    halted: impl Fn(i32) -> bool,
) -> Vec<(i32, i64, i64)> {
    use rdkafka::consumer::Consumer;
    let Ok(list) = consumer.position() else {
        return Vec::new();
    };
    list.elements()
        .iter()
        .filter_map(|element| {
            let partition = element.partition();
            let stored = *positions.get(&partition)?;
            match element.offset() {
                rdkafka::Offset::Offset(at) if at > stored && !halted(partition) => {
                    Some((partition, stored, at))
                }
                _ => None,
            }
        })
        .collect()
}

/// The polled messages of owned partitions, per partition in offset order from each
/// position on (a replay of what the batch before already took is dropped).
///
/// Offsets need not be contiguous: transaction markers and compaction leave holes that are
/// normal on Kafka. Records the broker no longer has are not a hole here: with
/// `auto.offset.reset=error` Kafka refuses the fetch, and the partition halts (`halts`).
pub(crate) fn in_order(
    messages: Vec<OwnedMessage>,
    positions: &HashMap<i32, i64>,
) -> BTreeMap<i32, Vec<OwnedMessage>> {
    let mut cursor: HashMap<i32, i64> = HashMap::new();
    let mut batch: BTreeMap<i32, Vec<OwnedMessage>> = BTreeMap::new();
    for message in messages {
        let partition = message.partition();
        let Some(position) = positions.get(&partition) else {
            continue;
        };
        let next = cursor.entry(partition).or_insert(*position);
        if message.offset() < *next {
            continue;
        }
        *next = message.offset() + 1;
        batch.entry(partition).or_default().push(message);
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::message;

    #[test]
    fn polled_messages_are_taken_from_each_position_on_and_holes_are_normal() {
        let positions = HashMap::from([(0, 10), (1, 5)]);
        let messages = vec![
            message(0, 9), // taken by the batch before: dropped
            message(0, 10),
            message(1, 8), // 5 to 7: a transaction's marker, say
            message(0, 11),
            message(2, 0),  // not ours
            message(0, 11), // fetched twice
            message(1, 9),
            message(0, 13),
        ];
        let offsets: Vec<(i32, Vec<i64>)> = in_order(messages, &positions)
            .iter()
            .map(|(partition, messages)| {
                (*partition, messages.iter().map(Message::offset).collect())
            })
            .collect();
        assert_eq!(offsets, [(0, vec![10, 11, 13]), (1, vec![8, 9])]);
    }
}
