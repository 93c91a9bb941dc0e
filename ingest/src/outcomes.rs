//! `?wait=`: a movement's outcome, answered synchronously. Before producing, the request
//! subscribes to the movement's outcome channel on Redis; the processors publish there
//! after the batch that decided it commits. One pub/sub connection per ingest instance
//! carries every waiting request's channels; any number of instances can wait at once.
//! Without Redis there is nothing to wait on, and the answer is the plain `202`.
//!
//! A retry waits on the channel of the same movement id as the request before it; the
//! subscribe and unsubscribe commands of one channel are therefore decided and sent one
//! at a time (under one of [`CHANNEL_LOCKS`] locks, chosen by the channel), so the first
//! request's `UNSUBSCRIBE` cannot reach Redis after the retry's `SUBSCRIBE`.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use redis::aio::PubSubSink;
use schemas::cache::OutcomeNotice;
use service_kit::redis::Redis;
use tokio::sync::mpsc;
use uuid::Uuid;

/// The longest a subscription may take before the request goes on without waiting.
const SUBSCRIBE_WAIT: Duration = Duration::from_millis(500);

/// Locks serialising (un)subscribing per channel; distinct channels rarely share one.
const CHANNEL_LOCKS: usize = 64;

type Waiters = HashMap<String, Vec<(u64, mpsc::UnboundedSender<OutcomeNotice>)>>;

#[derive(Clone, Debug)]
pub struct Outcomes {
    redis: Redis,
    /// The live subscription connection, if any (a dead one is replaced on next use).
    sink: Arc<tokio::sync::Mutex<Option<PubSubSink>>>,
    waiters: Arc<Mutex<Waiters>>,
    channel_locks: Arc<[tokio::sync::Mutex<()>]>,
    next_id: Arc<AtomicU64>,
}

/// One request waiting for one movement's outcome; unsubscribes when dropped.
#[derive(Debug)]
pub struct Watch {
    outcomes: Outcomes,
    channel: String,
    id: u64,
    sink: PubSubSink,
    notices: mpsc::UnboundedReceiver<OutcomeNotice>,
}

impl Outcomes {
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            sink: Arc::default(),
            waiters: Arc::default(),
            channel_locks: (0..CHANNEL_LOCKS)
                .map(|_| tokio::sync::Mutex::default())
                .collect(),
            next_id: Arc::default(),
        }
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock under which `channel` is subscribed and unsubscribed.
    fn channel_lock(&self, channel: &str) -> &tokio::sync::Mutex<()> {
        let mut hasher = DefaultHasher::new();
        channel.hash(&mut hasher);
        &self.channel_locks[(hasher.finish() % CHANNEL_LOCKS as u64) as usize]
    }

    /// Subscribes to `movement_id`'s outcome; `None` when Redis is unavailable.
    pub async fn watch(&self, movement_id: Uuid) -> Option<Watch> {
        let channel = self
            .redis
            .key(&schemas::cache::outcome_channel(movement_id));
        let (sender, notices) = mpsc::unbounded_channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut sink = self.sink().await?;
        let _serial = self.channel_lock(&channel).lock().await;
        self.waiters()
            .entry(channel.clone())
            .or_default()
            .push((id, sender));
        let watch = Watch {
            outcomes: self.clone(),
            channel,
            id,
            sink: sink.clone(),
            notices,
        };
        match tokio::time::timeout(SUBSCRIBE_WAIT, sink.subscribe(&watch.channel)).await {
            Ok(Ok(())) => Some(watch),
            failed => {
                tracing::warn!(?failed, "Subscribing to an outcome failed; not waiting.");
                *self.sink.lock().await = None;
                None
            }
        }
    }

    /// The subscription connection, connecting (and starting its reader) if needed.
    async fn sink(&self) -> Option<PubSubSink> {
        let mut current = self.sink.lock().await;
        if let Some(sink) = current.as_ref() {
            return Some(sink.clone());
        }
        let pubsub = match self.redis.pubsub().await {
            Ok(pubsub) => pubsub,
            Err(error) => {
                tracing::warn!(%error, "Redis is unavailable; `?wait` answers without waiting.");
                return None;
            }
        };
        let (sink, mut stream) = pubsub.split();
        let outcomes = self.clone();
        tokio::spawn(async move {
            while let Some(message) = stream.next().await {
                let channel = message.get_channel_name().to_owned();
                let Ok(payload) = message.get_payload::<String>() else {
                    continue;
                };
                let Ok(notice) = serde_json::from_str::<OutcomeNotice>(&payload) else {
                    tracing::warn!(%channel, "An outcome notice did not parse.");
                    continue;
                };
                if let Some(waiting) = outcomes.waiters().get(&channel) {
                    for (_, sender) in waiting {
                        let _ = sender.send(notice.clone());
                    }
                }
            }
            // The connection is gone: the next request connects again.
            *outcomes.sink.lock().await = None;
        });
        *current = Some(sink.clone());
        Some(sink)
    }
}

impl Watch {
    /// The outcome of the record at `partition`/`offset` (an earlier post of the same id
    /// has its own outcome on the same channel); `None` when the connection dropped.
    pub async fn outcome_of(&mut self, partition: i32, offset: i64) -> Option<OutcomeNotice> {
        while let Some(notice) = self.notices.recv().await {
            if notice.partition == partition && notice.offset == offset {
                return Some(notice);
            }
        }
        None
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let channel = std::mem::take(&mut self.channel);
        let last = {
            let mut waiters = self.outcomes.waiters();
            let remaining = waiters.get_mut(&channel).map(|waiting| {
                waiting.retain(|(id, _)| *id != self.id);
                waiting.len()
            });
            if remaining == Some(0) {
                waiters.remove(&channel);
            }
            remaining == Some(0)
        };
        if last {
            let outcomes = self.outcomes.clone();
            let mut sink = self.sink.clone();
            tokio::spawn(async move {
                let _serial = outcomes.channel_lock(&channel).lock().await;
                // A retry of the same movement may have subscribed since.
                if !outcomes.waiters().contains_key(&channel) {
                    let _ = sink.unsubscribe(&channel).await;
                }
            });
        }
    }
}
