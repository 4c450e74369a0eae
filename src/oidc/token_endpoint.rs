//! The provider's OAuth 2.0 messages through the `oauth2` crate: the client built from
//! the discovered endpoints and our credentials, the code exchange, the refresh and the
//! revocation (sent by [`TokenHttp`] over the `remote` HTTP client), and the token
//! response, read with a tolerant `expires_in` and the ID token.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AccessToken, AuthUrl, AuthorizationCode, ClientId, ConfigurationError, EndpointMaybeSet,
    EndpointNotSet, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, RevocationUrl,
    Scope, StandardRevocableToken, TokenUrl,
};
use serde::{Deserialize, Serialize};

use super::Inner;
use super::token_http::TokenHttp;
use crate::remote::ProviderMetadata;

/// The relying party's oauth2 client: authorization, token and revocation endpoints as
/// discovered (each may be missing), no device authorization, no introspection.
pub(crate) type ProviderClient = oauth2::Client<
    BasicErrorResponse,
    IdTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointMaybeSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The client built for one version of the provider's metadata.
pub(crate) type CachedClient = Option<(Arc<ProviderMetadata>, Arc<ProviderClient>)>;

/// Why a token request gave no tokens.
#[derive(Debug)]
pub(crate) enum TokenError {
    /// The provider refused (a 4xx answer: `invalid_grant`, `invalid_client`, …).
    Refused(String),
    /// The provider could not be asked or gave an unusable answer (transport error,
    /// timeout, 5xx, malformed JSON, no token endpoint).
    Unavailable(String),
}

/// A successful token response (RFC 6749 section 5.1, OpenID Connect Core 3.1.3.3):
/// oauth2's standard fields, `expires_in` as a number or a string of digits, and the ID
/// token. `Debug` does not show the tokens.
#[derive(Deserialize, Serialize)]
pub(crate) struct IdTokenResponse {
    pub(crate) access_token: AccessToken,
    #[serde(deserialize_with = "oauth2::helpers::deserialize_untagged_enum_case_insensitive")]
    pub(crate) token_type: BasicTokenType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<RefreshToken>,
    /// A number, or a string of digits (some providers send `"3600"`).
    #[serde(
        default,
        deserialize_with = "number_or_digits",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) expires_in: Option<u64>,
    /// `scope`, split on spaces (empty parts dropped).
    #[serde(
        rename = "scope",
        default,
        deserialize_with = "space_separated",
        serialize_with = "oauth2::helpers::serialize_space_delimited_vec",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) scopes: Option<Vec<Scope>>,
}

impl oauth2::TokenResponse for IdTokenResponse {
    type TokenType = BasicTokenType;

    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }

    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }

    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scopes.as_ref()
    }
}

impl IdTokenResponse {
    /// The granted scopes, if the answer names them.
    pub(crate) fn granted_scopes(&self) -> Option<Vec<String>> {
        self.scopes
            .as_ref()
            .map(|scopes| scopes.iter().map(|scope| scope.to_string()).collect())
    }
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

/// `scope` as the scopes it lists, split on spaces.
fn space_separated<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<Scope>>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.map(|text| {
        text.split(' ')
            .filter(|scope| !scope.is_empty())
            .map(|scope| Scope::new(scope.to_owned()))
            .collect()
    }))
}

impl std::fmt::Debug for IdTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// The provider's metadata: discovered already, or fetched now (rate-limited by the key
/// cache's cooldown, single-flight).
pub(crate) async fn metadata(inner: &Inner) -> Option<Arc<ProviderMetadata>> {
    if let Some(metadata) = inner.jwks.provider_metadata() {
        return Some(metadata);
    }
    inner.jwks.refresh_for_unknown_kid().await;
    inner.jwks.provider_metadata()
}

/// The oauth2 client for the provider's current metadata (`None` while discovery has not
/// succeeded): built once per version of the metadata, then shared.
pub(crate) async fn client(inner: &Inner) -> Option<Arc<ProviderClient>> {
    let metadata = metadata(inner).await?;
    let mut cached = inner
        .provider_client
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some((seen, client)) = &*cached
        && Arc::ptr_eq(seen, &metadata)
    {
        return Some(Arc::clone(client));
    }
    let client = Arc::new(build_client(inner, &metadata)?);
    *cached = Some((metadata, Arc::clone(&client)));
    Some(client)
}

/// Our client id, secret (sent as configured; a public client has none) and redirect
/// URI, with the endpoints `metadata` names (one that does not parse counts as missing).
fn build_client(inner: &Inner, metadata: &ProviderMetadata) -> Option<ProviderClient> {
    let redirect_uri = RedirectUrl::new(inner.redirect_uri.clone()).ok()?;
    let client = oauth2::Client::new(ClientId::new(inner.client_id.clone()))
        .set_redirect_uri(redirect_uri)
        .set_auth_uri_option(
            (metadata.authorization_endpoint.clone()).and_then(|url| AuthUrl::new(url).ok()),
        )
        .set_token_uri_option(
            (metadata.token_endpoint.clone()).and_then(|url| TokenUrl::new(url).ok()),
        )
        .set_revocation_url_option(
            (metadata.revocation_endpoint.clone()).and_then(|url| RevocationUrl::new(url).ok()),
        )
        .set_auth_type(inner.client_auth.clone());
    Some(match &inner.client_secret {
        Some(secret) => {
            client.set_client_secret(oauth2::ClientSecret::new(secret.expose_secret().to_owned()))
        }
        None => client,
    })
}

/// Exchanges an authorization code (with its PKCE verifier).
pub(crate) async fn exchange_code(
    inner: &Inner,
    code: &str,
    verifier: &str,
) -> Result<IdTokenResponse, TokenError> {
    let client = client(inner).await.ok_or_else(no_token_endpoint)?;
    let http = TokenHttp::new(inner);
    let answer = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|_: ConfigurationError| no_token_endpoint())?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
        .request_async(&http)
        .await;
    tokens(answer, &http)
}

/// Uses a refresh token.
pub(crate) async fn refresh(
    inner: &Inner,
    refresh_token: &str,
) -> Result<IdTokenResponse, TokenError> {
    let client = client(inner).await.ok_or_else(no_token_endpoint)?;
    let http = TokenHttp::new(inner);
    let refresh_token = RefreshToken::new(refresh_token.to_owned());
    let answer = client
        .exchange_refresh_token(&refresh_token)
        .map_err(|_: ConfigurationError| no_token_endpoint())?
        .request_async(&http)
        .await;
    tokens(answer, &http)
}

/// Revokes a refresh token at logout (RFC 7009), if the provider has a revocation
/// endpoint. Best effort: a failure is logged, the local logout happens anyway.
pub(crate) async fn revoke(inner: &Inner, refresh_token: &str) {
    let Some(client) = client(inner).await else {
        return;
    };
    let token = StandardRevocableToken::RefreshToken(RefreshToken::new(refresh_token.to_owned()));
    let request = match client.revoke_token(token) {
        Ok(request) => request,
        Err(ConfigurationError::MissingUrl(_)) => return,
        Err(error) => {
            // oauth2 sends revocations to https endpoints only (RFC 7009 section 2).
            tracing::warn!(%error, "oidc: token not revoked");
            return;
        }
    };
    let http = TokenHttp::new(inner);
    if let Err(error) = request.request_async(&http).await {
        match http.status() {
            Some(status) if status != 200 => {
                tracing::warn!(status, "oidc: token revocation refused");
            }
            _ => tracing::warn!(error = %refusal_text(&error), "oidc: token revocation failed"),
        }
    }
}

fn no_token_endpoint() -> TokenError {
    TokenError::Unavailable("no token endpoint (discovery failed)".into())
}

/// oauth2's outcome as ours: a `4xx` answer is a refusal (its `error` code, or the
/// status), anything else that failed is an unusable answer; a token type other than
/// `Bearer` is unusable too.
fn tokens(
    answer: Result<
        IdTokenResponse,
        RequestTokenError<crate::remote::RemoteError, BasicErrorResponse>,
    >,
    http: &TokenHttp<'_>,
) -> Result<IdTokenResponse, TokenError> {
    let error = match answer {
        Ok(tokens) if tokens.token_type == BasicTokenType::Bearer => return Ok(tokens),
        Ok(tokens) => {
            return Err(TokenError::Unavailable(format!(
                "unsupported token type {}",
                crate::text::truncate(tokens.token_type.as_ref(), 40)
            )));
        }
        Err(error) => error,
    };
    match (http.status(), error) {
        (Some(400..=499), RequestTokenError::ServerResponse(refusal)) => Err(TokenError::Refused(
            crate::text::truncate(refusal.error().as_ref(), 64).to_owned(),
        )),
        (Some(status @ 400..=499), _) => Err(TokenError::Refused(format!("HTTP {status}"))),
        (_, RequestTokenError::Parse(..)) => {
            Err(TokenError::Unavailable("malformed token response".into()))
        }
        (_, error) => Err(TokenError::Unavailable(refusal_text(&error))),
    }
}

/// What failed, for the logs.
fn refusal_text<E: oauth2::ErrorResponse>(
    error: &RequestTokenError<crate::remote::RemoteError, E>,
) -> String {
    match error {
        RequestTokenError::Request(error) => error.to_string(),
        RequestTokenError::ServerResponse(_) | RequestTokenError::Parse(..) => {
            "unusable answer".to_owned()
        }
        RequestTokenError::Other(text) => crate::text::truncate(text, 200).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use jsonwebtoken::jwk::{Jwk, JwkSet};

    use super::*;
    use crate::oidc::{Oidc, OidcBuilder};
    use crate::remote::{HttpClient, HttpFuture, HttpResponse, RemoteError};

    const ISSUER: &str = "https://idp.example";

    #[test]
    fn expires_in_as_a_number_or_a_string_of_digits() {
        let parse = |expires_in: &str| {
            serde_json::from_str::<IdTokenResponse>(&format!(
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
    fn scopes_and_token_types() {
        let response: IdTokenResponse = serde_json::from_str(
            r#"{"access_token":"a","token_type":"BEARER","scope":"openid  email"}"#,
        )
        .unwrap();
        assert_eq!(response.token_type, BasicTokenType::Bearer);
        assert_eq!(
            response.granted_scopes(),
            Some(vec!["openid".to_owned(), "email".to_owned()])
        );
        let response: IdTokenResponse =
            serde_json::from_str(r#"{"access_token":"a","token_type":"Bearer","scope":""}"#)
                .unwrap();
        assert_eq!(response.granted_scopes(), Some(Vec::new()));
    }

    #[test]
    fn debug_does_not_show_the_tokens() {
        let response: IdTokenResponse = serde_json::from_str(
            r#"{"access_token":"AT-secret","token_type":"Bearer","id_token":"ID-secret",
                "refresh_token":"RT-secret","expires_in":300,"scope":"openid"}"#,
        )
        .unwrap();
        let shown = format!("{response:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("openid"), "{shown}");
    }

    /// What the provider was sent: URL, form, Basic credentials, accepted types.
    type Sent = (
        String,
        Vec<(String, String)>,
        Option<(String, String)>,
        Vec<String>,
    );

    /// A provider in the process: discovery, keys, and one canned answer to every POST.
    struct Provider {
        answer: Mutex<Result<HttpResponse, RemoteError>>,
        sent: Mutex<Vec<Sent>>,
    }

    impl HttpClient for Provider {
        fn get(&self, url: &str, _: &[&str]) -> HttpFuture<'_> {
            let answer = if url == format!("{ISSUER}/.well-known/openid-configuration") {
                serde_json::json!({
                    "issuer": ISSUER,
                    "jwks_uri": format!("{ISSUER}/jwks"),
                    "authorization_endpoint": format!("{ISSUER}/authorize"),
                    "token_endpoint": format!("{ISSUER}/token"),
                    "revocation_endpoint": format!("{ISSUER}/revoke"),
                })
                .to_string()
            } else {
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!(
                    "../../tests/fixtures/rsa2048.key"
                ))
                .unwrap();
                let mut jwk = Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256).unwrap();
                jwk.common.key_id = Some("k1".into());
                serde_json::to_string(&JwkSet { keys: vec![jwk] }).unwrap()
            };
            Box::pin(async move { Ok(HttpResponse::new(200, Some("application/json"), answer)) })
        }

        fn post_form(
            &self,
            url: &str,
            form: &[(&str, &str)],
            basic_auth: Option<(&str, &str)>,
            accept: &[&str],
        ) -> HttpFuture<'_> {
            self.sent.lock().unwrap().push((
                url.to_owned(),
                form.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                basic_auth.map(|(user, password)| (user.to_owned(), password.to_owned())),
                accept.iter().map(|s| (*s).to_owned()).collect(),
            ));
            let answer = self.answer.lock().unwrap().clone();
            Box::pin(async move { answer })
        }
    }

    fn provider(status: u16, content_type: Option<&str>, body: &str) -> Arc<Provider> {
        Arc::new(Provider {
            answer: Mutex::new(Ok(HttpResponse::new(status, content_type, body.to_owned()))),
            sent: Mutex::new(Vec::new()),
        })
    }

    fn oidc(provider: &Arc<Provider>, configure: fn(OidcBuilder) -> OidcBuilder) -> Oidc {
        crate::bearer::select_crypto_backend();
        configure(
            Oidc::builder(ISSUER)
                .client_id("app:1")
                .redirect_uri("https://app.example/auth/callback")
                .http_client(provider.clone()),
        )
        .build()
        .unwrap()
    }

    const TOKENS: &str = r#"{"access_token":"at","token_type":"Bearer","id_token":"it",
        "refresh_token":"rt","expires_in":"60"}"#;

    fn form(sent: &Sent) -> Vec<(&str, &str)> {
        sent.1
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[tokio::test]
    async fn a_code_exchange_with_basic_credentials() {
        let provider = provider(200, Some("application/json; charset=utf-8"), TOKENS);
        let oidc = oidc(&provider, |b| b.client_secret("s e:cret"));
        let tokens = exchange_code(oidc.inner(), "the-code", "the-verifier")
            .await
            .unwrap();
        assert_eq!(tokens.access_token.secret(), "at");
        assert_eq!(tokens.id_token.as_deref(), Some("it"));
        assert_eq!(tokens.expires_in, Some(60));
        let sent = provider.sent.lock().unwrap();
        assert_eq!(sent[0].0, format!("{ISSUER}/token"));
        assert_eq!(
            form(&sent[0]),
            [
                ("grant_type", "authorization_code"),
                ("code", "the-code"),
                ("code_verifier", "the-verifier"),
                ("redirect_uri", "https://app.example/auth/callback"),
            ]
        );
        // Form-encoded before Basic (RFC 6749 section 2.3.1).
        assert_eq!(
            sent[0].2,
            Some(("app%3A1".to_owned(), "s+e%3Acret".to_owned()))
        );
        assert_eq!(sent[0].3, ["application/json"]);
    }

    #[tokio::test]
    async fn a_refresh_with_post_credentials_and_a_public_client() {
        let provider = provider(200, Some("application/json"), TOKENS);
        let oidc_post = oidc(&provider, |b| b.client_secret("s3").client_secret_post());
        refresh(oidc_post.inner(), "rt").await.unwrap();
        let public = oidc(&provider, |b| b);
        refresh(public.inner(), "rt").await.unwrap();
        let sent = provider.sent.lock().unwrap();
        assert_eq!(
            form(&sent[0]),
            [
                ("grant_type", "refresh_token"),
                ("refresh_token", "rt"),
                ("client_id", "app:1"),
                ("client_secret", "s3"),
            ]
        );
        assert_eq!(sent[0].2, None);
        assert_eq!(
            form(&sent[1]),
            [
                ("grant_type", "refresh_token"),
                ("refresh_token", "rt"),
                ("client_id", "app:1"),
            ]
        );
    }

    #[tokio::test]
    async fn refusals_and_unusable_answers() {
        let refused = |error: Result<IdTokenResponse, TokenError>| match error {
            Err(TokenError::Refused(reason)) => reason,
            other => panic!("{other:?}"),
        };
        let unavailable = |error: Result<IdTokenResponse, TokenError>| match error {
            Err(TokenError::Unavailable(reason)) => reason,
            other => panic!("{other:?}"),
        };
        let ask = |status, content_type: Option<&'static str>, body: &'static str| async move {
            let provider = provider(status, content_type, body);
            let oidc = oidc(&provider, |b| b.client_secret("s3"));
            refresh(oidc.inner(), "rt").await
        };
        let json = Some("application/json");
        assert_eq!(
            refused(ask(400, json, r#"{"error":"invalid_grant"}"#).await),
            "invalid_grant"
        );
        assert_eq!(
            refused(ask(401, Some("text/html"), "<h1>no</h1>").await),
            "HTTP 401"
        );
        assert_eq!(refused(ask(400, None, "").await), "HTTP 400");
        unavailable(ask(503, json, r#"{"error":"temporarily_unavailable"}"#).await);
        unavailable(ask(302, None, "").await);
        unavailable(ask(201, json, TOKENS).await);
        assert_eq!(
            unavailable(ask(200, json, r#"{"access_token":1}"#).await),
            "malformed token response"
        );
        unavailable(ask(200, Some("text/html"), TOKENS).await);
        assert!(
            unavailable(ask(200, json, r#"{"access_token":"at","token_type":"mac"}"#).await)
                .contains("unsupported token type")
        );
        let provider = provider(200, json, TOKENS);
        *provider.answer.lock().unwrap() = Err(RemoteError::Timeout);
        let oidc = oidc(&provider, |b| b);
        unavailable(refresh(oidc.inner(), "rt").await);
    }

    #[tokio::test]
    async fn a_revocation_names_the_refresh_token() {
        let provider = provider(200, Some("application/json"), "{}");
        let oidc = oidc(&provider, |b| b.client_secret("s3"));
        revoke(oidc.inner(), "rt").await;
        let sent = provider.sent.lock().unwrap();
        assert_eq!(sent[0].0, format!("{ISSUER}/revoke"));
        assert_eq!(
            form(&sent[0]),
            [("token", "rt"), ("token_type_hint", "refresh_token")]
        );
        assert_eq!(sent[0].2, Some(("app%3A1".to_owned(), "s3".to_owned())));
    }

    #[tokio::test]
    async fn one_client_per_version_of_the_metadata() {
        let provider = provider(200, Some("application/json"), TOKENS);
        let oidc = oidc(&provider, |b| b);
        let first = client(oidc.inner()).await.unwrap();
        assert!(Arc::ptr_eq(&first, &client(oidc.inner()).await.unwrap()));
        // Metadata discovered anew (after a failed key fetch): a new client.
        let stale = Arc::new((*metadata(oidc.inner()).await.unwrap()).clone());
        *oidc.inner().provider_client.lock().unwrap() = Some((stale, Arc::clone(&first)));
        assert!(!Arc::ptr_eq(&first, &client(oidc.inner()).await.unwrap()));
    }
}
