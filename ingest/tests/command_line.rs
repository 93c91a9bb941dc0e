//! `ingest --help`, `--version`, its subcommands, and a refused unknown argument.

#[test]
fn the_command_line_follows_the_conventions() {
    service_kit::testing::check_command_line(
        env!("CARGO_BIN_EXE_ingest"),
        &["serve", "create-admin", "migrate"],
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ingest"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    // The environment it reads, with defaults, from the one list the settings follow.
    for variable in service_kit::environment::VARIABLES {
        assert!(
            help.contains(variable.name),
            "{} missing from --help",
            variable.name
        );
    }
}
