//! The `portcullis` binary, run by a test: its output read line by line, killed when the
//! test ends however it ends.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Every wait on the binary ends by this.
pub const BOUND: Duration = Duration::from_secs(20);

/// Runs `portcullis` with `arguments` to its end (within [`BOUND`]): its exit code,
/// standard output and error.
pub fn run(arguments: &[&str]) -> (i32, String, String) {
    let output = super::process::output_within(
        Command::new(env!("CARGO_BIN_EXE_portcullis")).args(arguments),
        BOUND,
    )
    .unwrap_or_else(|error| panic!("{error}"));
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A running `portcullis`.
pub struct Served {
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Served {
    /// Runs `portcullis` with `arguments`, reading its standard output and error.
    pub fn start<I, S>(arguments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Self::start_with_env(arguments, &[])
    }

    /// Runs `portcullis` with `arguments` and `environment` added to its environment.
    pub fn start_with_env<I, S>(arguments: I, environment: &[(&str, &str)]) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(arguments)
            // Warnings only: the audit events of every request would crowd out the lines
            // the tests wait for (a test may ask for more).
            .env("PORTCULLIS_LOG", "warn")
            .envs(environment.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let (sender, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let readers: [Box<dyn std::io::Read + Send>; 2] = [Box::new(stdout), Box::new(stderr)];
        for reader in readers {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(reader).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self { child, lines }
    }

    /// The next line, on stdout or stderr, within [`BOUND`].
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(BOUND)
            .expect("a line from the binary")
    }

    /// The next line, on stdout or stderr, that contains `text` (within 20 lines).
    pub fn line_containing(&self, text: &str) -> String {
        (0..20)
            .map(|_| self.next_line())
            .find(|line| line.contains(text))
            .unwrap_or_else(|| panic!("no line with {text:?}"))
    }

    /// Reads lines (within 20) until each of `texts` has been seen, in any order: standard
    /// output and error are read apart, so their lines may arrive in either order.
    pub fn lines_containing_all(&self, texts: &[&str]) {
        let mut missing: Vec<&str> = texts.to_vec();
        for _ in 0..20 {
            if missing.is_empty() {
                return;
            }
            let line = self.next_line();
            missing.retain(|text| !line.contains(text));
        }
        assert!(missing.is_empty(), "no lines with {missing:?}");
    }

    /// The address of the next line that starts with `prefix` (`listening on http://`).
    pub fn address(&self, prefix: &str) -> SocketAddr {
        let line = self.line_containing(prefix);
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("line: {line}"))
            .parse()
            .expect("an address")
    }

    /// Sends `signal` (`-HUP`, `-TERM`) to the binary.
    #[cfg(unix)]
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
