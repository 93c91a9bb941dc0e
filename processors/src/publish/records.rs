//! The records of a published batch: its ledger entries, then the last balance of every
//! product it changed, then its alerts — from memory after a commit, or from the ledger's
//! rows when a partition is published again.

use super::*;

impl Publisher {
    /// The outputs of `runs` (of whole partitions, each in its batch), from memory: ledger
    /// entries, then the last balance of every product they changed, then their alerts.
    pub(super) async fn produce_decided(
        &self,
        batches: &[Committed],
        runs: &[(usize, Range<usize>)],
    ) -> anyhow::Result<()> {
        let mut buffer = Vec::with_capacity(512);
        for (at, run) in runs {
            let batch = &batches[*at].0;
            let (records, outcomes) = (&batch.records[run.clone()], &batch.outcomes[run.clone()]);
            for (record, outcome) in records.iter().zip(outcomes) {
                outputs::ledger_entry(record, outcome)
                    .encode_with(&self.schema_ids, encoding(&mut buffer))?;
                self.send(&self.ledger, &store_key(record.movement.store_id), &buffer)
                    .await?;
                if matches!(outcome, Outcome::Applied { .. }) {
                    self.send_transfer_in(&record.movement, &mut buffer).await?;
                }
            }
        }
        for (at, run) in runs {
            let batch = &batches[*at].0;
            let (records, outcomes) = (&batch.records[run.clone()], &batch.outcomes[run.clone()]);
            for (record, holding) in effects::changed_balances(records, outcomes) {
                let balance = outputs::balance(record, holding);
                self.send_balance(&balance, &mut buffer).await?;
            }
            for alert in effects::raised_alerts(records, outcomes, &batch.catalog) {
                self.send_alert(&outputs::alert(&alert), &mut buffer)
                    .await?;
            }
        }
        Ok(())
    }

    /// Outputs read back from Postgres.
    pub(super) async fn produce_stored(
        &self,
        entries: &[LedgerEntry],
        balances: &[Balance],
        alerts: &[StockAlert],
    ) -> anyhow::Result<()> {
        let mut buffer = Vec::with_capacity(512);
        for entry in entries {
            entry.encode_with(&self.schema_ids, encoding(&mut buffer))?;
            self.send(&self.ledger, &store_key(entry.movement.store_id), &buffer)
                .await?;
            if entry.status == LedgerStatus::Applied {
                self.send_transfer_in(&entry.movement, &mut buffer).await?;
            }
        }
        for balance in balances {
            self.send_balance(balance, &mut buffer).await?;
        }
        for alert in alerts {
            self.send_alert(alert, &mut buffer).await?;
        }
        Ok(())
    }

    /// An applied transfer-out's transfer-in, to the movements topic keyed by its
    /// destination: in the transaction that publishes the transfer-out's ledger entry and
    /// commits its input offset, so it exists once the transfer-out is published, and never
    /// twice in what `read_committed` consumers read (a transaction published again after
    /// an abort carries the same movement id, recorded once at the destination).
    async fn send_transfer_in(
        &self,
        movement: &StockMovement,
        buffer: &mut Vec<u8>,
    ) -> anyhow::Result<()> {
        let Some(notice) = movement.transfer_in() else {
            return Ok(());
        };
        notice.encode_with(&self.schema_ids, encoding(buffer))?;
        self.metrics.transfers_announced.inc();
        self.send(&self.source, &store_key(notice.store_id), buffer)
            .await
    }

    async fn send_balance(&self, balance: &Balance, buffer: &mut Vec<u8>) -> anyhow::Result<()> {
        balance.encode_with(&self.schema_ids, encoding(buffer))?;
        let key = balance_key(balance.store_id, balance.product_id);
        self.send(&self.balances, &key, buffer).await
    }

    async fn send_alert(&self, alert: &StockAlert, buffer: &mut Vec<u8>) -> anyhow::Result<()> {
        alert.encode_with(&self.schema_ids, encoding(buffer))?;
        self.send(&self.alerts, &store_key(alert.store_id), buffer)
            .await
    }

    /// Hands one record to the transaction (librdkafka copies it). Its acknowledgement is
    /// not awaited: committing the transaction flushes every record and fails if one did.
    async fn send(&self, topic: &str, key: &str, payload: &[u8]) -> anyhow::Result<()> {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        kafka::enqueue(&self.producer, record, QUEUE_WAIT).await?;
        Ok(())
    }
}

/// The buffer, emptied for the next record.
fn encoding(buffer: &mut Vec<u8>) -> &mut Vec<u8> {
    buffer.clear();
    buffer
}
