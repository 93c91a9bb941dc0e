//! Service binaries as child processes, as `make up` starts them.

use std::time::Duration;

use crate::TestStack;

/// A service binary started as a child process, as `make up` starts it.
#[derive(Debug)]
pub struct ChildService {
    child: std::process::Child,
    pub port: u16,
}

impl ChildService {
    /// Starts `binary` with the test's environment and waits (bounded) until it logs the
    /// address it listens on.
    pub fn start(binary: &str, stack: &TestStack) -> Self {
        Self::start_with(binary, stack, &[])
    }

    /// [`ChildService::start`] with more environment variables.
    pub fn start_with(binary: &str, stack: &TestStack, extra: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};

        let mut child = Command::new(binary)
            .envs(stack.env())
            .envs(extra.iter().copied())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {binary}: {error}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("{binary} has no stdout"));
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                // Warnings and errors go with the test's output (shown when it fails).
                if event["level"] == "WARN" || event["level"] == "ERROR" {
                    eprintln!("{line}");
                }
                if event["message"] == "Listening." {
                    let port = event["address"]
                        .as_str()
                        .and_then(|address| address.rsplit(':').next())
                        .and_then(|port| port.parse::<u16>().ok());
                    let _ = sender.send(port);
                }
            }
        });
        match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(port)) => Self { child, port },
            other => {
                let _ = child.kill();
                panic!("{binary} did not report its address: {other:?}")
            }
        }
    }

    /// SIGKILL: no graceful path at all.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns its status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        assert!(
            sent.is_ok_and(|status| status.success()),
            "kill -TERM {pid} failed"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("process {pid} did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `binary` with nothing in its environment but `env` and returns what it printed,
/// panicking unless it refuses to start (exits unsuccessfully within 10 s).
pub fn refused_start(binary: &str, env: &[(&str, &str)]) -> String {
    use std::io::Read;
    let mut child = std::process::Command::new(binary)
        .env_clear()
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("{binary}: {error}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{binary} started with {env:?}: it should have refused");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut printed = String::new();
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut stream = stream;
        let _ = stream.read_to_string(&mut printed);
    }
    assert!(
        !status.success(),
        "{binary} exited 0 with {env:?}: {printed}"
    );
    printed
}
