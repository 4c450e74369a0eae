//! The policy as a file: roles, route rules and the policy's own tests, in YAML, TOML or
//! JSON, checked as a whole before anything serves it.
//!
//! ```yaml
//! roles:
//!   admin: ["orders:*", "users:*"]
//!   viewer: ["orders:read"]
//! routes:
//!   - route: GET /health
//!     require: public
//!   - route: GET /users/{owner}/orders/{id}
//!     require: permission("orders:read") and (param("owner") == subject() or role(admin))
//!   - route: POST /orders
//!     require: permission("orders:write")
//! unmatched: deny                       # the default
//! tests:
//!   - name: a viewer reads their own order
//!     request: GET /users/vic/orders/1
//!     as: {subject: vic, roles: [viewer]}
//!     expect: {status: 200}
//!   - name: but not another's
//!     request: GET /users/ada/orders/1
//!     as: {subject: vic, roles: [viewer]}
//!     expect: {status: 403, reason: object_denied}
//!   - request: POST /orders
//!     as: anonymous
//!     expect: {status: 401}
//! ```
//!
//! - `roles`: each role and the permissions it grants; rules may name only these.
//! - `routes`: `route` is `METHOD /path` as [`RouteRulesBuilder::route`] takes it; `require`
//!   is `public`, `optional`, `authenticated`, `deny` or a requirement in the text form
//!   [`Requirement`](crate::authz::Requirement) parses (`role(admin) and (scope("orders:write")
//!   or permission("orders:*"))`, object-level comparisons included).
//! - `unmatched`: who may call routes no rule matches; `deny` by default.
//! - `authenticate`: the authenticators: API keys on Redis (`api_keys: {redis: {url_env:
//!   NAME}}` or `url_file`, never the URL itself; with `api-key` and `redis`),
//!   bearer-token issuers (`bearer: [{issuer, audiences, discover: true | jwks_url,
//!   roles_claim}]`, with `bearer`) and an introspection endpoint (`introspection: {url,
//!   client_id, client_secret_env | client_secret_file, audiences, …}`);
//!   [`PolicyFile::gateway`] starts a gateway with them, the rules and the validation.
//! - `cors` (with the `cors` feature) and `rejection: {type_base}`: the answers to
//!   browsers and to refused callers.
//! - Secrets (`…_env: NAME`, `…_file: PATH`) are read when the gateway is built, from the
//!   environment or a file, and never written in the policy.
//! - `validate`: JSON Schemas per route (`routes: [{route: POST /orders, body: {…}}]`, each
//!   schema inline or from a file: `body_file: schemas/order.json`), or an OpenAPI document
//!   (`openapi: openapi.yaml`), and the limits; paths are relative to the policy file.
//! - `traffic`: the client IP behind trusted proxies (`client_ip: {trusted_proxies,
//!   forwarded_header}`), IP allow and deny lists (`ip_rules`, globally and per route),
//!   brute-force blocking (`brute_force: {failures, window, block_for, max_block}`) and rate
//!   limits before and after authentication (`rate_limits: {before_auth: […], after_auth:
//!   [{name, key: api_key, quota: 10/s, tiers: [{role: admin, quota: 100/s}], routes}]}`),
//!   with the `shield` and `rate-limit` features; [`PolicyFile::gateway_with`] and a
//!   [`SharedState`] keep their counters across reloads (see `docs/config.md`, "Traffic").
//! - `upstream`: where `portcullis serve` forwards (`url`, `timeout`), the identity
//!   headers (`identity_headers: {send, subject, method, roles, scopes}`), and the identity token (`identity_token: {key_file | key_env, issuer,
//!   audience, lifetime, header, jwks_path}`, the key never in the file);
//!   [`PolicyFile::proxy`] builds the proxy (with the `proxy` feature). See
//!   [`UpstreamSection`].
//! - `tests`: requests (`request`, with a query string if needed; optional `headers` and
//!   JSON `body`), who sends them (`as`: `anonymous` or an identity with `subject`, `method`,
//!   `roles`, `scopes`, `permissions`, `claims`) and the decision expected (`status`: 200 when
//!   the request goes on to the service; `reason`: the refusal's code). The policy's
//!   role → permission mapping applies to test identities as the gateway applies it.
//!
//! [`PolicyFile::check`] builds the rules and runs the tests, and reports **every** problem
//! at once, each with its place (`routes[3].require: unknown role "admn" (did you mean
//! "admin"?)`, with the line and column for syntax and type errors): a policy change that
//! opens a route fails here, before it serves.
//!
//! Still to come: introspection and OIDC login, CORS and the rejection format in the file
//! (see `docs/config.md`).
//!
//! # Example
//!
//! ```
//! use portcullis::config::{Format, PolicyFile};
//!
//! let policy = PolicyFile::parse(
//!     r#"
//! roles: {admin: ["*"]}
//! routes:
//!   - {route: "GET /users/{id}", require: 'param("id") == subject() or role(admin)'}
//! tests:
//!   - {request: GET /users/ada, as: {subject: ada}, expect: {status: 200}}
//!   - {request: GET /users/ada, as: {subject: vic}, expect: {status: 403, reason: object_denied}}
//! "#,
//!     Format::Yaml,
//! )?;
//! let checked = policy.check()?;
//! assert_eq!(checked.tests, 2);
//!
//! let typo = PolicyFile::parse(
//!     "roles: {admin: []}\nroutes: [{route: GET /a, require: role(admn)}]",
//!     Format::Yaml,
//! )?;
//! let errors = typo.check().expect_err("an unknown role");
//! assert_eq!(
//!     errors.to_string(),
//!     r#"routes[0].require: unknown role "admn" (did you mean "admin"?)"#
//! );
//! # Ok::<(), portcullis::config::PolicyErrors>(())
//! ```
//!
//! [`RouteRulesBuilder::route`]: crate::authz::RouteRulesBuilder::route

mod error;
mod file;
mod gateway;
mod http;
mod login;
mod policy;
#[cfg(any(
    feature = "bearer",
    feature = "identity-token",
    all(feature = "api-key", feature = "redis")
))]
mod secrets;
mod state;
mod traffic;
mod upstream;
mod validation;

#[doc(inline)]
pub use self::error::{PolicyError, PolicyErrors};
#[doc(inline)]
pub use self::file::{
    Anonymous, ApiKeys, AuthenticateSection, BearerIssuer, Expectation, Format,
    IntrospectionEndpoint, MemoryKeys, PolicyFile, PolicyTest, RedisStore, RouteEntry, TestCaller,
    TestIdentity, ValidateRoute, ValidateSection,
};
#[doc(inline)]
pub use self::http::{CorsSection, RejectionSection};
#[doc(inline)]
pub use self::login::{OidcLogin, SessionStoreSection};
#[doc(inline)]
pub use self::policy::{CheckedPolicy, Explanation};
#[doc(inline)]
pub use self::state::SharedState;
#[doc(inline)]
pub use self::traffic::{
    BruteForceSection, ClientIpSection, IpRouteRules, IpRulesSection, LimitEntry,
    RateLimitsSection, TierEntry, TrafficSection,
};
pub use self::upstream::{IdentityHeadersSection, IdentityTokenSection, UpstreamSection};
