//! axum extractors: [`Principal`], `Option<Principal>`, and [`Claims<T>`].
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use portcullis::{Claims, Principal};
//! use serde::Deserialize;
//!
//! // 401 when the request has no authenticated caller.
//! async fn whoami(principal: Principal) -> Json<Principal> {
//!     Json(principal)
//! }
//!
//! // Works with and without a caller.
//! async fn greet(principal: Option<Principal>) -> String {
//!     match principal {
//!         Some(p) => format!("hello, {}", p.subject()),
//!         None => "hello, stranger".to_owned(),
//!     }
//! }
//!
//! // Typed view of the claims (a token's payload, an API key's metadata); 403 when they do
//! // not fit.
//! #[derive(Deserialize)]
//! struct Team {
//!     team: String,
//! }
//! async fn team(Claims(team): Claims<Team>) -> String {
//!     team.team
//! }
//!
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .route("/greet", get(greet))
//!     .route("/team", get(team));
//! ```
//!
//! Your own extractors build on `Principal`: see `examples/custom_authenticator.rs` for an
//! `Admin` extractor that also checks a role.

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::authenticate::Challenges;
use crate::principal::Principal;
use crate::rejection::{Reason, Rejection};

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| missing_credentials(parts))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Infallible> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

fn missing_credentials(parts: &Parts) -> Rejection {
    let rejection = Rejection::new(Reason::MissingCredentials);
    match parts.extensions.get::<Challenges>() {
        Some(challenges) => as_layer_renders(rejection.with_challenges(challenges.shared()), parts),
        None => rejection,
    }
}

/// The rejection, to be rendered as the authentication layer in front renders its own.
fn as_layer_renders(rejection: Rejection, parts: &Parts) -> Rejection {
    match parts.extensions.get::<Challenges>() {
        Some(challenges) => rejection.rendered_with(challenges.renderer()),
        None => rejection,
    }
}

/// The caller's claims, deserialized into `T`: a token's payload, or an API key's metadata.
///
/// Rejects with 401 when there is no authenticated caller, and with 403 (`invalid_claims`)
/// when the claims do not deserialize into `T`.
#[derive(Debug, Clone)]
pub struct Claims<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Claims<T> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .ok_or_else(|| missing_credentials(parts))?;
        T::deserialize(principal.claims())
            .map(Claims)
            .map_err(|error| {
                tracing::debug!(
                    target: "portcullis::extract",
                    subject = principal.subject(),
                    %error,
                    "claims do not fit the handler's type"
                );
                as_layer_renders(Rejection::new(Reason::InvalidClaims), parts)
            })
    }
}

impl IntoResponse for Rejection {
    /// Renders the rejection with its challenges: as the layer in front renders its
    /// refusals when the rejection comes from an extractor behind one, else as
    /// problem+json.
    fn into_response(self) -> Response {
        self.render_own().map(axum_core::body::Body::from)
    }
}
