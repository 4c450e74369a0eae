//! An outside program run to its end within a bound: a test that waits on a stuck program
//! fails, naming it, instead of hanging until CI gives up.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Runs `command` (stdin empty, stdout and stderr captured) and waits for its end at most
/// `limit`; past that, kills it and says so.
pub fn output_within(command: &mut Command, limit: Duration) -> Result<Output, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("could not run {command:?}: {error}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Ok(Output {
                    status,
                    stdout: stdout.join().unwrap_or_default(),
                    stderr: stderr.join().unwrap_or_default(),
                });
            }
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                // The readers are left to end on their own: a child of the killed program
                // may still hold the pipes open.
                return Err(match outcome {
                    Err(error) => format!("waiting for {command:?} failed: {error}"),
                    _ => format!("{command:?} did not end within {limit:?}, and was killed"),
                });
            }
        }
    }
}

/// Reads `pipe` to its end on a thread of its own, so that a chatty program never blocks
/// on a full pipe.
fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}
