//! Remote material from the identity provider: its metadata (discovery), and fetching and
//! caching its JWKS, directly or through discovery. Depends on no layer.
//!
//! Everything fetched goes through an [`HttpClient`] ([`ReqwestClient`] by default) that
//! bounds time and size, accepts only JSON content types and never follows a redirect to
//! another origin. [`JwksCache`] keeps the current key set, refreshes it on a timer and on
//! an unknown `kid` (rate-limited, single-flight), keeps the last good set when a refresh
//! fails (for a bounded time), and never holds a lock across a fetch.

mod client;
pub(crate) mod client_auth;
mod discovery;
pub(crate) mod introspection;
mod jwks;

#[cfg(feature = "oidc")]
pub(crate) use self::client::content_type_accepted;
#[doc(inline)]
pub use self::client::{HttpClient, HttpFuture, HttpResponse, ReqwestClient, ReqwestClientBuilder};
#[doc(inline)]
pub use self::discovery::ProviderMetadata;
#[doc(inline)]
pub use self::jwks::{JwksCache, JwksCacheBuilder, JwksSource};

use crate::error::ConfigError;
use crate::jwt::KeySetError;

/// Why fetching remote material failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The request took longer than the timeout.
    #[error("the request timed out")]
    Timeout,
    /// The connection or the exchange failed.
    #[error("transport error: {reason}")]
    Transport {
        /// What went wrong.
        reason: String,
    },
    /// The answer had a status other than 2xx.
    #[error("unexpected HTTP status {status}")]
    Status {
        /// The status code.
        status: u16,
    },
    /// The answer's content type is missing or not an accepted one.
    #[error("unexpected content type {content_type:?}")]
    ContentType {
        /// The content type sent, if any.
        content_type: Option<String>,
    },
    /// The answer is larger than the size cap.
    #[error("the response exceeds {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// A redirect to another origin (or too many redirects) was refused.
    #[error("redirect refused")]
    Redirect,
    /// A URL breaks the URL rule (https, or http to a loopback host).
    #[error("URL `{url}` refused: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The discovery document is not usable.
    #[error("discovery failed: {reason}")]
    Discovery {
        /// What was wrong with it.
        reason: String,
    },
    /// The JWKS document is not usable (unparseable, or no usable key).
    #[error("unusable JWKS: {0}")]
    KeySet(KeySetError),
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built: {reason}")]
    Client {
        /// Why.
        reason: String,
    },
}

/// Checks the URL rule: `https`, or `http` to a loopback host (127.0.0.0/8, `::1`,
/// `localhost`), or `http` anywhere when `allow_http`. No credentials in the URL.
pub(crate) fn check_url(url: &str, allow_http: bool) -> Result<reqwest::Url, RemoteError> {
    let refuse = |reason| RemoteError::Url {
        url: client_short(url),
        reason,
    };
    let parsed = reqwest::Url::parse(url).map_err(|_| refuse("not an absolute URL"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refuse("credentials in the URL"));
    }
    let host = parsed.host_str().ok_or_else(|| refuse("no host"))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if allow_http || is_loopback(host) => Ok(parsed),
        "http" => Err(refuse(
            "plain http to a non-loopback host; use https or `insecure_allow_http()`",
        )),
        _ => Err(refuse("the scheme must be https")),
    }
}

fn is_loopback(host: &str) -> bool {
    crate::net::is_loopback_host(host)
}

fn client_short(text: &str) -> String {
    client::short(text)
}

impl RemoteError {
    /// The build-time configuration error for a URL that breaks the URL rule.
    pub(crate) fn into_config_error(self) -> ConfigError {
        match self {
            Self::Url { url, reason } => ConfigError::InvalidUrl { url, reason },
            other => ConfigError::HttpClient {
                reason: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rule() {
        assert!(check_url("https://idp.example/jwks", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080/jwks", false).is_ok());
        assert!(check_url("http://127.9.9.9/jwks", false).is_ok());
        assert!(check_url("http://[::1]:1/jwks", false).is_ok());
        assert!(check_url("http://localhost/jwks", false).is_ok());
        assert!(check_url("http://idp.example/jwks", false).is_err());
        assert!(check_url("http://idp.example/jwks", true).is_ok());
        assert!(check_url("http://10.0.0.1/jwks", false).is_err());
        assert!(check_url("ftp://idp.example/jwks", true).is_err());
        assert!(check_url("https://user:pw@idp.example/jwks", false).is_err());
        assert!(check_url("not a url", false).is_err());
        assert!(check_url("http://localhost.evil.example/", false).is_err());
    }
}
