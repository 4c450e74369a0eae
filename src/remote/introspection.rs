//! The RFC 7662 exchange: asking an authorization server about a token, as a client
//! authenticated by `client_secret_basic` or `client_secret_post`. What the answer means
//! (active, audience, expiry) and how it is cached are the bearer layer's business.

use std::fmt;
use std::sync::Arc;

pub(crate) use super::client_auth::ClientAuth;
#[cfg(test)]
use super::client_auth::form_encode;
use super::client_auth::post_form_as_client;
use super::{HttpClient, RemoteError};
use crate::secret::ClientSecret;
use serde_json::{Map, Value};

/// What an introspection endpoint must answer with.
const ACCEPT_JSON: &[&str] = &["application/json"];

/// Why there is no usable answer: the token could not be judged (503, never 401).
#[derive(Debug)]
pub(crate) enum Unanswered {
    /// The exchange failed (transport, timeout, size, redirect, content type).
    Exchange(RemoteError),
    /// The endpoint answered with a non-2xx status.
    Status(u16),
    /// The answer is not a JSON object.
    Garbage,
}

impl Unanswered {
    /// The log-only cause code.
    pub(crate) fn cause(&self) -> &'static str {
        match self {
            Self::Exchange(_) => "introspection_unavailable",
            Self::Status(_) => "introspection_status",
            Self::Garbage => "introspection_garbage",
        }
    }
}

impl fmt::Display for Unanswered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exchange(error) => write!(f, "{error}"),
            Self::Status(status) => write!(f, "HTTP status {status}"),
            Self::Garbage => f.write_str("the answer is not a JSON object"),
        }
    }
}

/// An introspection endpoint and the client credentials to call it with.
pub(crate) struct IntrospectionClient {
    pub(crate) url: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: ClientSecret,
    pub(crate) auth: ClientAuth,
    pub(crate) http: Arc<dyn HttpClient>,
}

impl fmt::Debug for IntrospectionClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionClient")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl IntrospectionClient {
    /// Asks about `token`: the answer's members, or why there is none.
    pub(crate) async fn ask(&self, token: &str) -> Result<Map<String, Value>, Unanswered> {
        let form = [("token", token), ("token_type_hint", "access_token")];
        let response = post_form_as_client(
            &*self.http,
            &self.url,
            &form,
            &self.client_id,
            &self.client_secret,
            self.auth,
            ACCEPT_JSON,
        )
        .await
        .map_err(Unanswered::Exchange)?;
        if !(200..300).contains(&response.status) {
            return Err(Unanswered::Status(response.status));
        }
        match serde_json::from_slice::<Value>(&response.body) {
            Ok(Value::Object(answer)) => Ok(answer),
            _ => Err(Unanswered::Garbage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("a-b_c.d*9"), "a-b_c.d*9");
        assert_eq!(form_encode("a b:c%"), "a+b%3Ac%25");
    }
}
