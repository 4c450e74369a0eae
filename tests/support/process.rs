//! An outside program run to its end within a bound: a test that waits on a stuck program
//! fails, naming it, instead of hanging until CI gives up.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long the output of a program that has ended may take to be read to its end: longer
/// only when something it started still holds its output open.
const OUTPUT_GRACE: Duration = Duration::from_secs(5);

/// Runs `command` (stdin empty, stdout and stderr captured, in a process group of its own)
/// and waits for its end at most `limit`; past that, kills the group and says so.
///
/// A program that ends while something it started still holds its output (a daemon, say)
/// gives what it wrote within [`OUTPUT_GRACE`], not a hang.
pub fn output_within(command: &mut Command, limit: Duration) -> Result<Output, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|error| format!("could not run {command:?}: {error}"))?;
    let stdout = Drained::start(child.stdout.take());
    let stderr = Drained::start(child.stderr.take());
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let grace = Instant::now() + OUTPUT_GRACE;
                return Ok(Output {
                    status,
                    stdout: stdout.finish(grace),
                    stderr: stderr.finish(grace),
                });
            }
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            outcome => {
                kill_group(&mut child);
                return Err(match outcome {
                    Err(error) => format!("waiting for {command:?} failed: {error}"),
                    _ => format!(
                        "{command:?} did not end within {limit:?}, and was killed; it \
                         printed:\nstdout:\n{}\nstderr:\n{}",
                        String::from_utf8_lossy(&stdout.finish(Instant::now())),
                        String::from_utf8_lossy(&stderr.finish(Instant::now()))
                    ),
                });
            }
        }
    }
}

/// Kills the child's whole process group (it leads it) with `kill(1)`, then reaps the
/// child. Where `kill(1)` is missing (no procps), only the child itself is killed.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// A pipe read to its end on a thread of its own (so a chatty program never blocks on a
/// full pipe), into a buffer that can be taken at any time.
struct Drained {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

impl Drained {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Self {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bytes);
        let reader = thread::spawn(move || {
            let Some(mut pipe) = pipe else { return };
            let mut chunk = [0_u8; 8192];
            while let Ok(read @ 1..) = pipe.read(&mut chunk) {
                if let Ok(mut bytes) = sink.lock() {
                    bytes.extend_from_slice(&chunk[..read]);
                }
            }
        });
        Self { bytes, reader }
    }

    /// What was read, once the pipe has ended or `until` has come, whichever is first (the
    /// reader is then left to end on its own).
    fn finish(self, until: Instant) -> Vec<u8> {
        while !self.reader.is_finished() && Instant::now() < until {
            thread::sleep(Duration::from_millis(10));
        }
        self.bytes
            .lock()
            .map(|mut bytes| std::mem::take(&mut *bytes))
            .unwrap_or_default()
    }
}
