//! A binary's command line keeps the conventions an operator relies on, checked on its clap
//! definition inside the binary's own tests (no process, no extra test binary).

use clap::error::ErrorKind;

/// `--help` and `--version` answer with exit code 0 (starting nothing), each subcommand
/// has `--help`, and an unknown argument is refused with exit code 2 and a message naming
/// it. Returns the long help, for the binary's own checks of what it says.
pub fn check_command_line(mut command: clap::Command, subcommands: &[&str]) -> String {
    command.build();
    command.clone().debug_assert();
    let name = command.get_name().to_owned();
    let run = |args: &[&str]| {
        let argv = std::iter::once(name.as_str()).chain(args.iter().copied());
        match command.clone().try_get_matches_from(argv) {
            Ok(_) => panic!("{name} {args:?} parsed as a command to run"),
            Err(error) => (error.kind(), error.exit_code(), error.render().to_string()),
        }
    };
    let (kind, code, help) = run(&["--help"]);
    assert_eq!((kind, code), (ErrorKind::DisplayHelp, 0), "{name} --help");
    assert!(help.contains("Usage:"), "{name} --help: {help}");
    for subcommand in subcommands {
        assert!(
            help.contains(subcommand),
            "{name} --help names {subcommand}: {help}"
        );
        let (kind, code, sub_help) = run(&[subcommand, "--help"]);
        assert_eq!(
            (kind, code),
            (ErrorKind::DisplayHelp, 0),
            "{name} {subcommand} --help"
        );
        assert!(
            sub_help.contains("Usage:"),
            "{name} {subcommand} --help: {sub_help}"
        );
    }
    let (kind, code, version) = run(&["--version"]);
    assert_eq!(
        (kind, code),
        (ErrorKind::DisplayVersion, 0),
        "{name} --version"
    );
    assert!(
        version.contains(env!("CARGO_PKG_VERSION")),
        "{name} --version: {version}"
    );
    let (kind, code, refusal) = run(&["--no-such-option"]);
    assert_eq!(
        (kind, code),
        (ErrorKind::UnknownArgument, 2),
        "{name} --no-such-option: {refusal}"
    );
    assert!(
        refusal.contains("unexpected argument '--no-such-option'"),
        "{name} --no-such-option: {refusal}"
    );
    command.render_long_help().to_string()
}
