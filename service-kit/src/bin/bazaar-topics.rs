//! `bazaar-topics`: the pipeline's topics on a Kafka cluster, through the admin API.
//!
//!   bazaar-topics [ensure]   create the declared topics that are missing, check them all
//!   bazaar-topics check      check only; a missing topic is an error too
//!
//! `--wait SECONDS` (default 60) keeps asking a cluster that is still starting. Reads
//! `KAFKA_BROKERS`, `KAFKA_REPLICATION_FACTOR` and `KAFKA_TOPIC_PREFIX`. Exits 0 when every
//! topic is as declared in `schemas::topics`, 1 naming each difference otherwise (2 for a
//! bad command line or setting): a topic with the wrong partition count or cleanup policy
//! is never silently accepted.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::time::{Duration, Instant};

use schemas::Topics;
use service_kit::kafka::topics::{self, Outcome, TopicError};
use service_kit::settings::KafkaSettings;
use service_kit::{Service, telemetry};

/// The pipeline's Kafka topics, as `schemas::topics` declares them: created when missing
/// (through the admin API) and checked — partitions, replication, cleanup policy,
/// retention. Reads KAFKA_BROKERS, KAFKA_REPLICATION_FACTOR and KAFKA_TOPIC_PREFIX.
#[derive(Debug, Parser)]
#[command(name = "bazaar-topics", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// How long to keep asking a cluster that is still starting (no controller yet, or
    /// fewer brokers than the replication factor).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, global = true)]
    wait: u64,
}

#[derive(Debug, Clone, Copy, Subcommand)]
enum Command {
    /// Create the declared topics that are missing, then check them all (the default).
    Ensure,
    /// Check only: a missing topic is an error too.
    Check,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let create = !matches!(cli.command, Some(Command::Check));
    let wait = Duration::from_secs(cli.wait);
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_follows_the_conventions() {
        test_kit::check_command_line(super::Cli::command(), &["ensure", "check"]);
    }
}
