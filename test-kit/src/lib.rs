//! The test kit: what the workspace's integration and system tests share, one job a file.
//!
//! - `stack`: one test's slice of the stack `make up` started (database, topics, schema
//!   subjects, group and Redis prefix of its own); `cluster`: a Kafka cluster of a test's
//!   own; `registry`: a schema registry of a test's own; `child`: service binaries as child
//!   processes.
//! - `catalog`, `movements`, `model`, `progress`: the pipeline tests' catalog, their
//!   movements, the independent model of what must come out, and how far the processors
//!   have got.
//! - `operational`, `openapi`, `command_line`: the checks every service and binary passes.
//!
//! A test depends on it as `test-kit` and imports what it uses (`use test_kit::*;`).

pub mod catalog;
pub mod child;
pub mod cluster;
pub mod command_line;
mod database;
pub mod model;
pub mod movements;
pub mod openapi;
pub mod operational;
pub mod progress;
pub mod registry;
pub mod stack;

pub use catalog::*;
pub use child::*;
pub use cluster::*;
pub use command_line::*;
pub use model::*;
pub use movements::*;
pub use openapi::*;
pub use operational::*;
pub use progress::*;
pub use registry::*;
pub use stack::*;
