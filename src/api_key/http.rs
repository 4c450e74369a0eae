//! [`KeyAdminApi`]: key management over HTTP, an axum `Router` over a [`KeyAdmin`] store.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::admin::KeyAdmin;
use super::format::KeyId;
use super::record::{IssuedKey, NewKey};
use super::store::StoreError;
use crate::authenticate::Challenges;
use crate::error::ConfigError;
use crate::principal::{AuthMethod, Principal};
use crate::rejection::{Reason, Rejection, Violation};

/// The largest request body the API reads, in bytes.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// The longest owner or tenant, in bytes.
const MAX_NAME_BYTES: usize = 128;
/// The most roles, and the most scopes, a key may grant.
const MAX_GRANTS: usize = 32;
/// The longest role or scope, in bytes.
const MAX_GRANT_BYTES: usize = 64;
/// The most metadata entries.
const MAX_METADATA_ENTRIES: usize = 32;
/// The longest metadata name, in bytes.
const MAX_METADATA_NAME_BYTES: usize = 64;
/// The largest metadata object, serialised, in bytes.
const MAX_METADATA_BYTES: usize = 4 * 1024;
/// The longest lifetime a key may be issued with: ten years.
const MAX_EXPIRES_IN_SECS: u64 = 10 * 365 * 24 * 3600;
/// The rotation overlap when the request names none: one hour.
const DEFAULT_OVERLAP: Duration = Duration::from_secs(3600);
/// The longest rotation overlap: seven days.
const MAX_OVERLAP_SECS: u64 = 7 * 24 * 3600;
/// What `Retry-After` says when the store fails, in seconds.
const RETRY_AFTER_SECS: u32 = 5;

/// Key management over HTTP, in the spirit of Kong's Admin API: an axum [`Router`] over a
/// [`KeyAdmin`] store, guarded by a role of its own.
///
/// | request | answer |
/// |---|---|
/// | `POST /` with a JSON [key description](#the-key-description) | **201** `{"key": "<secret>", "record": {…}}`: the secret, shown this once |
/// | `GET /` (`?owner=<owner>` to filter) | 200, the records' [summaries](super::KeyRecord::summary): never a secret or a digest |
/// | `GET /{id}` | 200, one summary; 404 when no key has this id |
/// | `POST /{id}/rotate`, body `{"overlap_secs": N}` or none | **201** `{"key", "record", "previous"}`: the successor's secret once, and the old key's record with its new expiry; the old key works `N` more seconds (default 3600, at most 604 800; 0 ends it at once); 409 `key_revoked` or `key_expired` (rotate its successor) |
/// | `DELETE /{id}` | **204**, the key is refused from now on; 409 when it is the key the request is made with |
///
/// Every answer has `Cache-Control: no-store`. Refusals are `application/problem+json` with
/// a stable `code`: an id that is not a key id (12 base62 characters) → 400
/// `invalid_request`; a body that is not JSON, or has an unknown field or a wrong type → 400
/// `invalid_json` (a path segment that does not decode is an id that is not a key id); a
/// field out of its bounds → 400 `schema_violation` with `violations`; a
/// body that is not `application/json` → 415; over 16 KiB → 413; the store failing → 503
/// `unavailable` with `Retry-After: 5`. A method a path does not have → 405 (axum's, with
/// `Allow`).
///
/// # The guard
///
/// The API authenticates nobody itself: an authentication layer in front (an
/// [`ApiKeyLayer`](super::ApiKeyLayer), a bearer layer, the gateway) puts the caller's
/// [`Principal`] in the request's extensions. Every request, to every path and method under
/// the router (unknown ones included; a trailing slash after the mount point,
/// `/admin/keys/`, is not under it and goes to your router's fallback), needs a principal
/// holding the configured
/// [`role`](KeyAdminApiBuilder::role): without a principal the answer is 401 with the
/// challenges of the authentication in front, without the role 403. There is no default
/// role: [`build`](KeyAdminApiBuilder::build) refuses a builder without one.
///
/// A key admin can issue keys with any roles, the admin role included: give it only to
/// those who may.
///
/// A caller cannot revoke the API key the request is made with (409 `self_revocation`): an
/// admin does not lock themselves out by mistake; revoke it with another admin credential,
/// or rotate it.
///
/// # Audit
///
/// Every change (issue, rotate, revoke), whatever its outcome, and every call refused for
/// want of a principal or the role, is reported to the [`KeyAdminAudit`] (by default [`KeyAdminAuditLog`], a `tracing` event
/// at target `portcullis::audit`): who, which action, which key, never a secret.
///
/// # The key description
///
/// ```json
/// {"owner": "billing-service", "roles": ["viewer"], "scopes": ["invoices:read"],
///  "tenant": "acme", "metadata": {"team": "billing"}, "expires_in": 7776000}
/// ```
///
/// `owner` is required: 1 to 128 bytes, no control characters (so is `tenant`). At most 32
/// roles and 32 scopes, each 1 to 64 visible ASCII characters without `"`, `\` or `,`. At
/// most 32 metadata entries, names 1 to 64 bytes, 4 KiB in all. `expires_in` is in
/// seconds, 1 to ten years; without it the key does not expire. Unknown fields are refused.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use axum::Router;
/// use http::{Request, StatusCode};
/// use portcullis::api_key::{
///     ApiKeyAuthenticator, ApiKeyLayer, KeyAdmin, KeyAdminApi, MemoryKeyStore, NewKey,
/// };
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(MemoryKeyStore::new());
/// let admin = store.issue(NewKey::for_owner("ada").roles(["key-admin"])).await?;
///
/// let api = KeyAdminApi::builder(store.clone()).role("key-admin").build()?;
/// let app: Router = Router::new()
///     .nest("/admin/keys", api.router())
///     .layer(ApiKeyLayer::new(ApiKeyAuthenticator::new(store)));
///
/// let issue = Request::post("/admin/keys")
///     .header("x-api-key", admin.key.expose_secret())
///     .header("content-type", "application/json")
///     .body(axum::body::Body::from(r#"{"owner": "vic", "roles": ["viewer"]}"#))?;
/// let response = app.clone().oneshot(issue).await?;
/// assert_eq!(response.status(), StatusCode::CREATED);
/// assert_eq!(response.headers()["cache-control"], "no-store");
///
/// // Without a key: 401, with the API-key challenge.
/// let anonymous = Request::get("/admin/keys").body(axum::body::Body::empty())?;
/// let response = app.oneshot(anonymous).await?;
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// assert!(response.headers().contains_key("www-authenticate"));
/// # Ok(()) }
/// ```
pub struct KeyAdminApi<S> {
    config: Arc<Config<S>>,
}

impl<S> Clone for KeyAdminApi<S> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
        }
    }
}

impl<S> fmt::Debug for KeyAdminApi<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyAdminApi")
            .field("role", &self.config.role)
            .finish_non_exhaustive()
    }
}

/// What the handlers share.
struct Config<S> {
    store: Arc<S>,
    role: Arc<str>,
    audit: Arc<dyn KeyAdminAudit>,
}

impl<S: KeyAdmin> KeyAdminApi<S> {
    /// A builder for the API over `store`. Call [`role`](KeyAdminApiBuilder::role) before
    /// [`build`](KeyAdminApiBuilder::build).
    pub fn builder(store: Arc<S>) -> KeyAdminApiBuilder<S> {
        KeyAdminApiBuilder {
            store,
            role: None,
            audit: Arc::new(KeyAdminAuditLog),
        }
    }

    /// The routes, relative to where they are mounted: nest them, e.g.
    /// `Router::new().nest("/admin/keys", api.router())`, behind an authentication layer.
    pub fn router<T>(&self) -> Router<T>
    where
        T: Clone + Send + Sync + 'static,
    {
        let config = self.config.clone();
        Router::new()
            .route("/", get(list::<S>).post(issue::<S>))
            .route("/{id}", get(read::<S>).delete(revoke::<S>))
            .route("/{id}/rotate", post(rotate::<S>))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(config.clone(), guard::<S>))
            .with_state(config)
    }

    /// The role a caller needs.
    #[must_use]
    pub fn role(&self) -> &str {
        &self.config.role
    }
}

/// Builds a [`KeyAdminApi`]; see [`KeyAdminApi::builder`].
#[must_use]
pub struct KeyAdminApiBuilder<S> {
    store: Arc<S>,
    role: Option<Arc<str>>,
    audit: Arc<dyn KeyAdminAudit>,
}

impl<S> fmt::Debug for KeyAdminApiBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyAdminApiBuilder")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl<S: KeyAdmin> KeyAdminApiBuilder<S> {
    /// The role a caller's [`Principal`] must hold for every request. Required: there is
    /// no default, so that nothing is reachable by mistake.
    pub fn role(mut self, role: impl Into<Arc<str>>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// Where changes and refused calls are reported. Defaults to [`KeyAdminAuditLog`];
    /// call it from yours to keep its events.
    pub fn audit(mut self, audit: impl KeyAdminAudit) -> Self {
        self.audit = Arc::new(audit);
        self
    }

    /// The API.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidRoute`] when no role was given, or the role is empty or has
    /// whitespace or control characters.
    pub fn build(self) -> Result<KeyAdminApi<S>, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidRoute {
            rule: "KeyAdminApi".to_owned(),
            reason: reason.to_owned(),
        };
        let role = self.role.ok_or_else(|| {
            invalid("no role: call `role(...)`; no request is let in without one")
        })?;
        if role.is_empty() || role.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "the role is empty or has whitespace or control characters",
            ));
        }
        Ok(KeyAdminApi {
            config: Arc::new(Config {
                store: self.store,
                role,
                audit: self.audit,
            }),
        })
    }
}

/// What a call to the API does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAction {
    /// `POST /`: issue a key.
    Issue,
    /// `GET /`: list keys.
    List,
    /// `GET /{id}`: read one key's record.
    Read,
    /// `POST /{id}/rotate`: rotate a key.
    Rotate,
    /// `DELETE /{id}`: revoke a key.
    Revoke,
    /// A path or method the API does not have.
    Unknown,
}

impl KeyAction {
    /// A stable lower-case name: `issue`, `list`, `read`, `rotate`, `revoke`, `unknown`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Issue => "issue",
            Self::List => "list",
            Self::Read => "read",
            Self::Rotate => "rotate",
            Self::Revoke => "revoke",
            Self::Unknown => "unknown",
        }
    }

    /// Whether the action changes the store.
    #[must_use]
    pub fn is_change(self) -> bool {
        matches!(self, Self::Issue | Self::Rotate | Self::Revoke)
    }

    /// The action of a request, from its method and its path under the router.
    fn of(method: &Method, path: &str) -> Self {
        let path = path.trim_start_matches('/');
        let mut segments = path.split('/');
        match (method, segments.next(), segments.next(), segments.next()) {
            (&Method::GET, Some(""), None, None) => Self::List,
            (&Method::POST, Some(""), None, None) => Self::Issue,
            (&Method::GET, Some(id), None, None) if !id.is_empty() => Self::Read,
            (&Method::DELETE, Some(id), None, None) if !id.is_empty() => Self::Revoke,
            (&Method::POST, Some(id), Some("rotate"), None) if !id.is_empty() => Self::Rotate,
            _ => Self::Unknown,
        }
    }
}

/// How a call to the API ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAdminOutcome {
    /// The change was made.
    Done,
    /// The caller was refused: no principal (401), not the role (403), or a request the API
    /// does not accept (a malformed body or id, an unknown key, revoking one's own key).
    Refused,
    /// The store failed (503). For a rotation this is not "nothing changed": a store that
    /// issues the successor and then fails to shorten the old key's life leaves both
    /// working; look the owner's keys up before retrying.
    Failed,
}

impl KeyAdminOutcome {
    /// A stable lower-case name: `done`, `refused`, `failed`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

/// One call to the key API, as reported to a [`KeyAdminAudit`]: every change, whatever its
/// outcome, and every call refused for want of a principal or the role. Never a secret.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct KeyAdminEvent<'a> {
    /// What the call does.
    pub action: KeyAction,
    /// How it ended.
    pub outcome: KeyAdminOutcome,
    /// The status answered.
    pub status: StatusCode,
    /// Why it was refused or failed: a stable code (`missing_credentials`, `forbidden`,
    /// `invalid_json`, `key_not_found`, `self_revocation`, `unavailable`, …).
    pub reason: Option<&'static str>,
    /// The caller, when authenticated.
    pub principal: Option<&'a Principal>,
    /// The key acted on: the one issued, rotated or revoked.
    pub key_id: Option<&'a KeyId>,
    /// Rotation: the successor's id.
    pub new_key_id: Option<&'a KeyId>,
    /// The owner of the key acted on, when known.
    pub owner: Option<&'a str>,
}

/// Where [`KeyAdminApi`] reports changes and refused calls: an audit trail, metrics, a test.
///
/// Closures `Fn(&KeyAdminEvent<'_>)` implement it.
pub trait KeyAdminAudit: Send + Sync + 'static {
    /// One call to the API.
    fn key_admin(&self, event: &KeyAdminEvent<'_>);
}

impl<F> KeyAdminAudit for F
where
    F: Fn(&KeyAdminEvent<'_>) + Send + Sync + 'static,
{
    fn key_admin(&self, event: &KeyAdminEvent<'_>) {
        self(event);
    }
}

/// The default [`KeyAdminAudit`]: one `tracing` event per report, at target
/// `portcullis::audit` (beside [`AuditLog`](crate::observe::AuditLog)'s), level `INFO`
/// (`WARN` when the store failed), with `audit_schema = 1`, `event = "key_admin"` and the
/// fields `action`, `outcome`, `status`, `reason`, `subject`, `auth_method`,
/// `actor_key_id` (the key the caller used, if any), `key_id`, `new_key_id` and `owner`.
/// Absent values are empty strings. Never a secret or a digest.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyAdminAuditLog;

impl KeyAdminAudit for KeyAdminAuditLog {
    fn key_admin(&self, e: &KeyAdminEvent<'_>) {
        let actor_key_id = e.principal.map_or("", |p| match p.auth_method() {
            AuthMethod::ApiKey { key_id } => key_id,
            _ => "",
        });
        macro_rules! event {
            ($level:expr) => {
                tracing::event!(
                    target: "portcullis::audit",
                    $level,
                    audit_schema = 1u8,
                    event = "key_admin",
                    action = e.action.name(),
                    outcome = e.outcome.name(),
                    status = e.status.as_u16(),
                    reason = e.reason.unwrap_or(""),
                    subject = e.principal.map_or("", Principal::subject),
                    auth_method = e.principal.map_or("", |p| p.auth_method().name()),
                    actor_key_id,
                    key_id = e.key_id.map_or("", KeyId::as_str),
                    new_key_id = e.new_key_id.map_or("", KeyId::as_str),
                    owner = e.owner.map(crate::text::bounded).unwrap_or(""),
                    "key_admin"
                )
            };
        }
        match e.outcome {
            KeyAdminOutcome::Failed => event!(tracing::Level::WARN),
            _ => event!(tracing::Level::INFO),
        }
    }
}

impl<A: KeyAdminAudit + ?Sized> KeyAdminAudit for Arc<A> {
    fn key_admin(&self, event: &KeyAdminEvent<'_>) {
        (**self).key_admin(event);
    }
}

/// A refusal or failure: the status, the stable code, and the response.
struct Failure {
    reason: &'static str,
    /// Boxed: failures travel in `Result`s, and are the rare path.
    response: Box<Response>,
}

impl Failure {
    fn rejection(rejection: Rejection) -> Self {
        Self {
            reason: rejection.reason().code(),
            response: Box::new(rejection.into_response()),
        }
    }

    /// A problem+json answer whose code is not one of the layers' reasons.
    fn problem(status: StatusCode, code: &'static str, detail: &'static str) -> Self {
        /// The same members, in the same order, as the layers' problem bodies.
        #[derive(serde::Serialize)]
        struct Problem {
            #[serde(rename = "type")]
            problem_type: &'static str,
            title: &'static str,
            status: u16,
            detail: &'static str,
            code: &'static str,
        }
        let body = Problem {
            problem_type: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            code,
        };
        // Plain borrowed fields: serialising cannot fail.
        let body = serde_json::to_string(&body).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Self {
            reason: code,
            response: Box::new(response),
        }
    }

    fn store(error: &StoreError) -> Self {
        match error {
            StoreError::NotFound(_) => not_found_key(),
            StoreError::Revoked(_) => {
                Self::problem(StatusCode::CONFLICT, "key_revoked", "The key is revoked.")
            }
            StoreError::Expired(_) => Self::problem(
                StatusCode::CONFLICT,
                "key_expired",
                "The key has expired and cannot be rotated; rotate its successor.",
            ),
            error => {
                tracing::error!(target: "portcullis::api_key", %error, "key store failed");
                Self::rejection(
                    Rejection::new(Reason::Unavailable).with_retry_after(RETRY_AFTER_SECS),
                )
            }
        }
    }

    fn outcome(&self) -> KeyAdminOutcome {
        if self.response.status() == StatusCode::SERVICE_UNAVAILABLE {
            KeyAdminOutcome::Failed
        } else {
            KeyAdminOutcome::Refused
        }
    }
}

fn not_found_key() -> Failure {
    Failure::problem(
        StatusCode::NOT_FOUND,
        "key_not_found",
        "No API key has this id.",
    )
}

/// Lets through only requests whose principal holds the role; reports the others.
async fn guard<S: KeyAdmin>(
    State(config): State<Arc<Config<S>>>,
    request: Request,
    next: Next,
) -> Response {
    let principal = request.extensions().get::<Principal>();
    let refusal = match principal {
        Some(principal) if principal.has_role(&config.role) => None,
        Some(_) => Some(Rejection::new(Reason::Forbidden)),
        None => Some(
            Rejection::new(Reason::MissingCredentials).with_challenges(
                request
                    .extensions()
                    .get::<Challenges>()
                    .map_or_else(|| Arc::from(Vec::new()), Challenges::shared),
            ),
        ),
    };
    let Some(rejection) = refusal else {
        return next.run(request).await;
    };
    let rejection = match request.extensions().get::<Challenges>() {
        Some(challenges) => rejection.rendered_with(challenges.renderer()),
        None => rejection,
    };
    let action = KeyAction::of(request.method(), request.uri().path());
    config.audit.key_admin(&KeyAdminEvent {
        action,
        outcome: KeyAdminOutcome::Refused,
        status: rejection.status(),
        reason: Some(rejection.reason().code()),
        principal,
        key_id: None,
        new_key_id: None,
        owner: None,
    });
    rejection.into_response()
}

/// Paths and methods the API does not have (reached only with the role).
async fn not_found() -> Response {
    *not_found_route().response
}

fn not_found_route() -> Failure {
    Failure::problem(
        StatusCode::NOT_FOUND,
        "not_found",
        "The key API has no such resource.",
    )
}

/// The principal the guard let through.
fn caller(request: &Request) -> Option<&Principal> {
    request.extensions().get::<Principal>()
}

/// The key id in the path, or 400 (also for a path segment axum cannot decode, passed here
/// as empty, so that the answer is ours and is audited).
fn key_id(id: &str) -> Result<KeyId, Failure> {
    KeyId::parse(id).ok_or_else(|| {
        Failure::rejection(
            Rejection::new(Reason::InvalidRequest).with_detail("A key id is 12 base62 characters."),
        )
    })
}

/// The body as `T`: `application/json`, at most [`MAX_BODY_BYTES`], no unknown fields.
/// `None` when the body is empty and `optional`; 400 `missing_body` when it is empty and
/// not.
async fn json_body<T: serde::de::DeserializeOwned>(
    request: Request,
    optional: bool,
) -> Result<Option<T>, Failure> {
    let is_json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| Failure::rejection(Rejection::new(Reason::PayloadTooLarge)))?;
    if bytes.is_empty() {
        return if optional {
            Ok(None)
        } else {
            Err(Failure::rejection(Rejection::new(Reason::MissingBody)))
        };
    }
    if !is_json {
        return Err(Failure::rejection(
            Rejection::new(Reason::UnsupportedMediaType).with_detail("Send application/json."),
        ));
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|error| {
        Failure::rejection(Rejection::new(Reason::InvalidJson).with_detail(error.to_string()))
    })
}

/// What `POST /` accepts.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    owner: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl IssueBody {
    /// The key description, or the list of what is out of bounds.
    fn into_spec(self) -> Result<NewKey, Failure> {
        let mut violations = Vec::new();
        let mut violation = |pointer: &str, keyword: &str, message: &str| {
            violations.push(Violation::new("body", pointer, keyword, message));
        };
        let name_ok = |name: &str| {
            !name.is_empty() && name.len() <= MAX_NAME_BYTES && !name.chars().any(char::is_control)
        };
        if !name_ok(&self.owner) {
            violation(
                "/owner",
                "owner",
                "1 to 128 bytes without control characters",
            );
        }
        if self
            .tenant
            .as_deref()
            .is_some_and(|tenant| !name_ok(tenant))
        {
            violation(
                "/tenant",
                "tenant",
                "1 to 128 bytes without control characters",
            );
        }
        for (field, names) in [("roles", &self.roles), ("scopes", &self.scopes)] {
            if names.len() > MAX_GRANTS {
                violation(&format!("/{field}"), "maxItems", "at most 32 entries");
                continue;
            }
            for (index, name) in names.iter().enumerate() {
                let ok = !name.is_empty()
                    && name.len() <= MAX_GRANT_BYTES
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"\"\\,".contains(&b));
                if !ok {
                    violation(
                        &format!("/{field}/{index}"),
                        "pattern",
                        "1 to 64 visible ASCII characters without '\"', '\\' or ','",
                    );
                }
            }
        }
        if self.metadata.len() > MAX_METADATA_ENTRIES {
            violation("/metadata", "maxProperties", "at most 32 entries");
        } else if self
            .metadata
            .keys()
            .any(|name| name.is_empty() || name.len() > MAX_METADATA_NAME_BYTES)
        {
            violation("/metadata", "propertyNames", "names of 1 to 64 bytes");
        } else if serde_json::to_vec(&self.metadata).map_or(usize::MAX, |bytes| bytes.len())
            > MAX_METADATA_BYTES
        {
            violation("/metadata", "maxLength", "at most 4096 bytes of JSON");
        }
        if self
            .expires_in
            .is_some_and(|secs| secs == 0 || secs > MAX_EXPIRES_IN_SECS)
        {
            violation("/expires_in", "range", "1 to 315360000 seconds (ten years)");
        }
        if !violations.is_empty() {
            return Err(Failure::rejection(
                Rejection::new(Reason::SchemaViolation).with_violations(violations),
            ));
        }
        let mut spec = NewKey::for_owner(self.owner)
            .roles(self.roles)
            .scopes(self.scopes);
        if let Some(tenant) = self.tenant {
            spec = spec.tenant(tenant);
        }
        for (name, value) in self.metadata {
            spec = spec.metadata(name, value);
        }
        if let Some(secs) = self.expires_in {
            spec = spec.expires_in(Duration::from_secs(secs));
        }
        Ok(spec)
    }
}

/// What `POST /{id}/rotate` accepts.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    overlap_secs: Option<u64>,
}

/// A new secret, shown once: 201, `no-store`.
/// With `previous`: the rotated key's record, as it now is.
fn issued_response(issued: &IssuedKey, previous: Option<Value>) -> Response {
    let mut body = json!({
        "key": issued.key.expose_secret(),
        "record": issued.record.summary(),
    });
    if let (Some(previous), Some(object)) = (previous, body.as_object_mut()) {
        object.insert("previous".to_owned(), previous);
    }
    (StatusCode::CREATED, json_response(&body)).into_response()
}

/// A JSON answer with `no-store`.
fn json_response(body: &Value) -> Response {
    let mut response = body.to_string().into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Reports a change that was made.
fn report_done<S>(
    config: &Config<S>,
    action: KeyAction,
    principal: Option<&Principal>,
    key_id: Option<&KeyId>,
    new_key_id: Option<&KeyId>,
    owner: Option<&str>,
    status: StatusCode,
) {
    config.audit.key_admin(&KeyAdminEvent {
        action,
        outcome: KeyAdminOutcome::Done,
        status,
        reason: None,
        principal,
        key_id,
        new_key_id,
        owner,
    });
}

/// Reports a change that was refused or failed, and answers it.
fn report_failure<S>(
    config: &Config<S>,
    action: KeyAction,
    principal: Option<&Principal>,
    key_id: Option<&KeyId>,
    failure: Failure,
) -> Response {
    config.audit.key_admin(&KeyAdminEvent {
        action,
        outcome: failure.outcome(),
        status: failure.response.status(),
        reason: Some(failure.reason),
        principal,
        key_id,
        new_key_id: None,
        owner: None,
    });
    *failure.response
}

async fn issue<S: KeyAdmin>(State(config): State<Arc<Config<S>>>, request: Request) -> Response {
    let principal = caller(&request).cloned();
    let issued = async {
        let Some(body) = json_body::<IssueBody>(request, false).await? else {
            return Err(Failure::rejection(Rejection::new(Reason::MissingBody)));
        };
        let spec = body.into_spec()?;
        config
            .store
            .issue(spec)
            .await
            .map_err(|error| Failure::store(&error))
    }
    .await;
    match issued {
        Ok(issued) => {
            let response = issued_response(&issued, None);
            let record = &issued.record;
            report_done(
                &config,
                KeyAction::Issue,
                principal.as_ref(),
                Some(record.id()),
                None,
                Some(record.owner()),
                response.status(),
            );
            response
        }
        Err(failure) => {
            report_failure(&config, KeyAction::Issue, principal.as_ref(), None, failure)
        }
    }
}

async fn rotate<S: KeyAdmin>(
    State(config): State<Arc<Config<S>>>,
    id: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let principal = caller(&request).cloned();
    let id = match id.map_or_else(|_| key_id(""), |Path(id)| key_id(&id)) {
        Ok(id) => id,
        Err(failure) => {
            return report_failure(
                &config,
                KeyAction::Rotate,
                principal.as_ref(),
                None,
                failure,
            );
        }
    };
    let rotated = async {
        let body = json_body::<RotateBody>(request, true).await?;
        let overlap = body
            .and_then(|body| body.overlap_secs)
            .map_or(DEFAULT_OVERLAP, Duration::from_secs);
        if overlap.as_secs() > MAX_OVERLAP_SECS {
            return Err(Failure::rejection(
                Rejection::new(Reason::SchemaViolation).with_violations(vec![Violation::new(
                    "body",
                    "/overlap_secs",
                    "maximum",
                    "at most 604800 seconds (seven days)",
                )]),
            ));
        }
        config
            .store
            .rotate(&id, overlap)
            .await
            .map_err(|error| Failure::store(&error))
    }
    .await;
    match rotated {
        Ok(issued) => {
            // The old key's record with its new expiry, when the store can say at once.
            let previous = match config.store.find(&id).await {
                Ok(Some(record)) => Some(record.summary()),
                Ok(None) | Err(_) => None,
            };
            let response = issued_response(&issued, previous);
            let record = &issued.record;
            report_done(
                &config,
                KeyAction::Rotate,
                principal.as_ref(),
                Some(&id),
                Some(record.id()),
                Some(record.owner()),
                response.status(),
            );
            response
        }
        Err(failure) => report_failure(
            &config,
            KeyAction::Rotate,
            principal.as_ref(),
            Some(&id),
            failure,
        ),
    }
}

async fn revoke<S: KeyAdmin>(
    State(config): State<Arc<Config<S>>>,
    id: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let principal = caller(&request);
    let id = match id.map_or_else(|_| key_id(""), |Path(id)| key_id(&id)) {
        Ok(id) => id,
        Err(failure) => {
            return report_failure(&config, KeyAction::Revoke, principal, None, failure);
        }
    };
    let own_key = principal.is_some_and(|principal| {
        matches!(principal.auth_method(), AuthMethod::ApiKey { key_id } if **key_id == *id.as_str())
    });
    if own_key {
        let failure = Failure::problem(
            StatusCode::CONFLICT,
            "self_revocation",
            "This request is made with the key it would revoke; revoke it with another credential.",
        );
        return report_failure(&config, KeyAction::Revoke, principal, Some(&id), failure);
    }
    // The owner, for the audit trail only: whether the key exists is the revocation's to say
    // (a cache in front of the store may not know of a key issued elsewhere yet).
    let owner = match config.store.find(&id).await {
        Ok(Some(record)) => Some(record.owner().to_owned()),
        Ok(None) | Err(_) => None,
    };
    match config.store.revoke(&id).await {
        Ok(()) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            report_done(
                &config,
                KeyAction::Revoke,
                principal,
                Some(&id),
                None,
                owner.as_deref(),
                response.status(),
            );
            response
        }
        Err(error) => report_failure(
            &config,
            KeyAction::Revoke,
            principal,
            Some(&id),
            Failure::store(&error),
        ),
    }
}

async fn list<S: KeyAdmin>(State(config): State<Arc<Config<S>>>, request: Request) -> Response {
    let owner = request.uri().query().and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "owner")
            .map(|(_, value)| value.into_owned())
    });
    match config.store.list(owner.as_deref()).await {
        Ok(records) => {
            let summaries: Vec<Value> = records.iter().map(super::KeyRecord::summary).collect();
            json_response(&Value::Array(summaries))
        }
        Err(error) => *Failure::store(&error).response,
    }
}

async fn read<S: KeyAdmin>(
    State(config): State<Arc<Config<S>>>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let id = match id.map_or_else(|_| key_id(""), |Path(id)| key_id(&id)) {
        Ok(id) => id,
        Err(failure) => return *failure.response,
    };
    match config.store.find(&id).await {
        Ok(Some(record)) => json_response(&record.summary()),
        Ok(None) => *not_found_key().response,
        Err(error) => *Failure::store(&error).response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_from_method_and_path() {
        let cases = [
            ("GET", "/", KeyAction::List),
            ("GET", "", KeyAction::List),
            ("POST", "/", KeyAction::Issue),
            ("GET", "/abc", KeyAction::Read),
            ("DELETE", "/abc", KeyAction::Revoke),
            ("POST", "/abc/rotate", KeyAction::Rotate),
            ("POST", "/abc", KeyAction::Unknown),
            ("DELETE", "/", KeyAction::Unknown),
            ("GET", "/abc/rotate", KeyAction::Unknown),
            ("POST", "/abc/rotate/x", KeyAction::Unknown),
            ("PUT", "/abc", KeyAction::Unknown),
        ];
        for (method, path, action) in cases {
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            assert_eq!(KeyAction::of(&method, path), action, "{method} {path}");
        }
        assert!(KeyAction::Revoke.is_change() && !KeyAction::Read.is_change());
    }

    #[test]
    fn bounds_are_checked_field_by_field() {
        let body: IssueBody = serde_json::from_value(json!({
            "owner": "",
            "roles": ["ok", ""],
            "scopes": (0..33).map(|i| format!("s{i}")).collect::<Vec<_>>(),
            "tenant": "t\n",
            "expires_in": 0,
        }))
        .expect("well-formed");
        let Err(failure) = body.into_spec() else {
            panic!("out of bounds accepted");
        };
        assert_eq!(failure.response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(failure.reason, "schema_violation");

        let body: IssueBody = serde_json::from_value(json!({
            "owner": "bea",
            "roles": ["orders:read", "a/b*"],
            "metadata": {"team": "x"},
            "expires_in": MAX_EXPIRES_IN_SECS,
        }))
        .expect("well-formed");
        assert!(body.into_spec().is_ok());
    }
}
