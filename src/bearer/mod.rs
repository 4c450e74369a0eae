//! OAuth 2.0 bearer-token authentication: [`BearerLayer`], [`BearerAuthenticator`], per
//! issuer [`IssuerRules`], and the [`KeySet`] they verify with.
//!
//! Keys come from your code (PEM, a single JWK, an HMAC secret, or a JWKS document you
//! load with [`KeySet::from_jwks`], which skips unusable keys one by one), or are fetched
//! from a JWKS URL ([`IssuerRulesBuilder::jwks_url`]) or through discovery
//! ([`IssuerRulesBuilder::discover`]) and kept fresh by a
//! [`JwksCache`](crate::remote::JwksCache). While no usable fetched key set is loaded,
//! requests with a token get 503 with `Retry-After` (never 401). Tokens that are not JWTs
//! (three base64url parts) are introspected (RFC 7662) when an [`Introspection`] is
//! configured: inactive ones get 401, and an unusable endpoint gives 503 with
//! `Retry-After`. Introspection is bounded (token shape, concurrent calls, a call budget)
//! so that made-up tokens cannot drive the provider; see [`Introspection`].
//!
//! A request presents a JWT access token (RFC 9068) as `Authorization: Bearer <token>`.
//! The layer:
//!
//! 1. refuses a request with a malformed `Authorization: Bearer` header, two tokens, or a
//!    token in the query string (400);
//! 2. refuses tokens over the size limit before decoding them;
//! 3. parses the token strictly: three base64url parts, no duplicate JSON members, `alg`
//!    from the issuer's allow-list (never `none`), no header-supplied keys (`jwk`, `jku`,
//!    `x5u`, `x5c`), no `crit`, no nested JWT (`cty: JWT`), `typ` `at+jwt`;
//! 4. picks the issuer by `iss`, the key by `kid`, and verifies the signature with an
//!    algorithm the key's type allows;
//! 5. checks `exp` (required), `nbf`, `iat` (each a number up to year 9999), the token's
//!    lifetime (at most 24 hours by default), `iss`, `aud` and `sub` (required, RFC 9068)
//!    with strict JSON types;
//! 6. attaches a [`Principal`](crate::Principal) with `sub`, scopes (`scope`, `scp`)
//!    and roles (a configured claim path), and removes the token from the request.
//!
//! Every bad token gets `401` with
//! `WWW-Authenticate: Bearer realm="api", error="invalid_token", error_description="…"`;
//! the precise reason is logged. A request with no bearer token goes on without a
//! principal: the authorization rules decide whether the route needs one.
//!
//! # Example
//!
//! ```
//! use portcullis::bearer::{BearerAuthenticator, BearerLayer, IssuerRules, KeySet, VerificationKey};
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = VerificationKey::from_hmac_secret(b"a-secret-of-at-least-32-bytes!!!")?;
//! let rules = IssuerRules::builder("https://issuer.example")
//!     .audience("orders-api")
//!     .keys(KeySet::new([key])?)
//!     .build()?;
//! let service = ServiceBuilder::new()
//!     .layer(BearerLayer::new(BearerAuthenticator::new(rules)))
//!     .service(service_fn(|_: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(String::new()))
//!     }));
//!
//! let request = Request::get("/").header("authorization", "Bearer e30.e30.c2ln").body(String::new())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     response.headers()["www-authenticate"],
//!     r#"Bearer realm="api", error="invalid_token", error_description="The token is malformed.""#
//! );
//! # Ok(()) }
//! ```

mod authenticator;
mod cache;
mod introspection;
mod load;
mod revocation;
pub(crate) mod rules;

use crate::AuthenticationLayer;

#[doc(inline)]
pub use self::authenticator::{BearerAuthenticator, BearerAuthenticatorBuilder};
#[doc(inline)]
pub use self::introspection::{Introspection, IntrospectionBuilder, IntrospectionStats};
#[cfg(feature = "redis")]
pub(crate) use self::revocation::revocation_id;
#[doc(inline)]
pub use self::revocation::{
    MemoryRevocations, Revocation, RevocationError, RevokeFuture, TokenRevocations,
};
#[doc(inline)]
pub use self::rules::{IssuerRules, IssuerRulesBuilder};
#[doc(inline)]
pub use crate::jwt::{
    Algorithm, KeyError, KeySet, KeySetError, KeyType, SkippedKey, VerificationKey,
    select_crypto_backend,
};
#[doc(inline)]
pub use crate::store::StoreFuture;

/// Authenticates requests by bearer token; see the [module documentation](self).
///
/// The one authentication layer, [`AuthenticationLayer`], under the name of what it runs
/// here: `BearerLayer::new(authenticator)` is `AuthenticationLayer::new(authenticator)`, and
/// `.and(...)` adds other authenticators beside it. Its service is the same
/// [`Authentication`](crate::Authentication) service every chain uses, so it stacks with
/// other layers, and inside `GatewaySecurityLayer`, unchanged.
pub type BearerLayer = AuthenticationLayer;
