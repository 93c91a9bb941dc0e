//! The restore drill: PostgreSQL replaced mid-stream by a base backup taken seconds before,
//! while movements flowed — what an operator's restore does (docs/operations.md, "Backups").
//! The processors find the ledger and their offsets older than they left them, reload their
//! partitions from it and apply again from Kafka what came after the backup: the ledger
//! ends equal to the model, nothing lost and nothing applied twice, and the output topics
//! hold those later rows twice, the same each time (consumers dedupe by position).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use test_kit::{ChildService, Replayed, TestStack, committed, progress_beyond, seed_catalog};

use super::{BATCHES, BINARY, Outcome, SLACK, Scale, scenario, stack_command};

pub(super) async fn restored_from_a_backup(scale: Scale) -> Outcome {
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let movements = scale.movements(16, 107);
    let processor = ChildService::start_with(BINARY, &stack, &[BATCHES]);
    let away = Mutex::new(Duration::ZERO);
    let (faults, stall) = scenario(
        &stack,
        movements.clone(),
        scale.rate / 4,
        Replayed::AfterRestore,
        |stream| async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            stack_command("backup", "postgres");
            // Movements committed after the backup: the restore takes them out of the ledger.
            let backed_up = committed(&stack).await;
            assert!(
                progress_beyond(&stack, backed_up, Duration::from_secs(30)).await,
                "nothing was committed after the backup"
            );
            tokio::time::sleep(Duration::from_secs(4)).await;
            let before = committed(&stack).await;
            let started = Instant::now();
            stack_command("restore", "postgres");
            *away.lock().unwrap() = started.elapsed();
            let restored = committed(&stack).await;
            assert!(
                restored < before,
                "the restore did not take the ledger back ({restored} committed, {before} before)"
            );
            (1, stream, Vec::new())
        },
    )
    .await;
    drop(processor);
    // The outage, then a retry backoff of at most 5 s.
    let away = away.into_inner().unwrap();
    Outcome {
        movements: movements.len(),
        faults,
        stall,
        bound: away + Duration::from_secs(5) + SLACK,
    }
}
