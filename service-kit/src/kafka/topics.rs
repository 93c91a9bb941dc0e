//! The pipeline's topics on a cluster, through Kafka's admin API: created where missing,
//! checked where present. A topic that differs from its declaration in
//! `schemas::topics` (partitions, replication, cleanup policy, retention,
//! `min.insync.replicas`) is an error, never silently accepted: a movements topic with
//! another partition count sends a store's movements to another partition, and a
//! compacted ledger loses entries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use schemas::Topics;
use schemas::topics::{TopicSpec, min_insync_replicas};

use crate::settings::KafkaSettings;

/// How long one admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("the Kafka cluster at {brokers} did not answer: {source}")]
    Unreachable { brokers: String, source: KafkaError },
    #[error("creating topic {topic} failed: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("topics are missing: {}", .0.join(", "))]
    Missing(Vec<String>),
    #[error("topics differ from their declaration in schemas::topics: {}", .0.join("; "))]
    Drift(Vec<String>),
}

/// What became of one declared topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    AsDeclared,
}

/// One declared topic under the deployment's prefix, with the layout it must have here.
#[derive(Debug, Clone)]
struct Declared {
    name: String,
    partitions: i32,
    replication_factor: i32,
    configs: [(&'static str, String); 3],
}

impl Declared {
    fn new(spec: &TopicSpec, topics: &Topics, partitions: Option<i32>, replication: i32) -> Self {
        Self {
            name: topics.name(*spec),
            partitions: partitions.unwrap_or(spec.partitions),
            replication_factor: replication,
            configs: [
                ("cleanup.policy", spec.cleanup_policy().to_owned()),
                ("retention.ms", spec.retention_ms()),
                (
                    "min.insync.replicas",
                    min_insync_replicas(replication).to_string(),
                ),
            ],
        }
    }
}

/// What the cluster says of a topic.
#[derive(Debug, Default)]
struct Found {
    partitions: i32,
    replication_factor: i32,
    configs: HashMap<String, String>,
}

struct Admin {
    client: Arc<AdminClient<DefaultClientContext>>,
    brokers: String,
}

impl Admin {
    fn new(settings: &KafkaSettings) -> Result<Self, TopicError> {
        let client =
            super::client_config(settings)
                .create()
                .map_err(|source| TopicError::Unreachable {
                    brokers: settings.brokers.clone(),
                    source,
                })?;
        Ok(Self {
            client: Arc::new(client),
            brokers: settings.brokers.clone(),
        })
    }

    fn unreachable(&self, source: KafkaError) -> TopicError {
        TopicError::Unreachable {
            brokers: self.brokers.clone(),
            source,
        }
    }

    /// Partition and replica counts of every topic the cluster has.
    async fn metadata(&self) -> Result<HashMap<String, Found>, TopicError> {
        let client = Arc::clone(&self.client);
        // librdkafka's metadata call blocks; keep it off the async workers.
        let metadata = tokio::task::spawn_blocking(move || {
            client.inner().fetch_metadata(None, REQUEST_TIMEOUT)
        })
        .await
        .map_err(|_| self.unreachable(KafkaError::Canceled))?
        .map_err(|error| self.unreachable(error))?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|topic| topic.error().is_none())
            .map(|topic| {
                let partitions = topic.partitions();
                let found = Found {
                    partitions: i32::try_from(partitions.len()).unwrap_or(i32::MAX),
                    replication_factor: partitions.first().map_or(0, |partition| {
                        i32::try_from(partition.replicas().len()).unwrap_or(i32::MAX)
                    }),
                    configs: HashMap::new(),
                };
                (topic.name().to_owned(), found)
            })
            .collect())
    }

    /// The named configs of `names`, into `found`.
    async fn configs(
        &self,
        names: &[&str],
        found: &mut HashMap<String, Found>,
    ) -> Result<(), TopicError> {
        let resources: Vec<ResourceSpecifier<'_>> = names
            .iter()
            .map(|name| ResourceSpecifier::Topic(name))
            .collect();
        let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
        let results = self
            .client
            .describe_configs(&resources, &options)
            .await
            .map_err(|error| self.unreachable(error))?;
        for (name, result) in names.iter().zip(results) {
            let resource = result.map_err(|code| self.unreachable(KafkaError::AdminOp(code)))?;
            if let Some(topic) = found.get_mut(*name) {
                topic.configs = resource
                    .entries
                    .into_iter()
                    .filter_map(|entry| Some((entry.name, entry.value?)))
                    .collect();
            }
        }
        Ok(())
    }

    async fn create(&self, missing: &[&Declared]) -> Result<(), TopicError> {
        let new_topics: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|declared| {
                declared.configs.iter().fold(
                    NewTopic::new(
                        &declared.name,
                        declared.partitions,
                        TopicReplication::Fixed(declared.replication_factor),
                    ),
                    |topic, (key, value)| topic.set(key, value),
                )
            })
            .collect();
        let options = AdminOptions::new()
            .request_timeout(Some(REQUEST_TIMEOUT))
            .operation_timeout(Some(REQUEST_TIMEOUT));
        let results = self
            .client
            .create_topics(&new_topics, &options)
            .await
            .map_err(|error| self.unreachable(error))?;
        for result in results {
            match result {
                // Created meanwhile by someone else (a test or job beside this one): the
                // check that follows says whether it is as declared.
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(TopicError::Create { topic, code }),
            }
        }
        Ok(())
    }
}

/// How `declared` differs from what the cluster has, in words an operator can act on.
fn differences(declared: &Declared, found: &Found) -> Vec<String> {
    let name = &declared.name;
    let mut drift = Vec::new();
    if found.partitions != declared.partitions {
        drift.push(format!(
            "{name} has {} partitions, declared {}",
            found.partitions, declared.partitions
        ));
    }
    if found.replication_factor != declared.replication_factor {
        drift.push(format!(
            "{name} has replication factor {}, declared {}",
            found.replication_factor, declared.replication_factor
        ));
    }
    for (key, value) in &declared.configs {
        match found.configs.get(*key) {
            Some(actual) if actual == value => {}
            actual => drift.push(format!(
                "{name} has {key}={}, declared {value}",
                actual.map_or("(unknown)", String::as_str)
            )),
        }
    }
    drift
}

/// Creates every declared topic that is missing, then checks every one against its
/// declaration. `partitions` overrides the declared partition counts (tests use fewer).
/// Idempotent: run it at every deployment.
pub async fn ensure_topics(
    settings: &KafkaSettings,
    topics: &Topics,
    partitions: Option<i32>,
) -> Result<Vec<(String, Outcome)>, TopicError> {
    converge(settings, topics, partitions, true).await
}

/// Checks every declared topic against the cluster, creating nothing.
pub async fn check_topics(
    settings: &KafkaSettings,
    topics: &Topics,
    partitions: Option<i32>,
) -> Result<(), TopicError> {
    converge(settings, topics, partitions, false)
        .await
        .map(drop)
}

async fn converge(
    settings: &KafkaSettings,
    topics: &Topics,
    partitions: Option<i32>,
    create: bool,
) -> Result<Vec<(String, Outcome)>, TopicError> {
    let admin = Admin::new(settings)?;
    let declared: Vec<Declared> = schemas::topics::ALL
        .iter()
        .map(|spec| Declared::new(spec, topics, partitions, settings.replication_factor))
        .collect();
    let existing = admin.metadata().await?;
    let missing: Vec<&Declared> = declared
        .iter()
        .filter(|topic| !existing.contains_key(&topic.name))
        .collect();
    let created: Vec<String> = missing.iter().map(|topic| topic.name.clone()).collect();
    if !missing.is_empty() {
        if !create {
            return Err(TopicError::Missing(created));
        }
        admin.create(&missing).await?;
        for topic in &missing {
            tracing::info!(topic = %topic.name, partitions = topic.partitions, "Topic created.");
        }
    }

    // A created topic reaches every broker's metadata a moment later.
    let mut found = admin.metadata().await?;
    for _ in 0..50 {
        if declared.iter().all(|topic| found.contains_key(&topic.name)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        found = admin.metadata().await?;
    }
    let names: Vec<&str> = declared
        .iter()
        .filter(|topic| found.contains_key(&topic.name))
        .map(|topic| topic.name.as_str())
        .collect();
    if names.len() < declared.len() {
        return Err(TopicError::Missing(
            declared
                .iter()
                .filter(|topic| !found.contains_key(&topic.name))
                .map(|topic| topic.name.clone())
                .collect(),
        ));
    }
    admin.configs(&names, &mut found).await?;
    let drift_of = |found: &HashMap<String, Found>| -> Vec<String> {
        declared
            .iter()
            .flat_map(|topic| differences(topic, &found[&topic.name]))
            .collect()
    };
    let mut drift = drift_of(&found);
    // The configs of a topic created a moment ago can also be unknown to the broker asked
    // (on a cluster); they are what was declared once it knows them.
    for _ in 0..50 {
        if drift.is_empty() || created.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        admin.configs(&names, &mut found).await?;
        drift = drift_of(&found);
    }
    if !drift.is_empty() {
        return Err(TopicError::Drift(drift));
    }
    Ok(declared
        .into_iter()
        .map(|topic| {
            let outcome = if created.contains(&topic.name) {
                Outcome::Created
            } else {
                Outcome::AsDeclared
            };
            (topic.name, outcome)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_difference_from_the_declaration_is_named() {
        let declared = Declared::new(&schemas::topics::BALANCES, &Topics::default(), None, 3);
        let found = Found {
            partitions: 6,
            replication_factor: 1,
            configs: HashMap::from([
                ("cleanup.policy".to_owned(), "delete".to_owned()),
                ("retention.ms".to_owned(), "-1".to_owned()),
            ]),
        };
        assert_eq!(
            differences(&declared, &found),
            [
                "inventory.balances.v1 has 6 partitions, declared 12",
                "inventory.balances.v1 has replication factor 1, declared 3",
                "inventory.balances.v1 has cleanup.policy=delete, declared compact",
                "inventory.balances.v1 has min.insync.replicas=(unknown), declared 2",
            ]
        );
    }
}
