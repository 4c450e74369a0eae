//! The `authenticate.oidc` section: browser login with OpenID Connect (code flow with
//! PKCE, server-side sessions), from the policy file.

use serde::Deserialize;

use super::file::RedisStore;

/// The `authenticate.oidc` section: the relying party `oidc::Oidc` builds (needs the
/// `oidc` feature). Secrets (the client secret, the session key) come from the environment
/// or a file, never the policy.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OidcLogin {
    /// The provider (`https://…`; plain `http` only to a loopback host); its discovery
    /// document gives the endpoints and keys.
    pub issuer: String,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The environment variable holding the client secret; none of `client_secret_env` and
    /// `client_secret_file` for a public client (PKCE only).
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// A file holding the client secret (relative to the policy file, or absolute).
    #[serde(default)]
    pub client_secret_file: Option<String>,
    /// Send the client credentials in the form body rather than HTTP Basic.
    #[serde(default)]
    pub client_secret_post: bool,
    /// The callback URL registered at the provider (`https://app.example.com/auth/callback`);
    /// its path is where the login ends.
    pub redirect_uri: String,
    /// The scopes asked for (`openid` is always added). Defaults to `openid`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Audiences the ID token may name besides the client id.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Where the roles are in the ID token (a dotted path).
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// Fill in the claims from the provider's userinfo endpoint at login.
    #[serde(default)]
    pub userinfo: bool,
    /// How long a session lives without a request (`30m`, the default).
    #[serde(default)]
    pub idle_timeout: Option<String>,
    /// How long a session lives at most (`8h`, the default).
    #[serde(default)]
    pub absolute_timeout: Option<String>,
    /// Where the provider sends the browser after logging out.
    #[serde(default)]
    pub post_logout_redirect_uri: Option<String>,
    /// Origins besides the redirect URI's own whose pages may send writes with the
    /// session (CSRF protection refuses every other).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The environment variable holding the key that seals the login cookie and the
    /// sessions stored on Redis: 32 bytes, as 64 hex digits or base64. Without
    /// `session_key_env` or `session_key_file`, a random key lives as long as the process.
    #[serde(default)]
    pub session_key_env: Option<String>,
    /// A file holding the session key.
    #[serde(default)]
    pub session_key_file: Option<String>,
    /// Where sessions live: in the process (the default), or on Redis, shared by every
    /// instance (needs the `redis` feature and a session key).
    #[serde(default)]
    pub session_store: Option<SessionStoreSection>,
    /// Session cookies without `Secure` and the `__Host-` prefix when the redirect URI is
    /// plain `http` to a loopback host (for development). Defaults to `false`.
    #[serde(default)]
    pub insecure_http_cookies_on_loopback: bool,
}

/// Where the login's sessions live.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SessionStoreSection {
    /// A Redis (or Redis Cluster node), its URL a secret as for `api_keys.redis`.
    pub redis: RedisStore,
}

#[cfg(feature = "oidc")]
pub(crate) use self::build::{RunningLogin, forget_login, keep_login};

#[cfg(feature = "oidc")]
mod build {
    use std::sync::{Arc, PoisonError};

    use super::OidcLogin;
    use crate::config::error::PolicyError;
    use crate::config::file::PolicyFile;
    use crate::config::state::SharedState;
    use crate::config::traffic::parse_duration;
    use crate::oidc::Oidc;
    use crate::secret::{ClientSecret, SessionKey};

    const PLACE: &str = "authenticate.oidc";

    impl PolicyFile {
        /// The login of the `authenticate.oidc` section: built by the first gateway made
        /// with `state`, then the same one for every later gateway (its sessions live on).
        /// A later file whose section or secrets differ is refused: the login cannot change
        /// while serving. Nothing is kept in `state` until [`keep_login`] is called, once the
        /// whole gateway is built.
        pub(crate) fn login(&self, state: &SharedState) -> Result<Option<Login>, Vec<PolicyError>> {
            let Some(section) = self
                .authenticate
                .as_ref()
                .and_then(|section| section.oidc.as_ref())
            else {
                return Ok(None);
            };
            let (secrets, mut unread) = self.login_secrets(section);
            if !unread.is_empty() {
                // The rest of the section's problems too, in one report.
                if let Err(mut problems) = self.build_login(section, &secrets) {
                    unread.append(&mut problems);
                }
                return Err(unread);
            }
            let fingerprint = secrets.fingerprint();
            let kept = state.login.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(running) = kept.as_ref() {
                return if running.section != *section {
                    Err(vec![PolicyError::at(
                        PLACE,
                        "differs from the section the running login was built from: the \
                         login cannot change while serving; restart to apply it",
                    )])
                } else {
                    if running.fingerprint != fingerprint {
                        // Not a reason to refuse a policy change: say it, keep the running one.
                        tracing::warn!(
                            target: "portcullis::config",
                            "the login's client secret or session key changed since the running \
                             login read them: they apply at the next start"
                        );
                    }
                    Ok(Some(Login {
                        oidc: running.oidc.clone(),
                        new: None,
                    }))
                };
            }
            drop(kept);
            let oidc = self.build_login(section, &secrets)?;
            Ok(Some(Login {
                oidc: oidc.clone(),
                new: Some(RunningLogin {
                    section: section.clone(),
                    fingerprint,
                    oidc,
                }),
            }))
        }

        /// The section's secrets, read, and the problems reading them.
        fn login_secrets(&self, section: &OidcLogin) -> (LoginSecrets, Vec<PolicyError>) {
            let mut errors = Vec::new();
            let mut read = |name: &str, env: &Option<String>, file: &Option<String>| {
                if env.is_none() && file.is_none() {
                    return None;
                }
                self.secret(PLACE, name, env.as_deref(), file.as_deref())
                    .map_err(|error| errors.push(error))
                    .ok()
            };
            let secrets = LoginSecrets {
                client_secret: read(
                    "client_secret",
                    &section.client_secret_env,
                    &section.client_secret_file,
                ),
                session_key: read(
                    "session_key",
                    &section.session_key_env,
                    &section.session_key_file,
                ),
            };
            (secrets, errors)
        }

        /// Builds the relying party, reporting every problem of the section.
        fn build_login(
            &self,
            section: &OidcLogin,
            secrets: &LoginSecrets,
        ) -> Result<Oidc, Vec<PolicyError>> {
            let mut errors = Vec::new();
            let mut builder = Oidc::builder(section.issuer.as_str())
                .client_id(section.client_id.as_str())
                .redirect_uri(section.redirect_uri.as_str());
            if let Some(secret) = &secrets.client_secret {
                builder = builder.client_secret(ClientSecret::from(secret.as_str()));
            }
            if section.client_secret_post {
                builder = builder.client_secret_post();
            }
            if !section.scopes.is_empty() {
                builder = builder.scopes(section.scopes.iter().map(String::as_str));
            }
            for audience in &section.audiences {
                builder = builder.audience(audience.as_str());
            }
            if let Some(path) = &section.roles_claim {
                builder = builder.roles_claim(path.as_str());
            }
            if section.userinfo {
                builder = builder.userinfo();
            }
            let mut duration = |name: &str, text: &Option<String>| {
                let text = text.as_deref()?;
                parse_duration(text)
                    .map_err(|message| {
                        errors.push(PolicyError::at(format!("{PLACE}.{name}"), message))
                    })
                    .ok()
            };
            if let Some(timeout) = duration("idle_timeout", &section.idle_timeout) {
                builder = builder.idle_timeout(timeout);
            }
            if let Some(timeout) = duration("absolute_timeout", &section.absolute_timeout) {
                builder = builder.absolute_timeout(timeout);
            }
            if let Some(uri) = &section.post_logout_redirect_uri {
                builder = builder.post_logout_redirect_uri(uri.as_str());
            }
            for origin in &section.allowed_origins {
                builder = builder.allowed_origin(origin.as_str());
            }
            let key = Self::session_key(section, secrets, &mut errors);
            if let Some(key) = &key {
                builder = builder.session_key(key.clone());
            }
            if let Some(store) = &section.session_store {
                match self.session_store(store, key.as_ref()) {
                    Ok(store) => builder = builder.session_store(store),
                    Err(error) => errors.push(error),
                }
            }
            if section.insecure_http_cookies_on_loopback {
                builder = builder.insecure_http_cookies_on_loopback();
            }
            if !errors.is_empty() {
                return Err(errors);
            }
            builder
                .build()
                .map_err(|error| vec![PolicyError::at(PLACE, error.to_string())])
        }

        /// The session key the section names, if it names one: 64 hex digits or base64.
        fn session_key(
            section: &OidcLogin,
            secrets: &LoginSecrets,
            errors: &mut Vec<PolicyError>,
        ) -> Option<SessionKey> {
            let text = secrets.session_key.as_ref()?;
            match decode_key(text).map(|bytes| SessionKey::from_bytes(&bytes)) {
                Some(Ok(key)) => Some(key),
                _ => {
                    let key = if section.session_key_env.is_some() {
                        "env"
                    } else {
                        "file"
                    };
                    errors.push(PolicyError::at(
                        format!("{PLACE}.session_key_{key}"),
                        "the session key is 32 bytes, written as 64 hex digits or in base64 \
                         (`openssl rand -hex 32`)",
                    ));
                    None
                }
            }
        }

        /// The session store a `session_store` section names.
        fn session_store(
            &self,
            section: &super::SessionStoreSection,
            key: Option<&SessionKey>,
        ) -> Result<Arc<dyn crate::oidc::SessionStore>, PolicyError> {
            let place = format!("{PLACE}.session_store.redis");
            #[cfg(feature = "redis")]
            {
                let Some(key) = key else {
                    return Err(PolicyError::at(
                        place,
                        "sessions on Redis need `session_key_env` or `session_key_file`: every \
                         instance seals and opens them with the same key",
                    ));
                };
                let connection = self.redis_connection(&place, &section.redis)?;
                Ok(Arc::new(crate::redis::RedisSessionStore::new(
                    connection,
                    key.clone(),
                )))
            }
            #[cfg(not(feature = "redis"))]
            {
                let _ = (section, key);
                Err(PolicyError::at(
                    place,
                    "sessions on Redis need the `redis` feature",
                ))
            }
        }
    }

    /// A login built or reused for a gateway, and what to keep once that gateway is built.
    pub(crate) struct Login {
        pub(crate) oidc: Oidc,
        new: Option<RunningLogin>,
    }

    /// The login a [`SharedState`] keeps: the section and secrets it was built from.
    pub(crate) struct RunningLogin {
        section: OidcLogin,
        fingerprint: [u8; 32],
        oidc: Oidc,
    }

    /// Keeps a newly built login in `state`, once its file was found good: a file refused
    /// for another reason never pins its login. The first kept stays (two files checked at
    /// once cannot replace each other's).
    pub(crate) fn keep_login(state: &SharedState, login: Login) {
        if let Some(running) = login.new {
            let mut kept = state.login.lock().unwrap_or_else(PoisonError::into_inner);
            if kept.is_none() {
                *kept = Some(running);
            }
        }
    }

    /// Forgets the login of `state` (and its sessions, if kept in memory): a good file
    /// without an `oidc` section has none, and one added back later starts afresh.
    pub(crate) fn forget_login(state: &SharedState) {
        *state.login.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The login's secrets, as read.
    struct LoginSecrets {
        client_secret: Option<zeroize::Zeroizing<String>>,
        session_key: Option<zeroize::Zeroizing<String>>,
    }

    impl LoginSecrets {
        /// A digest of both, to tell whether they changed (never kept in clear).
        fn fingerprint(&self) -> [u8; 32] {
            use sha2::{Digest, Sha256};
            let mut digest = Sha256::new();
            for secret in [&self.client_secret, &self.session_key] {
                match secret {
                    Some(text) => {
                        digest.update([1]);
                        digest.update((text.len() as u64).to_be_bytes());
                        digest.update(text.as_bytes());
                    }
                    None => digest.update([0]),
                }
            }
            digest.finalize().into()
        }
    }

    /// 32 bytes from 64 hex digits or base64 (standard or URL-safe, padded or not).
    fn decode_key(text: &str) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        use base64::Engine as _;
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        if text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            let bytes = (0..32)
                .map(|at| u8::from_str_radix(&text[at * 2..at * 2 + 2], 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            return Some(zeroize::Zeroizing::new(bytes));
        }
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .map(zeroize::Zeroizing::new)
    }

    #[cfg(test)]
    mod tests {
        use super::decode_key;
        use crate::config::{Format, PolicyFile, SharedState};

        fn file(client: &str, extra: &str) -> PolicyFile {
            PolicyFile::parse(
                &format!(
                    "authenticate:\n  oidc: {{issuer: 'https://idp.example', client_id: {client}, \
                     redirect_uri: 'https://app.example/auth/callback'}}\n\
                     routes: [{{route: GET /a, require: authenticated}}]\n{extra}"
                ),
                Format::Yaml,
            )
            .expect("parses")
        }

        #[test]
        fn the_running_login_is_kept_refused_on_change_and_forgotten_with_its_section() {
            let state = SharedState::new();
            // A file refused for another reason never pins its login.
            let refused = file("a", "unmatched: role(nobody)\n").gateway_with(&state);
            assert!(refused.is_err());
            assert!(file("b", "").gateway_with(&state).is_ok(), "b runs");
            let changed = file("c", "").gateway_with(&state).map(|_| ());
            let errors = changed.expect_err("a running login cannot change");
            assert_eq!(errors.errors()[0].place, "authenticate.oidc");
            // A good file without the section forgets it: another may come next.
            let without =
                PolicyFile::parse("routes: [{route: GET /a, require: public}]\n", Format::Yaml)
                    .expect("parses");
            assert!(without.gateway_with(&state).is_ok());
            assert!(file("c", "").gateway_with(&state).is_ok(), "c after none");
        }

        #[test]
        fn session_keys_read_as_hex_or_base64() {
            let hex = "00".repeat(31) + "ff";
            assert_eq!(decode_key(&hex).map(|key| key.len()), Some(32));
            assert_eq!(decode_key(&hex).map(|key| key[31]), Some(0xff));
            let base64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAP8=";
            assert_eq!(decode_key(base64).map(|key| key[31]), Some(0xff));
            assert_eq!(
                decode_key(base64.trim_end_matches('=')).map(|key| key.len()),
                Some(32)
            );
            assert!(decode_key("not a key!").is_none());
            // Non-ASCII never panics the hex path.
            assert!(decode_key(&"é".repeat(32)).is_none());
        }
    }
}
