//! [`HttpClient`]: the small HTTP interface remote material is fetched through, and
//! [`ReqwestClient`], its default implementation.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::RemoteError;

/// The default timeout of a whole request, body included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default response-size cap, in bytes.
const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// The most redirects followed (all to the same origin).
const MAX_REDIRECTS: usize = 5;

/// What an [`HttpClient`] answers with. Build one with [`HttpResponse::new`] (more
/// fields may come, such as `ETag`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type` header, if any, as sent.
    pub content_type: Option<String>,
    /// The `max-age` directive of `Cache-Control`, if any.
    pub cache_control_max_age: Option<Duration>,
    /// The response body (never more than the client's size cap).
    pub body: Bytes,
}

impl HttpResponse {
    /// An answer with `status`, `content_type` (as sent, if any) and `body`, and no
    /// `Cache-Control: max-age`.
    pub fn new(status: u16, content_type: Option<&str>, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type: content_type.map(str::to_owned),
            cache_control_max_age: None,
            body: body.into(),
        }
    }

    /// The answer with `Cache-Control: max-age` of `max_age`.
    #[must_use]
    pub fn with_max_age(mut self, max_age: Option<Duration>) -> Self {
        self.cache_control_max_age = max_age;
        self
    }
}

/// The boxed future an [`HttpClient`] returns.
pub type HttpFuture<'a> =
    Pin<Box<dyn Future<Output = Result<HttpResponse, RemoteError>> + Send + 'a>>;

/// Talks to an identity provider: fetches documents with `GET` and posts forms (token
/// introspection) with `POST`.
///
/// Implementations must bound the time and the size of a response, and must not follow
/// redirects to another origin. The caller checks the status and the content type again,
/// so a custom client cannot weaken those checks. [`ReqwestClient`] is the default.
pub trait HttpClient: Send + Sync + 'static {
    /// Sends `GET url` with `Accept: <accept joined by ", ">`.
    ///
    /// A response with a non-2xx status is returned as `Ok` with that status; transport
    /// failures, timeouts, oversize bodies, refused redirects and (for 2xx answers)
    /// content types not in `accept` are errors.
    fn get(&self, url: &str, accept: &[&str]) -> HttpFuture<'_>;

    /// Sends `POST url` with `form` as an `application/x-www-form-urlencoded` body,
    /// `Accept: <accept joined by ", ">`, and, when `basic_auth` is given,
    /// `Authorization: Basic base64(user:password)` (the two parts are used as given: the
    /// caller encodes them if a scheme such as RFC 6749 section 2.3.1 requires it).
    ///
    /// Same contract as [`get`](Self::get): non-2xx statuses are `Ok`; transport
    /// failures, timeouts, oversize bodies, refused redirects and (for 2xx answers)
    /// content types not in `accept` are errors.
    fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic_auth: Option<(&str, &str)>,
        accept: &[&str],
    ) -> HttpFuture<'_>;

    /// Sends `GET url` with `Authorization: Bearer <token>` (the OpenID Connect userinfo
    /// endpoint). Same contract as [`get`](Self::get).
    ///
    /// Defaults to refusing with [`RemoteError::Client`], so that clients written before
    /// it keep compiling; [`ReqwestClient`] implements it.
    fn get_with_bearer(&self, url: &str, token: &str, accept: &[&str]) -> HttpFuture<'_> {
        let _ = (url, token, accept);
        Box::pin(std::future::ready(Err(RemoteError::Client {
            reason: "this HTTP client does not send bearer requests".to_owned(),
        })))
    }
}

/// The default [`HttpClient`], on reqwest with rustls.
///
/// Each request is bounded by a timeout (default 5 s) and a response-size cap (default
/// 1 MiB, enforced while the body streams in); redirects are followed only within the same
/// origin (scheme, host and port), at most five times.
#[derive(Clone)]
pub struct ReqwestClient {
    client: reqwest::Client,
    max_response_bytes: usize,
    timeout: Duration,
}

impl fmt::Debug for ReqwestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestClient")
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl ReqwestClient {
    /// A client with the default timeout and size cap.
    ///
    /// # Errors
    ///
    /// [`RemoteError::Client`] if the TLS backend cannot be set up.
    pub fn new() -> Result<Self, RemoteError> {
        Self::builder().build()
    }

    /// Configures the timeout and the size cap.
    pub fn builder() -> ReqwestClientBuilder {
        ReqwestClientBuilder {
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            follow_redirects: true,
        }
    }

    async fn fetch(
        &self,
        mut request: reqwest::RequestBuilder,
        accept: &[&str],
    ) -> Result<HttpResponse, RemoteError> {
        if !accept.is_empty() {
            request = request.header(reqwest::header::ACCEPT, accept.join(", "));
        }
        let mut response = request.send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let cache_control_max_age = response
            .headers()
            .get_all(reqwest::header::CACHE_CONTROL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(max_age);
        if (200..300).contains(&status) && !content_type_accepted(content_type.as_deref(), accept) {
            return Err(RemoteError::ContentType {
                content_type: content_type.map(|text| short(&text)),
            });
        }
        let limit = self.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(RemoteError::TooLarge { limit });
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(RemoteError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            content_type,
            cache_control_max_age,
            body: body.freeze(),
        })
    }
}

impl HttpClient for ReqwestClient {
    fn get_with_bearer(&self, url: &str, token: &str, accept: &[&str]) -> HttpFuture<'_> {
        let request = self.client.get(url).bearer_auth(token);
        let accept: Vec<String> = accept.iter().map(|s| (*s).to_owned()).collect();
        Box::pin(async move {
            let accept: Vec<&str> = accept.iter().map(String::as_str).collect();
            self.fetch(request, &accept).await
        })
    }

    fn get(&self, url: &str, accept: &[&str]) -> HttpFuture<'_> {
        let url = url.to_owned();
        let accept: Vec<String> = accept.iter().map(|s| (*s).to_owned()).collect();
        Box::pin(async move {
            let accept: Vec<&str> = accept.iter().map(String::as_str).collect();
            self.fetch(self.client.get(url), &accept).await
        })
    }

    fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic_auth: Option<(&str, &str)>,
        accept: &[&str],
    ) -> HttpFuture<'_> {
        let mut request = self.client.post(url).form(form);
        if let Some((user, password)) = basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let accept: Vec<String> = accept.iter().map(|s| (*s).to_owned()).collect();
        Box::pin(async move {
            let accept: Vec<&str> = accept.iter().map(String::as_str).collect();
            self.fetch(request, &accept).await
        })
    }
}

/// Configures a [`ReqwestClient`]; see [`ReqwestClient::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ReqwestClientBuilder {
    timeout: Duration,
    max_response_bytes: usize,
    follow_redirects: bool,
}

impl ReqwestClientBuilder {
    /// Gives up on a request (connection, headers and body) after `timeout`. Defaults to 5 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Refuses responses larger than `bytes`. Defaults to 1 MiB.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Follows no redirect at all: a `3xx` answer is returned as it is (and, being no
    /// `2xx`, refused by every caller). Defaults to following up to five redirects within
    /// the same origin. The OpenID Connect relying party's default client uses this: its
    /// token requests carry codes and secrets.
    pub fn no_redirects(mut self) -> Self {
        self.follow_redirects = false;
        self
    }

    /// Finishes the client.
    ///
    /// # Errors
    ///
    /// [`RemoteError::Client`] for a zero timeout or size cap, or if the TLS backend
    /// cannot be set up.
    pub fn build(self) -> Result<ReqwestClient, RemoteError> {
        if self.timeout.is_zero() || self.max_response_bytes == 0 {
            return Err(RemoteError::Client {
                reason: "the timeout and the size cap must be greater than zero".to_owned(),
            });
        }
        let same_origin_policy = reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if !same_origin {
                attempt.error("redirect to another origin refused")
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        });
        let policy = if self.follow_redirects {
            same_origin_policy
        } else {
            reqwest::redirect::Policy::none()
        };
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .redirect(policy)
            .build()
            .map_err(|error| RemoteError::Client {
                reason: error.to_string(),
            })?;
        Ok(ReqwestClient {
            client,
            max_response_bytes: self.max_response_bytes,
            timeout: self.timeout,
        })
    }
}

fn classify(error: reqwest::Error) -> RemoteError {
    if error.is_timeout() {
        RemoteError::Timeout
    } else if error.is_redirect() {
        RemoteError::Redirect
    } else {
        RemoteError::Transport {
            reason: short(&error.to_string()),
        }
    }
}

/// Whether `content_type` (parameters ignored, case-insensitive) is one of `accept`.
pub(crate) fn content_type_accepted(content_type: Option<&str>, accept: &[&str]) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    accept.iter().any(|ok| ok.eq_ignore_ascii_case(essence))
}

/// The `max-age` of one `Cache-Control` header value.
pub(crate) fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, seconds) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        let seconds: u64 = seconds.trim().trim_matches('"').parse().ok()?;
        Some(Duration::from_secs(seconds))
    })
}

/// At most 200 bytes of `text`, on a character boundary, for error messages.
/// Remote-derived `text`, cut to keep in an error.
pub(crate) fn short(text: &str) -> String {
    crate::text::truncate(text, 200).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let ok = ["application/json", "application/jwk-set+json"];
        assert!(content_type_accepted(Some("application/json"), &ok));
        assert!(content_type_accepted(
            Some("Application/JSON; charset=utf-8"),
            &ok
        ));
        assert!(content_type_accepted(Some("application/jwk-set+json"), &ok));
        assert!(!content_type_accepted(Some("text/html"), &ok));
        assert!(!content_type_accepted(None, &ok));
    }

    #[test]
    fn max_ages() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=-1"), None);
        assert_eq!(max_age("max-age=99999999999999999999999"), None);
    }
}
