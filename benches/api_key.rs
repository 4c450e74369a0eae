//! What the API-key layer costs per request, beside what any API-key check must cost.
//!
//! One criterion group, `api_key`, so the report shows the numbers side by side:
//!
//! - `bare_service`: build a request carrying an `x-api-key` header and call a bare
//!   `tower::service_fn` with it. Every other measurement includes this.
//! - `floor`: `bare_service` plus the three steps no API-key check can avoid: the SHA-256
//!   digest of the 32-character secret (`KeyDigest::of`, the digest the layer computes), a
//!   `HashMap<String, KeyDigest>` lookup of the 12-character key id, and the constant-time
//!   comparison (`KeyDigest::matches`).
//! - `api_key_layer`: `ApiKeyLayer::new(ApiKeyAuthenticator::new(store))` around the same
//!   bare service, with a valid key. The layer's overhead is this minus `floor`.
//! - `api_key_layer_invalid_key`: a malformed key, refused before any lookup, and
//!   `api_key_layer_unknown_key`: a well-formed key with a good checksum that is not in the
//!   store. Both are rejections, so they include rendering the 401 problem+json response.
//! - `gateway_layer`: the whole `GatewaySecurityLayer` (the same API keys, a handful of
//!   route rules, and no validation rules, so its validation step passes the body through)
//!   for a valid request.
//! - `authenticate_only`: `Authenticate::authenticate` alone on a prepared request head,
//!   to split the layer's cost between the key check and the service plumbing around it.
//!
//! Every measurement builds its request and drives `ready()` + `call()` the same way: the
//! futures complete synchronously (the memory store's `find` never waits), so they are
//! polled once with a no-op waker, without an async runtime, whose overhead would otherwise
//! be counted in both the floor and the layer.
//!
//! Run with `cargo bench --bench api_key -- --warm-up-time 1 --measurement-time 3`.

#[path = "support/poll.rs"]
mod poll;

use poll::complete;
use std::collections::HashMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use portcullis::api_key::{
    ApiKeyAuthenticator, ApiKeyLayer, KeyAdmin, KeyDigest, MemoryKeyStore, NewKey,
};
use portcullis::authz::{RouteRules, all, permission, public, role, scope};
use portcullis::{AuthOutcome, Authenticate, GatewaySecurityLayer};
use tower::{Layer, Service, ServiceExt, service_fn};

/// Keys in the store besides the one presented, so lookups are not in a one-entry map.
const OTHER_KEYS: usize = 999;
/// `pcl_` + 12-character id + 32-character secret + 6-character checksum.
const ID: std::ops::Range<usize> = 4..16;
const SECRET: std::ops::Range<usize> = 16..48;

/// The bare service every measurement calls: it answers 200 with an empty body. Generic
/// over the request body, because the gateway hands its service a wrapped body.
async fn bare<B>(request: Request<B>) -> Result<Response<String>, Infallible> {
    black_box(&request);
    Ok(Response::new(String::new()))
}

fn request_with_key(key: &str) -> Request<String> {
    Request::get("/resource7/42")
        .header("x-api-key", key)
        .body(String::new())
        .expect("valid request")
}

/// Sends one request through `service`, driven as in every measurement here.
fn send<S, ResBody>(service: &mut S, request: Request<String>) -> Response<ResBody>
where
    S: Service<Request<String>, Response = Response<ResBody>, Error = Infallible>,
{
    complete(async {
        match service.ready().await {
            Ok(ready) => ready.call(request).await,
            Err(never) => match never {},
        }
    })
    .unwrap_or_else(|never| match never {})
}

fn api_key(c: &mut Criterion) {
    let store = Arc::new(MemoryKeyStore::new());
    let (valid, unknown) = complete(async {
        for n in 0..OTHER_KEYS {
            store
                .issue(NewKey::for_owner(format!("owner-{n}")))
                .await
                .expect("issued");
        }
        let valid = store
            .issue(
                NewKey::for_owner("alice")
                    .roles(["viewer"])
                    .scopes(["resource7:read"]),
            )
            .await
            .expect("issued");
        // Same format, valid checksum, but issued by another store: unknown here.
        let unknown = MemoryKeyStore::new()
            .issue(NewKey::for_owner("mallory"))
            .await
            .expect("issued");
        (valid, unknown)
    });
    let valid = valid.key.expose_secret().to_owned();
    let unknown = unknown.key.expose_secret().to_owned();
    let malformed = "pcl_made-up".to_owned();

    // The floor's own map: the same ids and digests the store holds.
    let records = complete(store.list(None)).expect("listed");
    let digests: HashMap<String, KeyDigest> = records
        .iter()
        .map(|record| (record.id().as_str().to_owned(), *record.digest()))
        .collect();
    assert_eq!(digests.len(), OTHER_KEYS + 1);

    let mut bare_service = service_fn(bare::<String>);
    let mut layered =
        ApiKeyLayer::new(ApiKeyAuthenticator::new(store.clone())).layer(service_fn(bare::<String>));
    let rules = RouteRules::builder()
        .role("viewer", ["resource7:read"])
        .role("admin", ["*"])
        .route("GET /health", public())
        .route(
            "GET /resource7/{id}",
            all([role("viewer"), scope("resource7:read")]),
        )
        .route(
            "POST /resource7",
            all([role("admin"), scope("resource7:write")]),
        )
        .route("DELETE /resource7/{id}", role("admin"))
        .route("GET /reports/{*rest}", permission("reports:read"))
        .build()
        .expect("valid rules");
    let mut gateway = GatewaySecurityLayer::builder()
        .authenticate(ApiKeyAuthenticator::new(store.clone()))
        .rules(rules)
        .build()
        .expect("valid gateway")
        .layer(service_fn(bare));
    let authenticator = ApiKeyAuthenticator::new(store.clone());

    // What is measured must be what was meant: check each case's outcome once.
    let status = |response_status: StatusCode, expected: StatusCode, case: &str| {
        assert_eq!(response_status, expected, "{case}");
    };
    let ok = StatusCode::OK;
    let unauthorized = StatusCode::UNAUTHORIZED;
    status(
        send(&mut bare_service, request_with_key(&valid)).status(),
        ok,
        "bare",
    );
    status(
        send(&mut layered, request_with_key(&valid)).status(),
        ok,
        "valid",
    );
    status(
        send(&mut gateway, request_with_key(&valid)).status(),
        ok,
        "gateway",
    );
    status(
        send(&mut layered, request_with_key(&malformed)).status(),
        unauthorized,
        "malformed",
    );
    status(
        send(&mut layered, request_with_key(&unknown)).status(),
        unauthorized,
        "unknown",
    );
    let (parts, _) = request_with_key(&valid).into_parts();
    assert!(matches!(
        complete(authenticator.authenticate(&parts)),
        AuthOutcome::Authenticated(_)
    ));

    let mut group = c.benchmark_group("api_key");
    group.bench_function("bare_service", |b| {
        b.iter(|| send(&mut bare_service, request_with_key(black_box(&valid))));
    });
    group.bench_function("floor", |b| {
        b.iter(|| {
            let request = request_with_key(black_box(&valid));
            let key = request.headers()["x-api-key"].to_str().expect("ASCII key");
            let digest = KeyDigest::of(&key[SECRET]);
            let matched = digests
                .get(&key[ID])
                .is_some_and(|stored| stored.matches(&digest));
            black_box(matched);
            send(&mut bare_service, request)
        });
    });
    group.bench_function("api_key_layer", |b| {
        b.iter(|| send(&mut layered, request_with_key(black_box(&valid))));
    });
    group.bench_function("api_key_layer_invalid_key", |b| {
        b.iter(|| send(&mut layered, request_with_key(black_box(&malformed))));
    });
    group.bench_function("api_key_layer_unknown_key", |b| {
        b.iter(|| send(&mut layered, request_with_key(black_box(&unknown))));
    });
    group.bench_function("gateway_layer", |b| {
        b.iter(|| send(&mut gateway, request_with_key(black_box(&valid))));
    });
    group.bench_function("authenticate_only", |b| {
        b.iter(|| complete(authenticator.authenticate(black_box(&parts))));
    });
    group.finish();
}

criterion_group!(benches, api_key);
criterion_main!(benches);
