//! ingest's integration tests, one binary (one link; helpers shared without allowances):
//! the real app in-process on port 0 against the local stack, with the processors where an
//! answer needs them (`wait`, `group_lag`).

mod auth;
mod catalog;
mod common;
mod group_lag;
mod login_throttle;
mod movements;
mod operational;
mod refusals;
mod role_matrix;
mod suppliers;
mod users;
mod wait;
