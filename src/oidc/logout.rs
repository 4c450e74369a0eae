//! Logout: RP-initiated (the session ended here, then the provider's
//! `end_session_endpoint`) and back-channel (the provider's logout token ends every
//! matching session).

use std::sync::PoisonError;

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::Value;

use super::authenticator::origin_allowed;
use super::id_token::{Refused, verify_jwt};
use super::login::Use;
use super::session::SessionId;
use super::{Oidc, cookie, pages, random, token_endpoint};

/// The event a logout token must carry (Back-Channel Logout 1.0, section 2.4).
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// `POST` on the logout path: checks the origin, ends the local session, revokes its
/// refresh token, and sends the browser to the provider's logout (or home).
pub(crate) async fn logout(oidc: Oidc, parts: Parts) -> Response<Bytes> {
    let inner = oidc.inner();
    if !origin_allowed(inner, &parts.headers) {
        return pages::with_cause(
            pages::page(
                StatusCode::FORBIDDEN,
                "Logout refused",
                "Logging out needs a request from this site.",
                None,
                Vec::new(),
            ),
            "csrf_origin",
        );
    }
    let clear = vec![inner.cookies.clear_cookie(&inner.cookies.session_name)];
    let store_unavailable = || {
        pages::with_cause(
            pages::page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Logout failed",
                "Your session cannot be ended right now. Please try again in a minute.",
                None,
                Vec::new(),
            ),
            "session_store",
        )
    };
    let mut id_token = None;
    if let Some(value) = cookie::find(&parts.headers, &inner.cookies.session_name)
        .filter(|value| random::is_token(value))
    {
        let id = SessionId::of_cookie(value);
        // A store that cannot answer is a 503 with the cookie kept: clearing it would leave
        // the session alive on the server with no way for this browser to end it.
        let session = match inner.store.load(&id, inner.idle_timeout).await {
            Ok(session) => session,
            Err(error) => {
                tracing::error!(%error, "oidc: the session could not be loaded at logout");
                return store_unavailable();
            }
        };
        if let Some(session) = session {
            id_token = Some(session.id_token().to_owned());
            if let Err(error) = inner.store.remove(&id).await {
                tracing::error!(%error, "oidc: the session could not be removed at logout");
                return store_unavailable();
            }
            if let Some(refresh_token) = session.refresh_token() {
                token_endpoint::revoke(inner, refresh_token).await;
            }
        }
    }
    tracing::info!(had_session = id_token.is_some(), "oidc: logout");
    let end_session = match &id_token {
        // As the token endpoint gets it: discovered already, or discovered now.
        Some(_) => token_endpoint::metadata(inner)
            .await
            .and_then(|metadata| metadata.end_session_endpoint.clone()),
        None => None,
    };
    let (Some(endpoint), Some(id_token)) = (end_session, id_token) else {
        return pages::with_cause(
            pages::redirect(StatusCode::SEE_OTHER, &inner.after_logout_path, clear),
            "logout",
        );
    };
    let Ok(mut url) = reqwest::Url::parse(&endpoint) else {
        return pages::with_cause(
            pages::redirect(StatusCode::SEE_OTHER, &inner.after_logout_path, clear),
            "logout",
        );
    };
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("id_token_hint", &id_token)
            .append_pair("client_id", &inner.client_id)
            .append_pair("state", &random::token());
        if let Some(uri) = &inner.post_logout_redirect_uri {
            query.append_pair("post_logout_redirect_uri", uri);
        }
    }
    pages::with_cause(
        pages::redirect(StatusCode::SEE_OTHER, url.as_str(), clear),
        "logout",
    )
}

/// The back-channel logout endpoint: `logout_token` from the form body, verified, then
/// every matching session ended.
pub(crate) async fn backchannel(oidc: Oidc, body: Bytes) -> Response<Bytes> {
    let inner = oidc.inner();
    let bad = |description: &str, cause: &'static str| {
        tracing::info!(cause, "oidc: back-channel logout refused");
        pages::with_cause(
            pages::json_error(StatusCode::BAD_REQUEST, "invalid_request", description),
            cause,
        )
    };
    let mut tokens = form_urlencoded::parse(&body).filter(|(name, _)| name == "logout_token");
    let (Some((_, token)), None) = (tokens.next(), tokens.next()) else {
        return bad("exactly one logout_token is required", "no_token");
    };
    let now = inner.clock.now();
    let verified = match verify_jwt(&inner.logout_token_rules, &token, now).await {
        Ok((verified, _)) => verified,
        Err(Refused::Unavailable) => {
            return pages::json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the provider's keys are unavailable",
            );
        }
        Err(Refused::Invalid(reason)) => return bad("the logout token is not valid", reason),
    };
    let claims = &verified.claims;
    let for_us = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == inner.client_id,
        Some(Value::Array(items)) => items
            .iter()
            .any(|aud| aud.as_str() == Some(&inner.client_id)),
        _ => false,
    };
    if !for_us {
        return bad("the logout token is not for this client", "aud_mismatch");
    }
    if claims.contains_key("nonce") {
        return bad("a logout token must not carry a nonce", "nonce_present");
    }
    match claims.get("events") {
        Some(Value::Object(events))
            if events.get(BACKCHANNEL_EVENT).is_some_and(Value::is_object) => {}
        _ => {
            return bad(
                "the logout token lacks the back-channel logout event",
                "missing_event",
            );
        }
    }
    let sid = match claims.get("sid") {
        None => None,
        Some(Value::String(sid)) => Some(sid.as_str()),
        Some(_) => return bad("sid is not a string", "claim_type"),
    };
    let subject = Some(verified.subject.as_str()).filter(|sub| !sub.is_empty());
    if sid.is_none() && subject.is_none() {
        return bad(
            "the logout token names neither sid nor sub",
            "no_sid_or_sub",
        );
    }
    let Some(Value::String(jti)) = claims.get("jti") else {
        return bad("the logout token has no jti", "missing_jti");
    };
    let until = match claims.get("exp").and_then(Value::as_f64) {
        Some(exp) => exp + inner.logout_token_rules.leeway_seconds(),
        None => now + 300.0,
    };
    // Checked now, recorded only once the sessions are gone: a provider retrying after a
    // store outage (503) must not be refused as a replay.
    let replayed = inner
        .seen_logout_tokens
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .was_used(jti, now);
    if replayed {
        return bad("the logout token was already used", "jti_replayed");
    }
    let room = inner
        .seen_logout_tokens
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .has_room(now);
    if !room {
        // Its `jti` could not be remembered: the provider retries later.
        tracing::warn!("oidc: too many logout tokens seen recently; back-channel logout refused");
        return pages::json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "too many logout tokens right now",
        );
    }
    match inner
        .store
        .remove_matching(&inner.issuer, sid, subject)
        .await
    {
        Ok(count) => {
            let first_use = inner
                .seen_logout_tokens
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .first_use(jti, until, now);
            if first_use != Use::First {
                // A copy delivered at the same time (or the set filled up meanwhile):
                // its sessions are gone as well.
                tracing::debug!(?first_use, "oidc: logout token not recorded");
            }
            tracing::info!(sessions = count, "oidc: back-channel logout");
            pages::with_cause(pages::empty(StatusCode::OK), "backchannel_logout")
        }
        Err(error) => {
            tracing::error!(%error, "oidc: back-channel logout could not reach the session store");
            pages::json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the session store is unavailable",
            )
        }
    }
}
