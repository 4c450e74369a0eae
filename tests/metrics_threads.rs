//! `MetricsObserver` from many threads at once, through one global recorder (this test
//! binary's own, installed once): every decision is counted exactly once under its labels,
//! however the threads race to register a label set first.

#![cfg(all(feature = "metrics", feature = "api-key", feature = "axum"))]

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use portcullis::GatewaySecurityLayer;
use portcullis::api_key::{ApiKeyAuthenticator, MemoryKeyStore};
use portcullis::authz::{RouteRules, public};
use portcullis::observe::{MetricsObserver, Observe};
use tower::{Layer, Service, ServiceExt};

const THREADS: usize = 8;
const ROUTES: usize = 24;
const ROUNDS: usize = 50;

#[test]
fn racing_threads_count_every_decision_once() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("the only recorder of this test binary");

    let observer: Arc<dyn Observe> = Arc::new(MetricsObserver::new());
    let mut rules = RouteRules::builder();
    for route in 0..ROUTES {
        rules = rules.route(&format!("GET /r{route}"), public());
    }
    let security = GatewaySecurityLayer::builder()
        .authenticate(ApiKeyAuthenticator::new(Arc::new(MemoryKeyStore::new())))
        .rules(rules.build().expect("rules"))
        .observer(observer)
        .build()
        .expect("gateway");
    let service = security.layer(Router::new().fallback(|| async { "ok" }).with_state(()));

    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let mut service = service.clone();
            thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    for round in 0..ROUNDS {
                        // Each thread walks the routes from its own start, so that first
                        // sightings of a label set race.
                        for step in 0..ROUTES {
                            let route = (thread + round + step) % ROUTES;
                            let request = Request::builder()
                                .method(Method::GET)
                                .uri(format!("/r{route}"))
                                .body(Body::empty())
                                .expect("request");
                            let ready = ServiceExt::<Request<Body>>::ready(&mut service)
                                .await
                                .expect("ready");
                            let response = ready.call(request).await.expect("response");
                            assert_eq!(response.status(), StatusCode::OK);
                        }
                    }
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no panic");
    }

    let mut counted: HashMap<(String, String), u64> = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if key.key().name() != "portcullis.decisions" {
            continue;
        }
        let label = |name: &str| {
            key.key()
                .labels()
                .find(|label| label.key() == name)
                .map(|label| label.value().to_owned())
                .unwrap_or_default()
        };
        let DebugValue::Counter(count) = value else {
            panic!("a counter");
        };
        *counted
            .entry((label("stage"), label("http.route")))
            .or_default() += count;
    }
    let each = (THREADS * ROUNDS) as u64;
    // Public routes: no credential is looked at, so authorization makes the one decision.
    for route in 0..ROUTES {
        assert_eq!(
            counted.get(&("authorize".to_owned(), format!("/r{route}"))),
            Some(&each),
            "/r{route}"
        );
    }
    assert_eq!(counted.len(), ROUTES, "{counted:?}");
}
