//! The userinfo endpoint (OpenID Connect Core 5.3), asked once at login when configured:
//! its claims fill in what the ID token does not say.

use std::time::Duration;

use serde_json::{Map, Value};

use super::Inner;
use super::id_token::Refused;
use super::token_endpoint;

/// The longest the userinfo request may take, whatever the HTTP client does.
const BACKSTOP: Duration = Duration::from_secs(15);

/// The userinfo claims for the user `subject`, with the access token issued at login.
/// `Ok(None)` when the provider has no userinfo endpoint (logged: the ID token's claims
/// are used alone).
pub(crate) async fn fetch(
    inner: &Inner,
    access_token: &str,
    subject: &str,
) -> Result<Option<Map<String, Value>>, Refused> {
    let Some(endpoint) = token_endpoint::metadata(inner)
        .await
        .and_then(|metadata| metadata.userinfo_endpoint.clone())
    else {
        tracing::warn!("oidc: userinfo asked for, but the provider has no userinfo_endpoint");
        return Ok(None);
    };
    let response = tokio::time::timeout(
        BACKSTOP,
        inner
            .http
            .get_with_bearer(&endpoint, access_token, &["application/json"]),
    )
    .await
    .map_err(|_| Refused::Unavailable)?
    .map_err(|error| match error {
        // A signed or encrypted answer (`application/jwt`) is not supported.
        crate::remote::RemoteError::ContentType { .. } => Refused::Invalid("userinfo_content_type"),
        _ => Refused::Unavailable,
    })?;
    match response.status {
        200 => {}
        400..=499 => return Err(Refused::Invalid("userinfo_refused")),
        _ => return Err(Refused::Unavailable),
    }
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(&response.body) else {
        return Err(Refused::Invalid("userinfo_malformed"));
    };
    // Core 5.3.2: the `sub` of the userinfo answer must be the ID token's.
    match claims.get("sub") {
        Some(Value::String(sub)) if sub == subject => Ok(Some(claims)),
        _ => Err(Refused::Invalid("userinfo_sub_mismatch")),
    }
}
