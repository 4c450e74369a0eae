//! Makes the outside programs the tests need available, so that `cargo test` is the whole
//! set-up on a fresh machine:
//!
//! - Node packages (the identity provider in `tests/idp`): `npm ci` when `node_modules` is
//!   missing or older than the lockfile, once per test run, under a file lock so that test
//!   binaries running in parallel do not race;
//! - Debian programs (`node`, and later `redis-server`, `chromium`): installed with
//!   `apt-get` when missing and the tests run as root with apt available.
//!
//! Anything it cannot provide is a test failure that names the command to run, never a
//! silent skip.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use super::process::output_within;

/// Bounds on the programs run here: far above what each takes (seconds), so that only a
/// stuck one reaches them.
const NPM_CI_LIMIT: Duration = Duration::from_secs(300);
const APT_GET_LIMIT: Duration = Duration::from_secs(900);
const VERSION_LIMIT: Duration = Duration::from_secs(30);

/// The directory of the test identity provider.
pub fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("idp")
}

/// Makes `node` (20 or later) and the identity provider's packages available; returns the
/// provider's directory. Panics, naming the command to run, when it cannot.
pub fn ensure_idp() -> PathBuf {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let dir = idp_dir();
    let ready = READY.get_or_init(|| {
        require_program("node", "nodejs")?;
        require_node_version(20)?;
        require_program("npm", "npm")?;
        with_lock("npm-ci", || npm_ci_if_stale(&dir))
    });
    if let Err(message) = ready {
        panic!("the test identity provider is not available: {message}");
    }
    dir
}

/// Runs `npm ci` in `dir` unless `node_modules` is at least as new as the lockfile.
fn npm_ci_if_stale(dir: &Path) -> Result<(), String> {
    let lockfile = modified(&dir.join("package-lock.json"))
        .ok_or_else(|| format!("{} has no package-lock.json", dir.display()))?;
    // npm writes `node_modules/.package-lock.json` last, when an install is complete.
    let installed = modified(&dir.join("node_modules").join(".package-lock.json"));
    if installed.is_some_and(|installed| installed >= lockfile) {
        return Ok(());
    }
    eprintln!(
        "[support] installing the test identity provider's Node packages \
         (`npm ci` in {}; a few seconds, once)",
        dir.display()
    );
    let output = output_within(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir),
        NPM_CI_LIMIT,
    )?;
    if !output.status.success() {
        return Err(format!(
            "`npm ci --no-audit --no-fund` in {} failed ({}); run it there by hand to see \
             why.\n{}",
            dir.display(),
            output.status,
            both_streams(&output)
        ));
    }
    Ok(())
}

/// Makes `program` available on the `PATH`: when it is missing, installs the Debian
/// package `package` if the tests run as root with `apt-get`; otherwise fails naming the
/// command to run.
pub fn require_program(program: &str, package: &str) -> Result<PathBuf, String> {
    if let Some(path) = find_on_path(program) {
        return Ok(path);
    }
    let install = format!("apt-get install -y --no-install-recommends {package}");
    if !is_root() || find_on_path("apt-get").is_none() {
        return Err(format!(
            "`{program}` is not on the PATH; install it (on Debian: `sudo {install}`)"
        ));
    }
    with_lock("apt-get", || {
        if find_on_path(program).is_some() {
            return Ok(()); // Another test binary installed it while we waited.
        }
        eprintln!("[support] `{program}` is missing: running `{install}`");
        let mut installed = apt_get(&["install", "-y", "--no-install-recommends", package])?;
        if !installed.status.success() {
            // A fresh machine may have no package lists yet.
            apt_get(&["update"])?;
            installed = apt_get(&["install", "-y", "--no-install-recommends", package])?;
        }
        if installed.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{install}` failed ({}):\n{}",
                installed.status,
                both_streams(&installed)
            ))
        }
    })?;
    find_on_path(program)
        .ok_or_else(|| format!("`{install}` ran, but `{program}` is still not on the PATH"))
}

fn apt_get(args: &[&str]) -> Result<Output, String> {
    output_within(
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        APT_GET_LIMIT,
    )
}

/// Fails unless `node --version` is at least `major`.
fn require_node_version(major: u32) -> Result<(), String> {
    let output = output_within(Command::new("node").arg("--version"), VERSION_LIMIT)?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let found = version
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse::<u32>().ok());
    match found {
        Some(found) if found >= major => Ok(()),
        _ => Err(format!(
            "the test identity provider needs Node.js {major} or later, and `node --version` \
             says {version:?}; install it from https://nodejs.org/"
        )),
    }
}

/// Runs `work` holding an exclusive lock shared by every test binary of this checkout.
/// The lock is released when the process ends, however it ends.
#[allow(clippy::incompatible_msrv)] // Test code: File::lock is in the toolchain we test with.
fn with_lock<T>(name: &str, work: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("support-locks");
    fs::create_dir_all(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let path = dir.join(format!("{name}.lock"));
    let file = File::create(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    file.lock()
        .map_err(|error| format!("locking {}: {error}", path.display()))?;
    let result = work();
    drop(file);
    result
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|meta| meta.modified()).ok()
}

fn both_streams(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
