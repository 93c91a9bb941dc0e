//! The schema registry, through the Confluent-compatible REST API every Kafka tool speaks
//! (Apicurio Registry serves it under `/apis/ccompat/v7`): the topics' value schemas are
//! registered under `<topic>-value` with a compatibility rule, and records carry their
//! schema's id. Never on a hot path: services ask it at start and when they meet an id
//! they do not know.

use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, try_join_all};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use schemas::topics::{ALL, TopicSpec};
use schemas::{SchemaIds, Topics};
use serde::Deserialize;
use serde_json::json;

mod cache;
pub use cache::SchemaCache;

/// How long a service starting beside the registry waits for it.
pub const START_WAIT: Duration = Duration::from_secs(30);

/// How long one request may take (a registry that accepted the connection and never
/// answers must not hold a start or a batch).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A subject in a path segment: everything but RFC 3986's unreserved characters escaped.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The rule every value subject is kept to: each version reads the data of every earlier
/// one, and every earlier one reads its data (a consumer that has not upgraded yet keeps
/// reading). A new optional field passes; a field without a default, a removed symbol
/// without the enum's default or a changed type does not.
pub const COMPATIBILITY: &str = "FULL_TRANSITIVE";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the schema registry at {url} did not answer: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the schema registry refused {what}: {status} {message}")]
    Refused {
        what: String,
        status: u16,
        message: String,
    },
    #[error(
        "subject {subject} lacks the value schema this build writes: run `bazaar-topics ensure`"
    )]
    NotRegistered { subject: String },
    #[error("schema {id} from the registry is not Avro this build reads: {problem}")]
    Unreadable { id: u32, problem: String },
    #[error(
        "subject {subject}: the registry refuses the schema as incompatible with the \
         subject's versions ({COMPATIBILITY}): {reason}"
    )]
    Incompatible { subject: String, reason: String },
}

/// One registered schema.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Registered {
    pub id: u32,
    pub version: i32,
}

/// A version of a subject as the registry holds it.
#[derive(Debug, Clone, Deserialize)]
pub struct SubjectVersion {
    pub id: u32,
    pub version: i32,
    pub schema: String,
}

/// What `ensure` found or did for one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectOutcome {
    pub subject: String,
    /// The id of the version this build writes.
    pub id: u32,
    /// Versions this run registered (0: the subject was as declared).
    pub registered: usize,
}

/// The registry's error body: `{"error_code": 40401, "message": "…"}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
}

#[derive(Debug, Clone)]
pub struct SchemaRegistry {
    http: reqwest::Client,
    base: String,
}

impl SchemaRegistry {
    /// A client of the registry whose Confluent-compatible API is at `base`.
    pub fn new(base: &str) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|source| RegistryError::Unreachable {
                url: base.to_owned(),
                source,
            })?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    fn subject_url(&self, subject: &str, rest: &str) -> String {
        format!(
            "{}/subjects/{}{rest}",
            self.base,
            utf8_percent_encode(subject, SEGMENT)
        )
    }

    fn config_url(&self, subject: &str) -> String {
        format!(
            "{}/config/{}",
            self.base,
            utf8_percent_encode(subject, SEGMENT)
        )
    }

    /// Sends `request`; `Ok(None)` for a 404, the registry's message for other refusals.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Option<T>, RegistryError> {
        let unreachable = |source| RegistryError::Unreachable {
            url: self.base.clone(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let body: ErrorBody = response.json().await.unwrap_or_default();
            return Err(RegistryError::Refused {
                what: what.to_owned(),
                status: status.as_u16(),
                message: body.message,
            });
        }
        response.json().await.map(Some).map_err(unreachable)
    }

    /// Sets `subject`'s compatibility rule.
    pub async fn set_compatibility(
        &self,
        subject: &str,
        compatibility: &str,
    ) -> Result<(), RegistryError> {
        let url = self.config_url(subject);
        let request = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(&json!({ "compatibility": compatibility }));
        self.call::<serde_json::Value>(&format!("the compatibility of {subject}"), request)
            .await
            .map(drop)
    }

    /// `subject`'s compatibility rule, if it has one of its own.
    pub async fn compatibility(&self, subject: &str) -> Result<Option<String>, RegistryError> {
        #[derive(Deserialize)]
        struct Config {
            #[serde(alias = "compatibilityLevel")]
            compatibility: String,
        }
        let url = self.config_url(subject);
        let config: Option<Config> = self
            .call(
                &format!("the compatibility of {subject}"),
                self.http.get(url),
            )
            .await?;
        Ok(config.map(|config| config.compatibility))
    }

    /// The version of `subject` that is `schema` (Avro JSON), if it is registered there.
    pub async fn lookup(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<Option<Registered>, RegistryError> {
        let request = self
            .http
            .post(self.subject_url(subject, ""))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(&json!({ "schema": schema }));
        self.call(&format!("looking {subject} up"), request).await
    }

    /// Registers `schema` as `subject`'s next version (or finds it registered) and gives
    /// its id. A schema the subject's rule refuses is [`RegistryError::Incompatible`], with
    /// the registry's reason.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        #[derive(Deserialize)]
        struct Id {
            id: u32,
        }
        let request = self
            .http
            .post(self.subject_url(subject, "/versions"))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .json(&json!({ "schema": schema }));
        match self
            .call::<Id>(&format!("a version of {subject}"), request)
            .await
        {
            Ok(Some(Id { id })) => Ok(id),
            Ok(None) => Err(RegistryError::Refused {
                what: format!("a version of {subject}"),
                status: 404,
                message: "not found".to_owned(),
            }),
            Err(RegistryError::Refused {
                status: 409,
                message,
                ..
            }) => Err(RegistryError::Incompatible {
                subject: subject.to_owned(),
                reason: message,
            }),
            Err(error) => Err(error),
        }
    }

    /// Every version of `subject`, oldest first (none if the subject does not exist).
    pub async fn versions(&self, subject: &str) -> Result<Vec<SubjectVersion>, RegistryError> {
        let numbers: Vec<i32> = self
            .call(
                &format!("the versions of {subject}"),
                self.http.get(self.subject_url(subject, "/versions")),
            )
            .await?
            .unwrap_or_default();
        let mut versions = Vec::with_capacity(numbers.len());
        for number in numbers {
            let version: Option<SubjectVersion> = self
                .call(
                    &format!("version {number} of {subject}"),
                    self.http
                        .get(self.subject_url(subject, &format!("/versions/{number}"))),
                )
                .await?;
            versions.extend(version);
        }
        Ok(versions)
    }

    /// The schema (Avro JSON) registered under `id`, if any.
    pub async fn schema(&self, id: u32) -> Result<Option<String>, RegistryError> {
        #[derive(Deserialize)]
        struct Schema {
            schema: String,
        }
        let schema: Option<Schema> = self
            .call(
                &format!("schema {id}"),
                self.http.get(format!("{}/schemas/ids/{id}", self.base)),
            )
            .await?;
        Ok(schema.map(|schema| schema.schema))
    }

    /// Deletes `subject` and its versions for good (the tests' own subjects).
    pub async fn delete_subject(&self, subject: &str) -> Result<(), RegistryError> {
        for query in ["", "?permanent=true"] {
            let request = self.http.delete(self.subject_url(subject, query));
            self.call::<serde_json::Value>(&format!("deleting {subject}"), request)
                .await?;
        }
        Ok(())
    }

    /// Keeps `subject` to [`COMPATIBILITY`] and registers `versions` (oldest first) that
    /// it lacks, in order: each is checked against those before it.
    pub async fn ensure_subject(
        &self,
        subject: &str,
        versions: impl IntoIterator<Item = &str>,
    ) -> Result<SubjectOutcome, RegistryError> {
        self.set_compatibility(subject, COMPATIBILITY).await?;
        let mut outcome = SubjectOutcome {
            subject: subject.to_owned(),
            id: 0,
            registered: 0,
        };
        for schema in versions {
            outcome.id = match self.lookup(subject, schema).await? {
                Some(registered) => registered.id,
                None => {
                    outcome.registered += 1;
                    self.register(subject, schema).await?
                }
            };
        }
        Ok(outcome)
    }

    /// Every topic's value schema (`schemas::topics`) under `<topic>-value`: the
    /// subjects `bazaar-topics ensure` keeps.
    pub async fn ensure_value_schemas(
        &self,
        topics: &Topics,
    ) -> Result<Vec<SubjectOutcome>, RegistryError> {
        // The subjects side by side; each one's versions in order.
        try_join_all(ALL.iter().filter_map(|spec| {
            let value = spec.value?;
            let subject = topics.value_subject(*spec);
            Some(async move { self.ensure_subject(&subject, value.versions()).await })
        }))
        .await
    }
}

impl SchemaRegistry {
    /// The ids a service needs, asked once at start: every version of each of `specs`'
    /// value subjects (to read them) and the id of the version this build writes. A subject
    /// that lacks it is [`RegistryError::NotRegistered`].
    pub async fn schema_ids(
        &self,
        topics: &Topics,
        specs: &[TopicSpec],
    ) -> Result<SchemaIds, RegistryError> {
        // Each subject's versions and current id, the subjects asked side by side.
        let subjects = try_join_all(specs.iter().filter_map(|spec| {
            let value = spec.value?;
            let subject = topics.value_subject(*spec);
            Some(async move {
                let versions = self.versions(&subject).await?;
                let registered = self
                    .lookup(&subject, value.current)
                    .await?
                    .ok_or(RegistryError::NotRegistered { subject })?;
                Ok::<_, RegistryError>((versions, registered.id, value.current))
            })
        }))
        .await?;
        let mut ids = SchemaIds::new();
        for (versions, current_id, current) in subjects {
            for version in versions {
                ids.learn(version.id, &version.schema)
                    .map_err(|error| unreadable(version.id, &error))?;
            }
            ids.write_with(current_id, current)
                .map_err(|error| unreadable(current_id, &error))?;
        }
        Ok(ids)
    }

    /// [`Self::schema_ids`], asking again for up to `wait` while the registry does not
    /// answer (it may be starting beside the service).
    pub async fn schema_ids_within(
        &self,
        topics: &Topics,
        specs: &[TopicSpec],
        wait: Duration,
    ) -> Result<SchemaIds, RegistryError> {
        let unreachable =
            |error: &RegistryError| matches!(error, RegistryError::Unreachable { .. });
        crate::retry::while_starting(
            Instant::now() + wait,
            "The schema registry",
            unreachable,
            || self.schema_ids(topics, specs),
        )
        .await
    }

    /// An optional readiness check: the registry answers. A service that holds its ids
    /// works without it, so it is reported (`degraded`), never a reason to be unready.
    pub fn readiness_check(
        &self,
    ) -> impl Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync + use<> {
        let registry = self.clone();
        move || {
            let registry = registry.clone();
            async move { registry.ping().await }.boxed()
        }
    }

    /// The registry answers.
    pub async fn ping(&self) -> Result<(), String> {
        self.call::<serde_json::Value>(
            "its configuration",
            self.http.get(format!("{}/config", self.base)),
        )
        .await
        .map(drop)
        .map_err(|error| error.to_string())
    }
}

fn unreadable(id: u32, error: &impl std::fmt::Display) -> RegistryError {
    RegistryError::Unreadable {
        id,
        problem: error.to_string(),
    }
}
