//! [`ProviderMetadata`]: what an identity provider says about itself in its discovery
//! document (OpenID Connect Discovery 1.0, RFC 8414), kept whole: the JWKS for bearer
//! tokens, and the endpoints a login flow, introspection and logout need.

use serde_json::{Map, Value};

use super::client::{HttpResponse, content_type_accepted};
use super::{HttpClient, RemoteError, check_url};

/// Where discovery documents are looked for, relative to the issuer, in order.
pub(crate) const DISCOVERY_PATHS: [&str; 2] = [
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
];
/// What a discovery document must be served as.
const ACCEPT_JSON: &[&str] = &["application/json"];

/// An identity provider's metadata, from its discovery document.
///
/// Checked when read: `issuer` must be exactly the issuer asked for (so a document cannot
/// speak for another provider), `jwks_uri` must be present, every endpoint must follow the
/// URL rule (https, or http to a loopback host only where allowed), and every member must
/// have its JSON type; a member that breaks these makes the whole document unusable rather
/// than half-read. Unknown members are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderMetadata {
    /// The issuer identifier, equal to the one discovery was asked about.
    pub issuer: String,
    /// Where the provider's signing keys are.
    pub jwks_uri: String,
    /// The authorization endpoint (login flows).
    pub authorization_endpoint: Option<String>,
    /// The token endpoint (code exchange, refresh).
    pub token_endpoint: Option<String>,
    /// The userinfo endpoint.
    pub userinfo_endpoint: Option<String>,
    /// The RP-initiated logout endpoint.
    pub end_session_endpoint: Option<String>,
    /// The token introspection endpoint (RFC 7662).
    pub introspection_endpoint: Option<String>,
    /// The token revocation endpoint (RFC 7009).
    pub revocation_endpoint: Option<String>,
    /// The algorithms the provider signs ID tokens with.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// The PKCE methods the provider supports (`S256`, `plain`).
    pub code_challenge_methods_supported: Vec<String>,
    /// The scopes the provider supports.
    pub scopes_supported: Vec<String>,
    /// Whether the provider supports back-channel logout.
    pub backchannel_logout_supported: bool,
}

impl ProviderMetadata {
    /// Reads and checks a discovery document for `issuer`.
    ///
    /// # Errors
    ///
    /// [`RemoteError::Discovery`] for a document that is not a JSON object, names another
    /// issuer, lacks `jwks_uri`, or has a member of the wrong type; [`RemoteError::Url`]
    /// for an endpoint that breaks the URL rule.
    pub fn from_document(
        document: &[u8],
        issuer: &str,
        allow_http: bool,
    ) -> Result<Self, RemoteError> {
        let Ok(Value::Object(document)) = serde_json::from_slice::<Value>(document) else {
            return Err(discovery("the discovery document is not a JSON object"));
        };
        match document.get("issuer") {
            Some(Value::String(found)) if found == issuer => {}
            _ => return Err(discovery("the discovery document names another issuer")),
        }
        let endpoint = |name: &str| -> Result<Option<String>, RemoteError> {
            match document.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(url)) => {
                    check_url(url, allow_http)?;
                    Ok(Some(url.clone()))
                }
                Some(_) => Err(discovery(&format!("`{name}` is not a string"))),
            }
        };
        let jwks_uri = endpoint("jwks_uri")?
            .ok_or_else(|| discovery("the discovery document has no `jwks_uri` string"))?;
        Ok(Self {
            issuer: issuer.to_owned(),
            jwks_uri,
            authorization_endpoint: endpoint("authorization_endpoint")?,
            token_endpoint: endpoint("token_endpoint")?,
            userinfo_endpoint: endpoint("userinfo_endpoint")?,
            end_session_endpoint: endpoint("end_session_endpoint")?,
            introspection_endpoint: endpoint("introspection_endpoint")?,
            revocation_endpoint: endpoint("revocation_endpoint")?,
            id_token_signing_alg_values_supported: strings(
                &document,
                "id_token_signing_alg_values_supported",
            )?,
            code_challenge_methods_supported: strings(
                &document,
                "code_challenge_methods_supported",
            )?,
            scopes_supported: strings(&document, "scopes_supported")?,
            backchannel_logout_supported: match document.get("backchannel_logout_supported") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(supported)) => *supported,
                Some(_) => {
                    return Err(discovery("`backchannel_logout_supported` is not a boolean"));
                }
            },
        })
    }

    /// Fetches the metadata of `issuer` with `client`: the OpenID Connect location first,
    /// then the RFC 8414 one.
    ///
    /// # Errors
    ///
    /// The last [`RemoteError`] when neither location gives a usable document.
    pub async fn discover(
        client: &dyn HttpClient,
        issuer: &str,
        allow_http: bool,
    ) -> Result<Self, RemoteError> {
        let base = issuer.trim_end_matches('/');
        let mut last_error = None;
        for path in DISCOVERY_PATHS {
            let attempt = async {
                let response = client.get(&format!("{base}{path}"), ACCEPT_JSON).await?;
                Self::from_document(json_body(&response)?, issuer, allow_http)
            };
            match attempt.await {
                Ok(metadata) => return Ok(metadata),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| discovery("no discovery document")))
    }
}

/// The body of a 2xx answer served as JSON.
fn json_body(response: &HttpResponse) -> Result<&[u8], RemoteError> {
    if !(200..300).contains(&response.status) {
        return Err(RemoteError::Status {
            status: response.status,
        });
    }
    if !content_type_accepted(response.content_type.as_deref(), ACCEPT_JSON) {
        return Err(RemoteError::ContentType {
            content_type: response.content_type.clone(),
        });
    }
    Ok(&response.body)
}

/// An optional array of strings.
fn strings(document: &Map<String, Value>, name: &str) -> Result<Vec<String>, RemoteError> {
    match document.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| discovery(&format!("`{name}` holds a non-string")))
            })
            .collect(),
        Some(_) => Err(discovery(&format!("`{name}` is not an array"))),
    }
}

fn discovery(reason: &str) -> RemoteError {
    RemoteError::Discovery {
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://idp.example";

    fn read(document: &Value) -> Result<ProviderMetadata, RemoteError> {
        ProviderMetadata::from_document(document.to_string().as_bytes(), ISSUER, false)
    }

    #[test]
    fn a_whole_document_is_kept() {
        let metadata = read(&serde_json::json!({
            "issuer": ISSUER,
            "jwks_uri": "https://idp.example/jwks",
            "authorization_endpoint": "https://idp.example/auth",
            "token_endpoint": "https://idp.example/token",
            "userinfo_endpoint": "https://idp.example/me",
            "end_session_endpoint": "https://idp.example/logout",
            "introspection_endpoint": "https://idp.example/token/introspection",
            "revocation_endpoint": "https://idp.example/token/revocation",
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email"],
            "backchannel_logout_supported": true,
            "some_extension": {"ignored": true}
        }))
        .expect("usable");
        assert_eq!(metadata.jwks_uri, "https://idp.example/jwks");
        assert_eq!(
            metadata.token_endpoint.as_deref(),
            Some("https://idp.example/token")
        );
        assert_eq!(
            metadata.end_session_endpoint.as_deref(),
            Some("https://idp.example/logout")
        );
        assert_eq!(metadata.code_challenge_methods_supported, ["S256"]);
        assert!(metadata.backchannel_logout_supported);

        let minimal = read(&serde_json::json!({
            "issuer": ISSUER, "jwks_uri": "https://idp.example/jwks"
        }))
        .expect("usable");
        assert_eq!(minimal.authorization_endpoint, None);
        assert!(minimal.scopes_supported.is_empty());
        assert!(!minimal.backchannel_logout_supported);
    }

    #[test]
    fn unusable_documents_are_refused_whole() {
        let base = || serde_json::json!({"issuer": ISSUER, "jwks_uri": "https://idp.example/jwks"});
        let with = |name: &str, value: Value| {
            let mut document = base();
            document[name] = value;
            read(&document)
        };
        for (name, value) in [
            ("issuer", serde_json::json!("https://evil.example")),
            ("issuer", Value::Null),
            ("jwks_uri", Value::Null),
            ("jwks_uri", serde_json::json!(7)),
            (
                "token_endpoint",
                serde_json::json!(["https://idp.example/token"]),
            ),
            (
                "code_challenge_methods_supported",
                serde_json::json!("S256"),
            ),
            ("scopes_supported", serde_json::json!(["openid", 1])),
            ("backchannel_logout_supported", serde_json::json!("true")),
        ] {
            assert!(
                matches!(
                    with(name, value.clone()),
                    Err(RemoteError::Discovery { .. })
                ),
                "{name}: {value}"
            );
        }
        // An endpoint over plain http to another host breaks the URL rule.
        assert!(matches!(
            with(
                "token_endpoint",
                serde_json::json!("http://idp.example/token")
            ),
            Err(RemoteError::Url { .. })
        ));
        assert!(matches!(
            ProviderMetadata::from_document(b"[1, 2]", ISSUER, false),
            Err(RemoteError::Discovery { .. })
        ));
        assert!(matches!(
            ProviderMetadata::from_document(b"not json", ISSUER, false),
            Err(RemoteError::Discovery { .. })
        ));
    }
}
