//! Following the processors' notices: each drops the copy of a store it names, and an
//! audit each second catches notices lost in flight by comparing every copy's version
//! with Redis's.

use super::*;

impl BalanceCopies {
    /// Follows the processors' notices until `stop`, subscribing again whenever the
    /// subscription is lost. Run it once per instance.
    pub async fn follow(self: Arc<Self>, stop: CancellationToken) {
        while !stop.is_cancelled() {
            if let Err(error) = self.subscribed(&stop).await {
                tracing::debug!(%error, "The balance notices are not followed; reads go to Redis.");
            }
            self.change(|copies| copies.clear(false));
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(RECONNECT_AFTER) => {}
            }
        }
    }

    async fn subscribed(&self, stop: &CancellationToken) -> anyhow::Result<()> {
        let mut pubsub = self.redis.pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        // Subscribed: every later write is announced. Copies taken from now on start
        // from this progress.
        let progress = self.redis_progress().await?;
        self.change(|copies| {
            copies.clear(true);
            copies.progress = Arc::new(progress);
        });
        tracing::info!(
            "Following the processors' balance notices: hot reads need no Redis round trip."
        );
        let mut notices = pubsub.into_on_message();
        let mut audit = tokio::time::interval(AUDIT_EVERY);
        audit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                message = notices.next() => {
                    let Some(message) = message else {
                        anyhow::bail!("the subscription ended");
                    };
                    let notice = message
                        .get_payload::<String>()
                        .ok()
                        .and_then(|text: String| serde_json::from_str::<BalancesChanged>(&text).ok());
                    match notice {
                        Some(notice) => self.apply(&notice),
                        // Unknown shape: nothing held can be trusted.
                        None => anyhow::bail!("a balance notice did not parse"),
                    }
                }
                _ = audit.tick() => self.audit().await?,
            }
        }
    }

    async fn redis_progress(&self) -> redis::RedisResult<BTreeMap<i32, i64>> {
        let mut connection = self.redis.connection().await?;
        let fields: Vec<(i32, i64)> = redis::cmd("HGETALL")
            .arg(&self.progress_key)
            .query_async(&mut connection)
            .await?;
        Ok(fields.into_iter().collect())
    }

    pub(super) fn apply(&self, notice: &BalancesChanged) {
        self.change(|copies| Self::note(copies, notice));
    }

    fn note(copies: &mut Copies, notice: &BalancesChanged) {
        copies.seq += 1;
        let seq = copies.seq;
        for store in &notice.stores {
            copies.drop_store(*store);
            copies.changed.insert(*store, seq);
        }
        if !notice.progress.is_empty() {
            let mut progress = BTreeMap::clone(&copies.progress);
            for (partition, next) in &notice.progress {
                let at = progress.entry(*partition).or_insert(*next);
                *at = (*at).max(*next);
            }
            copies.progress = Arc::new(progress);
        }
    }

    /// Drops every copy whose version is no longer Redis's (a notice lost, keys deleted).
    async fn audit(&self) -> redis::RedisResult<()> {
        let (mark, held): (Mark, Vec<(i64, Arc<Snapshot>)>) = {
            let copies = self.read();
            let held = copies
                .stores
                .iter()
                .map(|(store, snapshot)| (*store, snapshot.clone()))
                .collect();
            (
                Mark {
                    epoch: copies.epoch,
                    seq: copies.seq,
                },
                held,
            )
        };
        if held.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (store, _) in &held {
            pipe.get(
                self.redis
                    .key(&cache::balances_version_key(schemas::StoreId(*store))),
            );
        }
        let mut connection = self.redis.connection().await?;
        let versions: Vec<Option<String>> = pipe.query_async(&mut connection).await?;
        self.change(|copies| {
            if copies.epoch != mark.epoch {
                return;
            }
            for ((store, snapshot), version) in held.iter().zip(versions) {
                let still_held = copies
                    .stores
                    .get(store)
                    .is_some_and(|current| Arc::ptr_eq(current, snapshot));
                if still_held && version.as_deref() != Some(snapshot.version.as_str()) {
                    tracing::debug!(store, "A held copy of a store's balances was out of date.");
                    copies.drop_store(*store);
                }
            }
        });
        Ok(())
    }
}
