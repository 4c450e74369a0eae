//! [`ConfigError`]: what is wrong with a configuration, found when it is built.

/// A configuration that cannot work, found by a builder's `build()`; never at request time.
///
/// Variants carry the offending input (a header name, a route pattern, a role) so the
/// message points at the line to fix. They never carry a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A header name is not a valid HTTP header name.
    #[error("`{name}` is not a valid header name")]
    InvalidHeaderName {
        /// The name given.
        name: String,
    },
    /// A cookie or query parameter name is empty or has characters it cannot carry.
    #[error("`{name}` is not a valid cookie or query parameter name")]
    InvalidParameterName {
        /// The name given.
        name: String,
    },
    /// An API key prefix is not 2 to 16 lowercase ASCII letters or digits.
    #[error("API key prefix `{prefix}` must be 2 to 16 lowercase ASCII letters or digits")]
    InvalidKeyPrefix {
        /// The prefix given.
        prefix: String,
    },
    /// An API-key authenticator has every credential source turned off.
    #[error("the API-key authenticator has no source to read keys from")]
    NoKeySource,
    /// A realm has characters that cannot appear in a `WWW-Authenticate` header.
    #[error("realm `{realm}` must be printable ASCII without `\"` or `\\`")]
    InvalidRealm {
        /// The realm given.
        realm: String,
    },
    /// A route rule's `METHOD /path` text cannot be parsed.
    #[error("route rule `{rule}`: {reason}")]
    InvalidRoute {
        /// The rule as written.
        rule: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two route rules cover the same requests, so one of them could never apply.
    #[error("route rules `{first}` and `{second}` conflict: {reason}")]
    ConflictingRules {
        /// The rule added first.
        first: String,
        /// The rule added later.
        second: String,
        /// Why they conflict.
        reason: String,
    },
    /// A rule needs a role that no role declaration names.
    #[error("route rule `{rule}` needs role `{role}`, which is not declared")]
    UnknownRole {
        /// The rule as written.
        rule: String,
        /// The undeclared role.
        role: String,
    },
    /// A role is declared twice.
    #[error("role `{role}` is declared twice")]
    DuplicateRole {
        /// The role.
        role: String,
    },
    /// A rule's requirement can never be met (an empty `any`, or a term and its negation).
    #[error("route rule `{rule}` can never be satisfied: {reason}")]
    UnsatisfiableRule {
        /// The rule as written.
        rule: String,
        /// Why it can never be met.
        reason: String,
    },
    /// A requirement written as text does not parse.
    #[error("requirement `{text}`, at byte {at}: {reason}")]
    InvalidRequirement {
        /// The text as given.
        text: String,
        /// Where the problem starts, as a byte offset into `text`.
        at: usize,
        /// What is wrong there.
        reason: String,
    },
    /// A rule compares a field of the request body with the caller, but no JSON body schema
    /// validates that route, so the body is never parsed (and checked) before the rule
    /// would read it.
    #[error(
        "route rule `{rule}` reads the request body, but no JSON body schema validates `{rule}`: \
         give the same method and path a body schema in the validation rules"
    )]
    BodyRuleWithoutSchema {
        /// The rule as written.
        rule: String,
    },
    /// A JSON Schema does not compile (or needs a `$ref` we do not fetch, or a regex feature
    /// the linear-time engine lacks).
    #[error("route `{rule}`: the {part} schema does not compile: {reason}")]
    InvalidSchema {
        /// The route as written.
        rule: String,
        /// Which schema: `body`, `query`, `path` or `header`.
        part: String,
        /// The compiler's message.
        reason: String,
    },
    /// A business rule was given for a route that has no validation entry (neither a
    /// `route(...)` nor an OpenAPI operation with that `METHOD /path` text).
    #[error("business rule `{rule}` names route `{route}`, which has no validation entry")]
    UnknownRuleRoute {
        /// The route as the rule names it.
        route: String,
        /// The rule's name.
        rule: String,
    },
    /// An OpenAPI document cannot be loaded.
    #[error("OpenAPI document: {reason}")]
    InvalidOpenApi {
        /// What is wrong, with a JSON pointer into the document where there is one.
        reason: String,
    },
    /// A limit (a duration, a size, a count) is zero or otherwise unusable.
    #[error("`{setting}` must be greater than zero")]
    InvalidLimit {
        /// The setting.
        setting: &'static str,
    },
    /// The issuer identifier is empty.
    #[cfg(feature = "bearer")]
    #[error("the issuer identifier is empty")]
    EmptyIssuer,
    /// No accepted audience was given for an issuer.
    #[cfg(feature = "bearer")]
    #[error("issuer `{issuer}` has no accepted audience; add one with `audience(...)`")]
    MissingAudience {
        /// The issuer.
        issuer: String,
    },
    /// No keys were given for an issuer.
    #[cfg(feature = "bearer")]
    #[error(
        "issuer `{issuer}` has no keys; add them with `keys(...)`, `jwks_url(...)` or `discover()`"
    )]
    MissingKeys {
        /// The issuer.
        issuer: String,
    },
    /// An allowed algorithm cannot be verified by any of the issuer's keys, or the
    /// allow-list is empty.
    #[cfg(feature = "bearer")]
    #[error("issuer `{issuer}`: algorithm `{alg}` is not verifiable by any of its keys")]
    AlgorithmWithoutKey {
        /// The issuer.
        issuer: String,
        /// The algorithm (or `(none)` for an empty list).
        alg: String,
    },
    /// The leeway exceeds five minutes.
    #[cfg(feature = "bearer")]
    #[error("leeway of {seconds} s exceeds the 300 s maximum")]
    LeewayTooLarge {
        /// The leeway asked for, in seconds.
        seconds: u64,
    },
    /// A duration or size setting is above the largest value it may take.
    #[cfg(feature = "bearer")]
    #[error("`{setting}` must be at most {max}")]
    LimitTooLarge {
        /// The setting.
        setting: &'static str,
        /// The largest accepted value, in the setting's unit (seconds for durations).
        max: u64,
    },
    /// The roles claim path is empty or has an empty segment.
    #[cfg(feature = "bearer")]
    #[error("claim path `{path}` is empty or has an empty segment")]
    InvalidClaimPath {
        /// The path given.
        path: String,
    },
    /// The authenticator was built without an issuer.
    #[cfg(feature = "bearer")]
    #[error("the bearer authenticator has no issuer; add one with `issuer(...)`")]
    NoIssuer,
    /// Two issuer configurations have the same issuer identifier.
    #[cfg(feature = "bearer")]
    #[error("issuer `{issuer}` is configured twice")]
    DuplicateIssuer {
        /// The issuer.
        issuer: String,
    },
    /// More than one key source (`keys`, `jwks_url`, `discover`) was given for an issuer.
    #[cfg(feature = "bearer")]
    #[error("issuer `{issuer}` has more than one key source; give exactly one")]
    ConflictingKeySources {
        /// The issuer.
        issuer: String,
    },
    /// A JWKS or discovery URL breaks the URL rule: `https`, or `http` only to a loopback
    /// host unless `insecure_allow_http()`.
    #[cfg(feature = "bearer")]
    #[error("URL `{url}` refused: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The default HTTP client could not be built.
    #[cfg(feature = "bearer")]
    #[error("the HTTP client could not be built: {reason}")]
    HttpClient {
        /// Why.
        reason: String,
    },
    /// The introspection client id is empty.
    #[cfg(feature = "bearer")]
    #[error("the introspection client id is empty")]
    MissingIntrospectionClient,
    /// The CORS configuration given to the gateway can never work (tower-http's
    /// `CorsLayer` refuses it: credentials combined with a wildcard).
    #[error("invalid CORS configuration: {reason}")]
    InvalidCors {
        /// Why, as tower-http words it.
        reason: String,
    },
    /// An OpenID Connect relying-party setting is missing or unusable.
    #[cfg(feature = "oidc")]
    #[error("OpenID Connect `{setting}`: {reason}")]
    InvalidOidc {
        /// The setting (`redirect_uri`, `client_id`, `scopes`, …).
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A session key is not 32 bytes long.
    #[cfg(feature = "oidc")]
    #[error("a session key must be exactly 32 bytes, got {len}")]
    InvalidSessionKey {
        /// The length given.
        len: usize,
    },
    /// The gateway was built without route rules.
    #[error("the gateway has no route rules; add some with `rules(...)`")]
    MissingRules,
    /// The gateway was built without an authenticator, so no caller could ever be known.
    #[error("the gateway has no authenticator; add one with `authenticate(...)`")]
    NoAuthenticator,
    /// A Redis connection setting is refused: a URL that does not parse, no node, plain
    /// text to a host that is not loopback without `insecure_allow_plaintext()`.
    #[cfg(feature = "redis")]
    #[error("Redis: {reason}")]
    InvalidRedis {
        /// Why (never the URL's password).
        reason: String,
    },
    /// An IP address or CIDR range that does not parse, or has host bits set
    /// (`10.0.0.1/8`: write `10.0.0.0/8`).
    #[cfg(feature = "shield")]
    #[error("`{cidr}` is not a usable IP address or CIDR range: {reason}")]
    InvalidCidr {
        /// The text given.
        cidr: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Nothing tells the shield the address of the connecting peer: without the `axum`
    /// feature (axum's `ConnectInfo`), give `ShieldBuilder::peer_address`.
    #[cfg(feature = "shield")]
    #[error(
        "the client IP has no source: enable the `axum` feature (ConnectInfo) or give \
         `peer_address(...)`"
    )]
    NoClientIpSource,
    /// A brute-force period is longer than a year (the counters' clock arithmetic is
    /// bounded, and a block that long is a ban: use a deny list).
    #[cfg(feature = "shield")]
    #[error("`{setting}` must be at most 365 days")]
    DurationTooLong {
        /// The setting.
        setting: &'static str,
    },
    /// A rate limit is configured wrongly.
    #[cfg(feature = "rate-limit")]
    #[error("rate limit `{limit}`: {reason}")]
    InvalidRateLimit {
        /// The limit's name.
        limit: String,
        /// What is wrong.
        reason: String,
    },
}
