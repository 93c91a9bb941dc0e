//! `bazaar-topics`: the pipeline's topics on a Kafka cluster, through the admin API.
//!
//!   bazaar-topics [ensure]   create the declared topics that are missing, check them all
//!   bazaar-topics check      check only; a missing topic is an error too
//!
//! `--wait SECONDS` (default 60) keeps asking a cluster that is still starting. Reads
//! `KAFKA_BROKERS`, `KAFKA_REPLICATION_FACTOR` and `KAFKA_TOPIC_PREFIX`. Exits 0 when every
//! topic is as declared in `schemas::topics`, 1 naming each difference otherwise: a topic
//! with the wrong partition count or cleanup policy is never silently accepted.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use schemas::Topics;
use service_kit::kafka::topics::{self, Outcome, TopicError};
use service_kit::settings::KafkaSettings;
use service_kit::{Service, telemetry};

const USAGE: &str = "usage: bazaar-topics [ensure|check] [--wait SECONDS]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    telemetry::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (create, wait) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(problem) => {
            eprintln!("{problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let settings = match KafkaSettings::from_lookup(Service::Processors, &|var| {
        std::env::var(var)
            .ok()
            .filter(|value| !value.trim().is_empty())
    }) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let names = Topics::new(settings.topic_prefix.clone());
    let deadline = Instant::now() + wait;
    loop {
        let result = if create {
            topics::ensure_topics(&settings, &names, None).await
        } else {
            topics::check_topics(&settings, &names, None)
                .await
                .map(|()| Vec::new())
        };
        match result {
            Ok(outcomes) => {
                for (topic, outcome) in outcomes {
                    let outcome = match outcome {
                        Outcome::Created => "created",
                        Outcome::AsDeclared => "as declared",
                    };
                    tracing::info!(%topic, outcome, "Topic checked.");
                }
                return ExitCode::SUCCESS;
            }
            // A cluster still starting: no controller yet, or not enough brokers for the
            // replication factor.
            Err(error @ (TopicError::Unreachable { .. } | TopicError::Create { .. }))
                if Instant::now() < deadline =>
            {
                tracing::info!(%error, "The cluster is not ready yet; asking again.");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => {
                tracing::error!(%error, "The topics are not as declared.");
                return ExitCode::FAILURE;
            }
        }
    }
}

fn parse(args: &[String]) -> Result<(bool, Duration), String> {
    let mut create = true;
    let mut wait = Duration::from_secs(60);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "ensure" => create = true,
            "check" => create = false,
            "--wait" => {
                let seconds = args.next().ok_or("--wait needs a number of seconds")?;
                wait = Duration::from_secs(
                    seconds
                        .parse()
                        .map_err(|_| format!("--wait {seconds}: not a number of seconds"))?,
                );
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok((create, wait))
}
