//! [`RedisRevocations`]: the access-token revocation list on Redis, shared by every
//! instance.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quick_cache::sync::Cache;
use tokio::time::Instant;

use super::connection::RedisConnection;
use crate::bearer::revocation_id;
use crate::bearer::{Revocation, RevocationError, RevokeFuture, StoreFuture, TokenRevocations};
use crate::error::ConfigError;

/// Defaults to 1 second: how long an answer is believed without asking Redis again, so a
/// revocation on one instance is refused on every instance within it.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(1);
/// The longest answer age allowed.
const MAX_MAX_AGE: Duration = Duration::from_secs(300);
/// Defaults to 100,000 answers kept per instance.
const DEFAULT_CAPACITY: usize = 100_000;

/// Revoked access tokens on Redis: a token revoked through any instance is refused on every
/// instance within the answer age (1 s by default), and the entry expires with the token.
///
/// Each revocation is one key, `prefix:revoked:<digest of issuer and jti>`, that Redis
/// deletes at the token's expiry. Answers are kept in a bounded local cache for the answer
/// age, so a busy token costs one round trip per age, not one per request. While Redis
/// cannot answer, tokens not in the cache get [`Revocation::Unknown`]: the bearer layer
/// answers 503, never lets them through.
#[derive(Clone)]
pub struct RedisRevocations {
    inner: Arc<Inner>,
}

struct Inner {
    connection: RedisConnection,
    answers: Cache<[u8; 32], (Revocation, Instant)>,
    max_age: Duration,
}

impl fmt::Debug for RedisRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocations")
            .field("connection", &self.inner.connection)
            .field("max_age", &self.inner.max_age)
            .finish_non_exhaustive()
    }
}

impl RedisRevocations {
    /// A list on `connection`, believing each answer for 1 second.
    #[must_use]
    pub fn new(connection: RedisConnection) -> Self {
        Self::build(connection, DEFAULT_MAX_AGE)
    }

    /// A list on `connection`, believing each answer for `max_age` (the bound on how long a
    /// revocation elsewhere takes to be seen here).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidLimit`] for an age of zero or above 5 minutes.
    pub fn with_max_age(
        connection: RedisConnection,
        max_age: Duration,
    ) -> Result<Self, ConfigError> {
        if max_age.is_zero() || max_age > MAX_MAX_AGE {
            return Err(ConfigError::InvalidLimit {
                setting: "revocations max_age (0 < age <= 5 minutes)",
            });
        }
        Ok(Self::build(connection, max_age))
    }

    fn build(connection: RedisConnection, max_age: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                connection,
                answers: Cache::new(DEFAULT_CAPACITY),
                max_age,
            }),
        }
    }

    fn key(&self, id: &[u8; 32]) -> String {
        use std::fmt::Write as _;
        let mut key = format!("{}:revoked:", self.inner.connection.prefix());
        for byte in id {
            let _ = write!(key, "{byte:02x}");
        }
        key
    }
}

impl TokenRevocations for RedisRevocations {
    fn check(&self, issuer: &str, jti: &str) -> StoreFuture<Revocation> {
        let id = revocation_id(issuer, jti);
        if let Some((answer, at)) = self.inner.answers.get(&id)
            && at.elapsed() < self.inner.max_age
        {
            return StoreFuture::ready(answer);
        }
        let this = self.clone();
        let key = self.key(&id);
        StoreFuture::new(async move {
            let inner = &this.inner;
            match inner
                .connection
                .query::<i64>(redis::cmd("EXISTS").arg(key))
                .await
            {
                Ok(found) => {
                    let answer = if found > 0 {
                        Revocation::Revoked
                    } else {
                        Revocation::Valid
                    };
                    inner.answers.insert(id, (answer, Instant::now()));
                    answer
                }
                Err(error) => {
                    tracing::warn!(
                        target: "portcullis::redis",
                        %error,
                        "revocation list unavailable: refusing with 503"
                    );
                    Revocation::Unknown
                }
            }
        })
    }

    fn revoke<'a>(
        &'a self,
        issuer: &'a str,
        jti: &'a str,
        expires_at: SystemTime,
    ) -> RevokeFuture<'a> {
        Box::pin(async move {
            let id = revocation_id(issuer, jti);
            let until = expires_at.duration_since(UNIX_EPOCH).map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| {
                    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
                });
            if until > now {
                let () = self
                    .inner
                    .connection
                    .query(
                        redis::cmd("SET")
                            .arg(self.key(&id))
                            .arg(1)
                            .arg("PXAT")
                            .arg(until),
                    )
                    .await
                    .map_err(|error| RevocationError(error.to_string()))?;
            }
            // This instance sees its own revocations at once.
            self.inner
                .answers
                .insert(id, (Revocation::Revoked, Instant::now()));
            Ok(())
        })
    }
}
