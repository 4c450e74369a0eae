//! [`SharedState`]: what every gateway built from a policy file shares, so that a reload
//! keeps it.

use std::fmt;

/// What outlives a reload: the traffic protection's counters (rate-limit buckets,
/// brute-force counts and blocks) and, with the `oidc` feature, the login of an
/// `authenticate.oidc` section (its sessions, its provider's keys). Make one when the
/// service starts and build every gateway from the file with it
/// ([`PolicyFile::gateway_with`](super::PolicyFile::gateway_with)), so that a reload keeps
/// every spent bucket spent, every blocked source blocked and every session logged in.
///
/// A bucket is kept under its limit's name and quota: a reload that keeps both keeps the
/// bucket; a renamed limit, or a changed quota (a tier's included), starts with full
/// buckets, and the old ones stay in the in-process store (each set bounded; one more per
/// changed quota)
/// until the process ends. Brute-force counts and blocks are kept per source whatever the
/// settings: a block in force runs to its end, and the new threshold and periods apply
/// to the next failures. The login is built by the first gateway and kept as it is: a
/// reload whose `authenticate.oidc` section differs is refused (restart to change it).
///
/// # Example
///
/// ```
/// use std::net::SocketAddr;
/// use http::{Request, StatusCode};
/// use portcullis::config::{Format, PolicyFile, SharedState};
/// use portcullis::{AuthFuture, AuthOutcome};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let policy = PolicyFile::parse(
///     r#"
/// routes: [{route: GET /health, require: public}]
/// traffic:
///   rate_limits:
///     before_auth: [{name: per-ip, key: client_ip, quota: 1/min}]
/// "#,
///     Format::Yaml,
/// )?;
/// let traffic = SharedState::new();
/// // A gateway, as a reload would build it again from the same file.
/// let gateway = || -> Result<_, Box<dyn std::error::Error>> {
///     let (builder, _) = policy.gateway_with(&traffic)?;
///     Ok(builder
///         .authenticate(|_: &http::request::Parts| AuthFuture::ready(AuthOutcome::Absent))
///         .build()?)
/// };
/// let health = || -> Result<_, Box<dyn std::error::Error>> {
///     let mut request = Request::get("/health").body(String::new())?;
///     request.extensions_mut().insert("192.0.2.7:5000".parse::<SocketAddr>()?);
///     Ok(request)
/// };
/// let service = service_fn(|_: Request<_>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// });
///
/// let first = gateway()?.layer(service).oneshot(health()?).await?;
/// assert_eq!(first.status(), StatusCode::OK);
/// // The next gateway shares the bucket the first one spent.
/// let second = gateway()?.layer(service).oneshot(health()?).await?;
/// assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SharedState {
    #[cfg(feature = "rate-limit")]
    pub(super) rate_limits: std::sync::Arc<dyn crate::rate_limit::RateLimitStore>,
    #[cfg(feature = "shield")]
    pub(super) blocks: std::sync::Arc<dyn crate::shield::BlockStore>,
    /// The login, once the first gateway built it, with the section it was built from.
    #[cfg(feature = "oidc")]
    pub(super) login: std::sync::Arc<std::sync::Mutex<Option<super::login::RunningLogin>>>,
    /// The API keys of `api_keys: {memory: {}}`.
    #[cfg(feature = "api-key")]
    memory_keys: std::sync::Arc<crate::api_key::MemoryKeyStore>,
}

impl SharedState {
    /// In-process stores with the layers' default bounds: 100,000 buckets per limit and
    /// quota, 100,000 brute-force sources.
    #[must_use]
    pub fn new() -> Self {
        Self {
            #[cfg(feature = "rate-limit")]
            rate_limits: std::sync::Arc::new(crate::rate_limit::MemoryRateLimitStore::default()),
            #[cfg(feature = "shield")]
            blocks: std::sync::Arc::new(crate::shield::MemoryBlockStore::new(100_000)),
            #[cfg(feature = "oidc")]
            login: std::sync::Arc::default(),
            #[cfg(feature = "api-key")]
            memory_keys: std::sync::Arc::new(crate::api_key::MemoryKeyStore::new()),
        }
    }

    /// The store of a file's `api_keys: {memory: {}}`: issue keys in it (in code, or with
    /// the key API over it); every gateway built with this state looks keys up there.
    #[cfg(feature = "api-key")]
    #[must_use]
    pub fn memory_key_store(&self) -> std::sync::Arc<crate::api_key::MemoryKeyStore> {
        self.memory_keys.clone()
    }

    /// Keeps the rate-limit buckets in `store` (a bounded `MemoryRateLimitStore`, or one
    /// shared by instances).
    #[cfg(feature = "rate-limit")]
    #[must_use]
    pub fn rate_limit_store(
        mut self,
        store: std::sync::Arc<dyn crate::rate_limit::RateLimitStore>,
    ) -> Self {
        self.rate_limits = store;
        self
    }

    /// Keeps the brute-force counts and blocks in `store`.
    #[cfg(feature = "shield")]
    #[must_use]
    pub fn block_store(mut self, store: std::sync::Arc<dyn crate::shield::BlockStore>) -> Self {
        self.blocks = store;
        self
    }
}

impl Default for SharedState {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SharedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedState").finish_non_exhaustive()
    }
}
