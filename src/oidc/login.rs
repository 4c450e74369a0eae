//! The login: the redirect to the provider (code + PKCE S256 + state + nonce, kept in a
//! sealed login cookie), and the callback (state bound to the browser and usable once,
//! code exchange, ID-token verification, a new session with a new id).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Response, StatusCode};
use oauth2::{CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RefreshToken, Scope};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::id_token::{self, Expected, Refused};
use super::session::{Session, SessionId, Tokens, split_scopes};
use super::token_endpoint::{self, TokenError};
use super::{Oidc, cookie, pages, random, userinfo};
use crate::authenticate::credentials::cookie_pairs;
use crate::jwt::claims::roles_at;

/// The most logins remembered as used (their state), and logout tokens as seen (`jti`).
pub(crate) const MAX_PENDING_LOGINS: usize = 10_000;
/// The most login cookies a browser keeps: a new login past it deletes the oldest.
const MAX_LOGIN_COOKIES: usize = 4;
/// The longest return address kept, in bytes.
const MAX_RETURN_LEN: usize = 2048;
/// How many characters of the state name the login cookie.
const STATE_IN_NAME: usize = 16;

/// What the login cookie carries, sealed.
#[derive(Serialize, Deserialize)]
struct LoginState {
    /// `state`.
    s: String,
    /// `nonce`.
    n: String,
    /// The PKCE code verifier.
    v: String,
    /// Where to land after the login (a checked relative path).
    r: String,
    /// When the login started, in seconds since the Unix epoch.
    t: u64,
}

/// Values that may be used once (login states, logout token ids), remembered until they
/// expire, at most `capacity` of them.
#[derive(Debug)]
pub(crate) struct UsedStates {
    seen: HashMap<[u8; 32], f64>,
    capacity: usize,
}

impl UsedStates {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            capacity,
        }
    }

    /// Whether `value` was used and is still remembered, without recording it.
    pub(crate) fn was_used(&self, value: &str, now: f64) -> bool {
        let key: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        self.seen.get(&key).is_some_and(|&expiry| expiry >= now)
    }

    /// Whether one more value can be recorded now (expired entries pruned first).
    pub(crate) fn has_room(&mut self, now: f64) -> bool {
        if self.seen.len() >= self.capacity {
            self.seen.retain(|_, expiry| *expiry >= now);
        }
        self.seen.len() < self.capacity
    }

    /// Records `value` as used until `until`. Never forgets a value before it expires:
    /// when full of live entries, nothing is recorded and the caller refuses for now
    /// (forgetting one would let it be used again).
    pub(crate) fn first_use(&mut self, value: &str, until: f64, now: f64) -> Use {
        let key: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        if self.seen.get(&key).is_some_and(|&expiry| expiry >= now) {
            return Use::Again;
        }
        if !self.has_room(now) {
            return Use::Full;
        }
        self.seen.insert(key, until);
        Use::First
    }
}

/// What [`UsedStates::first_use`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Not used before; now recorded.
    First,
    /// Used before (and not expired).
    Again,
    /// Not recorded: the set is full of live entries.
    Full,
}

/// `path` if it is a relative path on our own origin: starts with one `/`, not `//` or
/// `/\` (which browsers read as another host), printable ASCII without `\`, bounded.
pub(crate) fn safe_return_path(path: &str) -> Option<&str> {
    let bytes = path.as_bytes();
    let ok = bytes.first() == Some(&b'/')
        && bytes.get(1) != Some(&b'/')
        && path.len() <= MAX_RETURN_LEN
        && bytes
            .iter()
            .all(|&b| (0x21..0x7f).contains(&b) && b != b'\\');
    ok.then_some(path)
}

/// The value of query parameter `name`, if it appears exactly once.
pub(crate) fn query_param(parts: &Parts, name: &str) -> Result<Option<String>, ()> {
    let mut found = None;
    for (key, value) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        if key == name {
            if found.is_some() {
                return Err(());
            }
            found = Some(value.into_owned());
        }
    }
    Ok(found)
}

/// Starts a login that lands on `return_to` (already checked): the redirect to the
/// provider, with the login cookie (and, past [`MAX_LOGIN_COOKIES`], the deletion of the
/// browser's oldest login cookies).
pub(crate) async fn start(oidc: Oidc, return_to: String, headers: HeaderMap) -> Response<Bytes> {
    let inner = oidc.inner();
    let Some(client) = token_endpoint::client(inner).await else {
        tracing::warn!(issuer = %inner.issuer, "oidc: login refused, the provider's discovery document is unavailable");
        return unavailable();
    };
    // Our random values (43 characters each, so PKCE's length rule always holds).
    let state = random::token();
    let nonce = random::token();
    let verifier = PkceCodeVerifier::new(random::token());
    let Ok(mut request) = client.authorize_url(|| CsrfToken::new(state.clone())) else {
        tracing::error!(issuer = %inner.issuer, "oidc: the provider has no authorization_endpoint");
        return unavailable();
    };
    request = request
        .add_scopes(split_scopes(&inner.scopes).into_iter().map(Scope::new))
        .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier))
        .add_extra_param("nonce", nonce.as_str());
    if let Some(prompt) = &inner.prompt {
        request = request.add_extra_param("prompt", prompt.as_str());
    }
    if let Some(max_age) = inner.max_age {
        request = request.add_extra_param("max_age", max_age.as_secs().to_string());
    }
    if !inner.acr_values.is_empty() {
        request = request.add_extra_param("acr_values", inner.acr_values.join(" "));
    }
    let (url, _) = request.url();
    let login = LoginState {
        s: state.clone(),
        n: nonce,
        v: verifier.into_secret(),
        r: return_to,
        t: inner.clock.now_secs(),
    };
    let name = login_cookie_name(&oidc, &state);
    let plaintext = serde_json::to_vec(&login).unwrap_or_default();
    let sealed = cookie::seal(&inner.key, &name, &plaintext);
    let mut cookies = stale_login_cookies(&oidc, &headers)
        .iter()
        .map(|name| inner.cookies.clear_cookie(name))
        .collect::<Vec<_>>();
    cookies.push(
        inner
            .cookies
            .set_cookie(&name, &sealed, inner.login_timeout.as_secs()),
    );
    pages::with_cause(
        pages::redirect(StatusCode::FOUND, url.as_str(), cookies),
        "login_started",
    )
}

/// The login cookies the browser sends beyond the newest `MAX_LOGIN_COOKIES - 1` (by the
/// start time sealed inside; one that does not open counts as the oldest), to delete as a
/// new login starts: abandoned logins must not grow the browser's `Cookie` header until
/// servers refuse it.
fn stale_login_cookies(oidc: &Oidc, headers: &HeaderMap) -> Vec<String> {
    let inner = oidc.inner();
    let prefix = inner.cookies.login_prefix.as_str();
    let mut found: Vec<(u64, String)> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|value| cookie_pairs(value.as_bytes()))
        .filter_map(|(name, value)| {
            Some((
                std::str::from_utf8(name).ok()?,
                std::str::from_utf8(value).ok()?,
            ))
        })
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(name, value)| {
            let started = cookie::open(&inner.key, name, value.trim_matches('"'))
                .and_then(|plaintext| serde_json::from_slice::<LoginState>(&plaintext).ok())
                .map_or(0, |login| login.t);
            (started, name.to_owned())
        })
        .collect();
    if found.len() < MAX_LOGIN_COOKIES {
        return Vec::new();
    }
    found.sort_unstable_by_key(|(started, _)| std::cmp::Reverse(*started));
    found
        .into_iter()
        .skip(MAX_LOGIN_COOKIES - 1)
        .map(|(_, name)| name)
        .collect()
}

fn login_cookie_name(oidc: &Oidc, state: &str) -> String {
    format!(
        "{}{}",
        oidc.inner().cookies.login_prefix,
        &state[..STATE_IN_NAME.min(state.len())]
    )
}

/// What the 503 page says when the provider cannot be reached.
const PROVIDER_DOWN: &str =
    "The identity provider cannot be reached right now. Please try again in a minute.";

/// The title of a 503 sign-in page.
#[derive(Clone, Copy)]
enum SignIn {
    Unavailable,
    Busy,
}

/// The one 503 page of the login routes: `message` says what failed, `back` offers to
/// sign in again, `cookies` are set (or cleared) with it, `cause` goes to the observer.
fn sign_in_unavailable(
    title: SignIn,
    message: &str,
    back: Option<(&str, &str)>,
    cookies: Vec<http::HeaderValue>,
    cause: &'static str,
) -> Response<Bytes> {
    let title = match title {
        SignIn::Unavailable => "Sign-in is unavailable",
        SignIn::Busy => "Sign-in is busy",
    };
    pages::with_cause(
        pages::page(
            StatusCode::SERVICE_UNAVAILABLE,
            title,
            message,
            back,
            cookies,
        ),
        cause,
    )
}

fn unavailable() -> Response<Bytes> {
    sign_in_unavailable(
        SignIn::Unavailable,
        PROVIDER_DOWN,
        None,
        Vec::new(),
        "provider_unavailable",
    )
}

/// The callback: checks the state against the login cookie, exchanges the code, verifies
/// the ID token, starts a new session and sends the browser where it wanted to go.
pub(crate) async fn callback(oidc: Oidc, parts: Parts) -> Response<Bytes> {
    let inner = oidc.inner();
    let login_again = Some((inner.login_path.as_str(), "Sign in again"));
    let refuse = |status: StatusCode, message: &str, cause: &'static str, cookies| {
        tracing::info!(cause, "oidc: login callback refused");
        pages::with_cause(
            pages::page(status, "Sign-in failed", message, login_again, cookies),
            cause,
        )
    };
    // A refusal of what the client presented (a code, an ID token): a failed login, which
    // the shield counts against the source like a bad credential.
    let failed = |status: StatusCode, message: &str, cause: &'static str, cookies| {
        let mut response = refuse(status, message, cause, cookies);
        response
            .extensions_mut()
            .insert(crate::authenticate::FailedLogin);
        response
    };
    let (Ok(state), Ok(code), Ok(error)) = (
        query_param(&parts, "state"),
        query_param(&parts, "code"),
        query_param(&parts, "error"),
    ) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The sign-in answer is malformed.",
            "repeated_parameter",
            vec![],
        );
    };
    let Some(state) = state.filter(|state| random::is_token(state)) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The sign-in answer does not belong to a sign-in started in this browser.",
            "missing_state",
            vec![],
        );
    };
    let name = login_cookie_name(&oidc, &state);
    let clear = vec![inner.cookies.clear_cookie(&name)];
    let Some(sealed) = cookie::find(&parts.headers, &name) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "This sign-in is unknown, expired or already used. Please sign in again.",
            "unknown_state",
            vec![],
        );
    };
    let login = cookie::open(&inner.key, &name, sealed)
        .and_then(|plaintext| serde_json::from_slice::<LoginState>(&plaintext).ok());
    let Some(login) = login.filter(|login| bool::from(login.s.as_bytes().ct_eq(state.as_bytes())))
    else {
        // Not counted as a failed login: after the sealing key changes, every sign-in in
        // flight ends here through no fault of the user.
        return refuse(
            StatusCode::BAD_REQUEST,
            "This sign-in is unknown, expired or already used. Please sign in again.",
            "bad_login_cookie",
            clear,
        );
    };
    let now = inner.clock.now();
    let deadline = login.t as f64 + inner.login_timeout.as_secs_f64();
    if now > deadline {
        return refuse(
            StatusCode::BAD_REQUEST,
            "This sign-in took too long. Please sign in again.",
            "login_expired",
            clear,
        );
    }
    let first_use = inner
        .used_states
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .first_use(&state, deadline, now);
    match first_use {
        Use::First => {}
        Use::Again => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "This sign-in is unknown, expired or already used. Please sign in again.",
                "state_reused",
                clear,
            );
        }
        Use::Full => {
            tracing::warn!(
                capacity = MAX_PENDING_LOGINS,
                "oidc: too many logins in the last login timeout; callback refused for now"
            );
            return sign_in_unavailable(
                SignIn::Busy,
                "Too many sign-ins are in progress. Please try again in a minute.",
                None,
                clear,
                "used_states_full",
            );
        }
    }
    if let Some(error) = error {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        tracing::info!(provider_error = %error, "oidc: the provider refused the login");
        let message = format!(
            "The identity provider did not sign you in ({}).",
            if error.is_empty() {
                "no reason given"
            } else {
                &error
            }
        );
        return refuse(StatusCode::FORBIDDEN, &message, "provider_error", clear);
    }
    let Some(code) = code.filter(|code| !code.is_empty() && code.len() <= 4096) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The sign-in answer has no code.",
            "missing_code",
            clear,
        );
    };
    let tokens = match token_endpoint::exchange_code(inner, &code, &login.v).await {
        Ok(tokens) => tokens,
        Err(TokenError::Refused(error)) => {
            tracing::info!(provider_error = %error, "oidc: code exchange refused");
            return failed(
                StatusCode::BAD_REQUEST,
                "The sign-in could not be completed (the code was refused). Please sign in again.",
                "code_refused",
                clear,
            );
        }
        Err(TokenError::Unavailable(reason)) => {
            tracing::warn!(%reason, "oidc: code exchange failed");
            return sign_in_unavailable(
                SignIn::Unavailable,
                PROVIDER_DOWN,
                login_again,
                clear,
                "provider_unavailable",
            );
        }
    };
    let Some(id_token) = tokens.id_token.as_deref() else {
        return refuse(
            StatusCode::BAD_GATEWAY,
            "The identity provider sent no ID token.",
            "missing_id_token",
            clear,
        );
    };
    let expected = Expected {
        nonce: Some(&login.n),
        code: Some(&code),
        access_token: Some(tokens.access_token.secret()),
        subject: None,
        check_auth_time: true,
    };
    let mut identity = match id_token::verify(inner, id_token, &expected).await {
        Ok(identity) => identity,
        Err(Refused::Unavailable) => {
            return sign_in_unavailable(
                SignIn::Unavailable,
                "The identity provider's keys cannot be fetched right now. Please try again in a minute.",
                login_again,
                clear,
                "no_keys",
            );
        }
        Err(Refused::Invalid(reason)) => {
            tracing::warn!(reason, "oidc: ID token refused at login");
            return failed(
                StatusCode::BAD_REQUEST,
                "The identity provider's answer could not be verified.",
                reason,
                clear,
            );
        }
    };
    let mut userinfo_claims = serde_json::Map::new();
    if inner.userinfo {
        match userinfo::fetch(inner, tokens.access_token.secret(), &identity.subject).await {
            Ok(None) => {}
            Ok(Some(claims)) => {
                for (name, value) in claims {
                    if !identity.claims.contains_key(&name) {
                        identity.claims.insert(name.clone(), value.clone());
                        userinfo_claims.insert(name, value);
                    }
                }
                match roles_at(&identity.claims, inner.roles_claim.as_deref()) {
                    Ok(roles) => identity.roles = roles,
                    Err(failure) => {
                        return refuse(
                            StatusCode::BAD_REQUEST,
                            "The identity provider's answer could not be verified.",
                            failure.code(),
                            clear,
                        );
                    }
                }
            }
            Err(Refused::Unavailable) => {
                return sign_in_unavailable(
                    SignIn::Unavailable,
                    PROVIDER_DOWN,
                    login_again,
                    clear,
                    "provider_unavailable",
                );
            }
            Err(Refused::Invalid(reason)) => {
                tracing::warn!(reason, "oidc: userinfo refused at login");
                return failed(
                    StatusCode::BAD_REQUEST,
                    "The identity provider's answer could not be verified.",
                    reason,
                    clear,
                );
            }
        }
    }
    let now_secs = inner.clock.now_secs();
    let session = Session::new(
        identity,
        Tokens {
            id_token: id_token.to_owned(),
            access_token_expires_at: tokens
                .expires_in
                .map(|seconds| now_secs.saturating_add(seconds)),
            // No `scope` in the answer: the scopes requested (RFC 6749 section 5.1).
            scopes: tokens
                .granted_scopes()
                .unwrap_or_else(|| split_scopes(&inner.scopes)),
            access_token: Some(tokens.access_token.into_secret()),
            refresh_token: tokens.refresh_token.map(RefreshToken::into_secret),
        },
        now_secs,
        now_secs.saturating_add(inner.absolute_timeout.as_secs()),
    )
    .with_userinfo(userinfo_claims);
    // A new id at every login: a session id planted before the login is worth nothing.
    if let Some(old) = cookie::find(&parts.headers, &inner.cookies.session_name) {
        let _ = inner.store.remove(&SessionId::of_cookie(old)).await;
    }
    let value = random::token();
    let session = Arc::new(session);
    let principal = session.principal();
    if let Err(error) = inner
        .store
        .save(&SessionId::of_cookie(&value), session, inner.idle_timeout)
        .await
    {
        tracing::error!(%error, "oidc: the session could not be stored");
        return sign_in_unavailable(
            SignIn::Unavailable,
            "Your session cannot be stored right now. Please try again in a minute.",
            login_again,
            clear,
            "session_store",
        );
    }
    tracing::info!("oidc: login completed");
    let mut cookies = clear;
    cookies.push(inner.cookies.set_cookie(
        &inner.cookies.session_name,
        &value,
        inner.absolute_timeout.as_secs(),
    ));
    let return_to = safe_return_path(&login.r).unwrap_or("/");
    let mut response = pages::redirect(StatusCode::FOUND, return_to, cookies);
    response.extensions_mut().insert(principal);
    pages::with_cause(response, "login_completed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_values_are_never_forgotten_before_they_expire() {
        let mut used = UsedStates::new(2);
        assert_eq!(used.first_use("a", 100.0, 0.0), Use::First);
        assert_eq!(used.first_use("b", 200.0, 0.0), Use::First);
        assert_eq!(used.first_use("a", 100.0, 1.0), Use::Again);
        // Full of live entries: refused, and "a" still counts as used.
        assert_eq!(used.first_use("c", 100.0, 1.0), Use::Full);
        assert_eq!(used.first_use("a", 100.0, 2.0), Use::Again);
        assert!(!used.has_room(50.0));
        // Once "a" has expired, there is room again.
        assert!(used.has_room(150.0));
        assert_eq!(used.first_use("c", 300.0, 150.0), Use::First);
        assert_eq!(used.first_use("b", 200.0, 150.0), Use::Again);
    }

    fn oidc() -> Oidc {
        Oidc::builder("https://idp.example")
            .client_id("app")
            .redirect_uri("https://app.example/auth/callback")
            .build()
            .expect("config")
    }

    /// A callback request for `state`, with a login cookie holding `login`.
    fn callback_request(oidc: &Oidc, state: &str, login: &LoginState, query: &str) -> Parts {
        let name = login_cookie_name(oidc, state);
        let sealed = cookie::seal(
            &oidc.inner().key,
            &name,
            &serde_json::to_vec(login).unwrap(),
        );
        let (parts, ()) = http::Request::get(format!("/auth/callback?state={state}&{query}"))
            .header(http::header::COOKIE, format!("{name}={sealed}"))
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    fn body(response: &Response<Bytes>) -> String {
        String::from_utf8(response.body().to_vec()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_login_older_than_the_login_timeout_is_refused() {
        let oidc = oidc();
        let state = random::token();
        let login = LoginState {
            s: state.clone(),
            n: random::token(),
            v: random::token(),
            r: "/orders".into(),
            t: oidc.inner().clock.now_secs(),
        };
        tokio::time::advance(std::time::Duration::from_secs(10 * 60 + 2)).await;
        let response = callback(
            oidc.clone(),
            callback_request(&oidc, &state, &login, "code=c"),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(
            body(&response).contains("took too long"),
            "{}",
            body(&response)
        );
        // The login cookie is deleted.
        let cleared = response.headers()[http::header::SET_COOKIE]
            .to_str()
            .unwrap();
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
    }

    #[tokio::test]
    async fn a_login_cookie_for_another_state_or_sealed_by_another_key_is_refused() {
        let oidc = oidc();
        let state = random::token();
        let login = LoginState {
            s: random::token(),
            n: random::token(),
            v: random::token(),
            r: "/".into(),
            t: oidc.inner().clock.now_secs(),
        };
        // The cookie is named after `state` but holds another state.
        let response = callback(
            oidc.clone(),
            callback_request(&oidc, &state, &login, "code=c"),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        // Sealed by another instance's key.
        let other = super::super::Oidc::builder("https://idp.example")
            .client_id("app")
            .redirect_uri("https://app.example/auth/callback")
            .build()
            .unwrap();
        let login = LoginState {
            s: state.clone(),
            ..login
        };
        let response = callback(
            oidc.clone(),
            callback_request(&other, &state, &login, "code=c"),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(body(&response).contains("unknown, expired or already used"));
    }

    #[test]
    fn return_paths_stay_on_our_origin() {
        for ok in ["/", "/orders?page=2", "/a/b#c", "/%2F%2Fevil.example"] {
            assert_eq!(safe_return_path(ok), Some(ok), "{ok}");
        }
        for bad in [
            "",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example",
            "evil.example",
            "/a\\b",
            "/a b",
            "/a\tb",
            "/é",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_return_path(bad), None, "{bad:?}");
        }
        assert_eq!(safe_return_path(&format!("/{}", "a".repeat(3000))), None);
    }

    proptest::proptest! {
        #[test]
        fn accepted_return_paths_are_relative_to_our_origin(path in "\\PC{0,40}") {
            if let Some(ok) = safe_return_path(&path) {
                proptest::prop_assert!(ok.starts_with('/'));
                proptest::prop_assert!(!ok.starts_with("//"));
                proptest::prop_assert!(!ok.contains('\\'));
                // Resolved against our origin, it stays there.
                let base = reqwest::Url::parse("https://app.example/x/y").unwrap();
                let resolved = base.join(ok).unwrap();
                proptest::prop_assert_eq!(resolved.origin(), base.origin());
            }
        }

        #[test]
        fn query_parameters_never_panic(query in "[a-z=&%0-9]{0,40}") {
            let uri: http::Uri = format!("/cb?{query}").parse().unwrap_or_else(|_| http::Uri::from_static("/cb"));
            let (parts, ()) = http::Request::get(uri).body(()).unwrap().into_parts();
            let _ = query_param(&parts, "state");
        }
    }

    #[test]
    fn used_values_are_refused_until_they_expire_and_the_set_is_bounded() {
        let mut used = UsedStates::new(2);
        assert_eq!(used.first_use("a", 10.0, 0.0), Use::First);
        assert_eq!(used.first_use("a", 10.0, 5.0), Use::Again);
        assert_eq!(used.first_use("b", 10.0, 5.0), Use::First);
        assert_eq!(used.first_use("c", 20.0, 5.0), Use::Full);
        assert!(used.seen.len() <= 2);
        // Expired entries are forgotten.
        assert_eq!(used.first_use("a", 30.0, 11.0), Use::First);
    }
}
