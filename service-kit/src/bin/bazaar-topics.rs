//! `bazaar-topics`: the pipeline's topics on a Kafka cluster, through the admin API, and
//! their value schemas in the schema registry.
//!
//!   bazaar-topics [ensure]   create the declared topics that are missing, check them all;
//!                            register the value schemas the registry lacks
//!   bazaar-topics check      check only; a missing topic or schema is an error too
//!
//! `--wait SECONDS` (default 60) keeps asking a cluster or registry that is still starting.
//! Reads `KAFKA_BROKERS`, `KAFKA_REPLICATION_FACTOR`, `KAFKA_TOPIC_PREFIX` and
//! `SCHEMA_REGISTRY_URL`. Exits 0 when every topic is as declared in `schemas::topics` and
//! every value schema registered, 1 naming each difference otherwise (2 for a bad command
//! line or setting): a topic with the wrong partition count or cleanup policy is never
//! silently accepted, nor a schema the registry finds incompatible with its versions.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::time::{Duration, Instant};

use schemas::Topics;
use schemas::topics::ALL;
use service_kit::kafka::topics::{self, Outcome, TopicError};
use service_kit::retry;
use service_kit::schema_registry::{RegistryError, SchemaRegistry, SubjectOutcome};
use service_kit::settings::KafkaSettings;
use service_kit::{Service, telemetry};

/// The pipeline's Kafka topics, as `schemas::topics` declares them: created when missing
/// (through the admin API) and checked — partitions, replication, cleanup policy,
/// retention — and their value schemas, registered under `<topic>-value` and kept
/// FULL_TRANSITIVE. Reads KAFKA_BROKERS, KAFKA_REPLICATION_FACTOR, KAFKA_TOPIC_PREFIX and
/// SCHEMA_REGISTRY_URL.
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
    /// Create the declared topics that are missing, then check them all, and register the
    /// value schemas the registry lacks (the default).
    Ensure,
    /// Check only: a missing topic or schema is an error too.
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
    if !ensure_topics(&settings, &names, create, deadline).await {
        return ExitCode::FAILURE;
    }
    let registry = match SchemaRegistry::new(&settings.schema_registry) {
        Ok(registry) => registry,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    if ensure_schemas(&registry, &names, create, deadline).await {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The topics; false once it said why they are not as declared.
async fn ensure_topics(
    settings: &KafkaSettings,
    names: &Topics,
    create: bool,
    deadline: Instant,
) -> bool {
    // A cluster still starting: no controller yet, or not enough brokers for the
    // replication factor.
    let starting = |error: &TopicError| {
        matches!(
            error,
            TopicError::Unreachable { .. } | TopicError::Create { .. }
        )
    };
    let result = retry::while_starting(deadline, "The cluster", starting, || async {
        if create {
            topics::ensure_topics(settings, names, None).await
        } else {
            topics::check_topics(settings, names, None)
                .await
                .map(|()| Vec::new())
        }
    })
    .await;
    match result {
        Ok(outcomes) => {
            for (topic, outcome) in outcomes {
                let outcome = match outcome {
                    Outcome::Created => "created",
                    Outcome::AsDeclared => "as declared",
                };
                tracing::info!(%topic, outcome, "Topic checked.");
            }
            true
        }
        Err(error) => {
            tracing::error!(%error, "The topics are not as declared.");
            false
        }
    }
}

/// The value schemas; false once it said why they are not registered.
async fn ensure_schemas(
    registry: &SchemaRegistry,
    names: &Topics,
    create: bool,
    deadline: Instant,
) -> bool {
    let unreachable = |error: &RegistryError| matches!(error, RegistryError::Unreachable { .. });
    let result = retry::while_starting(deadline, "The schema registry", unreachable, || async {
        if create {
            registry.ensure_value_schemas(names).await
        } else {
            check_schemas(registry, names).await
        }
    })
    .await;
    match result {
        Ok(outcomes) => {
            for outcome in outcomes {
                tracing::info!(
                    subject = %outcome.subject,
                    id = outcome.id,
                    registered = outcome.registered,
                    "Value schema checked."
                );
            }
            true
        }
        Err(error) => {
            tracing::error!(%error, "The value schemas are not as declared.");
            false
        }
    }
}

/// Every topic's current value schema is registered under its subject.
async fn check_schemas(
    registry: &SchemaRegistry,
    names: &Topics,
) -> Result<Vec<SubjectOutcome>, RegistryError> {
    let mut outcomes = Vec::new();
    for spec in ALL {
        let Some(value) = spec.value else { continue };
        let subject = names.value_subject(spec);
        let registered = registry
            .lookup(&subject, value.current)
            .await?
            .ok_or_else(|| RegistryError::NotRegistered {
                subject: subject.clone(),
            })?;
        outcomes.push(SubjectOutcome {
            subject,
            id: registered.id,
            registered: 0,
        });
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_follows_the_conventions() {
        test_kit::check_command_line(super::Cli::command(), &["ensure", "check"]);
    }
}
