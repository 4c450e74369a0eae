//! [`TokenHttp`]: oauth2's HTTP client for the token and revocation requests, over our
//! `remote::HttpClient`, so that its bounds hold for them too: the client's timeout and
//! response-size cap, no redirect followed (the relying party's default client follows
//! none), JSON only, a backstop on the whole request and a bound on the requests in flight.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use zeroize::Zeroizing;

use super::Inner;
use crate::remote::{RemoteError, content_type_accepted};

/// The longest one token request may take, whatever the HTTP client does.
const BACKSTOP: Duration = Duration::from_secs(15);
/// What is accepted when oauth2's request says nothing.
const ACCEPT_JSON: &str = "application/json";

/// Sends oauth2's requests (form `POST`s) through the relying party's `HttpClient`.
///
/// Only `2xx` and `4xx` answers reach oauth2 (a `2xx` only with an accepted content
/// type); any other status is an error here. The status of the last answer is kept, to
/// tell a refusal (`4xx`) from an unusable answer once oauth2 has failed to read it.
pub(crate) struct TokenHttp<'a> {
    inner: &'a Inner,
    status: AtomicU16,
}

impl<'a> TokenHttp<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Self {
            inner,
            status: AtomicU16::new(0),
        }
    }

    /// The status of the last answer, if one came.
    pub(crate) fn status(&self) -> Option<u16> {
        Some(self.status.load(Ordering::Relaxed)).filter(|&status| status != 0)
    }

    async fn send(
        &self,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, RemoteError> {
        let Ok(_permit) = self.inner.token_requests.try_acquire() else {
            return Err(RemoteError::Transport {
                reason: "too many token requests in flight".to_owned(),
            });
        };
        let (parts, body) = request.into_parts();
        // The body holds the code, the verifier or a token, and maybe the client secret.
        let body = Zeroizing::new(body);
        if parts.method != http::Method::POST {
            return Err(RemoteError::Client {
                reason: format!("oauth2 asked for a {} request", parts.method),
            });
        }
        let form: Vec<(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> =
            form_urlencoded::parse(&body).collect();
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (&**k, &**v)).collect();
        // oauth2 puts `client_secret_basic` credentials, form-encoded, in a Basic header;
        // taken apart here for `HttpClient::post_form`, which encodes them again.
        let credentials =
            match parts.headers.get(AUTHORIZATION) {
                None => None,
                Some(value) => Some(basic_credentials(value.as_bytes()).ok_or_else(|| {
                    RemoteError::Client {
                        reason: "oauth2 sent an unreadable Authorization header".to_owned(),
                    }
                })?),
            };
        let basic_auth = credentials
            .as_deref()
            .and_then(|credentials| credentials.split_once(':'));
        let accept_header = parts
            .headers
            .get(ACCEPT)
            .and_then(|value| value.to_str().ok())
            .unwrap_or(ACCEPT_JSON);
        let accept: Vec<&str> = accept_header
            .split(',')
            .map(|media| media.split(';').next().unwrap_or_default().trim())
            .filter(|media| !media.is_empty())
            .collect();
        let url = parts.uri.to_string();
        let response = match tokio::time::timeout(
            BACKSTOP,
            self.inner.http.post_form(&url, &form, basic_auth, &accept),
        )
        .await
        {
            Ok(result) => result?,
            Err(_) => return Err(RemoteError::Timeout),
        };
        self.status.store(response.status, Ordering::Relaxed);
        let status = response.status;
        if (200..300).contains(&status) {
            if !content_type_accepted(response.content_type.as_deref(), &accept) {
                return Err(RemoteError::ContentType {
                    content_type: response
                        .content_type
                        .map(|text| crate::text::truncate(&text, 200).to_owned()),
                });
            }
        } else if !(400..500).contains(&status) {
            return Err(RemoteError::Status { status });
        }
        let mut answer = http::Response::builder().status(status);
        if let Some(content_type) = response
            .content_type
            .as_deref()
            .and_then(|text| http::HeaderValue::from_str(text).ok())
        {
            answer = answer.header(CONTENT_TYPE, content_type);
        }
        answer
            .body(response.body.to_vec())
            .map_err(|error| RemoteError::Client {
                reason: error.to_string(),
            })
    }
}

/// The decoded `user:password` of a `Basic` header value.
fn basic_credentials(value: &[u8]) -> Option<Zeroizing<String>> {
    let decoded = Zeroizing::new(STANDARD.decode(value.strip_prefix(b"Basic ")?).ok()?);
    let text = std::str::from_utf8(&decoded).ok()?;
    text.contains(':').then(|| Zeroizing::new(text.to_owned()))
}

impl<'c> oauth2::AsyncHttpClient<'c> for TokenHttp<'_> {
    type Error = RemoteError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, RemoteError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_taken_apart() {
        let header = format!("Basic {}", STANDARD.encode("app%3A1:s+e%3Acret"));
        let credentials = basic_credentials(header.as_bytes()).unwrap();
        assert_eq!(credentials.split_once(':'), Some(("app%3A1", "s+e%3Acret")));
        for bad in ["Bearer abc", "Basic !!!", "Basic bm9jb2xvbg=="] {
            assert!(basic_credentials(bad.as_bytes()).is_none(), "{bad}");
        }
    }
}
