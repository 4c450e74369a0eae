//! Why a request was refused: [`Rejection`], its stable [`Reason`] code, and how it is
//! rendered as an HTTP response.
//!
//! Every refusal by every layer is a `Rejection`, turned into a response by a
//! [`RejectionResponse`]. The default, [`ProblemJson`], answers with an RFC 9457
//! `application/problem+json` body, an RFC 6750-style `WWW-Authenticate` challenge on 401
//! (and on 403 for missing scopes), and `Retry-After` on 429 and 503:
//!
//! ```text
//! HTTP/1.1 401 Unauthorized
//! www-authenticate: ApiKey realm="api", error="invalid_key"
//! content-type: application/problem+json
//! cache-control: no-store
//!
//! {"type":"about:blank","title":"Unauthorized","status":401,
//!  "detail":"The credentials are not valid.","code":"invalid_credentials"}
//! ```
//!
//! Rejections never carry secrets, and text that came from the request is cut to a short
//! bound before it is echoed.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

/// The longest `detail` text a rejection keeps, in bytes.
const MAX_DETAIL_BYTES: usize = 200;
/// The longest value of one challenge parameter, in bytes.
const MAX_PARAM_BYTES: usize = 400;

/// The stable reason code of a [`Rejection`].
///
/// [`code`](Reason::code) is the string that appears in logs and in the `code` member of the
/// problem body; it never changes once released. Some reasons are only for logs: the client
/// sees their [`public`](Reason::public) form, so that, for example, an unknown, a revoked and
/// an expired API key get byte-identical responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// No credentials were presented and the route needs an identity. 401.
    MissingCredentials,
    /// The credentials are not valid; the public form of every key failure below. 401.
    InvalidCredentials,
    /// The API key does not have the key format (prefix, length, alphabet). Log only.
    MalformedKey,
    /// The API key's checksum does not match: a typo or a made-up key. Log only.
    BadChecksum,
    /// No key with this identifier exists. Log only.
    UnknownKey,
    /// A key with this identifier exists but the secret differs. Log only.
    KeyMismatch,
    /// The key was revoked. Log only.
    KeyRevoked,
    /// The key has expired. Log only.
    KeyExpired,
    /// The request carries two different credentials; we refuse to guess. 401.
    AmbiguousCredentials,
    /// Credentials were sent in the query string, which is refused by default. 400.
    CredentialsInQuery,
    /// The request is malformed: an unparsable credential header, or a body that could not
    /// be read. 400.
    InvalidRequest,
    /// The caller lacks a scope the route needs. 403.
    InsufficientScope,
    /// The caller lacks a role, permission or claim the route needs. 403.
    Forbidden,
    /// No rule matches the route and unmatched routes are denied. 403.
    RouteDenied,
    /// The caller may use the route but not on this object: the request's data (a path
    /// parameter, query value, header or body field) does not belong to them. 403. The
    /// answer never names the object's owner.
    ObjectDenied,
    /// The caller's claims do not have the shape the handler needs. 403.
    InvalidClaims,
    /// A decision cannot be made right now (a key store or identity provider is down). 503.
    Unavailable,
    /// The body's media type is not one the route accepts. 415.
    UnsupportedMediaType,
    /// The body is larger than the route allows. 413.
    PayloadTooLarge,
    /// The body did not arrive within the read timeout. 408.
    RequestTimeout,
    /// The route needs a body and none was sent. 400.
    MissingBody,
    /// The body is not acceptable JSON: syntax, invalid UTF-8, or a structure limit. 400.
    InvalidJson,
    /// The body, query, path or headers break the route's schema. 400 (or 422, configurable).
    SchemaViolation,
    /// A rate limit is exhausted; `Retry-After` says when to try again. 429.
    RateLimited,
    /// The source (client IP) is blocked for repeated authentication failures; `Retry-After`
    /// says when the block ends. 429.
    Blocked,
    /// The client IP is not allowed on this route (a deny list, or not on an allow list).
    /// 403.
    IpDenied,
    /// The request passed its schemas but breaks one of the route's business rules
    /// ("`end` after `start`"), listed as violations. 422.
    RuleViolation,
    /// A business rule failed (it panicked) instead of deciding. 500.
    RuleFailed,
}

impl Reason {
    /// The stable snake_case code, e.g. `key_revoked`.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::MissingCredentials => "missing_credentials",
            Self::InvalidCredentials => "invalid_credentials",
            Self::MalformedKey => "malformed_key",
            Self::BadChecksum => "bad_checksum",
            Self::UnknownKey => "unknown_key",
            Self::KeyMismatch => "key_mismatch",
            Self::KeyRevoked => "key_revoked",
            Self::KeyExpired => "key_expired",
            Self::AmbiguousCredentials => "ambiguous_credentials",
            Self::CredentialsInQuery => "credentials_in_query",
            Self::InvalidRequest => "invalid_request",
            Self::InsufficientScope => "insufficient_scope",
            Self::Forbidden => "forbidden",
            Self::RouteDenied => "route_denied",
            Self::ObjectDenied => "object_denied",
            Self::InvalidClaims => "invalid_claims",
            Self::Unavailable => "unavailable",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::MissingBody => "missing_body",
            Self::InvalidJson => "invalid_json",
            Self::SchemaViolation => "schema_violation",
            Self::RateLimited => "rate_limited",
            Self::Blocked => "blocked",
            Self::IpDenied => "ip_denied",
            Self::RuleViolation => "rule_violation",
            Self::RuleFailed => "rule_failed",
        }
    }

    /// What the client is told: key failures all become [`InvalidCredentials`](Self::InvalidCredentials).
    #[must_use]
    pub const fn public(self) -> Self {
        match self {
            Self::MalformedKey
            | Self::BadChecksum
            | Self::UnknownKey
            | Self::KeyMismatch
            | Self::KeyRevoked
            | Self::KeyExpired => Self::InvalidCredentials,
            other => other,
        }
    }

    /// The HTTP status this reason is answered with.
    #[must_use]
    pub const fn status(self) -> StatusCode {
        match self.public() {
            Self::MissingCredentials | Self::InvalidCredentials | Self::AmbiguousCredentials => {
                StatusCode::UNAUTHORIZED
            }
            Self::CredentialsInQuery
            | Self::InvalidRequest
            | Self::MissingBody
            | Self::InvalidJson
            | Self::SchemaViolation => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::InsufficientScope
            | Self::Forbidden
            | Self::RouteDenied
            | Self::ObjectDenied
            | Self::InvalidClaims
            | Self::IpDenied => StatusCode::FORBIDDEN,
            Self::RateLimited | Self::Blocked => StatusCode::TOO_MANY_REQUESTS,
            Self::RuleViolation => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RuleFailed => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The default human-readable explanation sent to the client.
    #[must_use]
    pub const fn default_detail(self) -> &'static str {
        match self.public() {
            Self::MissingCredentials => "This resource requires authentication.",
            Self::InvalidCredentials => "The credentials are not valid.",
            Self::AmbiguousCredentials => "The request carries more than one credential.",
            Self::CredentialsInQuery => "Credentials must not be sent in the query string.",
            Self::InvalidRequest => "The request is malformed.",
            Self::InsufficientScope => "The credentials lack a scope this resource requires.",
            Self::Forbidden => "The credentials do not grant access to this resource.",
            Self::RouteDenied => "No access rule allows this request.",
            Self::ObjectDenied => "The credentials do not grant access to this object.",
            Self::InvalidClaims => "The credentials lack information this resource requires.",
            Self::UnsupportedMediaType => "The request body's media type is not accepted here.",
            Self::PayloadTooLarge => "The request body is too large.",
            Self::RequestTimeout => "The request body did not arrive in time.",
            Self::MissingBody => "This request needs a body.",
            Self::InvalidJson => "The request body is not acceptable JSON.",
            Self::SchemaViolation => "The request does not match the API's schema.",
            Self::RateLimited => "Too many requests; try again later.",
            Self::Blocked => "Too many failed authentication attempts; try again later.",
            Self::IpDenied => "Requests from this address are not allowed here.",
            Self::RuleViolation => "The request breaks a rule of this API.",
            Self::RuleFailed => "The request could not be checked.",
            _ => "Access cannot be decided right now; try again later.",
        }
    }

    /// The `error` parameter of a challenge in `scheme`, when one applies. Only the schemes
    /// whose error vocabulary we know get one: `Bearer` (RFC 6750) and `ApiKey` (which
    /// mirrors it); a custom scheme's challenge stays bare rather than borrow their words.
    fn challenge_error(self, scheme: &str) -> Option<&'static str> {
        let bearer = scheme.eq_ignore_ascii_case("bearer");
        if !bearer && !scheme.eq_ignore_ascii_case("apikey") {
            return None;
        }
        match self.public() {
            Self::InvalidCredentials | Self::AmbiguousCredentials if bearer => {
                Some("invalid_token")
            }
            Self::InvalidCredentials | Self::AmbiguousCredentials => Some("invalid_key"),
            Self::CredentialsInQuery | Self::InvalidRequest => Some("invalid_request"),
            Self::InsufficientScope => Some("insufficient_scope"),
            _ => None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One `WWW-Authenticate` challenge: a scheme and a realm, e.g. `ApiKey realm="api"`.
///
/// The rejection adds `error`, `error_description` and `scope` parameters when rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    scheme: Cow<'static, str>,
    realm: Cow<'static, str>,
}

impl Challenge {
    /// A challenge for `scheme` (`ApiKey`, `Bearer`, …) in `realm`.
    pub fn new(scheme: impl Into<Cow<'static, str>>, realm: impl Into<Cow<'static, str>>) -> Self {
        Self {
            scheme: scheme.into(),
            realm: realm.into(),
        }
    }

    /// The authentication scheme.
    #[must_use]
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The protection realm.
    #[must_use]
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Renders the challenge with the rejection's error parameters.
    fn render(&self, rejection: &Rejection) -> String {
        let mut out = String::with_capacity(64);
        // The scheme is an RFC 9110 token: keep only the characters a token may have.
        out.extend(
            self.scheme
                .chars()
                .filter(|&c| u8::try_from(c).is_ok_and(is_tchar))
                .take(64),
        );
        out.push_str(" realm=");
        push_quoted(&mut out, &self.realm);
        let is_bearer = self.scheme.eq_ignore_ascii_case("bearer");
        if let Some(error) = rejection.reason.challenge_error(&self.scheme) {
            out.push_str(", error=");
            push_quoted(&mut out, error);
            if rejection.reason.public() != Reason::InsufficientScope && is_bearer {
                out.push_str(", error_description=");
                push_quoted(&mut out, &rejection.detail);
            }
        }
        if let Some(scope) = &rejection.scope {
            out.push_str(", scope=");
            push_quoted(&mut out, scope);
        }
        out
    }
}

/// RFC 9110 section 5.6.2 `tchar`: the characters of a token (a scheme, a header or
/// parameter name).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Appends `value` as an RFC 9110 quoted-string, dropping characters a header cannot carry.
fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in crate::text::truncate(value, MAX_PARAM_BYTES).chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' | '!'..='~' => out.push(c),
            _ => {}
        }
    }
    out.push('"');
}

/// Whether `realm` can be sent in a challenge unchanged: printable ASCII without `"` or `\\`.
#[cfg(any(feature = "api-key", feature = "bearer"))]
pub(crate) fn valid_realm(realm: &str) -> bool {
    !realm.is_empty()
        && realm.len() <= MAX_PARAM_BYTES
        && realm
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

/// Cuts `text` to at most `max` bytes on a character boundary.
/// A refused request: the reason, what the client is told, and how they may retry.
///
/// Layers answer with a rejection instead of calling the service; the configured
/// [`RejectionResponse`] turns it into the response.
#[derive(Clone)]
pub struct Rejection {
    reason: Reason,
    cause: Option<&'static str>,
    detail: Cow<'static, str>,
    challenges: Arc<[Challenge]>,
    scope: Option<Box<str>>,
    retry_after: Option<u32>,
    violations: Arc<[Violation]>,
    status: Option<StatusCode>,
    /// The renderer of the layer that refused (for extractors, whose rejections are turned
    /// into responses by axum); problem+json when none.
    #[cfg(feature = "axum")]
    renderer: Option<Arc<dyn RejectionResponse>>,
}

impl PartialEq for Rejection {
    /// Compares what the rejection says; not how it will be rendered.
    fn eq(&self, other: &Self) -> bool {
        self.reason == other.reason
            && self.cause == other.cause
            && self.detail == other.detail
            && self.challenges == other.challenges
            && self.scope == other.scope
            && self.retry_after == other.retry_after
            && self.violations == other.violations
            && self.status == other.status
    }
}

impl Eq for Rejection {}

/// One way a request breaks a route's schema: where, which rule, and a short message.
///
/// Messages are cut to a short bound, so a violation never echoes much of the request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    location: &'static str,
    pointer: String,
    keyword: String,
    message: String,
}

/// The longest violation message, in bytes.
const MAX_VIOLATION_MESSAGE_BYTES: usize = 160;

impl Violation {
    /// A violation in `location` (`body`, `query`, `path` or `header`) at JSON `pointer`,
    /// breaking schema `keyword`.
    #[must_use]
    pub fn new(location: &'static str, pointer: &str, keyword: &str, message: &str) -> Self {
        Self {
            location,
            pointer: crate::text::truncate(pointer, MAX_PARAM_BYTES).to_owned(),
            keyword: crate::text::truncate(keyword, 64).to_owned(),
            message: crate::text::truncate(message, MAX_VIOLATION_MESSAGE_BYTES).to_owned(),
        }
    }

    /// Where in the request: `body`, `query`, `path` or `header`.
    #[must_use]
    pub fn location(&self) -> &str {
        self.location
    }

    /// The JSON pointer into that part of the request (`/items/0/quantity`).
    #[must_use]
    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// The schema keyword that failed (`type`, `required`, …) or a limit's code.
    #[must_use]
    pub fn keyword(&self) -> &str {
        &self.keyword
    }

    /// A short human-readable message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl Rejection {
    /// A rejection for `reason` with its default detail and no challenge.
    #[must_use]
    pub fn new(reason: Reason) -> Self {
        Self {
            reason,
            cause: None,
            detail: Cow::Borrowed(reason.default_detail()),
            challenges: Arc::new([]),
            scope: None,
            retry_after: None,
            violations: Arc::new([]),
            status: None,
            #[cfg(feature = "axum")]
            renderer: None,
        }
    }

    /// Records a finer cause than the reason (`token_expired`, `bad_signature`), for the
    /// decision observer and logs only: the client never sees it.
    #[must_use]
    pub fn with_cause(mut self, cause: &'static str) -> Self {
        self.cause = Some(cause);
        self
    }

    /// The finer cause, if one was recorded.
    #[must_use]
    pub fn cause(&self) -> Option<&'static str> {
        self.cause
    }

    /// Renders with `renderer` when the rejection is turned into a response on its own
    /// (by axum, for an extractor).
    #[cfg(feature = "axum")]
    pub(crate) fn rendered_with(mut self, renderer: Arc<dyn RejectionResponse>) -> Self {
        self.renderer = Some(renderer);
        self
    }

    /// Renders the rejection with the renderer it carries, or problem+json.
    #[cfg(feature = "axum")]
    pub(crate) fn render_own(&self) -> Response<Bytes> {
        match &self.renderer {
            Some(renderer) => self.render(&**renderer),
            None => self.render(&ProblemJson::new()),
        }
    }

    /// Lists what is wrong with the request (sent as `violations` in the problem body).
    #[must_use]
    pub fn with_violations(mut self, violations: impl Into<Arc<[Violation]>>) -> Self {
        self.violations = violations.into();
        self
    }

    /// Answers with `status` instead of the reason's own, e.g. 422 for schema violations.
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// What is wrong with the request, for validation rejections.
    #[must_use]
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Replaces the client-facing detail. Text longer than 200 bytes is cut, so request
    /// input can never make a response large. Ignored for reasons that are only for logs,
    /// whose client-facing detail must not differ from [`InvalidCredentials`](Reason::InvalidCredentials).
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        if self.reason.public() != self.reason {
            return self;
        }
        let detail = detail.into();
        self.detail = match detail {
            Cow::Borrowed(text) => Cow::Borrowed(crate::text::truncate(text, MAX_DETAIL_BYTES)),
            Cow::Owned(text) => {
                Cow::Owned(crate::text::truncate(&text, MAX_DETAIL_BYTES).to_owned())
            }
        };
        self
    }

    /// Adds a `WWW-Authenticate` challenge.
    #[must_use]
    pub fn with_challenge(mut self, challenge: Challenge) -> Self {
        let mut challenges = self.challenges.to_vec();
        challenges.push(challenge);
        self.challenges = challenges.into();
        self
    }

    /// Sets all `WWW-Authenticate` challenges at once, sharing the list.
    #[must_use]
    pub fn with_challenges(mut self, challenges: Arc<[Challenge]>) -> Self {
        self.challenges = challenges;
        self
    }

    /// Names the scope(s) the route needs (space-separated), for `insufficient_scope`.
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<Box<str>>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Asks the client to retry after `seconds` (sent as `Retry-After` on 429 and 503).
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The reason, as logged. The client sees [`Reason::public`] of it.
    #[must_use]
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| self.reason.status())
    }

    /// The client-facing explanation.
    #[must_use]
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The `WWW-Authenticate` challenges.
    #[must_use]
    pub fn challenges(&self) -> &[Challenge] {
        &self.challenges
    }

    /// The scopes the route needs, when the reason is a missing scope.
    #[must_use]
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Seconds after which the client may retry.
    #[must_use]
    pub fn retry_after(&self) -> Option<u32> {
        self.retry_after
    }

    /// The `WWW-Authenticate` header values for this rejection, one per challenge.
    pub fn www_authenticate(&self) -> impl Iterator<Item = HeaderValue> + '_ {
        self.challenges.iter().filter_map(|challenge| {
            // `render` only emits visible ASCII and spaces, so this cannot fail.
            HeaderValue::try_from(challenge.render(self)).ok()
        })
    }

    /// Renders this rejection with `renderer`, then makes sure the response carries the
    /// challenges a 401 must have and the `Retry-After` a 429 or 503 announces, whatever the
    /// renderer did.
    pub(crate) fn render(&self, renderer: &dyn RejectionResponse) -> Response<Bytes> {
        let mut response = renderer.respond(self);
        let status = response.status();
        let headers = response.headers_mut();
        let wants_challenge = status == StatusCode::UNAUTHORIZED
            || (status == StatusCode::FORBIDDEN && self.reason == Reason::InsufficientScope);
        if wants_challenge && !headers.contains_key(WWW_AUTHENTICATE) {
            for value in self.www_authenticate() {
                headers.append(WWW_AUTHENTICATE, value);
            }
        }
        if let Some(seconds) = self.retry_after
            && (status == StatusCode::SERVICE_UNAVAILABLE
                || status == StatusCode::TOO_MANY_REQUESTS)
            && !headers.contains_key(RETRY_AFTER)
        {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        // For outer layers (metrics, traces): the precise reason, never sent to the client.
        response.extensions_mut().insert(self.reason);
        response
    }
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("reason", &self.reason.code())
            .field("status", &self.status().as_u16())
            .field("detail", &self.detail)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.reason.code())
    }
}

impl std::error::Error for Rejection {}

/// Turns a [`Rejection`] into the HTTP response the client receives.
///
/// Implement it (or pass a closure `Fn(&Rejection) -> Response<Bytes>`) to render your own
/// error envelope. Whatever you return, a 401 still gets the rejection's `WWW-Authenticate`
/// challenges and a 429 or 503 its `Retry-After`, unless you set those headers yourself.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http::Response;
/// use portcullis::{Reason, Rejection, RejectionResponse};
///
/// let render = |rejection: &Rejection| {
///     let body = format!(r#"{{"error":{{"code":"{}"}}}}"#, rejection.reason().public());
///     Response::builder()
///         .status(rejection.status())
///         .header("content-type", "application/json")
///         .body(Bytes::from(body))
///         .unwrap_or_default()
/// };
/// let response = render.respond(&Rejection::new(Reason::Forbidden));
/// assert_eq!(response.status(), 403);
/// ```
pub trait RejectionResponse: Send + Sync + 'static {
    /// Builds the response for `rejection`.
    fn respond(&self, rejection: &Rejection) -> Response<Bytes>;
}

impl<F> RejectionResponse for F
where
    F: Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
{
    fn respond(&self, rejection: &Rejection) -> Response<Bytes> {
        self(rejection)
    }
}

/// The default renderer: RFC 9457 `application/problem+json`.
///
/// The body has `type`, `title` (the status's reason phrase), `status`, `detail`, and the
/// extension member `code` with the public [`Reason`] code (plus `scope` for
/// `insufficient_scope`). `type` is `about:blank` unless a base URI is set with
/// [`ProblemJson::type_base`], in which case it is the base followed by the code.
#[derive(Debug, Clone, Default)]
pub struct ProblemJson {
    type_base: Option<Arc<str>>,
}

impl ProblemJson {
    /// The default renderer, with `type` set to `about:blank`.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a base URI for `type`: `https://errors.example.com/` gives
    /// `https://errors.example.com/invalid_credentials`. Defaults to none (`about:blank`).
    #[must_use]
    pub fn type_base(mut self, base: impl Into<Arc<str>>) -> Self {
        self.type_base = Some(base.into());
        self
    }
}

impl RejectionResponse for ProblemJson {
    fn respond(&self, rejection: &Rejection) -> Response<Bytes> {
        let status = rejection.status();
        let code = rejection.reason.public().code();
        let problem_type = match &self.type_base {
            Some(base) => Cow::Owned(format!("{base}{code}")),
            None => Cow::Borrowed("about:blank"),
        };
        let body = Problem {
            problem_type: &problem_type,
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: rejection.detail(),
            code,
            scope: rejection.scope.as_deref(),
            violations: &rejection.violations,
        };
        // Serialising borrowed fields of plain types cannot fail.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = Response::new(Bytes::from(bytes));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The RFC 9457 body, borrowed from the rejection: serialised straight to bytes.
#[derive(serde::Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    problem_type: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    violations: &'a [Violation],
}

/// The renderer layers use when none is configured.
pub(crate) fn default_renderer() -> Arc<dyn RejectionResponse> {
    Arc::new(ProblemJson::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: &Response<Bytes>) -> serde_json::Value {
        serde_json::from_slice(response.body()).expect("problem body is JSON")
    }

    #[test]
    fn key_failures_render_identically() {
        let render = |reason| {
            Rejection::new(reason)
                .with_challenge(Challenge::new("ApiKey", "api"))
                .render(&ProblemJson::new())
        };
        let reference = render(Reason::UnknownKey);
        for reason in [
            Reason::MalformedKey,
            Reason::BadChecksum,
            Reason::KeyMismatch,
            Reason::KeyRevoked,
            Reason::KeyExpired,
            Reason::InvalidCredentials,
        ] {
            let response = render(reason);
            assert_eq!(response.status(), reference.status());
            assert_eq!(response.headers(), reference.headers());
            assert_eq!(response.body(), reference.body());
        }
        assert_eq!(reference.status(), 401);
        assert_eq!(
            reference.headers()[WWW_AUTHENTICATE],
            r#"ApiKey realm="api", error="invalid_key""#
        );
        assert_eq!(body(&reference)["code"], "invalid_credentials");
    }

    #[test]
    fn log_only_reasons_keep_the_public_detail() {
        let rejection = Rejection::new(Reason::KeyRevoked).with_detail("revoked at noon");
        assert_eq!(
            rejection.detail(),
            Reason::InvalidCredentials.default_detail()
        );
    }

    #[test]
    fn problem_body_has_rfc9457_members() {
        let response = Rejection::new(Reason::Forbidden).render(&ProblemJson::new());
        assert_eq!(response.status(), 403);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
        let body = body(&response);
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Forbidden");
        assert_eq!(body["status"], 403);
        assert_eq!(body["code"], "forbidden");
        assert!(body["detail"].is_string());
        assert!(!response.headers().contains_key(WWW_AUTHENTICATE));
    }

    #[test]
    fn insufficient_scope_names_the_scope() {
        let response = Rejection::new(Reason::InsufficientScope)
            .with_challenge(Challenge::new("Bearer", "api"))
            .with_scope("orders:write")
            .render(&ProblemJson::new().type_base("https://errors.example/"));
        assert_eq!(response.status(), 403);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="api", error="insufficient_scope", scope="orders:write""#
        );
        let body = body(&response);
        assert_eq!(body["type"], "https://errors.example/insufficient_scope");
        assert_eq!(body["scope"], "orders:write");
    }

    #[test]
    fn bearer_challenge_carries_a_description() {
        let rejection = Rejection::new(Reason::InvalidCredentials)
            .with_challenge(Challenge::new("Bearer", "api"))
            .with_detail("The token \"x\" has expired.");
        let value = rejection.www_authenticate().next().expect("one challenge");
        assert_eq!(
            value,
            r#"Bearer realm="api", error="invalid_token", error_description="The token \"x\" has expired.""#
        );
    }

    #[test]
    fn details_and_parameters_are_bounded_and_header_safe() {
        let long = "é\r\n".repeat(500);
        let rejection = Rejection::new(Reason::InvalidRequest)
            .with_detail(long.clone())
            .with_challenge(Challenge::new("Bearer", long));
        assert!(rejection.detail().len() <= MAX_DETAIL_BYTES);
        let value = rejection.www_authenticate().next().expect("one challenge");
        assert!(value.len() < 2 * MAX_PARAM_BYTES);
        assert!(value.to_str().is_ok());
    }

    #[test]
    fn custom_renderer_still_gets_challenge_and_retry_after() {
        let render = |rejection: &Rejection| {
            let mut response = Response::new(Bytes::from_static(b"nope"));
            *response.status_mut() = rejection.status();
            response
        };
        let response = Rejection::new(Reason::MissingCredentials)
            .with_challenge(Challenge::new("ApiKey", "api"))
            .render(&render);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            r#"ApiKey realm="api""#
        );
        let response = Rejection::new(Reason::Unavailable)
            .with_retry_after(5)
            .render(&render);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "5");
    }
}
