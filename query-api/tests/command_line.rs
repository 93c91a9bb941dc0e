//! `query-api --help`, `--version`, and a refused unknown argument.

#[test]
fn the_command_line_follows_the_conventions() {
    service_kit::testing::check_command_line(env!("CARGO_BIN_EXE_query-api"), &[]);
}
