//! `query-api` starts against the real stack, serves /healthz, /readyz and /metrics, and shuts
//! down gracefully.

use service_kit::Service;

service_kit::operational_tests!(
    query_api::App,
    Service::QueryApi,
    env!("CARGO_BIN_EXE_query-api")
);
