//! API-gateway security as Tower layers: API keys, OAuth 2.0 bearer tokens, OpenID Connect
//! login sessions, per-route authorization and request validation, in front of any axum,
//! hyper or tonic service.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use portcullis::{GatewaySecurityLayer, Principal};
//! use portcullis::api_key::{ApiKeyAuthenticator, MemoryKeyStore};
//! use portcullis::authz::{RouteRules, permission, public};
//!
//! # fn main() -> Result<(), portcullis::ConfigError> {
//! let rules = RouteRules::builder()
//!     .role("viewer", ["orders:read"])
//!     .route("GET /health", public())
//!     .route("GET /orders", permission("orders:read"))
//!     .build()?; // every other route is denied
//! let security = GatewaySecurityLayer::builder()
//!     .authenticate(ApiKeyAuthenticator::new(Arc::new(MemoryKeyStore::new())))
//!     .rules(rules)
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/health", get(|| async { "ok" }))
//!     .route("/orders", get(|who: Principal| async move { who.subject().to_owned() }))
//!     .layer(security);
//! # Ok(()) }
//! ```
//!
//! The request's path is fixed: shield ([`shield`], IP rules and brute-force blocks) and a
//! per-IP rate limit, then authenticate ([`AuthenticationLayer`] running every
//! [`Authenticate`]: [`api_key`], [`bearer`], `oidc` sessions, your own), authorize ([`authz`]), validate
//! ([`validate`]), with per-identity rate limits ([`rate_limit`]) between the last two; each
//! layer also works alone. Every refusal is a [`Rejection`] rendered as
//! RFC 9457 problem+json with the right status and challenge; every decision goes to one
//! [`observe::Observe`]. Configuration is checked when it is built ([`ConfigError`]), never
//! while serving.
//!
//! # Features
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `api-key` | yes | [`api_key`]: key format, `KeyStore`, `KeyAdmin`, memory and cached stores |
//! | `bearer` | yes | [`bearer`], [`jwt`], [`remote`]: JWT access tokens, JWKS, discovery, introspection |
//! | `aws-lc-rs` / `rust-crypto` | `aws-lc-rs` | the crypto backend of `bearer` |
//! | `authz` | yes | [`authz`] and `GatewaySecurityLayer` |
//! | `openapi` | with `validate` | [`openapi`]: OpenAPI 3.0/3.1 import for `validate` and `authz` |
//! | `validate` | yes | [`validate`]: JSON Schema / OpenAPI validation, JSON limits |
//! | `axum` | yes | extractors for [`Principal`] and [`Claims`] |
//! | `oidc` | no | [`oidc`]: OpenID Connect login (code + PKCE), sessions, refresh, logout |
//! | `cors` | no | `GatewaySecurityBuilder::cors` (tower-http's `CorsLayer` in front) |
//! | `shield` | with `rate-limit` | [`shield`]: client IP behind trusted proxies, IP allow/deny lists, brute-force blocking |
//! | `rate-limit` | yes | [`rate_limit`]: GCRA limits per IP, key, subject, client, tenant or route, tiers (includes `shield`) |
//! | `metrics` | yes | `observe::MetricsObserver`: decisions through the `metrics` facade |
//! | `redis` | no | [`redis`]: shared state on Redis or Redis Cluster (`RedisKeyStore` with `api-key`) |
//! | `config` | yes | `config`: the authorization policy and validation as a YAML, TOML or JSON file, with its own tests |
//! | `proxy` | no | `proxy::Proxy`: a reverse proxy to one HTTP upstream, streamed, with the caller's identity as headers |
//! | `identity-token` | no | `proxy::IdentityToken`: the caller's identity also as a short-lived ES256 JWT signed by the proxy, its JWKS served by it (enables `proxy`) |
//! | `cli` | no | the `portcullis` binary: `check`, `explain` and `serve` a policy file (enables `config`, `proxy`, `identity-token`) |
//!
//! Guides, the threat model, the architecture and the benchmarks are in the repository's
//! `docs/` folder.
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod authenticate;
mod body;
mod client_ip;
mod error;
mod future;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(any(feature = "bearer", feature = "redis"))]
mod net;
pub mod observe;
mod principal;
#[cfg(any(feature = "authz", feature = "validate"))]
mod query;
mod rejection;
#[cfg(any(feature = "authz", feature = "validate", feature = "shield"))]
mod route;
#[cfg(any(feature = "shield", feature = "bearer"))]
mod store;
#[cfg(feature = "authz")]
mod suggest;
mod text;

mod secret;

#[cfg(feature = "axum")]
mod extract;

#[cfg(feature = "authz")]
mod gateway;

#[cfg(feature = "api-key")]
#[cfg_attr(docsrs, doc(cfg(feature = "api-key")))]
pub mod api_key;

#[cfg(feature = "bearer")]
#[cfg_attr(docsrs, doc(cfg(feature = "bearer")))]
pub mod bearer;

#[cfg(feature = "bearer")]
#[cfg_attr(docsrs, doc(cfg(feature = "bearer")))]
pub mod jwt;

#[cfg(feature = "bearer")]
#[cfg_attr(docsrs, doc(cfg(feature = "bearer")))]
pub mod remote;

#[cfg(feature = "oidc")]
#[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
pub mod oidc;

#[cfg(feature = "authz")]
#[cfg_attr(docsrs, doc(cfg(feature = "authz")))]
pub mod authz;

#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod openapi;

#[cfg(feature = "validate")]
#[cfg_attr(docsrs, doc(cfg(feature = "validate")))]
pub mod validate;

#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub mod config;

#[cfg(feature = "proxy")]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy")))]
pub mod proxy;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

#[cfg(feature = "shield")]
#[cfg_attr(docsrs, doc(cfg(feature = "shield")))]
pub mod shield;

#[cfg(feature = "rate-limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "rate-limit")))]
pub mod rate_limit;

#[doc(inline)]
pub use crate::authenticate::{
    AuthFuture, AuthOutcome, Authenticate, Authentication, AuthenticationLayer, Challenges,
    NotReady, ReadyFuture, ResponseFuture as AuthenticationFuture,
};
#[doc(inline)]
pub use crate::body::ResponseBody;
#[doc(inline)]
pub use crate::client_ip::ClientIp;
#[doc(inline)]
pub use crate::error::ConfigError;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
#[doc(inline)]
pub use crate::extract::Claims;
#[cfg(feature = "authz")]
#[cfg_attr(docsrs, doc(cfg(feature = "authz")))]
#[doc(inline)]
pub use crate::gateway::{
    GatewaySecurity, GatewaySecurityBuilder, GatewaySecurityLayer, ReloadHandle, Reloadable,
    ReloadableLayer, ResponseFuture as GatewaySecurityFuture,
};
#[doc(inline)]
pub use crate::principal::{AuthMethod, Names, Principal, PrincipalBuilder};
#[doc(inline)]
pub use crate::rejection::{
    Challenge, ProblemJson, Reason, Rejection, RejectionResponse, Violation,
};
#[doc(inline)]
pub use crate::secret::ClientSecret;
#[cfg(feature = "oidc")]
#[cfg_attr(docsrs, doc(cfg(feature = "oidc")))]
#[doc(inline)]
pub use crate::secret::SessionKey;
