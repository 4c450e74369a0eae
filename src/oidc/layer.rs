//! [`OidcLayer`]: the login routes, and browsers sent to the login instead of a `401`.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, ALLOW, AUTHORIZATION, HeaderValue, SET_COOKIE};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{Oidc, login, logout, pages};
use crate::body::ResponseBody;
use crate::observe::{Decision, Outcome, Stage};
use crate::principal::Principal;
use crate::rejection::Reason;

/// The largest back-channel logout request body read, in bytes.
const MAX_LOGOUT_BODY: usize = 64 * 1024;
/// The longest a back-channel logout request body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The relying party's own routes, outside the rest of the stack: see
/// [`Oidc::layer`] and the [module documentation](super).
///
/// - `GET <login_path>?return_to=/path`: redirect to the provider (`return_to` must be a
///   relative path on this origin; anything else lands on `/`);
/// - `GET <redirect_uri path>`: the callback; refused callbacks get a 4xx page, an
///   unreachable provider a 503 page;
/// - `POST <logout_path>` (same origin only): ends the session, then the provider's logout;
///   `GET` shows a confirmation form;
/// - `POST <backchannel_logout_path>`: back-channel logout (`200`, `400` for a bad token).
///
/// Every other request goes to the inner service with the [`Oidc`] in its extensions (for
/// the [`AccessToken`](super::AccessToken) extractor); a `401` answer to a browser (a `GET`
/// accepting `text/html`, without `Authorization`) becomes a redirect to the login.
#[derive(Clone)]
#[must_use]
pub struct OidcLayer {
    oidc: Option<Oidc>,
    /// Where the routes' decisions go instead of the relying party's own observer (the
    /// gateway's, when the layer is its login slot).
    observer: Option<Arc<dyn crate::observe::Observe>>,
}

impl OidcLayer {
    /// The layer of `oidc`.
    pub fn new(oidc: Oidc) -> Self {
        Self {
            oidc: Some(oidc),
            observer: None,
        }
    }

    /// The routes' decisions reported to `observer` (the gateway's).
    #[cfg(feature = "authz")]
    pub(crate) fn observer(mut self, observer: Option<Arc<dyn crate::observe::Observe>>) -> Self {
        self.observer = observer;
        self
    }

    /// Whether this layer has no relying party and so does nothing to a request (the
    /// gateway then leaves it out of a request's path). The gateway calls past it only
    /// because `poll_ready` reserves nothing (it asks the inner service): keep it so.
    #[cfg(feature = "authz")]
    pub(crate) fn is_pass_through(&self) -> bool {
        self.oidc.is_none()
    }

    /// A layer without a relying party: every request goes to the inner service as it is
    /// (the gateway's slot when no login is configured).
    #[cfg(feature = "authz")]
    pub(crate) fn none() -> Self {
        Self {
            oidc: None,
            observer: None,
        }
    }
}

impl fmt::Debug for OidcLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcLayer")
            .field("oidc", &self.oidc)
            .finish()
    }
}

impl<S> Layer<S> for OidcLayer {
    type Service = OidcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OidcService {
            inner,
            oidc: self.oidc.clone(),
            observer: self.observer.clone(),
        }
    }
}

/// The service of [`OidcLayer`].
#[derive(Clone)]
pub struct OidcService<S> {
    inner: S,
    oidc: Option<Oidc>,
    observer: Option<Arc<dyn crate::observe::Observe>>,
}

impl<S> OidcService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> OidcService<S> {
    /// Where a route's decision goes: the override, else the relying party's observer.
    fn observer_for(&self, oidc: &Oidc) -> Arc<dyn crate::observe::Observe> {
        self.observer
            .clone()
            .unwrap_or_else(|| oidc.inner().observer.clone())
    }
}

impl<S: fmt::Debug> fmt::Debug for OidcService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcService")
            .field("inner", &self.inner)
            .field("oidc", &self.oidc)
            .finish()
    }
}

type OwnFuture = Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>;

impl<S, B, ResBody> Service<Request<B>> for OidcService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(oidc) = &self.oidc else {
            // No relying party: the inner service, untouched (the one `poll_ready` readied,
            // called here: nothing moves into the future).
            return ResponseFuture {
                state: State::Inner {
                    future: self.inner.call(request),
                    login: None,
                },
            };
        };
        let inner = oidc.inner();
        let method = request.method().clone();
        let route = {
            let path = request.uri().path();
            if path == inner.login_path {
                Route::Login
            } else if path == inner.callback_path {
                Route::Callback
            } else if path == inner.logout_path {
                Route::Logout
            } else if inner.backchannel_logout_path.as_deref() == Some(path) {
                Route::Backchannel
            } else {
                Route::Service
            }
        };
        // Only the relying party's own routes keep their path, for the decision observer.
        let route_path = match route {
            Route::Service => String::new(),
            _ => request.uri().path().to_owned(),
        };
        // Worked out only for the relying party's own routes, whose decisions outlive the
        // request's extensions.
        let client_ip = match route {
            Route::Service => None,
            _ => crate::observe::client_ip(request.extensions()),
        };
        let own: Option<OwnFuture> = match (route, method.clone()) {
            (Route::Login, Method::GET | Method::HEAD) => {
                let (parts, _) = request.into_parts();
                let return_to = login::query_param(&parts, "return_to")
                    .ok()
                    .flatten()
                    .and_then(|path| login::safe_return_path(&path).map(str::to_owned))
                    .unwrap_or_else(|| "/".to_owned());
                return own(observed(
                    self.observer_for(oidc),
                    method,
                    route_path,
                    client_ip,
                    Box::pin(login::start(oidc.clone(), return_to, parts.headers)),
                ));
            }
            (Route::Login, _) => Some(method_not_allowed("GET, HEAD")),
            (Route::Callback, Method::GET) => {
                let (parts, _) = request.into_parts();
                return own(observed(
                    self.observer_for(oidc),
                    method,
                    route_path,
                    client_ip,
                    Box::pin(login::callback(oidc.clone(), parts)),
                ));
            }
            (Route::Callback, _) => Some(method_not_allowed("GET")),
            (Route::Logout, Method::POST) => {
                let (parts, _) = request.into_parts();
                return own(observed(
                    self.observer_for(oidc),
                    method,
                    route_path,
                    client_ip,
                    Box::pin(logout::logout(oidc.clone(), parts)),
                ));
            }
            (Route::Logout, Method::GET) if inner.logout_confirmation_page => Some(Box::pin(
                std::future::ready(pages::logout_form(&inner.logout_path)),
            )),
            (Route::Logout, _) if inner.logout_confirmation_page => {
                Some(method_not_allowed("GET, POST"))
            }
            (Route::Logout, _) => Some(method_not_allowed("POST")),
            (Route::Backchannel, Method::POST) => {
                return own(observed(
                    self.observer_for(oidc),
                    method,
                    route_path,
                    client_ip,
                    backchannel(oidc.clone(), request),
                ));
            }
            (Route::Backchannel, _) => Some(method_not_allowed("POST")),
            (Route::Service, _) => None,
        };
        if let Some(future) = own {
            return ResponseFuture {
                state: State::Own {
                    future: observed(
                        self.observer_for(oidc),
                        method,
                        route_path,
                        client_ip,
                        future,
                    ),
                },
            };
        }

        let mut request = request;
        let login_return = (inner.browser_redirect
            && method == Method::GET
            && !request.headers().contains_key(AUTHORIZATION)
            && accepts(request.headers(), &inner.browser_media_type))
        .then(|| {
            request
                .uri()
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_owned()
        });
        let login_return = login_return.map(|path| {
            let return_to = login::safe_return_path(&path).unwrap_or("/");
            let encoded: String = form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
            format!("{}?return_to={encoded}", inner.login_path)
        });
        request.extensions_mut().insert(oidc.clone());
        // The ready service goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let mut service = mem::replace(&mut self.inner, clone);
        ResponseFuture {
            state: State::Inner {
                future: service.call(request),
                login: login_return,
            },
        }
    }
}

/// Which route a request is for.
#[derive(Clone, Copy)]
enum Route {
    Login,
    Callback,
    Logout,
    Backchannel,
    Service,
}

/// `future`, reporting its answer to the relying party's observer as an authentication
/// decision: `answered` for a redirect or a page, `refused` for a 4xx or 5xx, with the
/// cause the route left in the response's extensions and, after a login, the new caller.
fn observed(
    observer: Arc<dyn crate::observe::Observe>,
    method: Method,
    path: String,
    client_ip: Option<std::net::IpAddr>,
    future: OwnFuture,
) -> OwnFuture {
    Box::pin(async move {
        let started = std::time::Instant::now();
        let response = future.await;
        let status = response.status();
        let refused = !(status.is_success() || status.is_redirection());
        let reason = refused.then_some(match status {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY => Reason::Unavailable,
            StatusCode::FORBIDDEN => Reason::Forbidden,
            _ => Reason::InvalidRequest,
        });
        observer.decision(&Decision {
            stage: Stage::Authenticate,
            outcome: if refused {
                Outcome::Refused
            } else {
                Outcome::Answered
            },
            reason,
            cause: response
                .extensions()
                .get::<pages::Cause>()
                .map(|cause| cause.0),
            status: Some(status),
            route: None,
            method: &method,
            path: &path,
            principal: response.extensions().get::<Principal>(),
            client: crate::observe::Client::Known(client_ip),
            limit: None,
            started,
        });
        response
    })
}

fn own<F>(future: OwnFuture) -> ResponseFuture<F> {
    ResponseFuture {
        state: State::Own { future },
    }
}

fn method_not_allowed(allow: &'static str) -> OwnFuture {
    let mut response = pages::empty(StatusCode::METHOD_NOT_ALLOWED);
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    Box::pin(std::future::ready(response))
}

fn backchannel<B>(oidc: Oidc, request: Request<B>) -> OwnFuture
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let form = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Box::pin(std::future::ready(pages::json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        )));
    }
    let body = Limited::new(request.into_body(), MAX_LOGOUT_BODY);
    Box::pin(async move {
        match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
            Ok(Ok(collected)) => logout::backchannel(oidc, collected.to_bytes()).await,
            _ => pages::json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body is too large, incomplete or too slow",
            ),
        }
    })
}

/// Whether `Accept` names `media_type` (parameters and `q` ignored, except `q=0`).
fn accepts(headers: &http::HeaderMap, media_type: &str) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            let mut pieces = item.split(';');
            let essence = pieces.next().unwrap_or("").trim();
            let refused = pieces.any(|p| {
                let p = p.trim();
                p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
            });
            essence.eq_ignore_ascii_case(media_type) && !refused
        })
}

pin_project! {
    /// The response future of [`OidcService`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] future: F, login: Option<String> },
        Own { future: OwnFuture },
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Own { future } => {
                let response = ready!(future.as_mut().poll(cx));
                Poll::Ready(Ok(response.map(ResponseBody::rejection)))
            }
            StateProj::Inner { future, login } => {
                let response = ready!(future.poll(cx))?;
                // Only a request that brought no credentials goes to the login: a bad API
                // key or token keeps its 401 (its reason is in the response's extensions).
                let missing = response
                    .extensions()
                    .get::<crate::rejection::Reason>()
                    .is_none_or(|reason| *reason == crate::rejection::Reason::MissingCredentials);
                match login.take() {
                    Some(location) if response.status() == StatusCode::UNAUTHORIZED && missing => {
                        // Keep the cookies the stack set (a cleared session cookie).
                        let cookies = response
                            .headers()
                            .get_all(SET_COOKIE)
                            .iter()
                            .cloned()
                            .collect();
                        let redirect = pages::redirect(StatusCode::FOUND, &location, cookies);
                        Poll::Ready(Ok(redirect.map(ResponseBody::rejection)))
                    }
                    _ => Poll::Ready(Ok(response.map(ResponseBody::inner))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_told_apart_by_accept() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
        );
        assert!(accepts(&headers, "text/html"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!accepts(&headers, "text/html"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("text/html;q=0, application/json"),
        );
        assert!(!accepts(&headers, "text/html"));
        assert!(!accepts(&http::HeaderMap::new(), "text/html"));
    }
}
