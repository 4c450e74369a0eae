//! Extending portcullis with your own pieces:
//!
//! - a custom [`Authenticate`] implementation, `ServiceTokenAuthenticator`, installed beside
//!   the built-in API-key authenticator in one [`GatewaySecurityLayer`]. Internal services
//!   send a pre-shared token in `x-service-token`; it is compared in constant time against a
//!   SHA-256 digest kept in place of the token, and removed before the handler runs;
//! - a custom axum extractor, `Admin`, built on the [`Principal`] extractor, that refuses
//!   callers without the `admin` role with a 403 rendered like every other rejection.
//!
//! It is not a server: it drives the router with `tower::ServiceExt::oneshot`, prints each
//! status and asserts it, so it fails if the behaviour changes.
//!
//! ```text
//! cargo run --example custom_authenticator
//! ```

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, Request, StatusCode};
use axum::routing::get;
use portcullis::api_key::{ApiKeyAuthenticator, KeyAdmin, MemoryKeyStore, NewKey};
use portcullis::authz::{RouteRules, authenticated, permission};
use portcullis::{
    AuthFuture, AuthMethod, AuthOutcome, Authenticate, Challenge, GatewaySecurityLayer, Names,
    Principal, Reason, Rejection,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::ServiceExt;

/// The header service tokens travel in.
const SERVICE_TOKEN: HeaderName = HeaderName::from_static("x-service-token");

/// The demo service's token. A real one comes from your secret store, never from source.
const DEMO_TOKEN: &str = "svc_demo_3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e";

/// Authenticates one internal service by a pre-shared token in `x-service-token`.
///
/// Holds only the token's SHA-256 digest. Comparing fixed-length digests with `subtle`
/// takes the same time whatever the presented token is, so timing reveals nothing about
/// the real one (not even its length).
struct ServiceTokenAuthenticator {
    service: Arc<str>,
    digest: [u8; 32],
    roles: Names,
}

impl ServiceTokenAuthenticator {
    fn new(service: &str, token: &str, roles: &[&str]) -> Self {
        Self {
            service: service.into(),
            digest: Sha256::digest(token.as_bytes()).into(),
            roles: roles.iter().copied().collect(),
        }
    }

    fn reject(&self, reason: Reason) -> AuthOutcome {
        AuthOutcome::Rejected(Rejection::new(reason).with_challenge(Self::scheme_challenge()))
    }

    fn scheme_challenge() -> Challenge {
        Challenge::new("ServiceToken", "internal")
    }
}

impl Authenticate for ServiceTokenAuthenticator {
    fn authenticate(&self, request: &Parts) -> AuthFuture {
        let mut tokens = request.headers.get_all(&SERVICE_TOKEN).iter();
        let outcome = match (tokens.next(), tokens.next()) {
            // Not ours: let the other authenticators and the route rules decide.
            (None, _) => AuthOutcome::Absent,
            // Two tokens: refuse rather than pick one.
            (Some(_), Some(_)) => self.reject(Reason::AmbiguousCredentials),
            (Some(token), None) => {
                let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                if bool::from(presented.ct_eq(&self.digest)) {
                    AuthOutcome::Authenticated(
                        Principal::builder(
                            self.service.clone(),
                            AuthMethod::Custom("service-token".into()),
                        )
                        .role_names(self.roles.clone())
                        .build(),
                    )
                } else {
                    self.reject(Reason::InvalidCredentials)
                }
            }
        };
        AuthFuture::ready(outcome)
    }

    /// Named in the 401 sent when a route needs an identity and the request has none.
    fn challenge(&self) -> Option<Challenge> {
        Some(Self::scheme_challenge())
    }

    /// The handler never sees the token.
    fn strip_credentials(&self, request: &mut Parts) {
        request.headers.remove(&SERVICE_TOKEN);
    }
}

/// A caller holding the `admin` role: 401 without a caller, 403 with a caller who is not
/// an admin.
struct Admin(Principal);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        if principal.has_role("admin") {
            Ok(Self(principal))
        } else {
            Err(Rejection::new(Reason::Forbidden)
                .with_detail("This resource is for administrators."))
        }
    }
}

/// Needs permission `reports:read`, which the route rules check.
async fn reports(principal: Principal, request: Request<Body>) -> String {
    assert!(
        !request.headers().contains_key(&SERVICE_TOKEN),
        "the service token was removed before the handler"
    );
    format!(
        "reports for {} ({})",
        principal.subject(),
        principal.auth_method().name()
    )
}

/// The rules only ask for some caller; the `Admin` extractor asks for more.
async fn stats(Admin(admin): Admin) -> String {
    format!("stats for admin {}", admin.subject())
}

fn app(
    store: Arc<MemoryKeyStore>,
    service_tokens: ServiceTokenAuthenticator,
) -> Result<Router, portcullis::ConfigError> {
    let rules = RouteRules::builder()
        .role("admin", ["*"])
        .role("viewer", ["reports:read"])
        .role("service", ["reports:read"])
        .route("GET /reports", permission("reports:read"))
        .route("GET /admin/stats", authenticated())
        .build()?;
    let security = GatewaySecurityLayer::builder()
        .authenticate(ApiKeyAuthenticator::new(store))
        .authenticate(service_tokens)
        .rules(rules)
        .build()?;
    Ok(Router::new()
        .route("/reports", get(reports))
        .route("/admin/stats", get(stats))
        .layer(security))
}

/// Sends `request`, prints what came back, and returns the status and the problem `code`
/// (empty for successes).
async fn send(
    app: &Router,
    label: &str,
    request: Request<Body>,
) -> Result<(StatusCode, String), Box<dyn std::error::Error>> {
    let response = app.clone().oneshot(request).await?;
    let status = response.status();
    let challenges: Vec<String> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|value| value.to_str().ok().map(str::to_owned))
        .collect();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await?;
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|problem| problem["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let shown = if code.is_empty() {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        code.clone()
    };
    println!("{label:<44} {} {shown}", status.as_u16());
    for challenge in challenges {
        println!("{:<44}     www-authenticate: {challenge}", "");
    }
    Ok((status, code))
}

fn get_request(
    path: &str,
    headers: &[(&HeaderName, &str)],
) -> Result<Request<Body>, axum::http::Error> {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(MemoryKeyStore::new());
    let admin = store
        .issue(NewKey::for_owner("ada").roles(["admin"]))
        .await?;
    let viewer = store
        .issue(NewKey::for_owner("vic").roles(["viewer"]))
        .await?;
    let service_tokens = ServiceTokenAuthenticator::new("billing-batch", DEMO_TOKEN, &["service"]);
    let app = app(store, service_tokens)?;

    let api_key = HeaderName::from_static("x-api-key");
    let admin_key = admin.key.expose_secret();
    let viewer_key = viewer.key.expose_secret();

    let checks = [
        (
            "no credentials",
            get_request("/reports", &[])?,
            StatusCode::UNAUTHORIZED,
            "missing_credentials",
        ),
        (
            "good service token",
            get_request("/reports", &[(&SERVICE_TOKEN, DEMO_TOKEN)])?,
            StatusCode::OK,
            "",
        ),
        (
            "bad service token",
            get_request("/reports", &[(&SERVICE_TOKEN, "svc_guess")])?,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            "API key and service token together",
            get_request(
                "/reports",
                &[(&api_key, viewer_key), (&SERVICE_TOKEN, DEMO_TOKEN)],
            )?,
            StatusCode::UNAUTHORIZED,
            "ambiguous_credentials",
        ),
        (
            "viewer key on /reports",
            get_request("/reports", &[(&api_key, viewer_key)])?,
            StatusCode::OK,
            "",
        ),
        (
            "viewer key on the Admin route",
            get_request("/admin/stats", &[(&api_key, viewer_key)])?,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "service token on the Admin route",
            get_request("/admin/stats", &[(&SERVICE_TOKEN, DEMO_TOKEN)])?,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "admin key on the Admin route",
            get_request("/admin/stats", &[(&api_key, admin_key)])?,
            StatusCode::OK,
            "",
        ),
    ];

    for (label, request, expected_status, expected_code) in checks {
        let (status, code) = send(&app, label, request).await?;
        assert_eq!(status, expected_status, "{label}");
        assert_eq!(code, expected_code, "{label}");
    }
    println!("all checks passed");
    Ok(())
}
