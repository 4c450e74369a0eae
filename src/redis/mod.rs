//! Shared state on Redis or Redis Cluster (feature `redis`), so that many instances of a
//! service agree: [`RedisKeyStore`] (with `api-key`) keeps API-key records there, and
//! [`RedisSessionStore`] (with `oidc`) the OpenID Connect sessions,
//! [`RedisRateLimitStore`] (with `rate-limit`) the rate-limit buckets and
//! [`RedisBlockStore`] (with `shield`) the brute-force counters and blocks, and
//! [`RedisRevocations`] (with `bearer`) the revoked access tokens.
//!
//! One [`RedisConnection`] is shared by every store of an instance: one multiplexed
//! connection (or one per cluster node), opened on first use and re-opened by itself after
//! Redis comes back. Every command is bounded by the connection's command timeout; a store
//! answers a timeout or an unreachable Redis as its failure mode says (a key lookup: 503,
//! never a pass and never a 401).
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use portcullis::api_key::{ApiKeyAuthenticator, CachedKeyStore};
//! use portcullis::redis::{RedisConnection, RedisKeyStore};
//!
//! # fn main() -> Result<(), portcullis::ConfigError> {
//! let redis = RedisConnection::builder("redis://127.0.0.1:6379")
//!     .command_timeout(Duration::from_millis(250))
//!     .build()?;
//! // A hit in the cache costs no round trip; a revocation on any instance is seen here
//! // within the cache's age bound (1 s by default).
//! let store = CachedKeyStore::new(RedisKeyStore::new(redis));
//! let authenticator = ApiKeyAuthenticator::new(Arc::new(store));
//! # drop(authenticator);
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "shield")]
mod block_store;
mod connection;
#[cfg(any(feature = "shield", feature = "rate-limit"))]
mod fallback;
#[cfg(feature = "api-key")]
mod key_store;
#[cfg(feature = "rate-limit")]
mod rate_limit_store;
#[cfg(feature = "bearer")]
mod revocations;
#[cfg(feature = "oidc")]
mod session_store;

#[cfg(feature = "shield")]
pub use self::block_store::RedisBlockStore;
pub use self::connection::{RedisConnection, RedisConnectionBuilder};
#[cfg(any(feature = "shield", feature = "rate-limit"))]
pub use self::fallback::Fallback;
#[cfg(feature = "api-key")]
pub use self::key_store::RedisKeyStore;
#[cfg(feature = "rate-limit")]
pub use self::rate_limit_store::RedisRateLimitStore;
#[cfg(feature = "bearer")]
pub use self::revocations::RedisRevocations;
#[cfg(feature = "oidc")]
pub use self::session_store::RedisSessionStore;
