//! [`Oidc`] as an [`Authenticate`]: the session cookie to a [`Principal`], with the CSRF
//! origin check for writes and the single-flight refresh of the access token.

use std::sync::{Arc, PoisonError};

use http::Method;
use http::header::{COOKIE, HeaderMap, HeaderValue, SET_COOKIE};
use http::request::Parts;

use super::id_token::{self, Expected, Refused};
use super::session::{Session, SessionId, Tokens};
use super::token_endpoint::{self, TokenError};
use super::{Inner, Oidc, cookie, random};
use crate::authenticate::credentials::remove_cookies;
use crate::authenticate::{AuthFuture, AuthOutcome, Authenticate};
use crate::jwt::claims::roles_at;
use crate::rejection::{Reason, Rejection};

/// The outcome of one refresh, shared by every request that waited for it.
#[derive(Clone)]
pub(crate) enum Flown {
    /// The session as refreshed (or as another refresh left it).
    Refreshed(Arc<Session>),
    /// The session is gone.
    Ended,
    /// The provider or the store could not answer; the session as it was, if loaded.
    Unavailable(Option<Arc<Session>>),
}

/// The session a request's (stripped) session cookie named, for the `AccessToken`
/// extractor.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
struct SessionCookie(SessionId);

/// Why a session could not be refreshed.
enum RefreshFailed {
    /// The session is gone (refresh refused, or removed meanwhile): log in again.
    Ended,
    /// The provider or the store cannot answer and the access token has expired.
    Unavailable,
}

impl Authenticate for Oidc {
    /// Ready once the provider's keys are loaded (asked for by the question) and the
    /// session store answers.
    fn ready(&self) -> crate::ReadyFuture {
        let jwks = self.jwks();
        if !jwks.is_ready() {
            jwks.load_in_background();
            return Box::pin(std::future::ready(Err(crate::NotReady::new(format!(
                "the keys of {} are not loaded",
                crate::text::bounded(self.issuer())
            )))));
        }
        crate::authenticate::ready()
    }

    fn authenticate(&self, request: &Parts) -> AuthFuture {
        let inner = &*self.inner;
        let Some(value) = cookie::find(&request.headers, &inner.cookies.session_name) else {
            return AuthFuture::ready(AuthOutcome::Absent);
        };
        if !random::is_token(value) {
            // Not a cookie we wrote: as if absent, and cleared.
            return AuthFuture::ready(self.ended());
        }
        let id = SessionId::of_cookie(value);
        let same_origin = is_safe(&request.method) || origin_allowed(inner, &request.headers);
        let this = self.clone();
        AuthFuture::new(async move { this.session_outcome(id, same_origin).await })
    }

    fn strip_credentials(&self, request: &mut Parts) {
        // The session cookie (and any login cookie) never reaches the service: what the
        // `AccessToken` extractor needs travels in the request's extensions instead.
        // Other cookies stay for the service, kept out of logs and HTTP/2 header
        // compression tables.
        let cookies = &self.inner.cookies;
        if let Some(value) =
            cookie::find(&request.headers, &cookies.session_name).filter(|v| random::is_token(v))
        {
            let id = SessionId::of_cookie(value);
            request.extensions.insert(SessionCookie(id));
        }
        let session = cookies.session_name.as_bytes();
        let login = cookies.login_prefix.as_bytes();
        remove_cookies(request, |name| name == session || name.starts_with(login));
        if let http::header::Entry::Occupied(mut entry) = request.headers.entry(COOKIE) {
            for value in entry.iter_mut() {
                value.set_sensitive(true);
            }
        }
    }
}

impl Oidc {
    /// The outcome for a session cookie that names no usable session: go on without an
    /// identity, and delete the cookie.
    fn ended(&self) -> AuthOutcome {
        let mut headers = HeaderMap::new();
        headers.append(
            SET_COOKIE,
            self.inner
                .cookies
                .clear_cookie(&self.inner.cookies.session_name),
        );
        AuthOutcome::Continue {
            principal: None,
            response_headers: headers,
        }
    }

    async fn session_outcome(&self, id: SessionId, same_origin: bool) -> AuthOutcome {
        let inner = &*self.inner;
        let session = match inner.store.load(&id, inner.idle_timeout).await {
            Ok(Some(session)) => session,
            Ok(None) => return self.ended(),
            Err(error) => {
                tracing::error!(%error, "oidc: session store unavailable");
                return AuthOutcome::Rejected(unavailable("session_store"));
            }
        };
        let now = inner.clock.now_secs();
        if session.expires_at() <= now {
            let _ = inner.store.remove(&id).await;
            return self.ended();
        }
        if !same_origin {
            return AuthOutcome::Rejected(
                Rejection::new(Reason::Forbidden)
                    .with_cause("csrf_origin")
                    .with_detail("Cross-site requests with a session cookie are refused."),
            );
        }
        let session = if self.refresh_due(&session, now) {
            match self.refresh(id, session).await {
                Ok(session) => session,
                Err(RefreshFailed::Ended) => return self.ended(),
                Err(RefreshFailed::Unavailable) => {
                    return AuthOutcome::Rejected(unavailable("refresh"));
                }
            }
        } else {
            session
        };
        AuthOutcome::Authenticated(session.principal())
    }

    /// Whether the session's access token expires within the refresh margin and a
    /// refresh token can renew it.
    fn refresh_due(&self, session: &Session, now: u64) -> bool {
        session.refresh_token().is_some()
            && session.access_token_expires_at().is_some_and(|expires| {
                now.saturating_add(self.inner.refresh_before.as_secs()) >= expires
            })
    }

    /// Refreshes the tokens of session `id`, at most one refresh per session at a time:
    /// while the access token is still valid, other requests go on with it; once it has
    /// expired, they wait for the refresh in flight and take its outcome (they never call
    /// the provider themselves, so a provider that is down sees one call, not one per
    /// waiting request).
    async fn refresh(
        &self,
        id: SessionId,
        seen: Arc<Session>,
    ) -> Result<Arc<Session>, RefreshFailed> {
        let inner = &*self.inner;
        let now = inner.clock.now_secs();
        let still_valid = seen
            .access_token_expires_at()
            .is_some_and(|expires| expires > now);
        let (sender, receiver) = tokio::sync::watch::channel(None);
        let in_flight = {
            let mut refreshing = inner
                .refreshing
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match refreshing.entry(id) {
                // A flight whose task died without an outcome (a panic) is replaced, so
                // the session is not stuck on it.
                std::collections::hash_map::Entry::Occupied(mut flight)
                    if flight.get().has_changed().is_err() && flight.get().borrow().is_none() =>
                {
                    flight.insert(receiver.clone());
                    None
                }
                std::collections::hash_map::Entry::Occupied(flight) => Some(flight.get().clone()),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(receiver.clone());
                    None
                }
            }
        };
        if let Some(mut flight) = in_flight {
            if still_valid {
                // Someone is refreshing; the current token still works.
                return Ok(seen);
            }
            let outcome = match flight.wait_for(Option::is_some).await {
                Ok(outcome) => outcome.clone(),
                // The refresh task went away without an answer.
                Err(_) => None,
            };
            return self.take(outcome.unwrap_or(Flown::Unavailable(None)));
        }
        // The refresh runs as its own task: a request that goes away (a closed connection)
        // must not abandon it between the provider's rotation and the store's save, which
        // would leave a dead refresh token in the session.
        let this = self.clone();
        let task = tokio::spawn(async move {
            let outcome = this.refresh_once(&id, &seen).await;
            // Published, then the entry removed (only this flight's own: a later flight
            // may have taken the slot meanwhile), after the new session is saved: a
            // request arriving now either takes this outcome or reads the refreshed
            // session.
            sender.send_replace(Some(outcome.clone()));
            let mut refreshing = this
                .inner
                .refreshing
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if refreshing
                .get(&id)
                .is_some_and(|flight| flight.same_channel(&receiver))
            {
                refreshing.remove(&id);
            }
            outcome
        });
        let outcome = task.await.unwrap_or(Flown::Unavailable(None));
        self.take(outcome)
    }

    /// What a request makes of a refresh's outcome: an unavailable provider or store
    /// still lets it go on with the current access token while that is valid.
    fn take(&self, outcome: Flown) -> Result<Arc<Session>, RefreshFailed> {
        match outcome {
            Flown::Refreshed(session) => Ok(session),
            Flown::Ended => Err(RefreshFailed::Ended),
            Flown::Unavailable(current) => {
                let now = self.inner.clock.now_secs();
                current
                    .filter(|current| {
                        current
                            .access_token_expires_at()
                            .is_some_and(|expires| expires > now)
                    })
                    .ok_or(RefreshFailed::Unavailable)
            }
        }
    }

    /// One refresh of session `id`, as the only flight for it in this process.
    async fn refresh_once(&self, id: &SessionId, seen: &Arc<Session>) -> Flown {
        let inner = &*self.inner;
        let current = match inner.store.load(id, inner.idle_timeout).await {
            Ok(Some(current)) => current,
            Ok(None) => return Flown::Ended,
            Err(_) => return Flown::Unavailable(None),
        };
        let now = inner.clock.now_secs();
        // Refreshed meanwhile (by an earlier flight, or another instance on a shared
        // store): use that, never the old refresh token again (a rotating provider would
        // end the whole grant).
        if current.refresh_token() != seen.refresh_token() || !self.refresh_due(&current, now) {
            return Flown::Refreshed(current);
        }
        let Some(refresh_token) = current.refresh_token() else {
            return Flown::Refreshed(current);
        };
        let tokens = match token_endpoint::refresh(inner, refresh_token).await {
            Ok(tokens) => tokens,
            Err(TokenError::Refused(error)) => {
                tracing::info!(provider_error = %error, "oidc: refresh refused, session ended");
                let _ = inner.store.remove(id).await;
                return Flown::Ended;
            }
            Err(TokenError::Unavailable(reason)) => {
                tracing::warn!(%reason, "oidc: refresh failed");
                return Flown::Unavailable(Some(current));
            }
        };
        let identity = match tokens.id_token.as_deref() {
            None => None,
            Some(id_token) => {
                let expected = Expected {
                    access_token: Some(tokens.access_token.secret()),
                    subject: Some(current.subject()),
                    ..Expected::default()
                };
                match id_token::verify(inner, id_token, &expected).await {
                    Ok(mut identity) => {
                        // The claims userinfo added at login stay, and roles may come
                        // from them.
                        if !current.userinfo_claims().is_empty() {
                            for (name, value) in current.userinfo_claims() {
                                identity
                                    .claims
                                    .entry(name.clone())
                                    .or_insert_with(|| value.clone());
                            }
                            match roles_at(&identity.claims, inner.roles_claim.as_deref()) {
                                Ok(roles) => identity.roles = roles,
                                Err(failure) => {
                                    tracing::warn!(
                                        reason = failure.code(),
                                        "oidc: roles unreadable at refresh, session ended"
                                    );
                                    let _ = inner.store.remove(id).await;
                                    return Flown::Ended;
                                }
                            }
                        }
                        Some(identity)
                    }
                    Err(Refused::Invalid(reason)) => {
                        tracing::warn!(reason, "oidc: ID token refused at refresh, session ended");
                        let _ = inner.store.remove(id).await;
                        return Flown::Ended;
                    }
                    Err(Refused::Unavailable) => return Flown::Unavailable(Some(current)),
                }
            }
        };
        // No `scope` in the answer: the same as before (RFC 6749 section 5.1).
        let scopes = tokens
            .granted_scopes()
            .unwrap_or_else(|| current.scopes().to_vec());
        let refreshed = Arc::new(current.refreshed(
            identity,
            Tokens {
                id_token: tokens.id_token.unwrap_or_default(),
                access_token_expires_at:
                    tokens.expires_in.map(|seconds| now.saturating_add(seconds)),
                access_token: Some(tokens.access_token.into_secret()),
                refresh_token: tokens.refresh_token.map(oauth2::RefreshToken::into_secret),
                scopes,
            },
        ));
        // Saved only over the session still stored: a logout (or back-channel logout)
        // while the provider was answering stays a logout.
        match inner
            .store
            .save_if_present(id, Arc::clone(&refreshed), inner.idle_timeout)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!("oidc: the session ended during its refresh");
                if let Some(refresh_token) = refreshed.refresh_token() {
                    token_endpoint::revoke(inner, refresh_token).await;
                }
                return Flown::Ended;
            }
            Err(error) => {
                tracing::error!(%error, "oidc: the refreshed session could not be saved");
                return Flown::Unavailable(None);
            }
        }
        tracing::debug!("oidc: session refreshed");
        Flown::Refreshed(refreshed)
    }
}

fn unavailable(cause: &'static str) -> Rejection {
    Rejection::new(Reason::Unavailable)
        .with_cause(cause)
        .with_retry_after(5)
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The CSRF check for a state-changing request carrying the session cookie: the browser
/// says it comes from our own origin (`Sec-Fetch-Site: same-origin`), or its `Origin` is
/// ours or an allowed one. A request that says neither is refused.
pub(crate) fn origin_allowed(inner: &Inner, headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"same-origin"))
    {
        return true;
    }
    let Some(origin) = headers.get(http::header::ORIGIN).map(HeaderValue::as_bytes) else {
        return false;
    };
    origin == inner.origin.as_bytes()
        || inner
            .allowed_origins
            .iter()
            .any(|allowed| origin == allowed.as_bytes())
}

/// The access token of the caller's session, for calling downstream APIs on the user's
/// behalf.
///
/// Extracted in handlers behind [`OidcLayer`](super::OidcLayer) and an authentication
/// layer running [`Oidc`]; refused with 401 for requests not authenticated by a session
/// (bearer tokens and API keys included: their credentials are not ours to forward).
/// `Debug` does not show the token.
#[cfg(feature = "axum")]
#[derive(Clone)]
pub struct AccessToken(String);

#[cfg(feature = "axum")]
impl AccessToken {
    /// The token, for the `Authorization: Bearer` header of a downstream call.
    #[must_use]
    pub fn secret(&self) -> &str {
        &self.0
    }
}

#[cfg(feature = "axum")]
impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for AccessToken {
    type Rejection = http::Response<axum_core::body::Body>;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let refuse = || {
            let rejection = Rejection::new(Reason::MissingCredentials)
                .with_detail("This resource needs a login session.");
            rejection
                .render(&*crate::rejection::default_renderer())
                .map(axum_core::body::Body::from)
        };
        let is_session = parts
            .extensions
            .get::<crate::principal::Principal>()
            .is_some_and(|principal| {
                *principal.auth_method() == crate::principal::AuthMethod::Oidc
            });
        let Some(oidc) = parts.extensions.get::<Oidc>().cloned() else {
            return Err(refuse());
        };
        if !is_session {
            return Err(refuse());
        }
        let inner = &*oidc.inner;
        let Some(SessionCookie(id)) = parts.extensions.get::<SessionCookie>().copied() else {
            return Err(refuse());
        };
        match inner.store.load(&id, inner.idle_timeout).await {
            Ok(Some(session)) => session
                .access_token()
                .map(|token| AccessToken(token.to_owned()))
                .ok_or_else(refuse),
            _ => Err(refuse()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{Request, StatusCode};

    use super::*;
    use crate::oidc::session::Identity;

    fn oidc() -> Oidc {
        Oidc::builder("https://idp.example")
            .client_id("app")
            .redirect_uri("https://app.example/auth/callback")
            .idle_timeout(Duration::from_secs(30 * 60))
            .absolute_timeout(Duration::from_secs(8 * 60 * 60))
            .build()
            .expect("config")
    }

    /// Stores a session the way the callback does; returns its cookie value.
    async fn logged_in(oidc: &Oidc) -> String {
        let inner = oidc.inner();
        let now = inner.clock.now_secs();
        let session = Session::new(
            Identity {
                subject: "alice".into(),
                issuer: "https://idp.example".into(),
                sid: None,
                claims: serde_json::Map::new(),
                roles: vec!["viewer".into()],
            },
            Tokens {
                id_token: "id".into(),
                access_token: Some("at".into()),
                refresh_token: None,
                access_token_expires_at: None,
                scopes: vec!["openid".into()],
            },
            now,
            now + inner.absolute_timeout.as_secs(),
        );
        let value = random::token();
        inner
            .store
            .save(
                &SessionId::of_cookie(&value),
                Arc::new(session),
                inner.idle_timeout,
            )
            .await
            .unwrap();
        value
    }

    async fn outcome(oidc: &Oidc, method: &str, cookie: &str, origin: Option<&str>) -> AuthOutcome {
        let mut request = Request::builder().method(method).uri("/orders").header(
            COOKIE,
            format!("other=1; __Host-portcullis-session={cookie}"),
        );
        if let Some(origin) = origin {
            request = request.header(http::header::ORIGIN, origin);
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        oidc.authenticate(&parts).await
    }

    fn is_ended(outcome: &AuthOutcome) -> bool {
        matches!(outcome, AuthOutcome::Continue { principal: None, response_headers }
            if response_headers[SET_COOKIE].to_str().unwrap().starts_with("__Host-portcullis-session=;"))
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_authenticate_and_end_at_their_idle_timeout() {
        let oidc = oidc();
        let cookie = logged_in(&oidc).await;
        match outcome(&oidc, "GET", &cookie, None).await {
            AuthOutcome::Authenticated(principal) => {
                assert_eq!(principal.subject(), "alice");
                assert_eq!(*principal.auth_method(), crate::AuthMethod::Oidc);
                assert!(principal.has_role("viewer"));
                assert!(principal.has_scope("openid"));
            }
            other => panic!("{other:?}"),
        }
        tokio::time::advance(Duration::from_secs(29 * 60)).await;
        assert!(matches!(
            outcome(&oidc, "GET", &cookie, None).await,
            AuthOutcome::Authenticated(_)
        ));
        tokio::time::advance(Duration::from_secs(30 * 60 + 1)).await;
        assert!(is_ended(&outcome(&oidc, "GET", &cookie, None).await));
        // Unknown and malformed cookies are no session either.
        assert!(is_ended(
            &outcome(&oidc, "GET", &random::token(), None).await
        ));
        assert!(is_ended(&outcome(&oidc, "GET", "short", None).await));
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_end_at_their_absolute_timeout_however_active() {
        let oidc = oidc();
        let cookie = logged_in(&oidc).await;
        for _ in 0..(8 * 60 / 20 - 1) {
            tokio::time::advance(Duration::from_secs(20 * 60)).await;
            assert!(matches!(
                outcome(&oidc, "GET", &cookie, None).await,
                AuthOutcome::Authenticated(_)
            ));
        }
        tokio::time::advance(Duration::from_secs(20 * 60)).await;
        assert!(is_ended(&outcome(&oidc, "GET", &cookie, None).await));
    }

    #[tokio::test]
    async fn writes_need_our_origin() {
        let oidc = oidc();
        let cookie = logged_in(&oidc).await;
        for origin in [
            None,
            Some("https://evil.example"),
            Some("null"),
            Some("https://app.example.evil"),
        ] {
            match outcome(&oidc, "POST", &cookie, origin).await {
                AuthOutcome::Rejected(rejection) => {
                    assert_eq!(rejection.status(), StatusCode::FORBIDDEN);
                    assert_eq!(rejection.cause(), Some("csrf_origin"));
                }
                other => panic!("{origin:?}: {other:?}"),
            }
        }
        assert!(matches!(
            outcome(&oidc, "POST", &cookie, Some("https://app.example")).await,
            AuthOutcome::Authenticated(_)
        ));
        assert!(matches!(
            outcome(&oidc, "DELETE", &cookie, Some("https://app.example")).await,
            AuthOutcome::Authenticated(_)
        ));
    }

    /// A store whose backend is down.
    struct DownStore;

    impl crate::oidc::SessionStore for DownStore {
        fn load(
            &self,
            _: &SessionId,
            _: Duration,
        ) -> crate::oidc::StoreFuture<'_, Option<Arc<Session>>> {
            Box::pin(async { Err(crate::oidc::StoreError::new("connection refused")) })
        }
        fn save(
            &self,
            _: &SessionId,
            _: Arc<Session>,
            _: Duration,
        ) -> crate::oidc::StoreFuture<'_, ()> {
            Box::pin(async { Err(crate::oidc::StoreError::new("connection refused")) })
        }
        fn save_if_present(
            &self,
            _: &SessionId,
            _: Arc<Session>,
            _: Duration,
        ) -> crate::oidc::StoreFuture<'_, bool> {
            Box::pin(async { Err(crate::oidc::StoreError::new("connection refused")) })
        }
        fn remove(&self, _: &SessionId) -> crate::oidc::StoreFuture<'_, ()> {
            Box::pin(async { Err(crate::oidc::StoreError::new("connection refused")) })
        }
        fn remove_matching<'a>(
            &'a self,
            _: &'a str,
            _: Option<&'a str>,
            _: Option<&'a str>,
        ) -> crate::oidc::StoreFuture<'a, usize> {
            Box::pin(async { Err(crate::oidc::StoreError::new("connection refused")) })
        }
    }

    /// An HTTP client for a provider that cannot be reached.
    struct NoNetwork;

    impl crate::remote::HttpClient for NoNetwork {
        fn get(&self, _: &str, _: &[&str]) -> crate::remote::HttpFuture<'_> {
            Box::pin(async { Err(crate::remote::RemoteError::Timeout) })
        }
        fn post_form(
            &self,
            _: &str,
            _: &[(&str, &str)],
            _: Option<(&str, &str)>,
            _: &[&str],
        ) -> crate::remote::HttpFuture<'_> {
            Box::pin(async { Err(crate::remote::RemoteError::Timeout) })
        }
    }

    /// A memory store whose second `load` panics (the one inside a refresh's task).
    struct PanicsOnceInRefresh {
        inner: crate::oidc::MemorySessionStore,
        loads: std::sync::atomic::AtomicUsize,
    }

    impl crate::oidc::SessionStore for PanicsOnceInRefresh {
        fn load(
            &self,
            id: &SessionId,
            idle: Duration,
        ) -> crate::oidc::StoreFuture<'_, Option<Arc<Session>>> {
            let n = self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            assert_ne!(n, 1, "the store broke");
            self.inner.load(id, idle)
        }
        fn save(
            &self,
            id: &SessionId,
            session: Arc<Session>,
            idle: Duration,
        ) -> crate::oidc::StoreFuture<'_, ()> {
            self.inner.save(id, session, idle)
        }
        fn save_if_present(
            &self,
            id: &SessionId,
            session: Arc<Session>,
            idle: Duration,
        ) -> crate::oidc::StoreFuture<'_, bool> {
            self.inner.save_if_present(id, session, idle)
        }
        fn remove(&self, id: &SessionId) -> crate::oidc::StoreFuture<'_, ()> {
            self.inner.remove(id)
        }
        fn remove_matching<'a>(
            &'a self,
            issuer: &'a str,
            sid: Option<&'a str>,
            subject: Option<&'a str>,
        ) -> crate::oidc::StoreFuture<'a, usize> {
            self.inner.remove_matching(issuer, sid, subject)
        }
    }

    #[tokio::test]
    async fn a_refresh_that_died_does_not_hold_up_the_next_one() {
        let oidc = Oidc::builder("https://idp.example")
            .client_id("app")
            .redirect_uri("https://app.example/auth/callback")
            .session_store(Arc::new(PanicsOnceInRefresh {
                inner: crate::oidc::MemorySessionStore::new(),
                loads: std::sync::atomic::AtomicUsize::new(0),
            }))
            .http_client(Arc::new(NoNetwork))
            .build()
            .unwrap();
        let inner = oidc.inner();
        let now = inner.clock.now_secs();
        let value = random::token();
        let id = SessionId::of_cookie(&value);
        let session = Session::new(
            Identity {
                subject: "alice".into(),
                issuer: "https://idp.example".into(),
                sid: None,
                claims: serde_json::Map::new(),
                roles: Vec::new(),
            },
            Tokens {
                id_token: "id".into(),
                access_token: Some("at".into()),
                // Expired: the request must wait for a refresh.
                refresh_token: Some("rt".into()),
                access_token_expires_at: Some(now - 1),
                scopes: Vec::new(),
            },
            now,
            now + 3600,
        );
        inner
            .store
            .save(&id, Arc::new(session), inner.idle_timeout)
            .await
            .unwrap();
        // The refresh's task panics: 503, and its flight stays behind in the map.
        assert!(matches!(
            outcome(&oidc, "GET", &value, None).await,
            AuthOutcome::Rejected(_)
        ));
        assert_eq!(inner.refreshing.lock().unwrap().len(), 1);
        // The next request does not wait on the dead flight: it runs its own (the
        // provider cannot be reached here: 503 again) and leaves no entry behind.
        assert!(matches!(
            outcome(&oidc, "GET", &value, None).await,
            AuthOutcome::Rejected(_)
        ));
        assert!(inner.refreshing.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_store_outage_fails_closed_with_503() {
        let oidc = Oidc::builder("https://idp.example")
            .client_id("app")
            .redirect_uri("https://app.example/auth/callback")
            .session_store(Arc::new(DownStore))
            .build()
            .unwrap();
        match outcome(&oidc, "GET", &random::token(), None).await {
            AuthOutcome::Rejected(rejection) => {
                assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
                assert_eq!(rejection.retry_after(), Some(5));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_longest_timeouts_work_at_request_time() {
        let longest = Duration::from_secs(400 * 24 * 60 * 60);
        let oidc = Oidc::builder("https://idp.example")
            .client_id("app")
            .redirect_uri("https://app.example/auth/callback")
            .absolute_timeout(longest)
            .idle_timeout(longest)
            .refresh_before(longest)
            .build()
            .expect("config");
        let cookie = logged_in(&oidc).await;
        tokio::time::advance(Duration::from_secs(24 * 60 * 60)).await;
        assert!(matches!(
            outcome(&oidc, "GET", &cookie, None).await,
            AuthOutcome::Authenticated(_)
        ));
    }

    #[test]
    fn configuration_is_checked_when_built() {
        let base = || Oidc::builder("https://idp.example").client_id("app");
        let refused = |builder: crate::oidc::OidcBuilder, setting: &str| match builder.build() {
            Err(crate::ConfigError::InvalidOidc { setting: found, .. }) => {
                assert_eq!(found, setting)
            }
            other => panic!("{setting}: {other:?}"),
        };
        refused(
            Oidc::builder("https://idp.example").redirect_uri("https://a/cb"),
            "client_id",
        );
        refused(base(), "redirect_uri");
        refused(base().redirect_uri("http://app.example/cb"), "redirect_uri");
        refused(
            base().redirect_uri("http://127.0.0.1:3000/cb"),
            "redirect_uri",
        );
        refused(base().redirect_uri("/cb"), "redirect_uri");
        refused(
            base()
                .redirect_uri("https://app.example/cb")
                .insecure_http_cookies_on_loopback(),
            "insecure_http_cookies_on_loopback",
        );
        refused(
            base()
                .redirect_uri("https://app.example/cb")
                .login_path("//evil"),
            "login_path",
        );
        refused(
            base().redirect_uri("https://app.example/auth/login"),
            "login_path",
        );
        refused(
            base()
                .redirect_uri("https://app.example/cb")
                .allowed_origin("https://a.example/path"),
            "allowed_origin",
        );
        refused(
            base()
                .redirect_uri("https://app.example/cb")
                .idle_timeout(Duration::from_secs(10))
                .absolute_timeout(Duration::from_secs(5)),
            "idle_timeout",
        );
        let cb = || base().redirect_uri("https://app.example/cb");
        let huge = Duration::MAX;
        refused(cb().absolute_timeout(Duration::ZERO), "absolute_timeout");
        refused(cb().idle_timeout(Duration::ZERO), "idle_timeout");
        refused(cb().login_timeout(Duration::ZERO), "login_timeout");
        refused(cb().absolute_timeout(huge), "absolute_timeout");
        refused(
            cb().absolute_timeout(huge).idle_timeout(huge),
            "absolute_timeout",
        );
        refused(cb().idle_timeout(huge), "idle_timeout");
        refused(cb().login_timeout(huge), "login_timeout");
        refused(cb().refresh_before(huge), "refresh_before");
        refused(cb().max_age(huge), "max_age");
        refused(cb().logout_path("/auth/login"), "logout_path");
        refused(cb().logout_path("/cb"), "logout_path");
        refused(
            cb().backchannel_logout_path("/auth/logout"),
            "backchannel_logout_path",
        );
        // The longest allowed timeouts build.
        let longest = Duration::from_secs(400 * 24 * 60 * 60);
        assert!(
            cb().absolute_timeout(longest)
                .idle_timeout(longest)
                .login_timeout(Duration::from_secs(24 * 60 * 60))
                .refresh_before(longest)
                .max_age(longest)
                .build()
                .is_ok()
        );
        refused(
            base()
                .redirect_uri("https://app.example/cb")
                .client_secret_post(),
            "client_secret_post",
        );
        refused(
            base()
                .redirect_uri("https://app.example/cb")
                .cookie_name("a;b"),
            "cookie_name",
        );
        assert!(matches!(
            Oidc::builder("http://idp.example")
                .client_id("app")
                .redirect_uri("https://app.example/cb")
                .build(),
            Err(crate::ConfigError::InvalidUrl { .. })
        ));
        let oidc = base()
            .redirect_uri("https://app.example/cb")
            .build()
            .unwrap();
        assert_eq!(oidc.session_cookie_name(), "__Host-portcullis-session");
        let dev = base()
            .redirect_uri("http://127.0.0.1:3000/cb")
            .insecure_http_cookies_on_loopback()
            .build()
            .unwrap();
        assert_eq!(dev.session_cookie_name(), "portcullis-session");
    }
}
