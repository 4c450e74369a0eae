//! The `upstream` section: the proxy `portcullis serve` puts behind the gateway (its URL,
//! timeout, identity header names and identity token), and, with the `proxy` feature,
//! [`PolicyFile::proxy`] building it.

use serde::Deserialize;

#[cfg(feature = "proxy")]
use super::error::{PolicyError, PolicyErrors};
#[cfg(feature = "proxy")]
use super::file::PolicyFile;

/// The `upstream` section: where `portcullis serve` forwards what the gateway lets through,
/// and how it hands the caller's identity on.
///
/// ```yaml
/// upstream:
///   url: http://127.0.0.1:3000
///   timeout: 30s
///   identity_headers: {subject: x-user-id}
///   identity_token:
///     key_file: keys/gateway.pem
///     issuer: https://gateway.example.com
///     audience: orders-service
/// ```
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct UpstreamSection {
    /// The upstream's `http://` URL; its path, if any, goes before every request's. A URL
    /// given to [`PolicyFile::proxy`] (`portcullis serve --upstream`) wins over it.
    #[serde(default)]
    pub url: Option<String>,
    /// How long the upstream has to send its response head, a duration (`10s`, `2500ms`).
    /// Defaults to `30s`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// The identity headers: whether they are sent (by default they are), and their names,
    /// by default `x-auth-subject`, `x-auth-method`, `x-auth-roles`, `x-auth-scopes`.
    #[serde(default)]
    pub identity_headers: IdentityHeadersSection,
    /// The caller's identity also as a JWT signed by the gateway (with the
    /// `identity-token` feature).
    #[serde(default)]
    pub identity_token: Option<IdentityTokenSection>,
}

/// The identity headers: whether they are sent, and the names the caller's identity is
/// handed on under; each optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IdentityHeadersSection {
    /// Whether they are sent. Defaults to `true`; `false` with an `identity_token` makes the
    /// token the one way the identity arrives. Forged ones are removed either way.
    #[serde(default)]
    pub send: Option<bool>,
    /// The subject's header. Defaults to `x-auth-subject`.
    #[serde(default)]
    pub subject: Option<String>,
    /// The authentication method's header. Defaults to `x-auth-method`.
    #[serde(default)]
    pub method: Option<String>,
    /// The roles' header. Defaults to `x-auth-roles`.
    #[serde(default)]
    pub roles: Option<String>,
    /// The scopes' header. Defaults to `x-auth-scopes`.
    #[serde(default)]
    pub scopes: Option<String>,
}

/// The identity token: its signing key, a secret never written in the file (exactly one of
/// `key_file` and `key_env`), and its claims and settings.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IdentityTokenSection {
    /// A file holding the P-256 private key in PEM (relative to the policy file, or
    /// absolute).
    #[serde(default)]
    pub key_file: Option<String>,
    /// The environment variable holding the P-256 private key in PEM.
    #[serde(default)]
    pub key_env: Option<String>,
    /// The tokens' `iss`: the gateway.
    pub issuer: String,
    /// The tokens' `aud`: the upstream.
    pub audience: String,
    /// Each token's lifetime, a duration in whole seconds from `1s` to `5m`. Defaults to
    /// `60s`.
    #[serde(default)]
    pub lifetime: Option<String>,
    /// The header the token goes in. Defaults to `x-auth-token`.
    #[serde(default)]
    pub header: Option<String>,
    /// The path the gateway answers with its JWKS. Defaults to `/.well-known/jwks.json`.
    #[serde(default)]
    pub jwks_path: Option<String>,
}

#[cfg(feature = "proxy")]
const PLACE: &str = "upstream";

#[cfg(feature = "proxy")]
impl PolicyFile {
    /// The proxy the `upstream` section describes (a file without one gives the defaults),
    /// to `upstream` when given, else to the section's `url`. The identity token's key is
    /// read here, from its file (inside the policy's directory) or environment variable,
    /// held as a secret, and never repeated in an error.
    ///
    /// The proxy is built once: reloading a policy's gateway does not change it.
    ///
    /// # Errors
    ///
    /// Every problem, each with its place: no URL, or one that is not an `http://` URL
    /// (`upstream.url`; no place for the URL given here), a timeout that is not a positive
    /// number, a header name that is not one, and for the identity token both or neither
    /// of `key_file` and `key_env`, a key that cannot be read or is not a P-256 private key
    /// in PEM, an empty issuer or audience, a lifetime out of bounds, a header the proxy
    /// owns, a JWKS path that is not a plain path; the token without the `identity-token`
    /// feature.
    pub fn proxy(&self, upstream: Option<&str>) -> Result<crate::proxy::Proxy, PolicyErrors> {
        self.build_proxy(upstream, true)
    }

    /// Every problem of the `upstream` section that can be found without its secret (the
    /// identity token's key is not read) or its URL when the command line gives it: what
    /// [`check`](Self::check) reports.
    pub(crate) fn upstream_problems(&self) -> Vec<PolicyError> {
        let Some(section) = &self.upstream else {
            return Vec::new();
        };
        // Without a URL in the file, `serve --upstream` gives it: check the rest.
        let placeholder = section.url.is_none().then_some("http://127.0.0.1:9");
        match self.build_proxy(placeholder, false) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0,
        }
    }

    /// The proxy, reading the identity token's key when `read_key`.
    fn build_proxy(
        &self,
        upstream: Option<&str>,
        read_key: bool,
    ) -> Result<crate::proxy::Proxy, PolicyErrors> {
        use http::HeaderName;

        use crate::proxy::{Proxy, ProxyConfigError};

        let section = self.upstream.clone().unwrap_or_default();
        let mut errors = Vec::new();
        let (url, url_place) = match (upstream, &section.url) {
            (Some(url), _) => (url.to_owned(), String::new()),
            (None, Some(url)) => (url.clone(), format!("{PLACE}.url")),
            (None, None) => {
                return Err(PolicyError::at(
                    format!("{PLACE}.url"),
                    "no upstream: give its URL (`upstream.url`, or `--upstream URL` to \
                     `portcullis serve`)",
                )
                .into());
            }
        };
        if let Err(error) = Proxy::builder(url.as_str()).build() {
            errors.push(PolicyError::at(url_place, error.to_string()));
        }
        let mut builder = Proxy::builder(url);
        if let Some(text) = &section.timeout {
            match super::traffic::parse_duration(text) {
                Ok(timeout) => builder = builder.timeout(timeout),
                Err(message) => errors.push(PolicyError::at(format!("{PLACE}.timeout"), message)),
            }
        }
        let names = &section.identity_headers;
        let header = |field: &str, name: &Option<String>, errors: &mut Vec<PolicyError>| {
            let name = name.as_deref()?;
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| {
                    errors.push(PolicyError::at(
                        format!("{PLACE}.identity_headers.{field}"),
                        format!("`{}` is not a header name", crate::text::bounded(name)),
                    ));
                })
                .ok()
                .filter(
                    |name| match crate::proxy::identity_header_problem(name.as_str()) {
                        None => true,
                        Some(reason) => {
                            errors.push(PolicyError::at(
                                format!("{PLACE}.identity_headers.{field}"),
                                format!("`{name}`: {reason}"),
                            ));
                            false
                        }
                    },
                )
        };
        if let Some(name) = header("subject", &names.subject, &mut errors) {
            builder = builder.subject_header(name);
        }
        if let Some(name) = header("method", &names.method, &mut errors) {
            builder = builder.method_header(name);
        }
        if let Some(name) = header("roles", &names.roles, &mut errors) {
            builder = builder.roles_header(name);
        }
        if let Some(name) = header("scopes", &names.scopes, &mut errors) {
            builder = builder.scopes_header(name);
        }
        if let Some(send) = names.send {
            builder = builder.identity_headers(send);
        }
        if let Some(token) = &section.identity_token {
            #[cfg(feature = "identity-token")]
            match self.identity_token(token, read_key) {
                Ok(token) => builder = builder.identity_token(token),
                Err(found) => errors.extend(found),
            }
            #[cfg(not(feature = "identity-token"))]
            {
                let _ = (token, read_key);
                errors.push(PolicyError::at(
                    format!("{PLACE}.identity_token"),
                    "the identity token needs the `identity-token` feature",
                ));
            }
        }
        if !errors.is_empty() {
            return Err(PolicyErrors(errors));
        }
        builder.build().map_err(|error| {
            let place = match &error {
                ProxyConfigError::InvalidIdentityToken { setting, .. } => {
                    format!("{PLACE}.identity_token.{setting}")
                }
                _ => PLACE.to_owned(),
            };
            PolicyError::at(place, error.to_string()).into()
        })
    }

    /// The identity token of an `identity_token` section, its key read from a file or the
    /// environment; every problem at once.
    #[cfg(feature = "identity-token")]
    fn identity_token(
        &self,
        section: &IdentityTokenSection,
        read_key: bool,
    ) -> Result<crate::proxy::IdentityToken, Vec<PolicyError>> {
        use http::HeaderName;

        use crate::proxy::{IdentityToken, ProxyConfigError};
        use crate::secret::ClientSecret;

        let place = format!("{PLACE}.identity_token");
        let mut errors = Vec::new();
        // The key is a secret: read straight into the secret type, and the errors say where
        // it was looked for, never what was found.
        let key: Option<(ClientSecret, String)> = match read_key.then(|| {
            self.secret(
                &place,
                "key",
                section.key_env.as_deref(),
                section.key_file.as_deref(),
            )
        }) {
            // Checking only: the key is where `serve` reads it, not here.
            None => {
                if section.key_env.is_some() == section.key_file.is_some() {
                    errors.push(PolicyError::at(
                        place.clone(),
                        "give exactly one of `key_env` and `key_file`: a secret is never \
                         written in the policy",
                    ));
                }
                None
            }
            Some(Ok(text)) => {
                let from = if section.key_env.is_some() {
                    "env"
                } else {
                    "file"
                };
                Some((
                    ClientSecret::from(text.as_str()),
                    format!("{place}.key_{from}"),
                ))
            }
            Some(Err(error)) => {
                errors.push(error);
                None
            }
        };
        let setting_error = |setting: &str, error: ProxyConfigError| {
            PolicyError::at(format!("{place}.{setting}"), error.to_string())
        };
        for (setting, value) in [("issuer", &section.issuer), ("audience", &section.audience)] {
            if value.trim().is_empty() {
                errors.push(PolicyError::at(
                    format!("{place}.{setting}"),
                    "must not be empty",
                ));
            }
        }
        let lifetime = match section
            .lifetime
            .as_deref()
            .map(super::traffic::parse_duration)
        {
            None => None,
            Some(Ok(lifetime)) => match crate::proxy::check_lifetime(lifetime) {
                Ok(()) => Some(lifetime),
                Err(error) => {
                    errors.push(setting_error("lifetime", error));
                    None
                }
            },
            Some(Err(message)) => {
                errors.push(PolicyError::at(format!("{place}.lifetime"), message));
                None
            }
        };
        let header = match section.header.as_deref() {
            None => None,
            Some(name) => match HeaderName::from_bytes(name.as_bytes()) {
                Ok(header) => match crate::proxy::check_header(&header) {
                    Ok(()) => Some(header),
                    Err(error) => {
                        errors.push(setting_error("header", error));
                        None
                    }
                },
                Err(_) => {
                    errors.push(PolicyError::at(
                        format!("{place}.header"),
                        format!("`{}` is not a header name", crate::text::bounded(name)),
                    ));
                    None
                }
            },
        };
        if let Some(path) = &section.jwks_path
            && let Err(error) = crate::proxy::check_jwks_path(path)
        {
            errors.push(setting_error("jwks_path", error));
        }
        let Some((key, key_place)) = key else {
            return Err(errors);
        };
        let mut builder =
            IdentityToken::builder(key, section.issuer.as_str(), section.audience.as_str());
        if let Some(lifetime) = lifetime {
            builder = builder.lifetime(lifetime);
        }
        if let Some(header) = header {
            builder = builder.header(header);
        }
        if let Some(path) = &section.jwks_path {
            builder = builder.jwks_path(path.as_str());
        }
        match builder.build() {
            Ok(token) if errors.is_empty() => Ok(token),
            Ok(_) => Err(errors),
            Err(error @ ProxyConfigError::InvalidSigningKey { .. }) => {
                errors.push(PolicyError::at(key_place, error.to_string()));
                Err(errors)
            }
            // Already reported above, field by field.
            Err(_) if !errors.is_empty() => Err(errors),
            Err(error) => Err(vec![PolicyError::at(place, error.to_string())]),
        }
    }
}

#[cfg(all(test, feature = "identity-token"))]
mod tests {
    use crate::config::{Format, PolicyFile};
    use crate::proxy::IdentityToken;

    const YAML: &str = r#"
upstream:
  url: http://127.0.0.1:3000/api
  timeout: 2500ms
  identity_headers: {send: false, subject: x-user-id, roles: x-user-roles}
  identity_token:
    key_file: gateway.pem
    issuer: https://gateway.test
    audience: orders
    lifetime: 30s
    header: x-gateway-token
    jwks_path: /keys.json
"#;

    const TOML: &str = r#"
[upstream]
url = "http://127.0.0.1:3000/api"
timeout = "2500ms"
identity_headers = { send = false, subject = "x-user-id", roles = "x-user-roles" }
[upstream.identity_token]
key_file = "gateway.pem"
issuer = "https://gateway.test"
audience = "orders"
lifetime = "30s"
header = "x-gateway-token"
jwks_path = "/keys.json"
"#;

    /// A directory of its own for a test, with the policy in `policy/`.
    fn directory(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("portcullis-upstream-{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("policy")).expect("temp dir");
        dir
    }

    #[test]
    fn the_section_reads_in_yaml_and_toml_and_builds_the_proxy() {
        // (`key_env` is read in `tests/serve.rs`, by the binary: setting a variable in
        // process needs `unsafe`.)
        let dir = directory("formats");
        std::fs::write(
            dir.join("policy/gateway.pem"),
            IdentityToken::example_key_pem(),
        )
        .expect("write");
        for (text, format) in [(YAML, Format::Yaml), (TOML, Format::Toml)] {
            let mut policy = PolicyFile::parse(text, format).expect("parses");
            policy.base = Some(dir.join("policy"));
            let section = policy.upstream.as_ref().expect("a section");
            assert_eq!(section.url.as_deref(), Some("http://127.0.0.1:3000/api"));
            assert_eq!(section.timeout.as_deref(), Some("2500ms"));
            assert_eq!(
                section.identity_headers.subject.as_deref(),
                Some("x-user-id")
            );
            let token = section.identity_token.as_ref().expect("a token");
            assert_eq!(token.lifetime.as_deref(), Some("30s"));

            let proxy = policy
                .proxy(None)
                .unwrap_or_else(|errors| panic!("{format:?}: {errors}"));
            assert_eq!(proxy.upstream(), "http://127.0.0.1:3000/api");
            let token = proxy.identity_token().expect("a token");
            assert_eq!(token.jwks_path(), "/keys.json");
            assert_eq!(token.header().as_str(), "x-gateway-token");
            let debug = format!("{proxy:?}");
            assert!(debug.contains("timeout: 2.5s"), "{debug}");
            assert!(debug.contains("x-user-id"), "{debug}");
            assert!(debug.contains("send: false"), "{debug}");
            // The URL given in code (`--upstream`) wins.
            let proxy = policy.proxy(Some("http://10.0.0.2:8080")).expect("builds");
            assert_eq!(proxy.upstream(), "http://10.0.0.2:8080");
        }
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn key_problems_are_reported_at_once_with_their_places_and_never_the_key() {
        let dir = directory("keys");
        let secret_key = IdentityToken::example_key_pem();
        std::fs::write(dir.join("outside.pem"), &secret_key).expect("write");
        std::fs::write(dir.join("policy/not-a-key.pem"), "db_password=hunter2").expect("write");
        let policy_at = |text: &str| {
            let mut policy = PolicyFile::parse(text, Format::Yaml).expect("parses");
            policy.base = Some(dir.join("policy"));
            policy
        };
        let errors = |text: &str| -> Vec<String> {
            policy_at(text)
                .proxy(None)
                .expect_err("refused")
                .errors()
                .iter()
                .map(ToString::to_string)
                .collect()
        };

        let found = errors(
            "upstream:\n  url: https://example.com\n  timeout: 0s\n  \
             identity_headers: {subject: 'bad name'}\n  identity_token:\n    \
             key_env: PORTCULLIS_SURELY_UNSET_VARIABLE\n    issuer: ''\n    audience: orders\n    \
             lifetime: 1h\n    header: host\n    jwks_path: /a/../b\n",
        );
        let expected = [
            "upstream.url: upstream `https://example.com` refused",
            "upstream.timeout: ",
            "upstream.identity_headers.subject: `bad name` is not a header name",
            "upstream.identity_token.key_env: the environment variable \
             `PORTCULLIS_SURELY_UNSET_VARIABLE` is not set",
            "upstream.identity_token.issuer: must not be empty",
            "upstream.identity_token.lifetime: ",
            "upstream.identity_token.header: ",
            "upstream.identity_token.jwks_path: ",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (found, expected) in found.iter().zip(expected) {
            assert!(found.starts_with(expected), "{found} / {expected}");
        }

        // Both places for the key, or neither.
        for token in [
            "{key_file: k.pem, key_env: K, issuer: i, audience: a}",
            "{issuer: i, audience: a}",
        ] {
            let found = errors(&format!(
                "upstream: {{url: 'http://127.0.0.1:1', identity_token: {token}}}"
            ));
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(
                found[0].starts_with("upstream.identity_token: give exactly one of"),
                "{found:?}"
            );
        }

        // A key file may be anywhere (secrets are mounted where the platform puts them):
        // beside the policy's directory, by a relative or an absolute path.
        let outside = dir.join("outside.pem");
        for path in ["../outside.pem".to_owned(), outside.display().to_string()] {
            let built = policy_at(&format!(
                "upstream: {{url: 'http://127.0.0.1:1', identity_token: {{key_file: '{path}', \
                 issuer: i, audience: a}}}}"
            ))
            .proxy(None);
            assert!(built.is_ok(), "{path}: {built:?}");
        }
        let found = errors(
            "upstream: {url: 'http://127.0.0.1:1', identity_token: {key_file: missing.pem, \
             issuer: i, audience: a}}",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("upstream.identity_token.key_file: "),
            "{found:?}"
        );

        // A file inside that is not a key: the error says so without repeating it.
        let found = errors(
            "upstream: {url: 'http://127.0.0.1:1', identity_token: {key_file: not-a-key.pem, \
             issuer: i, audience: a}}",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "upstream.identity_token.key_file: the identity token's signing key is refused"
            ),
            "{found:?}"
        );
        assert!(!found[0].contains("hunter2"), "{found:?}");

        // A good key inside the directory builds.
        std::fs::write(dir.join("policy/gateway.pem"), &secret_key).expect("write");
        let proxy = policy_at(
            "upstream: {url: 'http://127.0.0.1:1', identity_token: {key_file: gateway.pem, \
             issuer: i, audience: a}}",
        )
        .proxy(None)
        .expect("builds");
        let token = proxy.identity_token().expect("a token");
        assert_eq!(token.header().as_str(), "x-auth-token");
        assert_eq!(token.jwks_path(), "/.well-known/jwks.json");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn no_url_anywhere_is_an_error_and_a_file_without_the_section_uses_the_defaults() {
        let policy = PolicyFile::parse("routes: []", Format::Yaml).expect("parses");
        let errors = policy.proxy(None).expect_err("no URL");
        assert!(
            errors.to_string().starts_with("upstream.url: no upstream"),
            "{errors}"
        );
        let proxy = policy.proxy(Some("http://127.0.0.1:1")).expect("builds");
        assert!(proxy.identity_token().is_none());
        // A URL given in code that cannot work: reported without a place in the file.
        let errors = policy.proxy(Some("ftp://x")).expect_err("refused");
        assert!(
            errors.to_string().starts_with("upstream `ftp://x` refused"),
            "{errors}"
        );
    }

    #[test]
    fn check_reports_the_section_without_reading_its_key() {
        let policy = PolicyFile::parse(
            "upstream:\n  timeout: 0s\n  identity_headers: {subject: x_user}\n  \
             identity_token: {key_env: PORTCULLIS_SURELY_UNSET_VARIABLE, issuer: i, \
             audience: a, lifetime: 1h}\n",
            Format::Yaml,
        )
        .expect("parses");
        let errors = policy.check().expect_err("problems");
        let places: Vec<&str> = errors
            .errors()
            .iter()
            .map(|error| error.place.as_str())
            .collect();
        // The unset variable is `serve`'s business: `check` may run where secrets are not.
        assert!(
            !places.iter().any(|place| place.ends_with("key_env")),
            "{errors}"
        );
        assert!(places.contains(&"upstream.timeout"), "{errors}");
        assert!(
            places.contains(&"upstream.identity_token.lifetime"),
            "{errors}"
        );
        assert!(errors.to_string().contains("x_user"), "{errors}");
        let good = PolicyFile::parse(
            "upstream:\n  identity_token: {key_env: PORTCULLIS_SURELY_UNSET_VARIABLE, \
             issuer: i, audience: a}\n",
            Format::Yaml,
        )
        .expect("parses");
        assert!(good.check().is_ok());
    }
}
