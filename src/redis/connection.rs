//! [`RedisConnection`]: one shared, self-healing connection to Redis or a Redis Cluster,
//! with a bound on every command.

// Each store uses part of this module: dead-code analysis is meaningful only when every
// store is compiled in (as clippy and CI run it, `--all-features`).
#![cfg_attr(
    not(all(
        feature = "api-key",
        feature = "oidc",
        feature = "shield",
        feature = "bearer"
    )),
    allow(dead_code)
)]

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionAddr, FromRedisValue, IntoConnectionInfo, RedisError};
use tokio::sync::OnceCell;

use crate::error::ConfigError;

/// Defaults to 1 second: a Redis on the same network answers a connect in well under a
/// millisecond, and a request waits at most this long for one.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Defaults to 500 ms: far above a healthy round trip (~0.1 ms), low enough that a stalled
/// Redis turns into a prompt 503 rather than a hung request.
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// Defaults to `portcullis`.
const DEFAULT_PREFIX: &str = "portcullis";

/// A connection to Redis (or to a Redis Cluster) shared by every Redis-backed store of an
/// instance. Cheap to clone.
///
/// It connects on first use, not at build, so an instance starts while Redis is down and
/// recovers by itself once Redis is back: each command either gets an answer within the
/// command timeout or fails, and a failed connection is opened again on a later command.
/// Debug output names the nodes, never a password.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    prefix: Box<str>,
    command_timeout: Duration,
    /// `host:port` of each node, for logs.
    nodes: Vec<String>,
}

// Until a store uses it (with `api-key` or `oidc`), only its construction is compiled in.
enum Backend {
    Single(Box<Single>),
    Cluster(Box<Cluster>),
}

struct Single {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// Made on first use, inside the runtime (it spawns its reconnection task there), so
    /// that building needs none.
    manager: OnceLock<ConnectionManager>,
}

struct Cluster {
    client: ClusterClient,
    /// Opened on first use; a failed attempt is retried by the next command.
    connection: OnceCell<ClusterConnection>,
    connect_timeout: Duration,
}

/// One connection of either kind, so that commands are written once.
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        command: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Single(manager) => manager.req_packed_command(command),
            Self::Cluster(cluster) => cluster.req_packed_command(command),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Single(manager) => manager.req_packed_commands(pipeline, offset, count),
            Self::Cluster(cluster) => cluster.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(manager) => manager.get_db(),
            Self::Cluster(cluster) => cluster.get_db(),
        }
    }
}

/// Why a command got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    /// Redis answered with an error, or could not be reached.
    #[error("Redis: {0}")]
    Redis(#[from] RedisError),
    /// No answer within the command timeout.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
}

impl RedisConnection {
    /// A connection to one Redis server, e.g. `redis://127.0.0.1:6379` or
    /// `redis://:password@10.0.0.5:6379/2`.
    pub fn builder(url: impl Into<String>) -> RedisConnectionBuilder {
        RedisConnectionBuilder::new(vec![url.into()], false)
    }

    /// A connection to a Redis Cluster, given one or more of its nodes (the others are
    /// discovered).
    pub fn cluster_builder<I, T>(nodes: I) -> RedisConnectionBuilder
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        RedisConnectionBuilder::new(nodes.into_iter().map(Into::into).collect(), true)
    }

    /// The prefix of every key the stores write (`portcullis` by default).
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Whether Redis answers `PING` within the command timeout (for readiness probes).
    pub(crate) async fn ping(&self) -> Result<(), crate::NotReady> {
        match self.query::<String>(&redis::cmd("PING")).await {
            Ok(_) => Ok(()),
            Err(error) => Err(crate::NotReady::new(
                crate::text::bounded(&format!("Redis does not answer: {error}")).to_owned(),
            )),
        }
    }

    /// Runs `command` and reads its answer as `T`, within the command timeout.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, CommandError> {
        self.bounded(async {
            let mut connection = self.connection().await?;
            Ok(command.query_async(&mut connection).await?)
        })
        .await
    }

    /// Runs `script` (by its SHA, loading it when Redis does not know it) with its keys and
    /// arguments already set on `invocation`, within the command timeout.
    pub(crate) async fn run_script<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, CommandError> {
        self.bounded(async {
            let mut connection = self.connection().await?;
            Ok(invocation.invoke_async(&mut connection).await?)
        })
        .await
    }

    /// The connection to send on: the single server's manager, or the cluster's.
    async fn connection(&self) -> Result<Connection, CommandError> {
        Ok(match &self.inner.backend {
            Backend::Single(single) => Connection::Single(single.manager()?),
            Backend::Cluster(_) => Connection::Cluster(self.cluster().await?),
        })
    }

    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, CommandError>>,
    ) -> Result<T, CommandError> {
        let timeout = self.inner.command_timeout;
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(CommandError::Timeout(timeout)))
    }

    /// The cluster connection, opened now if it is not open yet.
    async fn cluster(&self) -> Result<ClusterConnection, CommandError> {
        let Backend::Cluster(cluster) = &self.inner.backend else {
            unreachable!("only called for a cluster backend");
        };
        let Cluster {
            client,
            connection,
            connect_timeout,
        } = &**cluster;
        let open = connection
            .get_or_try_init(|| async {
                match tokio::time::timeout(*connect_timeout, client.get_async_connection()).await {
                    Ok(result) => result.map_err(CommandError::from),
                    Err(_) => Err(CommandError::Timeout(*connect_timeout)),
                }
            })
            .await?;
        Ok(open.clone())
    }
}

impl Single {
    /// The connection manager; it connects lazily and reconnects by itself.
    fn manager(&self) -> Result<ConnectionManager, CommandError> {
        if let Some(manager) = self.manager.get() {
            return Ok(manager.clone());
        }
        let made =
            ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())?;
        // Two first commands at once may both make one: the loser's is dropped unused.
        Ok(self.manager.get_or_init(|| made).clone())
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner.backend {
            Backend::Single(_) => "single",
            Backend::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisConnection")
            .field("kind", &kind)
            .field("nodes", &self.inner.nodes)
            .field("prefix", &self.inner.prefix)
            .field("command_timeout", &self.inner.command_timeout)
            .finish()
    }
}

/// Builds a [`RedisConnection`]; see there.
#[must_use]
pub struct RedisConnectionBuilder {
    nodes: Vec<String>,
    cluster: bool,
    prefix: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    allow_plaintext: bool,
}

impl fmt::Debug for RedisConnectionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URLs may carry a password: only their number is shown.
        f.debug_struct("RedisConnectionBuilder")
            .field("nodes", &self.nodes.len())
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("allow_plaintext", &self.allow_plaintext)
            .finish()
    }
}

impl RedisConnectionBuilder {
    fn new(nodes: Vec<String>, cluster: bool) -> Self {
        Self {
            nodes,
            cluster,
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            allow_plaintext: false,
        }
    }

    /// The prefix of every key written, so that several gateways (or environments) can
    /// share one Redis. Defaults to `portcullis`. ASCII letters, digits, `-`, `_`, `.` and
    /// `:`, at most 64 bytes.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one connection attempt may take. Defaults to 1 second.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command may take, connecting included, before it fails (and the store
    /// applies its failure mode). Defaults to 500 ms.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Allows `redis://` (plain text) to a host that is not loopback. Off by default: key
    /// records, counters and sessions would cross the network readable and forgeable. TLS
    /// (`rediss://`) is not built into this crate yet, so a remote Redis needs this or a
    /// tunnel.
    pub fn insecure_allow_plaintext(mut self) -> Self {
        self.allow_plaintext = true;
        self
    }

    /// Checks the settings and prepares the connection (opened on first use).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidRedis`] for a URL that does not parse, no node, a TLS or Unix
    /// socket address, plain text to a host that is not loopback (unless
    /// [`insecure_allow_plaintext`](Self::insecure_allow_plaintext)), a bad prefix, or a
    /// zero timeout.
    pub fn build(self) -> Result<RedisConnection, ConfigError> {
        let refuse = |reason: String| ConfigError::InvalidRedis { reason };
        if self.nodes.is_empty() {
            return Err(refuse("no Redis URL given".to_owned()));
        }
        if self.prefix.is_empty()
            || self.prefix.len() > 64
            || !self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        {
            return Err(refuse(format!(
                "key prefix `{}` must be 1 to 64 ASCII letters, digits, `-`, `_`, `.` or `:`",
                crate::text::bounded(&self.prefix)
            )));
        }
        if self.connect_timeout.is_zero() || self.command_timeout.is_zero() {
            return Err(refuse("timeouts must be greater than zero".to_owned()));
        }
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for (position, url) in self.nodes.iter().enumerate() {
            // Never echo the URL: it may hold a password.
            let info = url
                .as_str()
                .into_connection_info()
                .map_err(|_| refuse(format!("URL number {} does not parse", position + 1)))?;
            match info.addr() {
                ConnectionAddr::Tcp(host, port) => {
                    if !self.allow_plaintext && !crate::net::is_loopback_host(host) {
                        return Err(refuse(format!(
                            "plain-text Redis at {host}:{port}, which is not loopback; \
                             use a tunnel or `insecure_allow_plaintext()`"
                        )));
                    }
                    nodes.push(format!("{host}:{port}"));
                }
                _ => {
                    return Err(refuse(format!(
                        "URL number {}: only redis:// (TCP) addresses are supported",
                        position + 1
                    )));
                }
            }
        }
        let backend = if self.cluster {
            let client = ClusterClient::builder(self.nodes.iter().map(String::as_str))
                .connection_timeout(self.connect_timeout)
                .response_timeout(self.command_timeout)
                .build()
                .map_err(|error| refuse(format!("cluster client: {}", error.kind_name())))?;
            Backend::Cluster(Box::new(Cluster {
                client,
                connection: OnceCell::new(),
                connect_timeout: self.connect_timeout,
            }))
        } else {
            let client = redis::Client::open(self.nodes[0].as_str())
                .map_err(|error| refuse(format!("client: {}", error.kind_name())))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.connect_timeout))
                .set_response_timeout(Some(self.command_timeout))
                // Reconnection is retried by later commands; a command never waits on a
                // long retry loop.
                .set_number_of_retries(1)
                .set_max_delay(self.connect_timeout);
            Backend::Single(Box::new(Single {
                client,
                config,
                manager: OnceLock::new(),
            }))
        };
        Ok(RedisConnection {
            inner: Arc::new(Inner {
                backend,
                prefix: self.prefix.into(),
                command_timeout: self.command_timeout,
                nodes,
            }),
        })
    }
}

/// A short, secret-free name for an error's kind.
trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for RedisError {
    fn kind_name(&self) -> String {
        format!("{:?}", self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(builder: RedisConnectionBuilder) -> String {
        match builder.build() {
            Err(ConfigError::InvalidRedis { reason }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn plain_text_is_allowed_to_loopback_only_unless_opted_in() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis://localhost",
            "redis://[::1]:7000",
        ] {
            assert!(RedisConnection::builder(url).build().is_ok(), "{url}");
        }
        let reason = refused(RedisConnection::builder("redis://:hunter2@10.0.0.5:6379"));
        assert!(reason.contains("10.0.0.5:6379"), "{reason}");
        assert!(
            !reason.contains("hunter2"),
            "the password is never echoed: {reason}"
        );
        assert!(
            RedisConnection::builder("redis://10.0.0.5:6379")
                .insecure_allow_plaintext()
                .build()
                .is_ok()
        );
    }

    #[tokio::test]
    async fn bad_settings_are_refused_without_echoing_the_url() {
        let reason = refused(RedisConnection::builder("not a url :hunter2"));
        assert!(!reason.contains("hunter2"), "{reason}");
        refused(RedisConnection::cluster_builder(Vec::<String>::new()));
        refused(RedisConnection::builder("redis://127.0.0.1").prefix("has space"));
        refused(RedisConnection::builder("redis://127.0.0.1").prefix(""));
        refused(RedisConnection::builder("redis://127.0.0.1").command_timeout(Duration::ZERO));
        refused(RedisConnection::builder("redis+unix:///tmp/redis.sock"));
    }

    #[tokio::test]
    async fn debug_output_never_shows_a_password() {
        let connection = RedisConnection::builder("redis://:hunter2@127.0.0.1:6379")
            .build()
            .expect("valid");
        let debug = format!("{connection:?}");
        assert!(debug.contains("127.0.0.1:6379"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        let builder = format!(
            "{:?}",
            RedisConnection::builder("redis://:hunter2@127.0.0.1")
        );
        assert!(!builder.contains("hunter2"), "{builder}");
    }
}
