//! The admin listener of `portcullis serve` (`--admin ADDR`): readiness, metrics, reload and
//! key management, on an address of their own so that only operators reach them.
//!
//! | request | who | answer |
//! |---|---|---|
//! | `GET /ready` | anyone (probes) | 200 when the serving gateway can answer (keys loaded, Redis reachable), else 503 with `Retry-After` and why |
//! | `GET /metrics` | the admin role | Prometheus text |
//! | `POST /reload` | the admin role | the policy file read, checked and swapped in, as on SIGHUP: 200, or 422 with the problems |
//! | `/keys…` | the admin role | the key API (`KeyAdminApi`) over the file's Redis key store |
//!
//! Callers are authenticated by the policy file's own authenticators (an admin API key, a
//! bearer token) and need the admin role (`--admin-role`, default `admin`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use portcullis::authz::{RouteRules, public, role};
use portcullis::config::{PolicyFile, SharedState};
use portcullis::{AuthFuture, AuthOutcome, GatewaySecurityLayer, ReloadHandle};

/// Reloads the policy file, as SIGHUP does: the new generation, or the problems.
pub(crate) type Reload =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send>> + Send + Sync>;

/// What `Retry-After` says when the gateway is not ready, in seconds.
const RETRY_AFTER_SECS: u32 = 5;

/// The admin listener's settings, from the command line.
#[derive(Debug, Clone)]
pub(crate) struct AdminSettings {
    pub(crate) listen: SocketAddr,
    pub(crate) role: String,
}

/// The admin router, behind a gateway of its own: the policy file's authenticators, and
/// every route but `/ready` for the admin role.
pub(crate) fn router(
    policy: &PolicyFile,
    state: &SharedState,
    settings: &AdminSettings,
    serving: ReloadHandle,
    reload: Reload,
    metrics: PrometheusHandle,
) -> Result<Router, String> {
    let admin = settings.role.as_str();
    let rules = RouteRules::builder()
        .role(admin, std::iter::empty::<&str>())
        .route("GET /ready", public())
        .route("GET /metrics", role(admin))
        .route("POST /reload", role(admin))
        .route("* /keys", role(admin))
        .route("* /keys/{*rest}", role(admin))
        .build()
        .map_err(|error| format!("--admin-role: {error}"))?;
    let mut gateway = GatewaySecurityLayer::builder().rules(rules);
    let authenticators = policy
        .authenticators_with(state)
        .map_err(|errors| errors.to_string())?;
    if authenticators.is_empty() {
        // Nobody can be the admin: only `/ready` answers.
        gateway =
            gateway.authenticate(|_: &http::request::Parts| AuthFuture::ready(AuthOutcome::Absent));
    }
    for authenticator in authenticators {
        gateway = gateway.authenticate(authenticator);
    }
    let gateway = gateway.build().map_err(|error| error.to_string())?;

    let mut router = Router::new()
        .route(
            "/ready",
            get(move || {
                let serving = serving.current();
                async move { ready(serving).await }
            }),
        )
        .route(
            "/metrics",
            get(move || std::future::ready(prometheus(&metrics))),
        )
        .route(
            "/reload",
            post(move || {
                let reload = reload.clone();
                async move { reloaded(reload().await) }
            }),
        );
    if let Some(store) = policy.key_store().map_err(|errors| errors.to_string())? {
        router = router.nest("/keys", key_api(store, admin)?);
    } else if uses_memory_keys(policy) {
        router = router.nest("/keys", key_api(state.memory_key_store(), admin)?);
    }
    Ok(router.layer(gateway))
}

/// The key API over `store`, for the `admin` role.
fn key_api<S: portcullis::api_key::KeyAdmin>(store: Arc<S>, admin: &str) -> Result<Router, String> {
    let keys = portcullis::api_key::KeyAdminApi::builder(store)
        .role(admin)
        .build()
        .map_err(|error| format!("--admin-role: {error}"))?;
    Ok(keys.router())
}

/// Whether the file keeps its API keys in memory (`api_keys: {memory: {}}`).
pub(crate) fn uses_memory_keys(policy: &PolicyFile) -> bool {
    policy
        .authenticate
        .as_ref()
        .and_then(|section| section.api_keys.as_ref())
        .is_some_and(|keys| keys.memory.is_some())
}

/// With keys in memory, nobody holds one at start: the first key, for the admin role, issued
/// when the store is empty and shown once (printed by `serve`).
pub(crate) async fn first_admin_key(
    policy: &PolicyFile,
    state: &SharedState,
    role: &str,
) -> Result<Option<String>, String> {
    use portcullis::api_key::{KeyAdmin, NewKey};
    if !uses_memory_keys(policy) {
        return Ok(None);
    }
    let store = state.memory_key_store();
    let held = store
        .list(None)
        .await
        .map_err(|error| format!("cannot list the keys: {error}"))?;
    if !held.is_empty() {
        return Ok(None);
    }
    let issued = store
        .issue(NewKey::for_owner("admin").roles([role]))
        .await
        .map_err(|error| format!("cannot issue the first admin key: {error}"))?;
    Ok(Some(issued.key.expose_secret().to_owned()))
}

/// `GET /ready`: 200, or 503 with why.
async fn ready(serving: GatewaySecurityLayer) -> Response {
    match serving.ready().await {
        Ok(()) => text(StatusCode::OK, "ready\n".to_owned()),
        Err(not_ready) => {
            let mut response = text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {not_ready}\n"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            response
        }
    }
}

/// `GET /metrics`: the Prometheus exposition format.
fn prometheus(metrics: &PrometheusHandle) -> Response {
    let mut response = text(StatusCode::OK, metrics.render());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// `POST /reload`'s answer.
fn reloaded(outcome: Result<u64, String>) -> Response {
    match outcome {
        Ok(generation) => text(
            StatusCode::OK,
            format!("reloaded (generation {generation})\n"),
        ),
        Err(problems) => text(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("reload refused, the old policy keeps serving:\n{problems}\n"),
        ),
    }
}

/// A plain-text answer that no cache keeps.
fn text(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
