//! [`IdentityToken`]: the caller's identity as a short-lived JWT signed by the proxy (ES256),
//! for upstreams that verify rather than trust, and the JWKS they verify it with.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use zeroize::Zeroizing;

use super::ProxyConfigError;
use crate::Principal;
use crate::secret::ClientSecret;

/// The token's lifetime by default: long enough for one request to reach the upstream and
/// be verified (with a verifier's usual clock leeway), short enough that a token seen in a
/// log is useless soon after.
pub(crate) const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// The longest lifetime accepted: the token is replayable, by whoever sees it, until it
/// expires.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(300);
/// The header the token goes in by default.
pub(crate) const DEFAULT_HEADER: &str = "x-auth-token";
/// The path the JWKS is served at by default.
pub(crate) const DEFAULT_JWKS_PATH: &str = "/.well-known/jwks.json";

/// The caller's identity as a JWT signed by the proxy, handed to the upstream in a header
/// of its own (`X-Auth-Token` by default), and the key set (JWKS) to verify it, which the
/// [`Proxy`](super::Proxy) serves itself at [`jwks_path`](Self::jwks_path).
///
/// The token is signed with ES256 (ECDSA on P-256 with SHA-256) by a private key given in
/// PEM; its header is `{"alg":"ES256","typ":"at+jwt","kid":…}` and its claims are:
///
/// | claim | value |
/// |---|---|
/// | `iss` | the configured issuer |
/// | `aud` | the configured audience (the upstream) |
/// | `sub` | the caller's subject |
/// | `iat`, `exp` | now, and now + the lifetime (60 s by default, at most 5 minutes) |
/// | `jti` | 128 random bits, base64url |
/// | `auth_method` | how the caller authenticated: `api_key`, `bearer`, `oidc`, or an authenticator's name |
/// | `roles` | the caller's roles, an array (possibly empty) |
/// | `scope` | the caller's scopes, space-separated (RFC 8693 §4.2), possibly empty |
/// | `tenant` | the caller's tenant, when it has one |
///
/// Nothing else of the caller's credentials or claims goes in. `typ` `at+jwt` (RFC 9068)
/// says what it is, a token for a resource server (the upstream, its audience); an OpenID
/// Connect library refuses it as an ID token. The `kid` is the key's RFC 7638 thumbprint.
///
/// Cheap to clone.
///
/// # Example
///
/// ```
/// use portcullis::proxy::{IdentityToken, Proxy};
/// # let pem = portcullis::proxy::IdentityToken::example_key_pem();
/// let token = IdentityToken::builder(pem, "https://gateway.example.com", "orders-service")
///     .build()?;
/// assert_eq!(token.jwks_path(), "/.well-known/jwks.json");
/// let proxy = Proxy::builder("http://127.0.0.1:3000")
///     .identity_token(token)
///     .build()?;
/// # Ok::<(), portcullis::proxy::ProxyConfigError>(())
/// ```
#[derive(Clone)]
pub struct IdentityToken {
    shared: Arc<Signer>,
}

struct Signer {
    key: EcdsaKeyPair,
    /// `base64url(header) + "."`: the same for every token.
    header_segment: String,
    kid: String,
    issuer: String,
    audience: String,
    lifetime: Duration,
    header: HeaderName,
    jwks_path: String,
    jwks: Bytes,
}

/// Why a token could not be made for a caller. The request must then not be passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityTokenError {
    /// A scope is empty or holds whitespace: in the space-separated `scope` claim it would
    /// read as another scope, or as two.
    #[error("a scope is empty or holds whitespace, so the `scope` claim cannot hold it")]
    UnrepresentableScope,
    /// The signature could not be made (the system's random generator failed).
    #[error("the token could not be signed")]
    Signing,
}

impl IdentityToken {
    /// Starts an identity token signed by `private_key_pem` (a P-256 key in PKCS#8,
    /// `-----BEGIN PRIVATE KEY-----`, or SEC1, `-----BEGIN EC PRIVATE KEY-----`, as
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` or `openssl ecparam
    /// -name prime256v1 -genkey` write it), naming `issuer` (`iss`, the gateway) and
    /// `audience` (`aud`, the upstream). The key is held as a secret: wiped when dropped,
    /// never printed.
    pub fn builder(
        private_key_pem: impl Into<ClientSecret>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> IdentityTokenBuilder {
        IdentityTokenBuilder {
            key: private_key_pem.into(),
            issuer: issuer.into(),
            audience: audience.into(),
            lifetime: DEFAULT_LIFETIME,
            header: HeaderName::from_static(DEFAULT_HEADER),
            jwks_path: DEFAULT_JWKS_PATH.to_owned(),
        }
    }

    /// The key's id, `kid` in the tokens and the JWKS: its RFC 7638 thumbprint (SHA-256,
    /// base64url).
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.shared.kid
    }

    /// The path the proxy answers with the JWKS.
    #[must_use]
    pub fn jwks_path(&self) -> &str {
        &self.shared.jwks_path
    }

    /// The header the token is handed on in.
    #[must_use]
    pub fn header(&self) -> &HeaderName {
        &self.shared.header
    }

    /// The JWKS document: `{"keys":[{"kty":"EC","crv":"P-256","x":…,"y":…,"kid":…,
    /// "alg":"ES256","use":"sig"}]}`.
    #[must_use]
    pub fn jwks(&self) -> &Bytes {
        &self.shared.jwks
    }

    /// A token for `principal`, valid from now for the lifetime.
    ///
    /// # Errors
    ///
    /// [`IdentityTokenError::UnrepresentableScope`] for a scope the `scope` claim cannot
    /// hold; [`IdentityTokenError::Signing`] if signing fails.
    pub fn sign(&self, principal: &Principal) -> Result<String, IdentityTokenError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        self.sign_at(principal, now)
    }

    /// A token for `principal` issued at `now` (seconds since the epoch).
    pub(crate) fn sign_at(
        &self,
        principal: &Principal,
        now: u64,
    ) -> Result<String, IdentityTokenError> {
        let signer = &*self.shared;
        let mut scope = String::new();
        for (index, name) in principal.scopes().iter().enumerate() {
            if name.is_empty() || name.chars().any(char::is_whitespace) {
                return Err(IdentityTokenError::UnrepresentableScope);
            }
            if index > 0 {
                scope.push(' ');
            }
            scope.push_str(name);
        }
        let mut jti = [0_u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| IdentityTokenError::Signing)?;
        let jti = URL_SAFE_NO_PAD.encode(jti);
        let claims = Claims {
            iss: &signer.issuer,
            aud: &signer.audience,
            sub: principal.subject(),
            iat: now,
            exp: now.saturating_add(signer.lifetime.as_secs()),
            jti: &jti,
            auth_method: principal.auth_method().name(),
            roles: principal.roles().iter().collect(),
            scope,
            tenant: principal.tenant(),
        };
        let payload = serde_json::to_vec(&claims).map_err(|_| IdentityTokenError::Signing)?;
        let mut token =
            String::with_capacity(signer.header_segment.len() + payload.len() * 4 / 3 + 2 + 1 + 86);
        token.push_str(&signer.header_segment);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = signer
            .key
            .sign(&SystemRandom::new(), token.as_bytes())
            .map_err(|_| IdentityTokenError::Signing)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }

    /// Removes every incoming header that could pass for the token (its name, and the
    /// same with `_` for `-`), then sets it for `principal`, if there is one.
    pub(super) fn replace(
        &self,
        headers: &mut HeaderMap,
        principal: Option<&Principal>,
    ) -> Result<(), IdentityTokenError> {
        let name = &self.shared.header;
        headers.remove(name);
        if headers.keys().any(|key| key.as_str().contains('_')) {
            let forged: Vec<HeaderName> = headers
                .keys()
                .filter(|key| key.as_str().replace('_', "-") == name.as_str())
                .cloned()
                .collect();
            for key in forged {
                headers.remove(key);
            }
        }
        let Some(principal) = principal else {
            return Ok(());
        };
        let token = self.sign(principal)?;
        let value = if name == AUTHORIZATION {
            format!("Bearer {token}")
        } else {
            token
        };
        // Base64url and dots: always a valid header value.
        let mut value = HeaderValue::from_maybe_shared(Bytes::from(value))
            .map_err(|_| IdentityTokenError::Signing)?;
        value.set_sensitive(true);
        headers.insert(name.clone(), value);
        Ok(())
    }

    /// A P-256 private key in PKCS#8 PEM, freshly generated: for examples and tests only
    /// (a key that changes at every start makes every token unverifiable after a
    /// restart, until verifiers fetch the JWKS again).
    #[doc(hidden)]
    #[must_use]
    pub fn example_key_pem() -> String {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap_or_else(|_| unreachable!("generating a P-256 key does not fail"));
        pem("PRIVATE KEY", document.as_ref())
    }
}

/// A PEM document of `label` holding `der`.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

impl fmt::Debug for IdentityToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let signer = &*self.shared;
        f.debug_struct("IdentityToken")
            .field("kid", &signer.kid)
            .field("issuer", &signer.issuer)
            .field("audience", &signer.audience)
            .field("lifetime", &signer.lifetime)
            .field("header", &signer.header)
            .field("jwks_path", &signer.jwks_path)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: u64,
    exp: u64,
    jti: &'a str,
    auth_method: &'a str,
    roles: Vec<&'a str>,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
}

/// Configures an [`IdentityToken`]. Every setting documents its default.
#[must_use]
pub struct IdentityTokenBuilder {
    key: ClientSecret,
    issuer: String,
    audience: String,
    lifetime: Duration,
    header: HeaderName,
    jwks_path: String,
}

impl fmt::Debug for IdentityTokenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityTokenBuilder")
            .field("key", &self.key)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("lifetime", &self.lifetime)
            .field("header", &self.header)
            .field("jwks_path", &self.jwks_path)
            .finish()
    }
}

impl IdentityTokenBuilder {
    /// How long each token is valid (`exp - iat`), in whole seconds, from 1 second to 5
    /// minutes. Defaults to 60 seconds: a token is made for each request, so it needs to
    /// live only as long as the request takes to arrive, plus clock differences.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The header the token is handed on in. Defaults to `x-auth-token`, beside the
    /// `x-auth-…` identity headers: the client's own `Authorization` (its credentials)
    /// still passes unchanged, and, as for every `x-auth-…` header, a client's `X-Auth-Token`
    /// never reaches the upstream. `authorization` is accepted (the token then goes as
    /// `Bearer TOKEN` and **replaces** the client's credentials, which the upstream no
    /// longer sees); headers the proxy or HTTP itself owns (`host`, `content-*`,
    /// `connection`, `forwarded`, `x-forwarded-*`, `cookie`, …) are refused.
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }

    /// The path the proxy answers with the JWKS, itself, for every method (`GET` and
    /// `HEAD` get the key set, others 405), so that nothing at that path ever reaches the
    /// upstream. Defaults to `/.well-known/jwks.json`. Letters, digits, `-`, `.`, `_`,
    /// `~` and `/` between non-empty segments.
    pub fn jwks_path(mut self, path: impl Into<String>) -> Self {
        self.jwks_path = path.into();
        self
    }

    /// Parses the key and checks the settings.
    ///
    /// # Errors
    ///
    /// [`ProxyConfigError::InvalidSigningKey`] for a key that is not a P-256 private key in
    /// PEM (the reason never repeats any of it); [`ProxyConfigError::InvalidIdentityToken`]
    /// for an empty issuer or audience, a lifetime out of bounds, a header the proxy owns,
    /// or a path that is not a plain path.
    pub fn build(self) -> Result<IdentityToken, ProxyConfigError> {
        let key = parse_key(self.key.expose_secret())?;
        check_claim("issuer", &self.issuer)?;
        check_claim("audience", &self.audience)?;
        check_lifetime(self.lifetime)?;
        check_header(&self.header)?;
        check_jwks_path(&self.jwks_path)?;
        let public = key.public_key().as_ref();
        // An uncompressed P-256 point: 0x04, then x and y, 32 bytes each.
        let (x, y) = match public {
            [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
            _ => {
                return Err(invalid_key(
                    "the public key is not an uncompressed P-256 point",
                ));
            }
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, thumbprint_input.as_bytes()));
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC",
            "crv": "P-256",
            "x": x,
            "y": y,
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        }]});
        let header = serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
        let header_segment = format!("{}.", URL_SAFE_NO_PAD.encode(header.to_string()));
        Ok(IdentityToken {
            shared: Arc::new(Signer {
                key,
                header_segment,
                kid,
                issuer: self.issuer,
                audience: self.audience,
                lifetime: self.lifetime,
                header: self.header,
                jwks_path: self.jwks_path,
                jwks: Bytes::from(jwks.to_string()),
            }),
        })
    }
}

fn invalid_key(reason: &'static str) -> ProxyConfigError {
    ProxyConfigError::InvalidSigningKey { reason }
}

fn invalid(setting: &'static str, reason: &'static str) -> ProxyConfigError {
    ProxyConfigError::InvalidIdentityToken { setting, reason }
}

/// An ES256 signing key from PEM: the first private-key block (an `EC PARAMETERS` block
/// before it, as `openssl ecparam -genkey` writes, is skipped). Errors say what was found,
/// never what it holds.
pub(crate) fn parse_key(text: &str) -> Result<EcdsaKeyPair, ProxyConfigError> {
    let mut rest = text;
    loop {
        let Some(begin) = rest.find("-----BEGIN ") else {
            return Err(invalid_key(
                "no PEM private key (`-----BEGIN PRIVATE KEY-----`) found",
            ));
        };
        let after = &rest[begin + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            return Err(invalid_key("a PEM line is cut short"));
        };
        let label = &after[..label_end];
        let body_start = &after[label_end + "-----".len()..];
        let end_line = format!("-----END {label}-----");
        let Some(body_end) = body_start.find(&end_line) else {
            return Err(invalid_key("a PEM block has no matching END line"));
        };
        let body = &body_start[..body_end];
        rest = &body_start[body_end + end_line.len()..];
        match label {
            "EC PARAMETERS" => continue,
            "PRIVATE KEY" | "EC PRIVATE KEY" => {}
            "ENCRYPTED PRIVATE KEY" => {
                return Err(invalid_key(
                    "the key is encrypted; give it unencrypted (and protect the file)",
                ));
            }
            "RSA PRIVATE KEY" => {
                return Err(invalid_key("an RSA key; ES256 needs a P-256 EC key"));
            }
            "PUBLIC KEY" | "EC PUBLIC KEY" | "CERTIFICATE" => {
                return Err(invalid_key(
                    "a public key or certificate, not the private key that signs",
                ));
            }
            _ => return Err(invalid_key("not a PEM private key")),
        }
        if body.contains(':') {
            return Err(invalid_key(
                "the key is encrypted (it has PEM headers); give it unencrypted",
            ));
        }
        let base64: Zeroizing<String> = Zeroizing::new(
            body.chars()
                .filter(|character| !character.is_ascii_whitespace())
                .collect(),
        );
        let der = Zeroizing::new(
            STANDARD
                .decode(base64.as_bytes())
                .map_err(|_| invalid_key("the PEM body is not base64"))?,
        );
        let parsed = if label == "PRIVATE KEY" {
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
        } else {
            EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
        };
        return parsed.map_err(|rejected| match rejected.description_() {
            "WrongAlgorithm" => invalid_key(
                "not a P-256 EC key (another curve, or RSA or Ed25519); ES256 needs P-256",
            ),
            _ => invalid_key("the PEM body is not a valid P-256 private key"),
        });
    }
}

fn check_claim(setting: &'static str, value: &str) -> Result<(), ProxyConfigError> {
    if value.trim().is_empty() {
        return Err(invalid(setting, "must not be empty"));
    }
    Ok(())
}

/// Between 1 second and [`MAX_LIFETIME`], in whole seconds.
pub(crate) fn check_lifetime(lifetime: Duration) -> Result<(), ProxyConfigError> {
    if lifetime < Duration::from_secs(1) || lifetime > MAX_LIFETIME {
        return Err(invalid("lifetime", "must be from 1 second to 5 minutes"));
    }
    if lifetime.subsec_nanos() != 0 {
        return Err(invalid("lifetime", "must be whole seconds"));
    }
    Ok(())
}

pub(crate) fn check_header(name: &HeaderName) -> Result<(), ProxyConfigError> {
    super::headers::unusable_for_identity(name.as_str())
        .map_or(Ok(()), |reason| Err(invalid("header", reason)))
}

pub(crate) fn check_jwks_path(path: &str) -> Result<(), ProxyConfigError> {
    let plain = path.len() <= 200
        && path.starts_with('/')
        && path[1..].split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
        });
    if !plain {
        return Err(invalid(
            "jwks_path",
            "must be a plain path: `/`, then non-empty segments of letters, digits, `-`, `.`, \
             `_`, `~`",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthMethod;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED_SIGNING, UnparsedPublicKey,
    };
    use serde_json::{Value, json};

    fn token() -> IdentityToken {
        IdentityToken::builder(
            IdentityToken::example_key_pem(),
            "https://gateway.test",
            "orders",
        )
        .build()
        .expect("builds")
    }

    fn segment(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
    }

    #[test]
    fn claims_are_the_callers_and_nothing_more() {
        let token = token();
        let principal = Principal::builder(
            "ada",
            AuthMethod::ApiKey {
                key_id: "k1".into(),
            },
        )
        .issuer("https://idp.test")
        .roles(["viewer", "admin"])
        .scopes(["orders:read", "orders:write"])
        .tenant("acme")
        .claims(
            json!({"email": "ada@example.com", "secret": "s3cr3t"})
                .as_object()
                .expect("object")
                .clone(),
        )
        .build();
        let jwt = token.sign_at(&principal, 1_000_000).expect("signs");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            segment(parts[0]),
            json!({"alg": "ES256", "typ": "at+jwt", "kid": token.kid()})
        );
        let claims = segment(parts[1]);
        let jti = claims["jti"].as_str().expect("a jti").to_owned();
        assert_eq!(URL_SAFE_NO_PAD.decode(&jti).expect("base64url").len(), 16);
        assert_eq!(
            claims,
            json!({
                "iss": "https://gateway.test",
                "aud": "orders",
                "sub": "ada",
                "iat": 1_000_000,
                "exp": 1_000_060,
                "jti": jti,
                "auth_method": "api_key",
                "roles": ["admin", "viewer"],
                "scope": "orders:read orders:write",
                "tenant": "acme",
            })
        );
        // Each token its own jti.
        let again = token.sign_at(&principal, 1_000_000).expect("signs");
        assert_ne!(
            segment(again.split('.').nth(1).expect("claims"))["jti"],
            jti
        );

        // The signature is R || S over `header.claims`, verified with the JWKS's key.
        let jwks: Value = serde_json::from_slice(token.jwks()).expect("JSON");
        let key = &jwks["keys"][0];
        assert_eq!(key["kid"], token.kid());
        assert_eq!(
            (key["kty"].as_str(), key["crv"].as_str()),
            (Some("EC"), Some("P-256"))
        );
        assert_eq!(
            (key["alg"].as_str(), key["use"].as_str()),
            (Some("ES256"), Some("sig"))
        );
        let mut point = vec![0x04];
        for coordinate in ["x", "y"] {
            let bytes = URL_SAFE_NO_PAD
                .decode(key[coordinate].as_str().expect("a coordinate"))
                .expect("base64url");
            assert_eq!(bytes.len(), 32);
            point.extend(bytes);
        }
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("base64url");
        assert_eq!(signature.len(), 64);
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(signed.as_bytes(), &signature)
            .expect("the signature verifies");
        let mut tampered = signed.into_bytes();
        tampered[parts[0].len() + 3] ^= 1;
        assert!(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
                .verify(&tampered, &signature)
                .is_err()
        );
    }

    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint() {
        // RFC 7638 §3.1's example is RSA; this is the same computation for EC, checked
        // against a thumbprint made independently (`jose.calculateJwkThumbprint`) of
        // RFC 7515 appendix A.3's key.
        let x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
        let y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
        let input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, input.as_bytes()));
        assert_eq!(kid, "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
        // The token's kid is computed the same way from its own key.
        let token = token();
        let jwks: Value = serde_json::from_slice(token.jwks()).expect("JSON");
        let key = &jwks["keys"][0];
        let input = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            key["x"].as_str().expect("x"),
            key["y"].as_str().expect("y")
        );
        assert_eq!(
            token.kid(),
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, input.as_bytes()))
        );
    }

    #[test]
    fn a_scope_that_would_read_as_two_is_refused() {
        let token = token();
        for scopes in [vec!["a b"], vec!["a\tb"], vec![""]] {
            let principal = Principal::builder("ada", AuthMethod::Bearer)
                .scopes(scopes.clone())
                .build();
            assert_eq!(
                token.sign(&principal),
                Err(IdentityTokenError::UnrepresentableScope),
                "{scopes:?}"
            );
        }
        // No roles, no scopes: empty, still there.
        let jwt = token
            .sign(&Principal::builder("ada", AuthMethod::Bearer).build())
            .expect("signs");
        let claims = segment(jwt.split('.').nth(1).expect("claims"));
        assert_eq!(claims["roles"], json!([]));
        assert_eq!(claims["scope"], "");
        assert!(claims.get("tenant").is_none());
    }

    fn key_error(pem: &str) -> String {
        match IdentityToken::builder(pem, "i", "a").build() {
            Err(ProxyConfigError::InvalidSigningKey { reason }) => reason.to_owned(),
            other => panic!("not a key error: {other:?}"),
        }
    }

    #[test]
    fn keys_that_cannot_sign_es256_are_clear_errors() {
        let p384 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &SystemRandom::new())
                .expect("a P-384 key");
        let p384 = pem("PRIVATE KEY", p384.as_ref());
        assert!(key_error(&p384).contains("P-256"), "{}", key_error(&p384));

        let good = IdentityToken::example_key_pem();
        let cases = [
            ("", "no PEM private key"),
            ("not a key at all", "no PEM private key"),
            (
                "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
                "not base64",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "not a valid",
            ),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n", "no matching END"),
            ("-----BEGIN PRIV", "cut short"),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "public key",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "certificate",
            ),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
                "encrypted",
            ),
            (
                "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END EC PRIVATE KEY-----\n",
                "encrypted",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
                "RSA",
            ),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
                "not a PEM private key",
            ),
        ];
        for (pem, expected) in cases {
            let reason = key_error(pem);
            assert!(reason.contains(expected), "{pem:?}: {reason}");
        }
        // Truncated and bit-flipped real keys: errors, never panics, never the key's text.
        for cut in (0..good.len()).step_by(7) {
            if let Err(error) = IdentityToken::builder(&good[..cut], "i", "a").build() {
                let message = error.to_string();
                assert!(!message.contains("MIG"), "{message}");
            }
        }
        let body_start = good.find('\n').expect("a body") + 1;
        for at in (body_start..good.len() - 30).step_by(5) {
            let mut flipped = good.clone().into_bytes();
            flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
            let _ = IdentityToken::builder(String::from_utf8(flipped).expect("ASCII"), "i", "a")
                .build();
        }
    }

    #[test]
    fn sec1_keys_and_openssl_parameter_blocks_are_read() {
        use aws_lc_rs::encoding::{AsDer, EcPrivateKeyRfc5915Der};
        // SEC1 (`openssl ecparam -name prime256v1 -genkey`), after the `EC PARAMETERS`
        // block that command writes first: the same key as its PKCS#8 form.
        let pkcs8 = IdentityToken::example_key_pem();
        let pair = parse_key(&pkcs8).expect("PKCS#8 reads");
        let sec1: EcPrivateKeyRfc5915Der<'_> = pair.private_key().as_der().expect("DER");
        let text = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}",
            pem("EC PRIVATE KEY", sec1.as_ref())
        );
        let from_sec1 = IdentityToken::builder(text, "i", "a")
            .build()
            .expect("SEC1 reads");
        let from_pkcs8 = IdentityToken::builder(pkcs8, "i", "a")
            .build()
            .expect("PKCS#8 reads");
        assert_eq!(from_sec1.kid(), from_pkcs8.kid());
    }

    #[test]
    fn settings_out_of_bounds_are_refused() {
        let pem = IdentityToken::example_key_pem();
        let build = |builder: IdentityTokenBuilder| builder.build().map(|_| ());
        let fresh = || IdentityToken::builder(pem.as_str(), "https://gateway.test", "orders");
        for lifetime in [
            Duration::ZERO,
            Duration::from_millis(500),
            Duration::from_millis(1500),
            Duration::from_secs(301),
            Duration::from_secs(86_400),
        ] {
            assert!(
                matches!(
                    build(fresh().lifetime(lifetime)),
                    Err(ProxyConfigError::InvalidIdentityToken {
                        setting: "lifetime",
                        ..
                    })
                ),
                "{lifetime:?}"
            );
        }
        for lifetime in [1, 60, 300] {
            assert!(build(fresh().lifetime(Duration::from_secs(lifetime))).is_ok());
        }
        for header in [
            "host",
            "content-length",
            "proxy-authorization",
            "x-forwarded-port",
            "cookie",
        ] {
            assert!(
                build(fresh().header(HeaderName::from_static(header))).is_err(),
                "{header}"
            );
        }
        assert!(build(fresh().header(AUTHORIZATION)).is_ok());
        for path in [
            "", "jwks", "/", "/a//b", "/a/../b", "/{kid}", "/a?b", "/a/", "/%2e",
        ] {
            assert!(build(fresh().jwks_path(path)).is_err(), "{path}");
        }
        assert!(build(fresh().jwks_path("/keys/gateway.jwks")).is_ok());
        assert!(build(IdentityToken::builder(pem.as_str(), " ", "orders")).is_err());
        assert!(build(IdentityToken::builder(pem.as_str(), "iss", "")).is_err());
    }

    #[test]
    fn forged_tokens_are_removed_and_anonymous_callers_get_none() {
        let token = token();
        let mut headers = HeaderMap::new();
        headers.insert("x-auth-token", HeaderValue::from_static("forged"));
        headers.insert("x_auth_token", HeaderValue::from_static("forged"));
        headers.insert("authorization", HeaderValue::from_static("Bearer client"));
        token.replace(&mut headers, None).expect("anonymous");
        assert_eq!(headers.len(), 1, "{headers:?}");

        let principal = Principal::builder("ada", AuthMethod::Bearer).build();
        headers.insert("x-auth-token", HeaderValue::from_static("forged"));
        token
            .replace(&mut headers, Some(&principal))
            .expect("signs");
        assert_eq!(headers.get_all("x-auth-token").iter().count(), 1);
        assert!(headers["x-auth-token"].is_sensitive());
        assert_ne!(headers["x-auth-token"], "forged");
        assert_eq!(headers["authorization"], "Bearer client");

        // In `Authorization`, the token replaces the client's credentials.
        let token = IdentityToken::builder(IdentityToken::example_key_pem(), "i", "a")
            .header(AUTHORIZATION)
            .build()
            .expect("builds");
        token
            .replace(&mut headers, Some(&principal))
            .expect("signs");
        let value = headers["authorization"].to_str().expect("text");
        assert!(value.starts_with("Bearer ey"), "{value}");
        token.replace(&mut headers, None).expect("anonymous");
        assert!(!headers.contains_key("authorization"));
    }
}
