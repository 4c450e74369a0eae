#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod authenticate;
mod body;
mod error;
mod future;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod observe;
mod principal;
mod rejection;
#[cfg(any(feature = "authz", feature = "validate"))]
mod route;
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

#[cfg(feature = "authz")]
#[cfg_attr(docsrs, doc(cfg(feature = "authz")))]
pub mod authz;

#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod openapi;

#[cfg(feature = "validate")]
#[cfg_attr(docsrs, doc(cfg(feature = "validate")))]
pub mod validate;

#[doc(inline)]
pub use crate::authenticate::{
    AuthFuture, AuthOutcome, Authenticate, Authentication, AuthenticationLayer, Challenges,
    ResponseFuture as AuthenticationFuture,
};
#[doc(inline)]
pub use crate::body::ResponseBody;
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
    GatewaySecurity, GatewaySecurityBuilder, GatewaySecurityLayer,
    ResponseFuture as GatewaySecurityFuture,
};
#[doc(inline)]
pub use crate::principal::{AuthMethod, Names, Principal, PrincipalBuilder};
#[doc(inline)]
pub use crate::rejection::{
    Challenge, ProblemJson, Reason, Rejection, RejectionResponse, Violation,
};
#[doc(inline)]
pub use crate::secret::ClientSecret;
