//! [`Introspection`]: asks the authorization server about opaque tokens (RFC 7662), with a
//! bounded cache and one request per token at a time.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{AuthMethod, Principal};
use quick_cache::sync::Cache;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::cache::{TokenCache, TokenDigest};
use super::rules::{BearerConfigError, claim_at, push_strings, push_words};
use super::token::Failure;
use crate::remote::{HttpClient, ReqwestClient, check_url};

/// How long an active token's answer is kept by default (never past its `exp`).
const DEFAULT_MAX_CACHE: Duration = Duration::from_secs(5 * 60);
/// How long an inactive token's answer is kept by default.
const DEFAULT_NEGATIVE_CACHE: Duration = Duration::from_secs(5);
/// How many answers are kept by default.
const DEFAULT_CAPACITY: usize = 10_000;
/// The most tokens being introspected at once that share their request; beyond that,
/// requests for new tokens are sent without sharing.
const MAX_IN_FLIGHT: usize = 4_096;
/// What the introspection endpoint must answer with.
const ACCEPT_JSON: &[&str] = &["application/json"];

/// How the client authenticates to the introspection endpoint (RFC 6749 section 2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    /// `Authorization: Basic` with the form-encoded id and secret.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// Why a token is refused after introspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `active` is not `true`.
    Inactive,
    /// The answer is active but a member fails a check (expired, wrong audience, …).
    Claim(Failure),
}

/// The answer for one token.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// The token is active and acceptable.
    Active(Principal),
    /// The token must be refused (401).
    Refused(Refusal),
    /// The endpoint could not give a usable answer (503); `reason` is logged.
    Unavailable(&'static str),
}

/// Introspects opaque bearer tokens at an authorization server (RFC 7662).
///
/// Built with [`Introspection::builder`] and given to
/// [`BearerAuthenticatorBuilder::introspection`](super::BearerAuthenticatorBuilder::introspection).
/// Answers are cached by the SHA-256 of the token (the cache holds no token): an active
/// token until its `exp` or [`max_cache`](IntrospectionBuilder::max_cache), whichever is
/// sooner; an inactive one for [`negative_cache`](IntrospectionBuilder::negative_cache).
/// Concurrent requests with the same uncached token share one introspection request.
/// When the endpoint is down, slow, or answers with something unusable, requests get 503
/// with `Retry-After` (never 401), while cached answers keep working.
///
/// Cloning is a reference-count increment. `Debug` never shows the client secret.
#[derive(Clone)]
pub struct Introspection {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    client_id: String,
    client_secret: String,
    auth: ClientAuth,
    issuer: Option<String>,
    audiences: Vec<String>,
    roles_claim: Option<Vec<String>>,
    max_cache: Duration,
    negative_cache: Duration,
    cache: Cache<TokenDigest, (Result<Principal, Refusal>, SystemTime)>,
    client: Arc<dyn HttpClient>,
    in_flight: Mutex<HashMap<TokenDigest, Arc<OnceCell<Outcome>>>>,
}

impl fmt::Debug for Introspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Introspection")
            .field("url", &inner.url)
            .field("client_id", &inner.client_id)
            .field("client_secret", &"[redacted]")
            .field("auth", &inner.auth)
            .field("issuer", &inner.issuer)
            .field("audiences", &inner.audiences)
            .field("roles_claim", &inner.roles_claim)
            .field("max_cache", &inner.max_cache)
            .field("negative_cache", &inner.negative_cache)
            .field("cached", &inner.cache.len())
            .finish_non_exhaustive()
    }
}

impl Introspection {
    /// Configures introspection at `url` (the authorization server's
    /// `introspection_endpoint`) as client `client_id` with `client_secret`.
    pub fn builder(
        url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> IntrospectionBuilder {
        IntrospectionBuilder {
            url: url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            auth: ClientAuth::Basic,
            issuer: None,
            audiences: Vec::new(),
            roles_claim: None,
            max_cache: DEFAULT_MAX_CACHE,
            negative_cache: DEFAULT_NEGATIVE_CACHE,
            cache_capacity: DEFAULT_CAPACITY,
            http_client: None,
            allow_http: false,
        }
    }

    /// The introspection endpoint.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Forgets every cached answer.
    pub fn clear_cache(&self) {
        self.inner.cache.clear();
    }

    /// The cached answer for `digest`, if it is still valid at `now`.
    pub(crate) fn cached(&self, digest: &TokenDigest, now: SystemTime) -> Option<Outcome> {
        let (result, deadline) = self.inner.cache.get(digest)?;
        if now >= deadline {
            self.inner.cache.remove(digest);
            return None;
        }
        Some(match result {
            Ok(principal) => Outcome::Active(principal),
            Err(refusal) => Outcome::Refused(refusal),
        })
    }

    /// The answer for `token`: from the cache, or from the endpoint (one request per
    /// token at a time).
    pub(crate) async fn introspect(&self, token: &str) -> Outcome {
        let digest = TokenCache::digest(token);
        if let Some(outcome) = self.cached(&digest, SystemTime::now()) {
            return outcome;
        }
        let Some(cell) = self.join(digest) else {
            return self.fetch(token, digest).await;
        };
        let guard = InFlight {
            owner: self,
            digest,
            cell,
        };
        guard
            .cell
            .get_or_init(|| async {
                // Another request may have finished while this one waited for the map.
                match self.cached(&digest, SystemTime::now()) {
                    Some(outcome) => outcome,
                    None => self.fetch(token, digest).await,
                }
            })
            .await
            .clone()
    }

    /// The shared cell for `digest`, or `None` when too many tokens are in flight.
    fn join(&self, digest: TokenDigest) -> Option<Arc<OnceCell<Outcome>>> {
        let mut map = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(cell) = map.get(&digest) {
            return Some(Arc::clone(cell));
        }
        if map.len() >= MAX_IN_FLIGHT {
            return None;
        }
        let cell = Arc::new(OnceCell::new());
        map.insert(digest, Arc::clone(&cell));
        Some(cell)
    }

    /// Sends one introspection request and caches a definite answer.
    async fn fetch(&self, token: &str, digest: TokenDigest) -> Outcome {
        let inner = &*self.inner;
        let response = match inner.auth {
            ClientAuth::Basic => {
                let user = form_encode(&inner.client_id);
                let password = form_encode(&inner.client_secret);
                let form = [("token", token), ("token_type_hint", "access_token")];
                inner
                    .client
                    .post_form(&inner.url, &form, Some((&user, &password)), ACCEPT_JSON)
                    .await
            }
            ClientAuth::Post => {
                let form = [
                    ("token", token),
                    ("token_type_hint", "access_token"),
                    ("client_id", inner.client_id.as_str()),
                    ("client_secret", inner.client_secret.as_str()),
                ];
                inner
                    .client
                    .post_form(&inner.url, &form, None, ACCEPT_JSON)
                    .await
            }
        };
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(
                    target: "portcullis::bearer",
                    error = %error,
                    "token introspection failed"
                );
                return Outcome::Unavailable("introspection_unavailable");
            }
        };
        if !(200..300).contains(&response.status) {
            tracing::warn!(
                target: "portcullis::bearer",
                status = response.status,
                "token introspection answered with an error status"
            );
            return Outcome::Unavailable("introspection_status");
        }
        let answer = match serde_json::from_slice::<Value>(&response.body) {
            Ok(Value::Object(answer)) => answer,
            _ => {
                tracing::warn!(
                    target: "portcullis::bearer",
                    "token introspection answered with something other than a JSON object"
                );
                return Outcome::Unavailable("introspection_garbage");
            }
        };
        let now = SystemTime::now();
        let (result, deadline) = match self.judge(answer, now) {
            Ok((principal, until)) => {
                let deadline = until.min(now + inner.max_cache);
                (Ok(principal), deadline)
            }
            Err(refusal) => (Err(refusal), now + inner.negative_cache),
        };
        if deadline > now {
            inner.cache.insert(digest, (result.clone(), deadline));
        }
        match result {
            Ok(principal) => Outcome::Active(principal),
            Err(refusal) => Outcome::Refused(refusal),
        }
    }

    /// Checks an introspection answer; an active one gives the principal and the time it
    /// stops being acceptable.
    fn judge(
        &self,
        answer: Map<String, Value>,
        now: SystemTime,
    ) -> Result<(Principal, SystemTime), Refusal> {
        let inner = &*self.inner;
        if answer.get("active") != Some(&Value::Bool(true)) {
            return Err(Refusal::Inactive);
        }
        let claim = Refusal::Claim;
        let seconds = now
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        let mut until = now + inner.max_cache;
        if let Some(exp) = number(&answer, "exp")? {
            if exp <= seconds {
                return Err(claim(Failure::Expired));
            }
            let exp = UNIX_EPOCH + Duration::try_from_secs_f64(exp).unwrap_or_default();
            until = until.min(exp);
        }
        if let Some(nbf) = number(&answer, "nbf")?
            && nbf > seconds
        {
            return Err(claim(Failure::NbfFuture));
        }
        let issuer = match (answer.get("iss"), &inner.issuer) {
            (None, _) => None,
            (Some(Value::String(iss)), Some(expected)) if iss != expected => {
                return Err(claim(Failure::IssMismatch));
            }
            (Some(Value::String(iss)), _) => Some(iss.clone()),
            (Some(_), _) => return Err(claim(Failure::ClaimType)),
        };
        if !inner.audiences.is_empty() {
            self.check_audience(answer.get("aud")).map_err(claim)?;
        } else if answer
            .get("aud")
            .is_some_and(|aud| !(aud.is_string() || is_string_array(aud)))
        {
            return Err(claim(Failure::ClaimType));
        }
        let subject = match (answer.get("sub"), answer.get("client_id")) {
            (Some(Value::String(sub)), Some(Value::String(_)) | None) => sub.clone(),
            (None, Some(Value::String(client))) => client.clone(),
            (None, None) => return Err(claim(Failure::MissingClaim)),
            _ => return Err(claim(Failure::ClaimType)),
        };
        let mut scopes = Vec::new();
        match answer.get("scope") {
            None => {}
            Some(Value::String(scope)) => push_words(scope, &mut scopes),
            Some(_) => return Err(claim(Failure::ClaimType)),
        }
        let mut roles = Vec::new();
        if let Some(path) = &inner.roles_claim {
            match claim_at(&answer, path) {
                None => {}
                Some(Value::String(role)) => roles.push(role.clone()),
                Some(Value::Array(items)) => push_strings(items, &mut roles).map_err(claim)?,
                Some(_) => return Err(claim(Failure::ClaimType)),
            }
        }
        let mut principal = Principal::builder(subject, AuthMethod::Bearer)
            .scopes(scopes)
            .roles(roles);
        if let Some(issuer) = issuer {
            principal = principal.issuer(issuer);
        }
        Ok((principal.claims(answer).build(), until))
    }

    fn check_audience(&self, aud: Option<&Value>) -> Result<(), Failure> {
        let accepted = |aud: &str| self.inner.audiences.iter().any(|ok| ok == aud);
        match aud {
            None => Err(Failure::MissingClaim),
            Some(Value::String(aud)) if accepted(aud) => Ok(()),
            Some(Value::String(_)) => Err(Failure::AudMismatch),
            Some(Value::Array(items)) => {
                let mut found = false;
                for item in items {
                    found |= accepted(item.as_str().ok_or(Failure::ClaimType)?);
                }
                if found {
                    Ok(())
                } else {
                    Err(Failure::AudMismatch)
                }
            }
            Some(_) => Err(Failure::ClaimType),
        }
    }
}

/// Leaves the in-flight map when its request is done (or every waiter has given up).
struct InFlight<'a> {
    owner: &'a Introspection,
    digest: TokenDigest,
    cell: Arc<OnceCell<Outcome>>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self
            .owner
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ours = map
            .get(&self.digest)
            .is_some_and(|cell| Arc::ptr_eq(cell, &self.cell));
        // Done, or nobody else is waiting on this entry (the map and this guard hold it).
        if ours && (self.cell.initialized() || Arc::strong_count(&self.cell) <= 2) {
            map.remove(&self.digest);
        }
    }
}

fn number(answer: &Map<String, Value>, name: &str) -> Result<Option<f64>, Refusal> {
    match answer.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or(Refusal::Claim(Failure::ClaimType)),
        Some(_) => Err(Refusal::Claim(Failure::ClaimType)),
    }
}

fn is_string_array(value: &Value) -> bool {
    value
        .as_array()
        .is_some_and(|items| items.iter().all(Value::is_string))
}

/// `application/x-www-form-urlencoded` encoding, as RFC 6749 section 2.3.1 asks for the
/// client id and secret before they go into `Authorization: Basic`.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Builds an [`Introspection`]; see [`Introspection::builder`]. Every setting documents
/// its default.
#[must_use]
pub struct IntrospectionBuilder {
    url: String,
    client_id: String,
    client_secret: String,
    auth: ClientAuth,
    issuer: Option<String>,
    audiences: Vec<String>,
    roles_claim: Option<String>,
    max_cache: Duration,
    negative_cache: Duration,
    cache_capacity: usize,
    http_client: Option<Arc<dyn HttpClient>>,
    allow_http: bool,
}

impl fmt::Debug for IntrospectionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionBuilder")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("auth", &self.auth)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("roles_claim", &self.roles_claim)
            .field("max_cache", &self.max_cache)
            .field("negative_cache", &self.negative_cache)
            .field("cache_capacity", &self.cache_capacity)
            .field("custom_http_client", &self.http_client.is_some())
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl IntrospectionBuilder {
    /// Sends the client id and secret in the form body (`client_secret_post`). Defaults
    /// to `Authorization: Basic` (`client_secret_basic`).
    pub fn client_secret_post(mut self) -> Self {
        self.auth = ClientAuth::Post;
        self
    }

    /// Requires `iss`, when the answer has one, to be `issuer`; it becomes the
    /// principal's issuer. Defaults to accepting any `iss`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Accepts tokens for `audience`; call again for more. Once one is given, `aud` (a
    /// string or an array of strings) must be present and name one of them. Defaults to
    /// no audience check.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Reads roles from this member of the answer (a dot-separated path such as
    /// `realm_access.roles`; a string or an array of strings). Defaults to no roles.
    pub fn roles_claim(mut self, path: impl Into<String>) -> Self {
        self.roles_claim = Some(path.into());
        self
    }

    /// Keeps an active token's answer at most this long (never past its `exp`). Zero
    /// asks the endpoint every time. Defaults to 5 minutes.
    pub fn max_cache(mut self, max: Duration) -> Self {
        self.max_cache = max;
        self
    }

    /// Keeps an inactive token's answer this long. Zero asks the endpoint every time.
    /// Defaults to 5 seconds.
    pub fn negative_cache(mut self, duration: Duration) -> Self {
        self.negative_cache = duration;
        self
    }

    /// Keeps at most `entries` answers. Defaults to 10,000.
    pub fn cache_capacity(mut self, entries: usize) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// Sends requests with `client` instead of a default [`ReqwestClient`] (5 s timeout,
    /// 1 MiB cap).
    pub fn http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Allows a plain `http` URL to any host. Defaults to `https`, or `http` only to a
    /// loopback host.
    pub fn insecure_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Checks the settings and finishes the introspection client.
    ///
    /// # Errors
    ///
    /// [`BearerConfigError::InvalidUrl`] for a URL that breaks the URL rule;
    /// [`BearerConfigError::MissingIntrospectionClient`] for an empty client id;
    /// [`BearerConfigError::InvalidLimit`] for a zero cache capacity;
    /// [`BearerConfigError::InvalidClaimPath`] for a bad roles path;
    /// [`BearerConfigError::HttpClient`] if the default client cannot be built — each inside
    /// [`ConfigError::Bearer`](crate::ConfigError::Bearer).
    pub fn build(self) -> Result<Introspection, crate::ConfigError> {
        self.try_build().map_err(crate::ConfigError::from)
    }

    fn try_build(self) -> Result<Introspection, BearerConfigError> {
        check_url(&self.url, self.allow_http).map_err(|error| error.into_config_error())?;
        if self.client_id.is_empty() {
            return Err(BearerConfigError::MissingIntrospectionClient);
        }
        if self.cache_capacity == 0 {
            return Err(BearerConfigError::InvalidLimit {
                setting: "cache_capacity",
            });
        }
        let roles_claim = match self.roles_claim {
            None => None,
            Some(path) => {
                let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
                if segments.iter().any(String::is_empty) {
                    return Err(BearerConfigError::InvalidClaimPath { path });
                }
                Some(segments)
            }
        };
        let client: Arc<dyn HttpClient> =
            match self.http_client {
                Some(client) => client,
                None => Arc::new(ReqwestClient::new().map_err(|error| {
                    BearerConfigError::HttpClient {
                        reason: error.to_string(),
                    }
                })?),
            };
        Ok(Introspection {
            inner: Arc::new(Inner {
                url: self.url,
                client_id: self.client_id,
                client_secret: self.client_secret,
                auth: self.auth,
                issuer: self.issuer,
                audiences: self.audiences,
                roles_claim,
                max_cache: self.max_cache,
                negative_cache: self.negative_cache,
                cache: Cache::new(self.cache_capacity),
                client,
                in_flight: Mutex::new(HashMap::new()),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn introspection() -> Introspection {
        Introspection::builder("http://127.0.0.1:1/introspect", "id", "s3cret")
            .issuer("https://idp.example")
            .audience("api")
            .roles_claim("realm_access.roles")
            .build()
            .expect("valid settings")
    }

    fn judge(answer: Value) -> Result<Principal, Refusal> {
        let Value::Object(answer) = answer else {
            return Err(Refusal::Inactive);
        };
        introspection()
            .judge(answer, SystemTime::now())
            .map(|(principal, _)| principal)
    }

    #[test]
    fn secret_is_redacted() {
        let text = format!("{:?}", introspection());
        assert!(!text.contains("s3cret"), "{text}");
        let builder = Introspection::builder("https://idp.example/i", "id", "s3cret");
        assert!(!format!("{builder:?}").contains("s3cret"));
    }

    #[test]
    fn only_boolean_true_is_active() {
        for active in [
            serde_json::json!("true"),
            serde_json::json!(1),
            serde_json::json!(false),
            Value::Null,
        ] {
            assert_eq!(
                judge(serde_json::json!({"active": active, "sub": "a", "aud": "api"})),
                Err(Refusal::Inactive)
            );
        }
        assert_eq!(
            judge(serde_json::json!({"sub": "a", "aud": "api"})),
            Err(Refusal::Inactive)
        );
    }

    #[test]
    fn members_are_checked() {
        let principal = judge(serde_json::json!({
            "active": true, "client_id": "c", "aud": ["x", "api"],
            "iss": "https://idp.example", "scope": "a b",
            "realm_access": {"roles": ["admin"]}, "exp": 4_000_000_000_u64
        }))
        .expect("active");
        assert_eq!(principal.subject(), "c");
        assert_eq!(principal.issuer(), Some("https://idp.example"));
        assert!(principal.has_scope("a") && principal.has_scope("b"));
        assert!(principal.has_role("admin"));

        let refused = |answer| judge(answer).err();
        let claim = |failure| Some(Refusal::Claim(failure));
        assert_eq!(
            refused(serde_json::json!({"active": true, "sub": "a", "aud": "other"})),
            claim(Failure::AudMismatch)
        );
        assert_eq!(
            refused(serde_json::json!({"active": true, "sub": "a"})),
            claim(Failure::MissingClaim)
        );
        assert_eq!(
            refused(serde_json::json!({"active": true, "sub": "a", "aud": "api", "exp": "9"})),
            claim(Failure::ClaimType)
        );
        assert_eq!(
            refused(serde_json::json!({"active": true, "sub": "a", "aud": "api", "exp": 1})),
            claim(Failure::Expired)
        );
        assert_eq!(
            refused(serde_json::json!({"active": true, "sub": "a", "aud": "api", "iss": "x"})),
            claim(Failure::IssMismatch)
        );
        assert_eq!(
            refused(serde_json::json!({"active": true, "sub": 5, "aud": "api"})),
            claim(Failure::ClaimType)
        );
        assert_eq!(
            refused(serde_json::json!({"active": true, "sub": "a", "aud": "api", "scope": []})),
            claim(Failure::ClaimType)
        );
    }

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("a-b_c.d*9"), "a-b_c.d*9");
        assert_eq!(form_encode("a b:c%"), "a+b%3Ac%25");
    }

    #[test]
    fn url_rule_and_limits() {
        let build = |url: &str| Introspection::builder(url, "id", "s").try_build();
        assert!(matches!(
            build("http://idp.example/i"),
            Err(BearerConfigError::InvalidUrl { .. })
        ));
        assert!(build("https://idp.example/i").is_ok());
        assert_eq!(
            Introspection::builder("https://idp.example/i", "", "s")
                .try_build()
                .err(),
            Some(BearerConfigError::MissingIntrospectionClient)
        );
        assert!(
            Introspection::builder("https://idp.example/i", "id", "s")
                .cache_capacity(0)
                .build()
                .is_err()
        );
    }
}
