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
