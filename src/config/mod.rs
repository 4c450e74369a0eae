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
//!   NAME}}` or `url_file`, never the URL itself; with `api-key` and `redis`) and
//!   bearer-token issuers (`bearer: [{issuer, audiences, discover: true | jwks_url,
//!   roles_claim}]`, with `bearer`);
//!   [`PolicyFile::gateway`] starts a gateway with them, the rules and the validation.
//! - `validate`: JSON Schemas per route (`routes: [{route: POST /orders, body: {…}}]`, each
//!   schema inline or from a file: `body_file: schemas/order.json`), or an OpenAPI document
//!   (`openapi: openapi.yaml`), and the limits; paths are relative to the policy file.
//! - `upstream`: where `portcullis serve` forwards (`url`, `timeout_seconds`), the identity
//!   headers (`identity_headers: {send, subject, method, roles, scopes}`), and the identity token (`identity_token: {key_file | key_env, issuer,
//!   audience, lifetime_seconds, header, jwks_path}`, the key never in the file);
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
//! This module covers the authorization policy and validation; authenticators, traffic
//! protection, reload and `portcullis serve` are to come (see `docs/config.md`).
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
mod policy;
mod upstream;
mod validation;

#[doc(inline)]
pub use self::error::{PolicyError, PolicyErrors};
#[doc(inline)]
pub use self::file::{
    Anonymous, ApiKeys, AuthenticateSection, BearerIssuer, Expectation, Format, PolicyFile,
    PolicyTest, RedisStore, RouteEntry, TestCaller, TestIdentity, ValidateRoute, ValidateSection,
};
#[doc(inline)]
pub use self::policy::{CheckedPolicy, Explanation};
#[doc(inline)]
pub use self::upstream::{IdentityHeadersSection, IdentityTokenSection, UpstreamSection};
