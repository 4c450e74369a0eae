//! A real `redis-server` for the tests (Debian package `redis-server`, installed through
//! [`peers::require_program`](super::peers::require_program) when missing), on a free
//! loopback port, with nothing persisted; and a real three-node Redis Cluster.
//!
//! Servers are stopped by PID when dropped. Every wait here is bounded and only waits for
//! a process to be ready; no test asserts on time.
//!
//! Ports come from [`unassigned_port`], below the OS's ephemeral range, so no other listener
//! or connection of the run takes one between its pick and the server's bind (or a
//! restart's). Should one be taken all the same, the server exits and is started again on
//! other ports (a restart cannot move: it fails, naming the port). A server counts as ready
//! only when the one answering on its port is this very process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::peers::require_program;
use super::ports::unassigned_port;
use super::process::output_within;

/// How long a server may take to answer after it starts: a bound on a stuck start.
const START_LIMIT: Duration = Duration::from_secs(20);
/// How many times a server is started on fresh ports when its ports were taken.
const START_ATTEMPTS: usize = 3;

/// Tells apart the working directories of the servers of this process.
static SERVERS: AtomicUsize = AtomicUsize::new(0);

/// One `redis-server` process on 127.0.0.1.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// The cluster bus port of a cluster node.
    bus_port: Option<u16>,
    /// Its own working directory (with its log), removed when it is dropped.
    dir: PathBuf,
}

impl RedisServer {
    /// Starts a standalone server on a free port.
    pub fn start() -> Self {
        Self::start_fresh(false)
    }

    /// Starts a server on free ports, again on others when they were taken meanwhile.
    fn start_fresh(cluster: bool) -> Self {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join("redis")
                .join(format!(
                    "{}-{}",
                    std::process::id(),
                    SERVERS.fetch_add(1, Ordering::Relaxed)
                ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("redis working directory");
            let mut server = Self {
                child: None,
                port: unassigned_port(),
                bus_port: cluster.then(unassigned_port),
                dir,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "redis-server did not start in {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        )
    }

    /// Starts the process and waits until it answers; `Err` (with its log) when it exited
    /// first, as it does when its port is taken.
    fn spawn(&mut self) -> Result<(), String> {
        let program =
            require_program("redis-server", "redis-server").unwrap_or_else(|e| panic!("{e}"));
        let mut command = Command::new(program);
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--enable-debug-command", "yes"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(bus_port) = self.bus_port {
            let _ = std::fs::remove_file(self.dir.join("nodes.conf"));
            command
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-port", &bus_port.to_string()])
                // Far above any pause of a loaded machine: a node is never taken for failed.
                .args(["--cluster-node-timeout", "15000"]);
        }
        self.child = Some(command.spawn().expect("redis-server starts"));
        self.wait_ready()
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (as a crash would), keeping its port for [`restart`](Self::restart).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(failure) = self.spawn() {
            panic!(
                "redis-server did not start again on port {}: {failure}",
                self.port
            );
        }
    }

    /// Sends one inline command and returns the first line of the answer.
    pub fn command(&self, command: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .expect("send");
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while stream.read(&mut byte).map(|n| n == 1).unwrap_or(false) {
            if byte[0] == b'\n' {
                break;
            }
            answer.push(byte[0]);
        }
        String::from_utf8_lossy(&answer).trim_end().to_owned()
    }

    /// Sends one inline command and returns the answer's values, whole and binary: one
    /// for a bulk string, each element of an array of bulk strings, none for nil (the
    /// first line, as text, for any other answer).
    pub fn command_values(&self, command: &str) -> Vec<Vec<u8>> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .expect("send");
        let mut reader = std::io::BufReader::new(stream);
        let first = read_line(&mut reader);
        match first.first() {
            Some(b'$') => read_bulk(&mut reader, &first).into_iter().collect(),
            Some(b'*') => {
                let count: i64 = std::str::from_utf8(&first[1..]).unwrap().parse().unwrap();
                (0..count.max(0))
                    .filter_map(|_| {
                        let header = read_line(&mut reader);
                        read_bulk(&mut reader, &header)
                    })
                    .collect()
            }
            _ => vec![first],
        }
    }

    /// Sends a command without waiting for its answer (e.g. `DEBUG SLEEP 5`), on a
    /// connection kept open until the returned stream is dropped.
    pub fn command_in_background(&self, command: &str) -> TcpStream {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .expect("send");
        stream
    }

    /// Waits (a process start, not a timing assertion: at most [`START_LIMIT`]) until this
    /// process answers on its port. `Err` when it exits first; panics when it never answers.
    fn wait_ready(&mut self) -> Result<(), String> {
        let pid = self.child.as_ref().expect("spawned").id();
        let deadline = Instant::now() + START_LIMIT;
        while Instant::now() < deadline {
            let exited = self.child.as_mut().expect("spawned").try_wait();
            if let Ok(Some(status)) = exited {
                self.child = None;
                return Err(format!(
                    "redis-server on port {} exited ({status}); its log:\n{}",
                    self.port,
                    self.log()
                ));
            }
            if answers_as(self.port, pid) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on port {} did not answer within {START_LIMIT:?}; its log:\n{}",
            self.port,
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the server answering on `port` is process `pid` (`INFO server` names it).
fn answers_as(port: u16, pid: u32) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let wanted = format!("process_id:{pid}\r\n");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    // The section is a few kilobytes; a bound on what is read all the same.
    while answer.len() < 64 * 1024 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(read) => answer.extend_from_slice(&chunk[..read]),
        }
        if answer
            .windows(wanted.len())
            .any(|window| window == wanted.as_bytes())
        {
            return true;
        }
    }
    false
}

/// Three `redis-server --cluster-enabled yes` on loopback, joined with
/// `redis-cli --cluster create` (no replicas), every slot covered.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts and joins the three nodes, and waits until the cluster says it is ok.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_fresh(true)).collect();
        let cli = require_program("redis-cli", "redis-tools").unwrap_or_else(|e| panic!("{e}"));
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = output_within(
            Command::new(cli)
                .args(["--cluster", "create"])
                .args(&addresses)
                .args(["--cluster-replicas", "0", "--cluster-yes"]),
            Duration::from_secs(60),
        )
        .unwrap_or_else(|error| panic!("{error}"));
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        let cluster = Self { nodes };
        for _ in 0..500 {
            if cluster.nodes.iter().all(|node| node.cluster_state_ok()) {
                return cluster;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the Redis Cluster did not reach cluster_state:ok");
    }

    /// One URL per node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

impl RedisServer {
    fn cluster_state_ok(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"CLUSTER INFO\r\n").is_err() {
            return false;
        }
        let mut buffer = vec![0u8; 4096];
        let read = stream.read(&mut buffer).unwrap_or(0);
        String::from_utf8_lossy(&buffer[..read]).contains("cluster_state:ok")
    }
}

/// One RESP line, without its `\r\n`.
fn read_line(reader: &mut impl std::io::BufRead) -> Vec<u8> {
    let mut line = Vec::new();
    reader
        .read_until(b'\n', &mut line)
        .expect("read from redis");
    while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        line.pop();
    }
    line
}

/// The bulk string announced by `header` (`$<len>`); `None` for nil (`$-1`).
fn read_bulk(reader: &mut impl std::io::BufRead, header: &[u8]) -> Option<Vec<u8>> {
    assert_eq!(header.first(), Some(&b'$'), "not a bulk string");
    let len: i64 = std::str::from_utf8(&header[1..]).unwrap().parse().unwrap();
    let len = usize::try_from(len).ok()?;
    let mut value = vec![0; len + 2];
    reader.read_exact(&mut value).expect("read from redis");
    value.truncate(len);
    Some(value)
}
