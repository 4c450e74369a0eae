//! A real `redis-server` for the tests (Debian package `redis-server`, installed through
//! [`peers::require_program`](super::peers::require_program) when missing), on a free
//! loopback port, with nothing persisted; and a real three-node Redis Cluster.
//!
//! Servers are stopped by PID when dropped. Every wait here is bounded and only waits for
//! a process to be ready; no test asserts on time.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::peers::require_program;

/// One `redis-server` process on 127.0.0.1.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    cluster: bool,
}

impl RedisServer {
    /// Starts a standalone server on a free port.
    pub fn start() -> Self {
        Self::start_on(free_port(), false)
    }

    fn start_on(port: u16, cluster: bool) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("redis")
            .join(port.to_string());
        std::fs::create_dir_all(&dir).expect("redis working directory");
        let mut server = Self {
            child: None,
            port,
            dir,
            cluster,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
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
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.cluster {
            let _ = std::fs::remove_file(self.dir.join("nodes.conf"));
            command
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "2000"]);
        }
        self.child = Some(command.spawn().expect("redis-server starts"));
        self.wait_ready();
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
        self.spawn();
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

    /// Sends a command without waiting for its answer (e.g. `DEBUG SLEEP 2`), on a
    /// connection kept open until the returned stream is dropped.
    pub fn command_in_background(&self, command: &str) -> TcpStream {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .expect("send");
        stream
    }

    fn wait_ready(&self) {
        // A process start, not a timing assertion: at most 10 s, then a clear failure.
        for _ in 0..500 {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                let mut answer = [0u8; 5];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut answer).is_ok()
                    && &answer == b"+PONG"
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not become ready", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three `redis-server --cluster-enabled yes` on loopback, joined with
/// `redis-cli --cluster create` (no replicas), every slot covered.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts and joins the three nodes, and waits until the cluster says it is ok.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start_on(free_port(), true))
            .collect();
        let cli = require_program("redis-cli", "redis-tools").unwrap_or_else(|e| panic!("{e}"));
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new(cli)
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
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

/// A port nothing listens on now (the OS picks it; the server binds it right after).
fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
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
