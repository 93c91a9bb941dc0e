//! The system tests: the whole pipeline across services (ingest, the processors and
//! query-api in-process, pos-sim, the deploy files, the contracts) against the local stack.
//! One binary; each test is a process of its own under nextest.

mod as_of;
mod bounds;
mod broker_loss;
mod contract;
mod counts;
mod dashboard;
mod data_team;
mod deploy;
mod events;
mod network;
mod order_roles;
mod pipeline;
mod prices;
mod purchase_orders;
mod rate_limits;
mod reads;
mod registry;
mod reorder;
mod sessions;
mod simulator;
mod standby;
mod stock_life;
mod store_scope;
mod tls;
mod transfers;
