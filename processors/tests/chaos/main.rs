//! `make chaos`: faults against a running pipeline, each while movements flow (transfers
//! between the stores among them), and after each the same proof — every accepted movement
//! exactly once in the ledger with the model's outcome, one transfer-in per applied
//! transfer-out, the state equal to the model, the output topics exactly the ledger (after
//! PostgreSQL is restored from a backup, the rows after it twice, the same each time) — and
//! the longest stall: how long the group's committed position stood still while
//! movements waited. Prints a table.
//!
//! It stops and restarts PostgreSQL and Redis, so it runs only on a stack of its own:
//! `deploy/local/chaos.sh` (`make chaos`, large counts; `make test` runs it with
//! `CHAOS_SCALE=small`) starts one and runs this file with `--ignored`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use test_kit::*;
use test_kit::{ChildService, KafkaCluster, TestStack};

mod restore;
mod stalls;

use stalls::watch_stalls;

const BINARY: &str = env!("CARGO_BIN_EXE_processors");
/// Small batches: many of them to interrupt.
const BATCHES: (&str, &str) = ("PROCESSOR_BATCH_MAX", "400");
/// Slack over a fault's own bound for a rebalance, a batch and a backoff step.
const SLACK: Duration = Duration::from_secs(6);

/// How hard the suite pushes.
#[derive(Debug, Clone, Copy)]
struct Scale {
    /// Movements produced per second while a scenario runs.
    rate: usize,
    /// Kills of a processor with a short session.
    kills: usize,
    /// Kills of a processor with the default (15 s) session.
    slow_kills: usize,
    /// How long PostgreSQL and Redis stay away.
    outage: Duration,
    redis_outage: Duration,
}

impl Scale {
    fn from_env() -> Self {
        match std::env::var("CHAOS_SCALE").as_deref() {
            Ok("small") => Self {
                rate: 400,
                kills: 3,
                slow_kills: 1,
                outage: Duration::from_secs(3),
                redis_outage: Duration::from_secs(5),
            },
            _ => Self {
                rate: 1_000,
                kills: 10,
                slow_kills: 3,
                outage: Duration::from_secs(10),
                redis_outage: Duration::from_secs(30),
            },
        }
    }

    /// Movements for a stream of `seconds`, transfers between the stores among them.
    fn movements(self, seconds: u64, seed: u64) -> Vec<schemas::StockMovement> {
        with_transfers(movements(self.rate * seconds as usize, seed))
    }
}

/// One scenario's line of the table.
struct Outcome {
    movements: usize,
    faults: usize,
    stall: Duration,
    bound: Duration,
}

/// Starts (and stops) a component of the suite's own stack.
fn stack_command(action: &str, component: &str) {
    let script = std::env::var("BAZAAR_CHAOS_STACK")
        .expect("BAZAAR_CHAOS_STACK: run this through deploy/local/chaos.sh");
    let status = std::process::Command::new("bash")
        .args([script.as_str(), action, component])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "stack.sh {action} {component} failed");
}

/// What a fault did: how many times it struck, and the processors to keep running.
type Struck = (usize, Stream, Vec<ChildService>);

/// Runs a scenario: streams its movements while `fault` does its work, waits until
/// everything is committed, proves the ledger, state and output topics (`replayed`: after
/// a fault that makes the processors apply records again), and measures.
async fn scenario<F, Fut>(
    stack: &TestStack,
    movements: Vec<schemas::StockMovement>,
    chunk: usize,
    replayed: Replayed,
    fault: F,
) -> (usize, Duration)
where
    F: FnOnce(Stream) -> Fut,
    Fut: Future<Output = Struck>,
{
    let every = Duration::from_millis(250);
    let stream = stream(stack, movements.clone(), chunk, every);
    // Stalls count once the processors work: starting them is not a fault.
    assert!(
        progress_beyond(stack, 0, Duration::from_secs(60)).await,
        "nothing was processed within a minute"
    );
    let stalls = watch_stalls(stack, &stream);
    let (faults, stream, _running) = fault(stream).await;
    stream.finish().await;
    wait_committed(stack, movements.len() as i64, Duration::from_secs(180)).await;
    let stall = stalls.await.unwrap();
    match replayed {
        Replayed::Never => assert_exactly_once(stack, &movements).await,
        Replayed::AfterRestore => assert_exactly_once_after_a_restore(stack, &movements).await,
    }
    (faults, stall)
}

async fn killed_with_a_short_session(scale: Scale) -> Outcome {
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let movements = scale.movements(6 * scale.kills as u64, 101);
    let env = [
        BATCHES,
        ("KAFKA_SESSION_TIMEOUT_MS", "3000"),
        ("PROCESSOR_TRANSACTIONAL_ID", "chaos-short-session"),
    ];
    let chunk = scale.rate / 4;
    let first = ChildService::start_with(BINARY, &stack, &env);
    let (faults, stall) = scenario(
        &stack,
        movements.clone(),
        chunk,
        Replayed::Never,
        |stream| async {
            let mut random = seed();
            let mut kills = 0;
            let mut running = first;
            for _ in 0..scale.kills {
                // Killed between or inside its batches, then restarted at once.
                tokio::time::sleep(random_pause(&mut random, 50, 1_500)).await;
                kills += usize::from(!stream.is_finished());
                running.kill();
                let before = committed(&stack).await;
                running = ChildService::start_with(BINARY, &stack, &env);
                let moved = progress_beyond(&stack, before, Duration::from_secs(30)).await;
                assert!(moved || committed(&stack).await >= stream.progress().produced());
            }
            (kills, stream, vec![running])
        },
    )
    .await;
    Outcome {
        movements: movements.len(),
        faults,
        stall,
        bound: Duration::from_secs(3) + SLACK,
    }
}

async fn killed_with_the_default_session(scale: Scale) -> Outcome {
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let movements = scale.movements(16 * scale.slow_kills as u64 + 4, 102);
    let chunk = scale.rate / 4;
    let survivor = ChildService::start_with(BINARY, &stack, &[BATCHES]);
    let (faults, stall) = scenario(
        &stack,
        movements.clone(),
        chunk,
        Replayed::Never,
        |stream| async {
            let mut random = seed();
            let mut kills = 0;
            for _ in 0..scale.slow_kills {
                let victim = ChildService::start_with(BINARY, &stack, &[BATCHES]);
                // Long enough for the victim to be given partitions and work on them.
                tokio::time::sleep(random_pause(&mut random, 3_000, 5_000)).await;
                kills += usize::from(!stream.is_finished());
                victim.kill();
                // Its partitions move when its session (15 s) expires.
                tokio::time::sleep(Duration::from_secs(16)).await;
            }
            (kills, stream, Vec::new())
        },
    )
    .await;
    drop(survivor);
    Outcome {
        movements: movements.len(),
        faults,
        stall,
        bound: Duration::from_secs(15) + SLACK,
    }
}

/// A component of the stack stopped for `outage` mid-stream, then started again.
async fn away(
    scale: Scale,
    component: &'static str,
    outage: Duration,
    seed: u64,
    bound: Duration,
) -> Outcome {
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let movements = scale.movements(12 + outage.as_secs(), seed);
    let processor = ChildService::start_with(BINARY, &stack, &[BATCHES]);
    let (faults, stall) = scenario(
        &stack,
        movements.clone(),
        scale.rate / 4,
        Replayed::Never,
        |stream| async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            stack_command("stop", component);
            tokio::time::sleep(outage).await;
            stack_command("start", component);
            (1, stream, Vec::new())
        },
    )
    .await;
    drop(processor);
    Outcome {
        movements: movements.len(),
        faults,
        stall,
        bound,
    }
}

async fn postgres_restarted(scale: Scale) -> Outcome {
    // The outage, then a retry backoff of at most 5 s.
    let bound = scale.outage + Duration::from_secs(5) + SLACK;
    away(scale, "postgres", scale.outage, 103, bound).await
}

async fn redis_stopped(scale: Scale) -> Outcome {
    // Redis is a cache: processing does not wait for it.
    away(scale, "redis", scale.redis_outage, 104, SLACK).await
}

/// How long KRaft takes to move a lost node's partitions: its controller fences a broker
/// `broker.session.timeout.ms` (6 s in our clusters, `deploy/local/kafka.sh`) after its last
/// heartbeat, counted afresh by a new active controller when the lost node was the active
/// one (elected within `controller.quorum.fetch.timeout.ms`, 2 s, and an election, ~1 s).
const KRAFT_FAILOVER: Duration = Duration::from_secs(9);

/// The stall's bound: KRaft's failover and slack. Nothing else waits: the consumer's session
/// (15 s, from its last heartbeat, every 1.5 s) and the output transaction's timeout (15 s)
/// outlast the failover even when the lost node was the group's or the transaction's
/// coordinator, so the processor keeps its partitions and its producer; output transactions
/// caught in the loss are resumed (`publish`'s `resumed`), and the loop never waits for them
/// while input flows or is idle. With Kafka's 9 s and a 10 s session a CI run once stalled
/// 20.2 s (the session lost to the coordinator's failover, then a fenced producer).
const BROKER_LOSS_BOUND: Duration = KRAFT_FAILOVER.saturating_add(SLACK);

async fn a_broker_of_three_killed(scale: Scale) -> Outcome {
    let cluster = tokio::task::spawn_blocking(|| KafkaCluster::start(3))
        .await
        .unwrap();
    let stack = TestStack::start_on(&cluster).await;
    seed_catalog(&stack.pool).await;
    let movements = scale.movements(20, 105);
    let processor = ChildService::start_with(BINARY, &stack, &[BATCHES]);
    let topic = stack.settings.topics().movements();
    let (faults, stall) = scenario(
        &stack,
        movements.clone(),
        scale.rate / 4,
        Replayed::Never,
        |stream| async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            let node = cluster.busiest_leader(&topic);
            cluster.kill(node);
            tokio::time::sleep(Duration::from_secs(8)).await;
            tokio::task::block_in_place(|| cluster.restart(node));
            (1, stream, Vec::new())
        },
    )
    .await;
    drop(processor);
    let bound = BROKER_LOSS_BOUND;
    stack.cleanup().await;
    Outcome {
        movements: movements.len(),
        faults,
        stall,
        bound,
    }
}

async fn a_poison_record(scale: Scale) -> Outcome {
    let stack = TestStack::start().await;
    seed_catalog(&stack.pool).await;
    let good = scale.movements(10, 106);
    let mut poison = good[good.len() / 2].clone();
    poison.movement_id = uuid::Uuid::new_v4();
    poison.reference = Some("INV-\u{0}-7".into());
    let processor = ChildService::start_with(BINARY, &stack, &[BATCHES]);
    let topic = stack.settings.topics().movements();
    let producer = producer(&stack);
    // The poison goes below ingest's edge, straight onto the topic, while the stream flows.
    let (faults, stall) = scenario(
        &stack,
        good.clone(),
        scale.rate / 4,
        Replayed::Never,
        |stream| async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            produce(&producer, &topic, std::slice::from_ref(&poison)).await;
            (1, stream, Vec::new())
        },
    )
    .await;
    let dead = stack
        .read_topic(
            &stack.settings.topics().movements_dlq(),
            1,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(dead.len(), 1);
    drop(processor);
    Outcome {
        movements: good.len(),
        faults,
        stall,
        bound: SLACK,
    }
}

/// A stack started a moment ago creates and loads its transaction coordinator's log on the
/// first transactional producer: seconds that are the broker's start, not a fault's. One
/// producer initialised before the scenarios takes them (a fault-suite run in CI counted
/// five of them in the first scenario's stall).
async fn warm_the_transaction_coordinator() {
    let stack = TestStack::start().await;
    let kafka = stack.settings.kafka.clone();
    let _ready = tokio::task::spawn_blocking(move || {
        service_kit::kafka::transactional_producer(
            &kafka,
            "chaos-warm-up",
            "chaos-warm-up",
            Duration::from_secs(10),
        )
    })
    .await
    .unwrap()
    .expect("the transaction coordinator answers");
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stops PostgreSQL and Redis: run on a stack of its own with `make chaos`"]
async fn faults_mid_stream_lose_nothing_and_stall_no_longer_than_their_bound() {
    let scale = Scale::from_env();
    warm_the_transaction_coordinator().await;
    println!("\nchaos suite, {scale:?}\n");
    println!(
        "| {:<40} | {:>9} | {:>6} | {:>12} | {:>8} | {:<6} |",
        "scenario", "movements", "faults", "longest stall", "bound", "result"
    );
    println!(
        "|{:-<42}|{:-<11}|{:-<8}|{:-<15}|{:-<10}|{:-<8}|",
        "", "", "", "", "", ""
    );
    type Run = fn(Scale) -> Pin<Box<dyn Future<Output = Outcome> + Send>>;
    let scenarios: [(&str, Run); 7] = [
        ("processor SIGKILLed, 3 s session", |scale| {
            Box::pin(killed_with_a_short_session(scale))
        }),
        ("processor SIGKILLed, 15 s session", |scale| {
            Box::pin(killed_with_the_default_session(scale))
        }),
        ("PostgreSQL restarted", |scale| {
            Box::pin(postgres_restarted(scale))
        }),
        ("Redis stopped", |scale| Box::pin(redis_stopped(scale))),
        ("one broker of three killed", |scale| {
            Box::pin(a_broker_of_three_killed(scale))
        }),
        ("a poison record", |scale| Box::pin(a_poison_record(scale))),
        ("PostgreSQL restored from a backup", |scale| {
            Box::pin(restore::restored_from_a_backup(scale))
        }),
    ];
    let mut failed = Vec::new();
    let only = std::env::var("CHAOS_ONLY").unwrap_or_default();
    for (name, run) in scenarios {
        if !name.contains(only.as_str()) {
            continue;
        }
        // One at a time (each takes a component away); a panic fails its line, not the table.
        match tokio::spawn(run(scale)).await {
            Ok(outcome) => {
                let within = outcome.stall <= outcome.bound;
                println!(
                    "| {name:<40} | {:>9} | {:>6} | {:>12.1?} | {:>8.0?} | {:<6} |",
                    outcome.movements,
                    outcome.faults,
                    outcome.stall,
                    outcome.bound,
                    if within { "ok" } else { "STALL" }
                );
                if !within {
                    failed.push(format!("{name}: stalled {:?}", outcome.stall));
                }
            }
            Err(error) => {
                println!(
                    "| {name:<40} | {:>9} | {:>6} | {:>12} | {:>8} | FAILED |",
                    "", "", "", ""
                );
                failed.push(format!("{name}: {error}"));
            }
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}
