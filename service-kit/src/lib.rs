//! Plumbing shared by `ingest`, `processors` and `query-api`: nothing here knows about
//! stock. Settings from the environment, telemetry, the health/metrics router, shutdown,
//! and the construction of Postgres, Redis and Kafka clients.

pub mod app;
pub mod auth;
pub mod budget;
pub mod client;
pub mod cors;
pub mod environment;
pub mod health;
pub mod hygiene;
pub mod kafka;
pub mod metrics;
pub mod path;
pub mod postgres;
pub mod problem;
pub mod query;
pub mod ratelimit;
pub mod redis;
pub mod retry;
pub mod schema_registry;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

pub use settings::{Environment, Service, Settings};
