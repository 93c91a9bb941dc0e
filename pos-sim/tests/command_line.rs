//! `pos-sim --help` explains itself and exits, where it used to start a load against the
//! default address; unknown arguments are refused.

#[test]
fn the_command_line_follows_the_conventions() {
    service_kit::testing::check_command_line(env!("CARGO_BIN_EXE_pos-sim"), &["run", "seed-demo"]);
}
