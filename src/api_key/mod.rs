//! API-key authentication: [`ApiKeyLayer`], the key format, and key stores.
//!
//! Keys look like `pcl_8dK2mQ0vX1aZ` + 32 secret characters + a 6-character checksum (see
//! [`KeyFormat`]). A request presents one in the `x-api-key` header or as
//! `Authorization: ApiKey <key>` (a cookie, or, insecurely, the query string, when
//! configured). The layer:
//!
//! 1. refuses a request carrying two different keys, or a key in the query string;
//! 2. refuses keys with the wrong prefix, length, alphabet or checksum before any lookup;
//! 3. finds the record by the key's public id in a [`KeyStore`] and compares the secret's
//!    digest in constant time;
//! 4. refuses revoked and expired keys, with the same 401 as every other key failure;
//! 5. attaches a [`Principal`](crate::Principal) with the key's owner, roles, scopes, tenant
//!    and metadata, and removes the key from the request before the inner service sees it.
//!
//! A request with no key goes on without a principal: the authorization rules decide
//! whether the route needs one.
//!
//! Keys are issued, listed, rotated and revoked through [`KeyAdmin`]; with the `axum`
//! feature, `KeyAdminApi` serves it over HTTP (an axum `Router` guarded by a role of its
//! own, every change audited).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use http::{Request, Response, StatusCode};
//! use portcullis::api_key::{ApiKeyAuthenticator, ApiKeyLayer, KeyAdmin, MemoryKeyStore, NewKey};
//! use portcullis::Principal;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(MemoryKeyStore::new());
//! let issued = store.issue(NewKey::for_owner("alice").roles(["admin"])).await?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(ApiKeyLayer::new(ApiKeyAuthenticator::new(store)))
//!     .service(service_fn(|request: Request<String>| async move {
//!         // The key has been removed; the principal has been added.
//!         assert!(request.headers().get("x-api-key").is_none());
//!         let owner = request.extensions().get::<Principal>().map(|p| p.subject().to_owned());
//!         Ok::<_, std::convert::Infallible>(Response::new(owner.unwrap_or_default()))
//!     }));
//!
//! let request = Request::get("/")
//!     .header("x-api-key", issued.key.expose_secret())
//!     .body(String::new())?;
//! assert_eq!(service.clone().oneshot(request).await?.status(), StatusCode::OK);
//!
//! let request = Request::get("/").header("x-api-key", "pcl_made-up").body(String::new())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], r#"ApiKey realm="api", error="invalid_key""#);
//! # Ok(()) }
//! ```

mod admin;
mod authenticator;
mod cached;
mod format;
#[cfg(feature = "axum")]
mod http;
mod memory;
mod record;
mod store;

#[doc(inline)]
pub use self::admin::KeyAdmin;
#[doc(inline)]
pub use self::authenticator::{ApiKeyAuthenticator, ApiKeyAuthenticatorBuilder};
#[doc(inline)]
pub use self::cached::{CachedKeyStore, CachedKeyStoreBuilder};
#[doc(inline)]
pub use self::format::{GeneratedKey, KeyFormat, KeyId};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
#[doc(inline)]
pub use self::http::{
    KeyAction, KeyAdminApi, KeyAdminApiBuilder, KeyAdminAudit, KeyAdminAuditLog, KeyAdminEvent,
    KeyAdminOutcome,
};
#[doc(inline)]
pub use self::memory::MemoryKeyStore;
#[doc(inline)]
pub use self::record::{IssuedKey, KeyRecord, NewKey};
#[doc(inline)]
pub use self::store::{KeyStore, Lookup, LookupFuture, StoreError};
#[doc(inline)]
pub use crate::secret::{ApiKey, KeyDigest};

/// The key-format parser's outcome, for the fuzz targets (`crate::fuzzing`).
#[cfg(fuzzing)]
pub(crate) use self::format::FormatError;

use crate::authenticate::AuthenticationLayer;

/// Authenticates requests by API key; see the [module documentation](self).
///
/// The one authentication layer, [`AuthenticationLayer`], under the name of what it runs
/// here: `ApiKeyLayer::new(authenticator)` is `AuthenticationLayer::new(authenticator)`, and
/// `.and(...)` adds other authenticators beside it. Its service is the same
/// [`Authentication`](crate::Authentication) service every chain uses, so it stacks with
/// other layers, and inside `GatewaySecurityLayer`, unchanged.
pub type ApiKeyLayer = AuthenticationLayer;
