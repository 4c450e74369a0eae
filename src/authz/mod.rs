//! Authorization: who may call which route.
//!
//! [`RouteRules`] map `METHOD /path` patterns to an [`Access`]: [`public`], [`optional`],
//! [`authenticated`], [`deny`], or a [`Requirement`] over the caller's roles, scopes,
//! permissions and claims, combined with [`all`], [`any`] and [`not`]. Roles map to
//! permissions (with `orders:*` wildcards). Routes no rule matches are denied unless you
//! say otherwise. Everything is checked when the rules are built: conflicting rules,
//! undeclared roles and requirements that can never be met are [`ConfigError`](crate::ConfigError)s.
//!
//! [`AuthorizeLayer`] applies the rules to each request, reading the
//! [`Principal`](crate::Principal) an authentication layer put in the request's extensions:
//!
//! - no identity where one is needed → 401 with the authenticators' challenges;
//! - an identity lacking what the rule needs → 403 (`insufficient_scope` naming the missing
//!   scopes, or `forbidden`);
//! - otherwise the request goes on, with the principal's role-granted permissions resolved.
//!
//! Object-level rules relate the request's data to the caller: [`param`], [`query`],
//! [`header`] or [`body`] compared with [`subject`] or a [`Caller::claim`]
//! (`param("id").equals(subject())`). When the caller's grants would do but the object is
//! not theirs (or the data is missing: absence never allows), the answer is 403
//! `object_denied`, which never names the object's owner. Every requirement has a text form
//! that [`Display`](std::fmt::Display) prints and [`FromStr`](std::str::FromStr) reads
//! back: `param("id") == subject() or role("admin")`.
//!
//! In report-only mode the layer decides and logs, but lets every request through.
//!
//! # Example
//!
//! Rules for a whole router:
//!
//! ```
//! use axum::{Router, routing::get};
//! use http::{Request, StatusCode};
//! use portcullis::authz::{AuthorizeLayer, RouteRules, public, role};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rules = RouteRules::builder()
//!     .role("admin", ["*"])
//!     .route("GET /health", public())
//!     .route("GET /admin", role("admin"))
//!     .build()?;
//! let app = Router::new()
//!     .route("/health", get(|| async { "ok" }))
//!     .route("/admin", get(|| async { "secret" }))
//!     .layer(AuthorizeLayer::new(rules));
//!
//! let health = app.clone().oneshot(Request::get("/health").body(axum::body::Body::empty())?).await?;
//! assert_eq!(health.status(), StatusCode::OK);
//! let admin = app.oneshot(Request::get("/admin").body(axum::body::Body::empty())?).await?;
//! assert_eq!(admin.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```
//!
//! Orders that belong to their owners, with the rule written as text:
//!
//! ```
//! use axum::{Router, routing::get};
//! use http::{Request, StatusCode};
//! use portcullis::authz::{AuthorizeLayer, Requirement, RouteRules};
//! use portcullis::{AuthMethod, Principal};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let owner_or_admin: Requirement = r#"param("owner") == subject() or role("admin")"#.parse()?;
//! let rules = RouteRules::builder()
//!     .role("admin", ["*"])
//!     .route("GET /users/{owner}/orders", owner_or_admin)
//!     .build()?;
//! let app = Router::new()
//!     .route("/users/{owner}/orders", get(|| async { "[]" }))
//!     .layer(AuthorizeLayer::new(rules));
//!
//! // An authentication layer would put the caller here.
//! let as_vic = |uri: &str| {
//!     Request::get(uri)
//!         .extension(Principal::builder("vic", AuthMethod::Bearer).build())
//!         .body(axum::body::Body::empty())
//! };
//! let own = app.clone().oneshot(as_vic("/users/vic/orders")?).await?;
//! assert_eq!(own.status(), StatusCode::OK);
//! let other = app.oneshot(as_vic("/users/ada/orders")?).await?;
//! assert_eq!(other.status(), StatusCode::FORBIDDEN); // `object_denied`
//! # Ok(()) }
//! ```
//!
//! Or a requirement on one axum route, where it is defined:
//!
//! ```
//! use axum::{Router, routing::post};
//! use portcullis::authz::{all, require, role, scope};
//!
//! let app: Router = Router::new().route(
//!     "/orders",
//!     post(|| async { "created" })
//!         .route_layer(require(all([role("admin"), scope("orders:write")]))),
//! );
//! ```

mod layer;
mod object;
#[cfg(feature = "openapi")]
mod openapi;
mod parse;
mod requirement;
mod rules;

#[doc(inline)]
pub use self::layer::{Authorize, AuthorizeLayer};
#[doc(inline)]
pub use self::object::{Caller, Field, body, header, param, query, subject};
#[doc(inline)]
pub use self::requirement::{
    Access, Requirement, all, any, auth_method, authenticated, claim, deny, not, optional,
    permission, public, role, scope,
};
#[cfg(feature = "config")]
pub(crate) use self::rules::Explained;
#[cfg(feature = "validate")]
pub(crate) use self::rules::PendingObjectCheck;
#[doc(inline)]
pub use self::rules::{RouteRules, RouteRulesBuilder};
#[doc(inline)]
pub use crate::future::ResponseFuture;

/// A layer that lets a request through only when its caller meets `requirement`: 401
/// without an identity, 403 when the identity falls short.
///
/// For axum's `route_layer`, so a rule sits next to the route it guards. Roles named here
/// are not checked against declarations (there are none); permissions are those already on
/// the principal, including those a `GatewaySecurityLayer` resolved from its roles.
pub fn require(requirement: Requirement) -> AuthorizeLayer {
    AuthorizeLayer::new(RouteRules::everywhere(requirement.into()))
}
