//! The provider's token endpoint (code exchange and refresh) and revocation endpoint,
//! through the `remote` HTTP client: bounded in time and size, no redirect to another
//! origin, JSON only.

use std::time::Duration;

use serde::Deserialize;

use super::Inner;
use crate::remote::client_auth::post_form_as_client;
use crate::remote::{ProviderMetadata, RemoteError};

/// The longest one token request may take, whatever the HTTP client does.
const BACKSTOP: Duration = Duration::from_secs(15);
const ACCEPT_JSON: &[&str] = &["application/json"];

/// Why a token request gave no tokens.
#[derive(Debug)]
pub(crate) enum TokenError {
    /// The provider refused (a 4xx answer: `invalid_grant`, `invalid_client`, …).
    Refused(String),
    /// The provider could not be asked or gave an unusable answer (transport error,
    /// timeout, 5xx, malformed JSON, no token endpoint).
    Unavailable(String),
}

/// A successful token response (RFC 6749 section 5.1, OpenID Connect Core 3.1.3.3).
/// `Debug` does not show the tokens.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    pub(crate) token_type: String,
    #[serde(default)]
    pub(crate) id_token: Option<String>,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
    /// A number, or a string of digits (some providers send `"3600"`).
    #[serde(default, deserialize_with = "number_or_digits")]
    pub(crate) expires_in: Option<u64>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
}

/// `expires_in` as a JSON number or a string of digits; anything else is malformed.
fn number_or_digits<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(u64),
        Text(String),
    }
    match Option::<NumberOrText>::deserialize(deserializer)? {
        None => Ok(None),
        Some(NumberOrText::Number(seconds)) => Ok(Some(seconds)),
        Some(NumberOrText::Text(text)) => {
            if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(serde::de::Error::custom("expires_in is not a number"));
            }
            text.parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom("expires_in is not a number"))
        }
    }
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

/// The provider's metadata: discovered already, or fetched now (rate-limited by the key
/// cache's cooldown, single-flight).
pub(crate) async fn metadata(inner: &Inner) -> Option<std::sync::Arc<ProviderMetadata>> {
    if let Some(metadata) = inner.jwks.provider_metadata() {
        return Some(metadata);
    }
    inner.jwks.refresh_for_unknown_kid().await;
    inner.jwks.provider_metadata()
}

/// Exchanges an authorization code (with its PKCE verifier).
pub(crate) async fn exchange_code(
    inner: &Inner,
    code: &str,
    verifier: &str,
) -> Result<TokenResponse, TokenError> {
    request(
        inner,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &inner.redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// Uses a refresh token.
pub(crate) async fn refresh(
    inner: &Inner,
    refresh_token: &str,
) -> Result<TokenResponse, TokenError> {
    request(
        inner,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// Revokes a refresh token at logout (RFC 7009), if the provider has a revocation
/// endpoint. Best effort: a failure is logged, the local logout happens anyway.
pub(crate) async fn revoke(inner: &Inner, refresh_token: &str) {
    let Some(endpoint) = metadata(inner)
        .await
        .and_then(|metadata| metadata.revocation_endpoint.clone())
    else {
        return;
    };
    let form = [
        ("token", refresh_token),
        ("token_type_hint", "refresh_token"),
    ];
    match post(inner, &endpoint, &form).await {
        Ok(response) if (200..300).contains(&response.status) => {}
        Ok(response) => tracing::warn!(status = response.status, "oidc: token revocation refused"),
        Err(error) => tracing::warn!(%error, "oidc: token revocation failed"),
    }
}

async fn request(inner: &Inner, form: &[(&str, &str)]) -> Result<TokenResponse, TokenError> {
    let endpoint = metadata(inner)
        .await
        .and_then(|metadata| metadata.token_endpoint.clone())
        .ok_or_else(|| TokenError::Unavailable("no token endpoint (discovery failed)".into()))?;
    let response = post(inner, &endpoint, form)
        .await
        .map_err(|error| TokenError::Unavailable(error.to_string()))?;
    match response.status {
        200 => {
            let tokens: TokenResponse = serde_json::from_slice(&response.body)
                .map_err(|_| TokenError::Unavailable("malformed token response".into()))?;
            if !tokens.token_type.eq_ignore_ascii_case("bearer") {
                return Err(TokenError::Unavailable(format!(
                    "unsupported token type {}",
                    crate::text::truncate(&tokens.token_type, 40)
                )));
            }
            Ok(tokens)
        }
        400..=499 => {
            let error = serde_json::from_slice::<ErrorResponse>(&response.body)
                .map(|body| crate::text::truncate(&body.error, 64).to_owned())
                .unwrap_or_else(|_| format!("HTTP {}", response.status));
            Err(TokenError::Refused(error))
        }
        status => Err(TokenError::Unavailable(format!("HTTP {status}"))),
    }
}

async fn post(
    inner: &Inner,
    endpoint: &str,
    form: &[(&str, &str)],
) -> Result<crate::remote::HttpResponse, RemoteError> {
    let Ok(_permit) = inner.token_requests.try_acquire() else {
        return Err(RemoteError::Transport {
            reason: "too many token requests in flight".to_owned(),
        });
    };
    match tokio::time::timeout(
        BACKSTOP,
        post_form_as_client(
            &*inner.http,
            endpoint,
            form,
            &inner.client_id,
            inner.client_secret.as_ref(),
            inner.client_auth,
            ACCEPT_JSON,
        ),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(RemoteError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_as_a_number_or_a_string_of_digits() {
        let parse = |expires_in: &str| {
            serde_json::from_str::<TokenResponse>(&format!(
                r#"{{"access_token":"a","token_type":"Bearer"{expires_in}}}"#
            ))
            .map(|response| response.expires_in)
            .ok()
        };
        assert_eq!(parse(r#","expires_in":300"#), Some(Some(300)));
        assert_eq!(parse(r#","expires_in":"300""#), Some(Some(300)));
        assert_eq!(parse(""), Some(None));
        assert_eq!(parse(r#","expires_in":null"#), Some(None));
        for bad in [
            r#","expires_in":"""#,
            r#","expires_in":"-1""#,
            r#","expires_in":"3e3""#,
            r#","expires_in":" 300""#,
            r#","expires_in":"99999999999999999999999""#,
            r#","expires_in":-1"#,
            r#","expires_in":1.5"#,
            r#","expires_in":true"#,
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn debug_does_not_show_the_tokens() {
        let response: TokenResponse = serde_json::from_str(
            r#"{"access_token":"AT-secret","token_type":"Bearer","id_token":"ID-secret",
                "refresh_token":"RT-secret","expires_in":300,"scope":"openid"}"#,
        )
        .unwrap();
        let shown = format!("{response:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("openid"), "{shown}");
    }
}
