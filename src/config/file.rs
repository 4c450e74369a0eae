//! The policy file's types, and reading them from YAML, TOML or JSON.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{PolicyError, PolicyErrors};

/// A policy file: roles, route rules, the rule for unmatched routes, and the policy's own
/// tests. See the [module documentation](super) for the format.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyFile {
    /// Each role and the permissions it grants (possibly none). Rules may name only these.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// The route rules, in order.
    #[serde(default)]
    pub routes: Vec<RouteEntry>,
    /// Who may call routes no rule matches, in the rules' text form. Defaults to `deny`.
    #[serde(default)]
    pub unmatched: Option<String>,
    /// Who the callers are: the authenticators the gateway runs.
    #[serde(default)]
    pub authenticate: Option<AuthenticateSection>,
    /// Request validation: JSON Schemas per route, or an OpenAPI document (with the
    /// `validate` feature).
    #[serde(default)]
    pub validate: Option<ValidateSection>,
    /// CORS: which other origins' pages may call the API (with the `cors` feature).
    #[serde(default)]
    pub cors: Option<super::http::CorsSection>,
    /// How refusals are written.
    #[serde(default)]
    pub rejection: Option<super::http::RejectionSection>,
    /// Traffic protection: the client IP, IP rules, brute-force blocking, rate limits.
    #[serde(default)]
    pub traffic: Option<super::traffic::TrafficSection>,
    /// The upstream `portcullis serve` forwards to, and how the caller's identity is handed
    /// on (see [`UpstreamSection`](super::UpstreamSection)).
    #[serde(default)]
    pub upstream: Option<super::upstream::UpstreamSection>,
    /// Requests and the decisions the policy must make for them.
    #[serde(default)]
    pub tests: Vec<PolicyTest>,
    /// The directory relative paths in the file are read from: the file's own, when read
    /// with [`PolicyFile::from_file`]; else the working directory.
    #[serde(skip)]
    pub base: Option<std::path::PathBuf>,
}

/// The `authenticate` section: the authenticators, in the order they are asked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthenticateSection {
    /// API keys, from a shared store (needs the `api-key` and `redis` features). Asked
    /// before the bearer issuers.
    #[serde(default)]
    pub api_keys: Option<ApiKeys>,
    /// OAuth 2.0 bearer tokens (JWT access tokens) from these issuers (needs the `bearer`
    /// feature).
    #[serde(default)]
    pub bearer: Vec<BearerIssuer>,
    /// Opaque bearer tokens, asked of the authorization server's introspection endpoint
    /// (RFC 7662; needs the `bearer` feature). With `bearer` issuers, one authenticator
    /// checks JWTs from those issuers locally and introspects every other token.
    #[serde(default)]
    pub introspection: Option<IntrospectionEndpoint>,
    /// Browser login with OpenID Connect (needs the `oidc` feature): the gateway answers the
    /// login routes (after the shield and the limits before authentication) and session
    /// cookies become callers.
    #[serde(default)]
    pub oidc: Option<super::login::OidcLogin>,
}

impl AuthenticateSection {
    /// Whether the section names no authenticator at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.api_keys.is_none()
            && self.bearer.is_empty()
            && self.introspection.is_none()
            && self.oidc.is_none()
    }
}

/// An introspection endpoint (RFC 7662) and the client the gateway is there.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IntrospectionEndpoint {
    /// The endpoint (`https://…`; plain `http` only to a loopback host).
    pub url: String,
    /// The gateway's client id at the authorization server.
    pub client_id: String,
    /// The environment variable holding the client secret. Exactly one of
    /// `client_secret_env` and `client_secret_file`.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// A file holding the client secret (relative to the policy file, or absolute).
    #[serde(default)]
    pub client_secret_file: Option<String>,
    /// Send the credentials in the form body (`client_secret_post`) rather than HTTP Basic
    /// (the default).
    #[serde(default)]
    pub client_secret_post: bool,
    /// The `iss` an active token must carry, when the server returns one.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The audiences a token must name one of (at least one, unless
    /// `insecure_skip_audience`).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Accept tokens whatever their audience: any token the server issued, for any API,
    /// is then good here. Defaults to `false`.
    #[serde(default)]
    pub insecure_skip_audience: bool,
    /// Where the roles are in the introspection response (a dotted path).
    #[serde(default)]
    pub roles_claim: Option<String>,
}

/// Where API keys are looked up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiKeys {
    /// A Redis (or Redis Cluster node) holding the key records `RedisKeyStore` writes:
    /// shared by every instance, kept across restarts. Exactly one of `redis` and `memory`.
    #[serde(default)]
    pub redis: Option<RedisStore>,
    /// Keys in the process ([`SharedState::memory_key_store`](super::SharedState::memory_key_store)):
    /// issued in code or through the key API, kept across reloads, lost at a restart.
    #[serde(default)]
    pub memory: Option<MemoryKeys>,
}

/// API keys kept in the process. No settings: `memory: {}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MemoryKeys {}

/// A Redis store, its URL a secret never written in the file: read from an environment
/// variable or a file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisStore {
    /// The environment variable holding the URL (`redis://…`; `rediss://` for TLS).
    #[serde(default)]
    pub url_env: Option<String>,
    /// A file holding the URL (relative to the policy file, or absolute).
    #[serde(default)]
    pub url_file: Option<String>,
    /// The prefix of every key the store writes. Defaults to `RedisConnection`'s.
    #[serde(default)]
    pub prefix: Option<String>,
}

/// One issuer of bearer tokens.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BearerIssuer {
    /// The expected `iss`.
    pub issuer: String,
    /// The audiences a token must name one of (at least one).
    pub audiences: Vec<String>,
    /// Find the keys through the issuer's discovery document. Exactly one of `discover` and
    /// `jwks_url`.
    #[serde(default)]
    pub discover: bool,
    /// The issuer's JWKS document.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Where the roles are in the token (a dotted path, `realm_access.roles`).
    #[serde(default)]
    pub roles_claim: Option<String>,
}

/// The `validate` section: which schema applies to which route, and the limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ValidateSection {
    /// An OpenAPI 3.0 or 3.1 document (a path, relative to the policy file): every operation
    /// validated.
    #[serde(default)]
    pub openapi: Option<String>,
    /// Schemas per route.
    #[serde(default)]
    pub routes: Vec<ValidateRoute>,
    /// The largest body accepted, in bytes. Defaults to 1 MiB.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Answer schema violations with 422 instead of 400. Defaults to `false`.
    #[serde(default)]
    pub unprocessable_entity: bool,
}

/// The schemas of one route: each inline (a JSON Schema in the file) or from a file
/// (`body_file: schemas/order.json`, relative to the policy file).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ValidateRoute {
    /// `METHOD /path`.
    pub route: String,
    /// The body's schema.
    #[serde(default)]
    pub body: Option<Value>,
    /// The body's schema, from a file.
    #[serde(default)]
    pub body_file: Option<String>,
    /// An object schema for the query parameters.
    #[serde(default)]
    pub query: Option<Value>,
    /// The query schema, from a file.
    #[serde(default)]
    pub query_file: Option<String>,
    /// An object schema for the path parameters.
    #[serde(default)]
    pub path: Option<Value>,
    /// The path schema, from a file.
    #[serde(default)]
    pub path_file: Option<String>,
    /// An object schema for headers (lower-case names).
    #[serde(default)]
    pub headers: Option<Value>,
    /// The headers schema, from a file.
    #[serde(default)]
    pub headers_file: Option<String>,
    /// Requests without a body are accepted. Defaults to `false` (a body schema makes the
    /// body required).
    #[serde(default)]
    pub optional_body: bool,
    /// The media types the body may have. Defaults to JSON.
    #[serde(default)]
    pub media_types: Option<Vec<String>>,
    /// This route's body limit, in bytes.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
}

/// One route rule: `route: GET /orders/{id}`, `require: permission("orders:read")`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouteEntry {
    /// `METHOD /path`, as [`RouteRulesBuilder::route`](crate::authz::RouteRulesBuilder::route)
    /// takes it.
    pub route: String,
    /// Who may call it: `public`, `optional`, `authenticated`, `deny`, or a requirement in the
    /// text form (`role(admin) and scope("orders:write")`).
    pub require: String,
}

/// A request and the decision the policy must make for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyTest {
    /// What the test is about, for its report.
    #[serde(default)]
    pub name: Option<String>,
    /// `METHOD /path`, with a query string if the rule reads one: `GET /reports?owner=vic`.
    pub request: String,
    /// Who sends it: `anonymous`, or an identity.
    #[serde(rename = "as")]
    pub caller: TestCaller,
    /// Request headers, for rules that read one.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The JSON body, for rules that read it (as validation would have parsed it).
    #[serde(default)]
    pub body: Option<Value>,
    /// The decision expected.
    pub expect: Expectation,
}

/// Who sends a test request.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum TestCaller {
    /// `anonymous`: no credentials.
    Anonymous(Anonymous),
    /// An authenticated caller.
    Identity(TestIdentity),
}

/// The word `anonymous`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Anonymous {
    /// No credentials.
    Anonymous,
}

/// An identity for a test request, as an authenticator would have made it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TestIdentity {
    /// The subject.
    pub subject: String,
    /// How they authenticated: `api_key`, `bearer` (the default), `oidc`, or a custom name.
    #[serde(default)]
    pub method: Option<String>,
    /// Their roles (the policy's role → permission mapping applies, as in the gateway).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Their OAuth scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Permissions granted directly.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Their claims.
    #[serde(default)]
    pub claims: Map<String, Value>,
}

/// The decision a test expects: the status, and for a refusal its reason code.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Expectation {
    /// 200 when the request goes on to the service, else the refusal's status (401, 403).
    pub status: u16,
    /// The refusal's reason code (`forbidden`, `object_denied`, …); not checked when absent.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A policy file's format, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// `.yaml`, `.yml`.
    Yaml,
    /// `.toml`.
    Toml,
    /// `.json`.
    Json,
}

impl Format {
    /// The format a file's extension names, if it names one.
    #[must_use]
    pub fn of(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "yaml" | "yml" => Some(Self::Yaml),
            "toml" => Some(Self::Toml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// The largest policy file read: a policy is configuration, not data.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

impl PolicyFile {
    /// Reads a policy file, in the format its extension names.
    ///
    /// # Errors
    ///
    /// The file cannot be read, is larger than 4 MiB, has no known extension, or does not
    /// parse (with the line and column the format gives).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, PolicyErrors> {
        let path = path.as_ref();
        let shown = path.display();
        let format = Format::of(path).ok_or_else(|| {
            PolicyError::at(
                "",
                format!("{shown}: the extension must be .yaml, .yml, .toml or .json"),
            )
        })?;
        let text = read_bounded(path).map_err(|message| PolicyError::at("", message))?;
        let mut policy = Self::parse(&text, format)?;
        policy.base = path.parent().map(Path::to_path_buf);
        Ok(policy)
    }

    /// Reads a policy from `text` in `format`.
    ///
    /// # Errors
    ///
    /// The text does not parse, or has a field of the wrong type or an unknown one, with the
    /// line and column where the format reports them.
    pub fn parse(text: &str, format: Format) -> Result<Self, PolicyErrors> {
        let parsed = match format {
            Format::Yaml => serde_yaml_ng::from_str(text).map_err(|error| {
                let position = error
                    .location()
                    .map(|location| (location.line(), location.column()));
                PolicyError {
                    place: String::new(),
                    position,
                    message: crate::text::bounded(&error.to_string()).to_owned(),
                }
            }),
            Format::Toml => toml::from_str(text).map_err(|error: toml::de::Error| {
                let position = error.span().map(|span| line_column(text, span.start));
                PolicyError {
                    place: String::new(),
                    position,
                    message: crate::text::bounded(error.message()).to_owned(),
                }
            }),
            Format::Json => serde_json::from_str(text).map_err(|error| PolicyError {
                place: String::new(),
                position: Some((error.line(), error.column())),
                message: crate::text::bounded(&error.to_string()).to_owned(),
            }),
        };
        parsed.map_err(PolicyErrors::from)
    }
}

/// Reads a regular file of at most 4 MiB as text.
pub(crate) fn read_bounded(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let mut bytes = Vec::new();
    match read_regular(path, MAX_FILE_BYTES, &mut bytes) {
        Ok(()) => String::from_utf8(bytes).map_err(|_| format!("{shown}: not UTF-8 text")),
        Err(Unread::TooLarge) => Err(format!("{shown}: larger than 4 MiB")),
        Err(Unread::Failed(message)) => Err(message),
    }
}

/// Why a file was not read.
pub(crate) enum Unread {
    /// It holds more than the bound.
    TooLarge,
    /// It cannot be opened or read, or is not a regular file: what the system said.
    Failed(String),
}

/// Reads a regular file of at most `limit` bytes into `into` (a buffer the caller picks: one
/// that is wiped for a secret). The bound holds while reading (a file that grows, a device
/// or a pipe cannot make it read more), and anything but a regular file is refused. Errors
/// name the file, never its content.
pub(crate) fn read_regular(path: &Path, limit: u64, into: &mut Vec<u8>) -> Result<(), Unread> {
    use std::io::Read;
    let shown = path.display();
    let failed = |error: std::io::Error| Unread::Failed(format!("{shown}: {error}"));
    let file = std::fs::File::open(path).map_err(failed)?;
    if !file.metadata().map_err(failed)?.is_file() {
        return Err(Unread::Failed(format!("{shown}: not a regular file")));
    }
    file.take(limit + 1).read_to_end(into).map_err(failed)?;
    if into.len() as u64 > limit {
        return Err(Unread::TooLarge);
    }
    Ok(())
}

/// The 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |at| before.len() - at - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_formats_read_the_same_policy() {
        let yaml = r#"
roles: {admin: ["*"], viewer: ["orders:read"]}
routes:
  - {route: "GET /health", require: public}
  - {route: "GET /orders/{id}", require: 'permission("orders:read")'}
unmatched: deny
tests:
  - {request: GET /health, as: anonymous, expect: {status: 200}}
  - request: GET /orders/1
    as: {subject: vic, roles: [viewer]}
    expect: {status: 200}
"#;
        let toml = r#"
unmatched = "deny"
[roles]
admin = ["*"]
viewer = ["orders:read"]
[[routes]]
route = "GET /health"
require = "public"
[[routes]]
route = "GET /orders/{id}"
require = 'permission("orders:read")'
[[tests]]
request = "GET /health"
as = "anonymous"
expect = { status = 200 }
[[tests]]
request = "GET /orders/1"
as = { subject = "vic", roles = ["viewer"] }
expect = { status = 200 }
"#;
        let json = r#"{
  "roles": {"admin": ["*"], "viewer": ["orders:read"]},
  "routes": [
    {"route": "GET /health", "require": "public"},
    {"route": "GET /orders/{id}", "require": "permission(\"orders:read\")"}
  ],
  "unmatched": "deny",
  "tests": [
    {"request": "GET /health", "as": "anonymous", "expect": {"status": 200}},
    {"request": "GET /orders/1", "as": {"subject": "vic", "roles": ["viewer"]}, "expect": {"status": 200}}
  ]
}"#;
        for (text, format) in [
            (yaml, Format::Yaml),
            (toml, Format::Toml),
            (json, Format::Json),
        ] {
            let policy = PolicyFile::parse(text, format)
                .unwrap_or_else(|errors| panic!("{format:?}: {errors}"));
            assert_eq!(policy.roles.len(), 2, "{format:?}");
            assert_eq!(policy.routes.len(), 2, "{format:?}");
            assert_eq!(policy.routes[1].require, r#"permission("orders:read")"#);
            assert_eq!(policy.unmatched.as_deref(), Some("deny"));
            assert!(matches!(policy.tests[0].caller, TestCaller::Anonymous(_)));
            assert!(
                matches!(&policy.tests[1].caller, TestCaller::Identity(who) if who.subject == "vic")
            );
        }
    }

    #[test]
    fn syntax_and_type_errors_say_where() {
        let yaml = "routes:\n  - route: GET /a\n    requir: public\n";
        let errors = PolicyFile::parse(yaml, Format::Yaml).expect_err("unknown field");
        let error = &errors.errors()[0];
        assert_eq!(error.position.map(|(line, _)| line), Some(3), "{error}");
        assert!(error.message.contains("requir"), "{error}");

        let toml = "unmatched = \"deny\"\n[[routes]]\nroute = 3\n";
        let errors = PolicyFile::parse(toml, Format::Toml).expect_err("wrong type");
        assert_eq!(errors.errors()[0].position.map(|(line, _)| line), Some(3));

        let json = "{\n  \"routes\": [\n    {\"route\": \"GET /a\"}\n  ]\n}";
        let errors = PolicyFile::parse(json, Format::Json).expect_err("missing field");
        assert!(errors.to_string().contains("require"), "{errors}");
    }

    #[test]
    fn formats_come_from_extensions() {
        assert_eq!(Format::of(Path::new("a/policy.YML")), Some(Format::Yaml));
        assert_eq!(Format::of(Path::new("policy.toml")), Some(Format::Toml));
        assert_eq!(Format::of(Path::new("policy.json")), Some(Format::Json));
        assert_eq!(Format::of(Path::new("policy.ini")), None);
        assert_eq!(Format::of(Path::new("policy")), None);
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("ab", 0), (1, 1));
    }
}
