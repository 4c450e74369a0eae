//! The authorization policy as a file: read, checked as a whole, tested by its own tests, and
//! served by a real gateway with the rules it builds.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use portcullis::GatewaySecurityLayer;
use portcullis::api_key::{ApiKeyAuthenticator, KeyAdmin, MemoryKeyStore, NewKey};
use portcullis::config::{Format, PolicyFile};
use tower::ServiceExt;

mod support;
use support::binary::run;

const ORDERS: &str = r#"
roles:
  admin: ["orders:*"]
  viewer: ["orders:read"]
routes:
  - route: GET /health
    require: public
  - route: GET /users/{owner}/orders/{id}
    require: permission("orders:read") and (param("owner") == subject() or role(admin))
  - route: GET /reports
    require: query("owner") == subject()
  - route: POST /orders
    require: body("/customer") == subject() and permission("orders:write")
unmatched: deny
validate:
  routes:
    - route: POST /orders
      body: {type: object, required: [customer], properties: {customer: {type: string}}}
tests:
  - name: anyone checks health
    request: GET /health
    as: anonymous
    expect: {status: 200}
  - name: a viewer reads their own order
    request: GET /users/vic/orders/1
    as: {subject: vic, roles: [viewer]}
    expect: {status: 200}
  - name: but not another's
    request: GET /users/ada/orders/1
    as: {subject: vic, roles: [viewer]}
    expect: {status: 403, reason: object_denied}
  - name: an admin reads anyone's
    request: GET /users/vic/orders/1
    as: {subject: ada, roles: [admin], method: api_key}
    expect: {status: 200}
  - request: GET /users/vic/orders/1
    as: anonymous
    expect: {status: 401, reason: missing_credentials}
  - request: GET /reports?owner=vic
    as: {subject: vic}
    expect: {status: 200}
  - request: POST /orders
    as: {subject: ada, roles: [admin]}
    body: {customer: ada}
    expect: {status: 200}
  - request: POST /orders
    as: {subject: ada, roles: [admin]}
    body: {customer: vic}
    expect: {status: 403, reason: object_denied}
  - request: DELETE /users/vic
    as: {subject: ada, roles: [admin]}
    expect: {status: 403, reason: route_denied}
"#;

#[test]
fn a_policy_with_passing_tests_checks() {
    let policy = PolicyFile::parse(ORDERS, Format::Yaml).expect("parses");
    let checked = policy.check().unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(checked.tests, 9);
}

#[test]
fn a_change_that_opens_a_route_fails_its_tests() {
    // Someone makes the orders public: the tests that expected refusals now fail, and say so.
    let opened = ORDERS.replace(
        r#"require: permission("orders:read") and (param("owner") == subject() or role(admin))"#,
        "require: public",
    );
    let policy = PolicyFile::parse(&opened, Format::Yaml).expect("parses");
    let errors = policy.check().expect_err("the tests catch it");
    let places: Vec<&str> = errors.errors().iter().map(|e| e.place.as_str()).collect();
    assert_eq!(places, ["tests[2]", "tests[4]"], "{errors}");
    let first = errors.errors()[0].to_string();
    assert_eq!(
        first,
        "tests[2]: but not another's: GET /users/ada/orders/1: expected 403 object_denied, \
         decided 200 by rule `GET /users/{owner}/orders/{id}`"
    );
}

#[test]
fn every_problem_is_reported_at_once_with_its_place() {
    let broken = r#"
roles: {admin: [], viewer: []}
routes:
  - {route: "GET /a", require: role(admn)}
  - {route: "GET /b", require: 'role(admin) and'}
  - {route: "get /c", require: public}
  - {route: "GET /d/{id}", require: 'param("user") == subject()'}
  - {route: "GET /e", require: 'any()'}
  - {route: "GET /f", require: 'rol(viewer)'}
unmatched: role(viewr)
"#;
    let policy = PolicyFile::parse(broken, Format::Yaml).expect("parses");
    let errors = policy.rules().expect_err("broken");
    let shown: Vec<String> = errors.errors().iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 7, "{errors}");
    assert_eq!(
        shown[0],
        r#"routes[0].require: unknown role "admn" (did you mean "admin"?)"#
    );
    assert!(
        shown[1].starts_with("routes[1].require: requirement `role(admin) and`, at byte 15"),
        "{}",
        shown[1]
    );
    assert!(shown[2].starts_with("routes[2].route: "), "{}", shown[2]);
    assert!(
        shown[3].starts_with("routes[3].require: ") && shown[3].contains("`user`"),
        "{}",
        shown[3]
    );
    assert!(
        shown[4].starts_with("routes[4].require: ") && shown[4].contains("never"),
        "{}",
        shown[4]
    );
    assert!(shown[5].contains("did you mean `role`"), "{}", shown[5]);
    assert_eq!(
        shown[6],
        r#"unmatched: unknown role "viewr" (did you mean "viewer"?)"#
    );
    // The whole report reads as one message.
    assert!(
        errors
            .to_string()
            .starts_with("7 problems in the policy:\n  routes[0]")
    );
}

#[test]
fn conflicting_routes_name_the_later_one() {
    let policy = PolicyFile::parse(
        "routes:\n  - {route: GET /a, require: public}\n  - {route: GET|POST /a, require: authenticated}\n",
        Format::Yaml,
    )
    .expect("parses");
    let errors = policy.rules().expect_err("conflict");
    assert_eq!(errors.errors()[0].place, "routes[1].route", "{errors}");
}

#[test]
fn a_toml_file_on_disk_reads_and_checks() {
    let dir = std::env::temp_dir().join(format!("portcullis-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("policy.toml");
    std::fs::write(
        &path,
        r#"
[roles]
admin = ["*"]

[[routes]]
route = "GET /admin/{*rest}"
require = "role(admin)"

[[validate.routes]]
route = "POST /admin/keys"
body_file = "schemas/new-key.json"

[[tests]]
request = "GET /admin/keys"
as = { subject = "ada", roles = ["admin"] }
expect = { status = 200 }

[[tests]]
request = "GET /admin/keys"
as = { subject = "vic" }
expect = { status = 403, reason = "forbidden" }
"#,
    )
    .expect("write");
    // Schema files are read relative to the policy file.
    std::fs::create_dir_all(dir.join("schemas")).expect("schemas dir");
    std::fs::write(
        dir.join("schemas/new-key.json"),
        r#"{"type": "object", "required": ["owner"]}"#,
    )
    .expect("write");
    let checked = PolicyFile::from_file(&path)
        .expect("reads")
        .check()
        .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(checked.tests, 2);
    assert!(checked.validation.is_some());
    let unknown = dir.join("policy.ini");
    std::fs::write(&unknown, "").expect("write");
    let errors = PolicyFile::from_file(&unknown).expect_err("unknown extension");
    assert!(
        errors.to_string().contains(".yaml, .yml, .toml or .json"),
        "{errors}"
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn explain_names_the_rule_and_the_decision() {
    let policy = PolicyFile::parse(ORDERS, Format::Yaml).expect("parses");
    let rules = policy.rules().expect("valid");
    let vic: portcullis::config::TestCaller =
        serde_json::from_value(serde_json::json!({"subject": "vic", "roles": ["viewer"]}))
            .expect("identity");
    let explained = PolicyFile::explain(
        &rules,
        None,
        &vic,
        "GET /users/ada/orders/7",
        &BTreeMap::new(),
        None,
    )
    .expect("explains");
    assert_eq!(explained.rule, "GET /users/{owner}/orders/{id}");
    assert_eq!(
        explained.requires,
        r#"permission("orders:read") and (param("owner") == subject() or role("admin"))"#
    );
    assert_eq!(
        (explained.status, explained.reason),
        (403, Some("object_denied"))
    );
    let nowhere = PolicyFile::explain(&rules, None, &vic, "GET /nowhere", &BTreeMap::new(), None)
        .expect("explains");
    assert_eq!((nowhere.rule.as_str(), nowhere.status), ("unmatched", 403));
    assert!(PolicyFile::explain(&rules, None, &vic, "nonsense", &BTreeMap::new(), None).is_err());
}

#[tokio::test]
async fn the_gateway_serves_the_rules_the_file_builds() {
    let policy = PolicyFile::parse(ORDERS, Format::Yaml).expect("parses");
    let checked = policy.check().expect("checks");
    let store = Arc::new(MemoryKeyStore::new());
    let vic = store
        .issue(NewKey::for_owner("vic").roles(["viewer"]))
        .await
        .expect("issue");
    let ada = store
        .issue(NewKey::for_owner("ada").roles(["admin"]))
        .await
        .expect("issue");
    // The file's body rule is decided on the body its `validate` section checks.
    let gateway = GatewaySecurityLayer::builder()
        .authenticate(ApiKeyAuthenticator::new(store))
        .rules(checked.rules)
        .validate(checked.validation.expect("a validate section"))
        .build()
        .expect("gateway");
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/users/{owner}/orders/{id}", get(|| async { "order" }))
        .route("/orders", axum::routing::post(|| async { "created" }))
        .layer(gateway);
    let send = |path: &str| {
        let request = Request::get(path)
            .header("x-api-key", vic.key.expose_secret())
            .body(Body::empty())
            .expect("request");
        app.clone().oneshot(request)
    };
    assert_eq!(
        send("/users/vic/orders/1")
            .await
            .expect("infallible")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        send("/users/ada/orders/1")
            .await
            .expect("infallible")
            .status(),
        StatusCode::FORBIDDEN
    );
    // The file's schema applies: a body without `customer` is a 400, for a caller the
    // grants let that far (the viewer is refused before the body is read).
    let ada = ada.key.expose_secret().to_owned();
    let post = |body: &'static str| {
        let request = Request::post("/orders")
            .header("x-api-key", ada.as_str())
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request");
        app.clone().oneshot(request)
    };
    assert_eq!(
        post("{}").await.expect("infallible").status(),
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn a_body_rule_without_a_schema_in_the_file_is_refused() {
    let without = ORDERS.replace(
        "validate:\n  routes:\n    - route: POST /orders\n",
        "validate:\n  routes:\n    - route: PUT /orders\n",
    );
    assert_ne!(without, ORDERS);
    let errors = PolicyFile::parse(&without, Format::Yaml)
        .expect("parses")
        .check()
        .expect_err("no schema for the body rule");
    assert_eq!(errors.errors().len(), 1, "{errors}");
    assert_eq!(errors.errors()[0].place, "routes[3].require");
    assert!(
        errors.to_string().contains("reads the request body"),
        "{errors}"
    );
}

#[test]
fn validation_problems_are_reported_with_rule_problems() {
    let broken = r#"
roles: {admin: []}
routes:
  - {route: "GET /a", require: role(admn)}
validate:
  routes:
    - {route: "POST /a", body: {type: object}, body_file: a.json}
    - {route: "POST /b", body_file: missing.json}
    - {route: "POST /c", body: {type: 12}}
    - {route: "post /d", body: {}}
"#;
    let errors = PolicyFile::parse(broken, Format::Yaml)
        .expect("parses")
        .check()
        .expect_err("broken");
    let places: Vec<&str> = errors.errors().iter().map(|e| e.place.as_str()).collect();
    assert_eq!(
        places,
        [
            "routes[0].require",
            "validate.routes[0].body",
            "validate.routes[1].body_file",
            "validate.routes[2].body",
            "validate.routes[3].route",
        ],
        "{errors}"
    );
}

#[test]
fn the_binary_checks_prints_the_table_and_explains() {
    let dir = std::env::temp_dir().join(format!("portcullis-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let good = dir.join("orders.yaml");
    std::fs::write(&good, ORDERS).expect("write");
    let good = good.to_str().expect("utf-8 path");

    let (code, out, err) = run(&["check", good]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("METHOD  PATH"), "{out}");
    let table = [
        "METHOD  PATH                        VALIDATED  LIMITS  WHO MAY CALL",
        "GET     /health                     -          -       public",
        r#"GET     /users/{owner}/orders/{id}  -          -       permission("orders:read") and (param("owner") == subject() or role("admin"))"#,
        r#"GET     /reports                    -          -       query("owner") == subject()"#,
        r#"POST    /orders                     body       -       body("/customer") == subject() and permission("orders:write")"#,
        "*       (unmatched)                 -          -       deny",
    ];
    assert!(out.starts_with(&(table.join("\n") + "\n")), "{out}");
    assert!(
        out.trim_end().ends_with("ok (4 rules, 9 tests passed)"),
        "{out}"
    );

    let (code, out, _) = run(&[
        "explain",
        good,
        "--as",
        "{subject: vic, roles: [viewer]}",
        "GET",
        "/users/ada/orders/1",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "GET /users/ada/orders/1: refused: 403 object_denied\n\
         rule: GET /users/{owner}/orders/{id}\n\
         requires: permission(\"orders:read\") and (param(\"owner\") == subject() or role(\"admin\"))\n"
    );
    let (_, out, _) = run(&["explain", good, "--as", "anonymous", "GET", "/health"]);
    assert!(out.starts_with("GET /health: allowed (200)"), "{out}");

    // A failing policy: exit status 1, every problem on standard error.
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, ORDERS.replace("role(admin)", "role(admn)")).expect("write");
    let (code, out, err) = run(&["check", bad.to_str().expect("utf-8 path")]);
    assert_eq!(code, 1);
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(r#"routes[1].require: unknown role "admn" (did you mean "admin"?)"#),
        "{err}"
    );
    // Usage errors: 2.
    assert_eq!(run(&["check"]).0, 2);
    assert_eq!(run(&["explain", good, "--as", "{nope", "GET", "/"]).0, 2);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[tokio::test]
async fn business_rules_join_the_files_validation_in_code() {
    let policy = PolicyFile::parse(ORDERS, Format::Yaml).expect("parses");
    let validation = policy
        .validation_builder()
        .expect("valid")
        .expect("a validate section")
        .rule(
            "POST /orders",
            "no rush orders",
            |_: &portcullis::validate::RuleInput<'_>| {
                vec![portcullis::Violation::new(
                    "body",
                    "",
                    "rush",
                    "no rush orders today",
                )]
            },
        )
        .build()
        .expect("builds");
    let app = Router::new()
        .route("/orders", axum::routing::post(|| async { "created" }))
        .layer(portcullis::validate::ValidateLayer::new(validation));
    let request = Request::post("/orders")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"customer": "ada"}"#))
        .expect("request");
    let response = app.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[test]
fn files_named_in_a_policy_stay_inside_its_directory() {
    let dir = std::env::temp_dir().join(format!("portcullis-paths-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("policy")).expect("temp dir");
    std::fs::write(dir.join("secret.txt"), "db_password=hunter2").expect("write");
    let path = dir.join("policy/policy.yaml");
    let secret = dir.join("secret.txt");
    std::fs::write(
        &path,
        format!(
            "validate:\n  routes:\n    - {{route: POST /a, body_file: ../secret.txt}}\n    - {{route: POST /b, body_file: {}}}\n",
            secret.display()
        ),
    )
    .expect("write");
    let errors = PolicyFile::from_file(&path)
        .expect("reads")
        .check()
        .expect_err("both refused");
    let text = errors.to_string();
    assert_eq!(errors.errors().len(), 2, "{text}");
    assert!(
        text.contains("outside the policy file's directory"),
        "{text}"
    );
    assert!(text.contains("absolute paths are refused"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn policy_tests_see_validation_between_authorization_and_body_rules() {
    let with_tests = |tests: &str| format!("{ORDERS}{tests}");
    // A body the schema refuses is a 400, as the gateway answers, before the body rule.
    let policy = PolicyFile::parse(
        &with_tests(
            r#"  - request: POST /orders
    as: {subject: ada, roles: [admin]}
    body: {customer: 5}
    expect: {status: 400, reason: schema_violation}
  - request: POST /orders
    as: {subject: ada, roles: [admin]}
    expect: {status: 400, reason: missing_body}
"#,
        ),
        Format::Yaml,
    )
    .expect("parses");
    let checked = policy.check().unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(checked.tests, 11);
    // Expecting it through is a failing test, not a pass.
    let wrong = PolicyFile::parse(
        &with_tests(
            r#"  - request: POST /orders
    as: {subject: ada, roles: [admin]}
    body: {customer: 5}
    expect: {status: 200}
"#,
        ),
        Format::Yaml,
    )
    .expect("parses");
    let errors = wrong.check().expect_err("the schema refuses it");
    assert!(
        errors
            .to_string()
            .contains("expected 200, decided 400 schema_violation"),
        "{errors}"
    );
}

#[test]
fn the_binary_explains_with_headers_and_a_body() {
    let dir = std::env::temp_dir().join(format!("portcullis-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("orders.yaml");
    std::fs::write(&path, ORDERS).expect("write");
    let path = path.to_str().expect("utf-8 path");
    let ada = "{subject: ada, roles: [admin]}";
    let explain = |body: &str| {
        run(&[
            "explain", path, "--as", ada, "--body", body, "POST", "/orders",
        ])
        .1
    };
    assert!(explain(r#"{"customer": "ada"}"#).starts_with("POST /orders: allowed (200)"));
    assert!(
        explain(r#"{"customer": "vic"}"#).starts_with("POST /orders: refused: 403 object_denied")
    );
    assert!(explain("{}").starts_with("POST /orders: refused: 400 schema_violation"));
    let (code, out, _) = run(&[
        "explain",
        path,
        "--header",
        "x-trace: 1",
        "--as",
        "{subject: vic}",
        "GET",
        "/reports?owner=vic",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("GET /reports?owner=vic: allowed (200)"),
        "{out}"
    );
    assert_eq!(
        run(&["explain", path, "--body", "{", "--as", ada, "GET", "/"]).0,
        2
    );
    assert_eq!(run(&["explain", path, "GET", "/"]).0, 2);
    std::fs::remove_dir_all(&dir).expect("clean up");
}
