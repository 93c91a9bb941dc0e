//! `pos-sim`: POS traffic for the Bazaar pipeline, over ingest's HTTP API with tokens it
//! obtains itself, checked at the end against query-api with its own model. Also creates
//! the demo catalog `make up` shows (`pos-sim seed-demo`).

pub mod api;
pub mod demo;
mod model;
pub mod sim;
