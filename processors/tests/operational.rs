//! `processors` starts against the real stack, serves /healthz, /readyz and /metrics, and shuts
//! down gracefully.

use service_kit::Service;

test_kit::operational_tests!(
    processors::App,
    Service::Processors,
    processors_settings,
    env!("CARGO_BIN_EXE_processors")
);
