//! What one authorization decision over a 100-rule table costs, beside its floor.
//!
//! The table is shaped like a real service's: for 45 resources `GET /resource{i}/{id}` and
//! `POST /resource{i}`, for every fifth one also `* /admin{i}/{*rest}`, and last a
//! `* /admin/{*rest}` (100 rules), with requirements mixing `role`, `scope`, `permission`,
//! `all`, `any` and `not`, and roles declared with `RouteRules::builder().role(...)`. The
//! request matches `GET /resource44/{id}`, rule 98 of 100
//! (the order matters to the reader, not to matchit's radix tree).
//!
//! Group `authorize`:
//!
//! - `bare_service`: build a request (a fresh one per iteration, with a clone of a prepared
//!   `Principal` inserted in its extensions, as an authentication layer would leave it) and
//!   call a bare `tower::service_fn`. This is the floor.
//! - `authorize_layer`: the same through `AuthorizeLayer`. The caller's roles map to no
//!   permissions, so the per-request role → permission resolution finds nothing to add and
//!   allocates nothing. The decision's cost is this minus `bare_service`.
//! - `authorize_layer_role_mapping_2` and `_90`: the same rule, met only through a
//!   permission the caller's roles grant, which the layer resolves on each request (a new
//!   `Principal` with the merged permissions, replacing the one in the extensions). The
//!   caller's roles grant 2 permissions in the first, 90 in the second (two roles, one
//!   listing read and write for each of the 45 resources, one read for each), to show how
//!   the resolution's cost grows with the size of the grant.
//! - `authorize_layer_object_rule`: the same table, but the target rule also needs the
//!   path's `{id}` to be the caller's subject (`… and param("id") == subject()`), met by a
//!   caller whose subject is `123`: one object-level comparison, with the parameter's span
//!   taken from the same route lookup and percent-decoded. Its cost is this minus
//!   `authorize_layer`.
//! - `matchit_lookup`: `matchit::Router::at` alone over the same 100 patterns, the route
//!   lookup inside every decision.
//!
//! The futures complete synchronously, so they are polled once with a no-op waker, the same
//! way for the floor and the layer, without an async runtime.
//!
//! Run with `cargo bench --bench authorize -- --warm-up-time 1 --measurement-time 3`.

#[path = "support/poll.rs"]
mod poll;

use poll::complete;
use std::convert::Infallible;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode, Uri};
use portcullis::authz::{
    AuthorizeLayer, Requirement, RouteRules, all, any, not, param, permission, role, scope, subject,
};
use portcullis::{AuthMethod, Principal};
use tower::{Layer, Service, ServiceExt, service_fn};

/// Resources with a `GET` and a `POST` rule each.
const RESOURCES: usize = 45;
/// Every this many resources also get an admin wildcard rule.
const ADMIN_EVERY: usize = 5;
/// Rules in the table.
const RULES: usize = 100;
/// The request: a path matching the last `GET` rule.
const TARGET: &str = "/resource44/123";

/// The bare service: it answers 200 with an empty body.
async fn bare(request: Request<String>) -> Result<Response<String>, Infallible> {
    black_box(&request);
    Ok(Response::new(String::new()))
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

/// A fresh `GET` request for `uri` carrying a clone of `principal`.
fn request_as(uri: &Uri, principal: &Principal) -> Request<String> {
    let mut request = Request::new(String::new());
    *request.uri_mut() = uri.clone();
    request.extensions_mut().insert(principal.clone());
    request
}

/// What reading resource `i` needs.
fn read_requirement(i: usize) -> Requirement {
    let read = format!("resource{i}:read");
    if i == RESOURCES - 1 {
        // The target's rule: the caller's own role and scope, or a granted permission.
        return any([all([role("reader"), scope(read.clone())]), permission(read)]);
    }
    match i % 3 {
        0 => scope(read),
        1 => permission(read),
        _ => any([role("viewer"), scope(read)]),
    }
}

/// What writing resource `i` needs.
fn write_requirement(i: usize) -> Requirement {
    let write = format!("resource{i}:write");
    if i.is_multiple_of(2) {
        all([role("editor"), scope(write)])
    } else {
        all([permission(write), not(role("auditor"))])
    }
}

/// The 100-rule table and the matchit patterns it registers. With `object_rule`, the
/// target rule also needs `{id}` to be the caller's subject.
fn table(object_rule: bool) -> (RouteRules, Vec<String>) {
    let editor_permissions: Vec<String> = (0..RESOURCES)
        .flat_map(|i| [format!("resource{i}:read"), format!("resource{i}:write")])
        .collect();
    let viewer_permissions: Vec<String> = (0..RESOURCES)
        .map(|i| format!("resource{i}:read"))
        .collect();
    let mut builder = RouteRules::builder()
        .role("admin", ["*"])
        .role("editor", editor_permissions)
        .role("viewer", viewer_permissions)
        .role("auditor", ["audit:read"])
        .role("reader", Vec::<String>::new())
        .role("owner44", ["resource44:read", "resource44:write"]);
    let mut patterns = Vec::new();
    let mut rules = 0;
    for i in 0..RESOURCES {
        let read = if object_rule && i == RESOURCES - 1 {
            all([read_requirement(i), param("id").equals(subject())])
        } else {
            read_requirement(i)
        };
        builder = builder
            .route(&format!("GET /resource{i}/{{id}}"), read)
            .route(&format!("POST /resource{i}"), write_requirement(i));
        patterns.push(format!("/resource{i}/{{id}}"));
        patterns.push(format!("/resource{i}"));
        rules += 2;
        if i.is_multiple_of(ADMIN_EVERY) {
            builder = builder.route(&format!("* /admin{i}/{{*rest}}"), role("admin"));
            patterns.push(format!("/admin{i}/{{*rest}}"));
            rules += 1;
        }
    }
    builder = builder.route("* /admin/{*rest}", role("admin"));
    patterns.push("/admin/{*rest}".to_owned());
    rules += 1;
    assert_eq!(rules, RULES);
    (builder.build().expect("valid rules"), patterns)
}

fn authorize(c: &mut Criterion) {
    let (rules, patterns) = table(false);
    let (object_rules, _) = table(true);
    let mut router = matchit::Router::new();
    for (index, pattern) in patterns.iter().enumerate() {
        router
            .insert(pattern.as_str(), index)
            .expect("valid pattern");
    }
    let uri = Uri::from_static(TARGET);

    // Meets the target rule through its role `reader` (mapped to no permissions) and scope.
    let reader = Principal::builder("rita", AuthMethod::Bearer)
        .roles(["reader"])
        .scopes(["resource44:read", "resource43:read", "profile"])
        .build();
    // Meet it only through `resource44:read`, granted by their roles: `owner44` grants two
    // permissions; `editor` and `viewer` together grant 90 (135 with duplicates).
    let owner = Principal::builder("olga", AuthMethod::Bearer)
        .roles(["owner44"])
        .build();
    let editor = Principal::builder("eddie", AuthMethod::Bearer)
        .roles(["editor", "viewer"])
        .build();

    let mut bare_service = service_fn(bare);
    let mut layered = AuthorizeLayer::new(rules).layer(service_fn(bare));
    let mut object_layered = AuthorizeLayer::new(object_rules).layer(service_fn(bare));
    // Rita's grants, and the object's id as subject.
    let owner_of_123 = Principal::builder("123", AuthMethod::Bearer)
        .roles(["reader"])
        .scopes(["resource44:read", "resource43:read", "profile"])
        .build();
    assert_eq!(
        send(&mut object_layered, request_as(&uri, &owner_of_123)).status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&mut object_layered, request_as(&uri, &reader)).status(),
        StatusCode::FORBIDDEN
    );

    // What is measured must be what was meant: allowed by the intended rule, and refused
    // without the intended grant.
    assert_eq!(
        send(&mut layered, request_as(&uri, &reader)).status(),
        StatusCode::OK
    );
    for caller in [&owner, &editor] {
        assert_eq!(
            send(&mut layered, request_as(&uri, caller)).status(),
            StatusCode::OK
        );
    }
    let scopeless = Principal::builder("sam", AuthMethod::Bearer)
        .roles(["reader"])
        .build();
    assert_eq!(
        send(&mut layered, request_as(&uri, &scopeless)).status(),
        StatusCode::FORBIDDEN
    );
    let nobody = Principal::builder("nora", AuthMethod::Bearer).build();
    assert_eq!(
        send(&mut layered, request_as(&uri, &nobody)).status(),
        StatusCode::FORBIDDEN
    );
    let post = Request::post("/resource43")
        .extension(editor.clone())
        .body(String::new())
        .expect("valid request");
    assert_eq!(send(&mut layered, post).status(), StatusCode::OK);
    let target = patterns
        .iter()
        .position(|pattern| pattern == "/resource44/{id}");
    assert_eq!(router.at(TARGET).map(|found| *found.value).ok(), target);

    let mut group = c.benchmark_group("authorize");
    group.bench_function("bare_service", |b| {
        b.iter(|| send(&mut bare_service, request_as(black_box(&uri), &reader)));
    });
    group.bench_function("authorize_layer", |b| {
        b.iter(|| send(&mut layered, request_as(black_box(&uri), &reader)));
    });
    group.bench_function("authorize_layer_object_rule", |b| {
        b.iter(|| {
            send(
                &mut object_layered,
                request_as(black_box(&uri), &owner_of_123),
            )
        });
    });
    group.bench_function("authorize_layer_role_mapping_2", |b| {
        b.iter(|| send(&mut layered, request_as(black_box(&uri), &owner)));
    });
    group.bench_function("authorize_layer_role_mapping_90", |b| {
        b.iter(|| send(&mut layered, request_as(black_box(&uri), &editor)));
    });
    group.bench_function("matchit_lookup", |b| {
        b.iter(|| router.at(black_box(TARGET)).map(|found| *found.value));
    });
    group.finish();
}

criterion_group!(benches, authorize);
criterion_main!(benches);
