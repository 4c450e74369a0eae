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
//! `Retry-After`.
//!
//! A request presents a JWT access token (RFC 9068) as `Authorization: Bearer <token>`.
//! The layer:
//!
//! 1. refuses a request with a malformed `Authorization: Bearer` header, two tokens, or a
//!    token in the query string (400);
//! 2. refuses tokens over the size limit before decoding them;
//! 3. parses the token strictly: three base64url parts, no duplicate JSON members, `alg`
//!    from the issuer's allow-list (never `none`), no header-supplied keys (`jwk`, `jku`,
//!    `x5u`, `x5c`), no `crit`, `typ` `at+jwt`;
//! 4. picks the issuer by `iss`, the key by `kid`, and verifies the signature with an
//!    algorithm the key's type allows;
//! 5. checks `exp` (required), `nbf`, `iat`, `iss` and `aud` with strict JSON types;
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
mod keys;
mod rules;
mod token;

use std::fmt;

use crate::{Authentication, AuthenticationLayer, RejectionResponse};
use tower_layer::Layer;

#[doc(inline)]
pub use self::authenticator::{BearerAuthenticator, BearerAuthenticatorBuilder};
#[doc(inline)]
pub use self::introspection::{Introspection, IntrospectionBuilder};
#[doc(inline)]
pub use self::keys::{KeyError, KeySet, KeySetError, KeyType, SkippedKey, VerificationKey};
#[doc(inline)]
pub use self::rules::{BearerConfigError, IssuerRules, IssuerRulesBuilder};
#[doc(inline)]
pub use jsonwebtoken::Algorithm;

/// The strict JWS parser, for the fuzz targets (`crate::fuzzing`).
#[cfg(fuzzing)]
pub(crate) use self::token::{Failure, parse as parse_token};

/// Authenticates requests by bearer token; see the [module documentation](self).
///
/// The service it makes is the same [`Authentication`] service every authenticator chain
/// uses, so it stacks with other layers unchanged.
#[derive(Clone)]
#[must_use]
pub struct BearerLayer {
    inner: AuthenticationLayer,
}

impl BearerLayer {
    /// A layer checking tokens with `authenticator`.
    pub fn new(authenticator: BearerAuthenticator) -> Self {
        Self {
            inner: AuthenticationLayer::new(authenticator),
        }
    }

    /// Lets CORS preflight requests through without a token. Defaults to false.
    pub fn allow_cors_preflight(self, allow: bool) -> Self {
        Self {
            inner: self.inner.allow_cors_preflight(allow),
        }
    }

    /// Renders rejections with `renderer` instead of problem+json.
    pub fn rejection_response(self, renderer: impl RejectionResponse) -> Self {
        Self {
            inner: self.inner.rejection_response(renderer),
        }
    }
}

impl fmt::Debug for BearerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BearerLayer").field(&self.inner).finish()
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = Authentication<S>;

    fn layer(&self, inner: S) -> Authentication<S> {
        self.inner.layer(inner)
    }
}

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "the `bearer` feature needs a crypto backend: enable `aws-lc-rs` (default) or `rust-crypto`"
);

/// With both crypto backends compiled in (as `--all-features` does), jsonwebtoken cannot
/// pick one by itself and would panic when verifying: this chooses aws-lc-rs, the faster.
///
/// The bearer layer calls it before it parses any key; call it yourself before using
/// jsonwebtoken directly in a program that compiles both backends. Installing twice is a
/// no-op; with one backend it does nothing.
pub fn select_crypto_backend() {
    #[cfg(all(feature = "aws-lc-rs", feature = "rust-crypto"))]
    {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    }
}
