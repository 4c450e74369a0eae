//! From a [`PolicyFile`] to [`RouteRules`], every problem reported at once; and the policy's
//! tests and explanations, decided by the same rules the gateway runs.

use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};

use super::error::{PolicyError, PolicyErrors};
use super::file::{PolicyFile, TestCaller, TestIdentity};
use crate::authz::{Access, RouteRules};
use crate::error::ConfigError;
use crate::principal::{AuthMethod, Principal};
use crate::suggest::closest;
use crate::validate::ValidationRules;

/// The rules of a checked policy: built, and its tests passed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckedPolicy {
    /// The route rules.
    pub rules: RouteRules,
    /// The validation rules, when the file has a `validate` section.
    pub validation: Option<crate::validate::ValidationRules>,
    /// How many tests ran (and passed).
    pub tests: usize,
}

/// What the policy decides for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Explanation {
    /// The rule that applied, as written (`GET /orders/{id}`), or `unmatched`.
    pub rule: String,
    /// What the rule requires, in its text form.
    pub requires: String,
    /// 200 when the request goes on to the service, else the refusal's status.
    pub status: u16,
    /// The refusal's reason code, when refused.
    pub reason: Option<&'static str>,
}

impl PolicyFile {
    /// Builds the route rules, reporting every problem found rather than the first:
    /// requirements that do not parse, undeclared roles (with the nearest declared one),
    /// invalid or conflicting routes, requirements that can never be met.
    ///
    /// # Errors
    ///
    /// Every problem, each with its place (`routes[3].require`).
    pub fn rules(&self) -> Result<RouteRules, PolicyErrors> {
        let mut errors = Vec::new();
        let declare = |mut builder: crate::authz::RouteRulesBuilder| {
            for (role, permissions) in &self.roles {
                builder = builder.role(role, permissions.iter().cloned());
            }
            builder
        };
        let mut builder = declare(RouteRules::builder());
        for (index, entry) in self.routes.iter().enumerate() {
            let place = format!("routes[{index}]");
            let Some(access) =
                self.access(&entry.require, &format!("{place}.require"), &mut errors)
            else {
                continue;
            };
            // Alone first, so that each route's own problems are all found.
            if let Err(error) = declare(RouteRules::builder())
                .route(&entry.route, access.clone())
                .build()
            {
                let part = match error {
                    ConfigError::InvalidRoute { .. } => "route",
                    _ => "require",
                };
                errors.push(PolicyError::at(
                    format!("{place}.{part}"),
                    error.to_string(),
                ));
                continue;
            }
            builder = builder.route(&entry.route, access);
        }
        if let Some(text) = &self.unmatched
            && let Some(access) = self.access(text, "unmatched", &mut errors)
        {
            builder = builder.unmatched(access);
        }
        if !errors.is_empty() {
            return Err(PolicyErrors(errors));
        }
        builder.build().map_err(|error| {
            // What is left is between routes: name the later one.
            let place = match &error {
                ConfigError::ConflictingRules { second, .. } => self
                    .routes
                    .iter()
                    .rposition(|entry| entry.route.trim() == second.trim())
                    .map(|index| format!("routes[{index}].route")),
                _ => None,
            };
            PolicyError::at(place.unwrap_or_default(), error.to_string()).into()
        })
    }

    /// Parses an access level or requirement at `place`, and checks its roles are declared.
    fn access(&self, text: &str, place: &str, errors: &mut Vec<PolicyError>) -> Option<Access> {
        let access: Access = match text.parse() {
            Ok(access) => access,
            Err(error) => {
                errors.push(PolicyError::at(place, error.to_string()));
                return None;
            }
        };
        let mut known = true;
        if let Some(requirement) = access.requirement() {
            for role in requirement.roles() {
                if self.roles.contains_key(role) {
                    continue;
                }
                known = false;
                let hint = closest(role, self.roles.keys().map(String::as_str))
                    .map(|near| format!(" (did you mean \"{near}\"?)"))
                    .unwrap_or_default();
                errors.push(PolicyError::at(
                    place,
                    format!("unknown role \"{role}\"{hint}"),
                ));
            }
        }
        known.then_some(access)
    }

    /// Builds the rules and the validation rules, checks that every rule reading the body
    /// has a body schema, and runs the policy's tests: the check a policy passes before it
    /// serves.
    ///
    /// # Errors
    ///
    /// Every problem in the rules, the validation rules, the `traffic` section and (with the
    /// `proxy` feature) the `upstream` section but its key, or else
    /// every test that fails,
    /// each with its place (`tests[2]`) and what was expected and decided.
    pub fn check(&self) -> Result<CheckedPolicy, PolicyErrors> {
        #[cfg_attr(not(feature = "proxy"), allow(unused_mut))]
        let mut sections = self.traffic_problems();
        #[cfg(feature = "proxy")]
        sections.extend(self.upstream_problems());
        let (rules, validation) = match (self.rules(), self.validation()) {
            (Ok(rules), Ok(validation)) if sections.is_empty() => (rules, validation),
            (rules, validation) => {
                let mut errors = Vec::new();
                for found in [rules.err(), validation.err()].into_iter().flatten() {
                    errors.extend(found.0);
                }
                errors.extend(sections);
                return Err(PolicyErrors(errors));
            }
        };
        let unvalidated = self.unvalidated_body_rules(&rules, validation.as_ref());
        if !unvalidated.is_empty() {
            return Err(PolicyErrors(unvalidated));
        }
        let failures: Vec<PolicyError> = self
            .tests
            .iter()
            .enumerate()
            .filter_map(|(index, test)| {
                let place = format!("tests[{index}]");
                let named = |message: String| match &test.name {
                    Some(name) => format!("{name}: {message}"),
                    None => message,
                };
                let decided = match Self::explain(
                    &rules,
                    validation.as_ref(),
                    &test.caller,
                    &test.request,
                    &test.headers,
                    test.body.as_ref(),
                ) {
                    Ok(decided) => decided,
                    Err(message) => return Some(PolicyError::at(place, named(message))),
                };
                let expected = &test.expect;
                let status_ok = decided.status == expected.status;
                let reason_ok = expected
                    .reason
                    .as_deref()
                    .is_none_or(|reason| decided.reason == Some(reason));
                (!(status_ok && reason_ok)).then(|| {
                    let want = match &expected.reason {
                        Some(reason) => format!("{} {reason}", expected.status),
                        None => expected.status.to_string(),
                    };
                    let got = match decided.reason {
                        Some(reason) => format!("{} {reason}", decided.status),
                        None => decided.status.to_string(),
                    };
                    PolicyError::at(
                        place,
                        named(format!(
                            "{}: expected {want}, decided {got} by rule `{}`",
                            test.request, decided.rule
                        )),
                    )
                })
            })
            .collect();
        if failures.is_empty() {
            Ok(CheckedPolicy {
                rules,
                validation,
                tests: self.tests.len(),
            })
        } else {
            Err(PolicyErrors(failures))
        }
    }

    /// What the policy decides for `request` (`GET /orders/1`, with a query string if
    /// needed) from `caller`, with `headers` and a JSON `body`, and which rule decides it: as
    /// the gateway decides, authorization first, then `validation` (when given), then a rule
    /// that reads the body.
    ///
    /// # Errors
    ///
    /// The request is not `METHOD /path`, or a header is not a valid header.
    pub fn explain(
        rules: &RouteRules,
        validation: Option<&ValidationRules>,
        caller: &TestCaller,
        request: &str,
        headers: &std::collections::BTreeMap<String, String>,
        body: Option<&serde_json::Value>,
    ) -> Result<Explanation, String> {
        let (method, uri) = request_line(request)?;
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a header name"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("the value of `{name}` is not a header value"))?;
            map.append(name, value);
        }
        let principal = match caller {
            TestCaller::Anonymous(_) => None,
            TestCaller::Identity(identity) => Some(principal(rules, identity)),
        };
        let principal = principal.as_ref();
        let before = rules.explain(&method, &uri, &map, principal, None);
        let answer = |decided: crate::authz::Explained<'_>| Explanation {
            rule: decided.rule.to_owned(),
            requires: decided.requires,
            status: decided
                .rejection
                .as_ref()
                .map_or(200, |rejection| rejection.status().as_u16()),
            reason: decided
                .rejection
                .as_ref()
                .map(|rejection| rejection.reason().public().code()),
        };
        if before.rejection.is_some() {
            return Ok(answer(before));
        }
        if let Some(validation) = validation
            && let Some((status, reason)) = validate(validation, &method, &uri, &map, body)?
        {
            return Ok(Explanation {
                status,
                reason,
                ..answer(before)
            });
        }
        if !before.deferred {
            return Ok(answer(before));
        }
        Ok(answer(rules.explain(
            &method,
            &uri,
            &map,
            principal,
            Some(body),
        )))
    }
}

/// Runs `validation` on the request; the refusal's status and reason, if refused.
fn validate(
    validation: &ValidationRules,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Option<&serde_json::Value>,
) -> Result<Option<(u16, Option<&'static str>)>, String> {
    use std::future::Future;
    use tower_layer::Layer;
    use tower_service::Service;

    let bytes = body
        .map(|body| serde_json::to_vec(body).unwrap_or_default())
        .unwrap_or_default();
    let mut request = Request::new(http_body_util::Full::new(bytes::Bytes::from(bytes)));
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = headers.clone();
    if body.is_some() && !headers.contains_key(http::header::CONTENT_TYPE) {
        request.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let mut service = crate::validate::ValidateLayer::new(validation.clone())
        .observer(std::sync::Arc::new(|_: &crate::observe::Decision<'_>| {}))
        .layer(Passed);
    let mut future = std::pin::pin!(service.call(request));
    // Nothing here waits: the body is in memory, and a file's validation has no async rules.
    let mut context = Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        Poll::Ready(Ok(response)) if response.status() == http::StatusCode::OK => Ok(None),
        Poll::Ready(Ok(response)) => Ok(Some((
            response.status().as_u16(),
            response
                .extensions()
                .get::<crate::rejection::Reason>()
                .map(|reason| reason.public().code()),
        ))),
        Poll::Ready(Err(never)) => match never {},
        Poll::Pending => Err("validation did not complete at once".to_owned()),
    }
}

/// The service behind validation in a policy test: reached means passed.
#[derive(Clone, Copy)]
struct Passed;

impl<B> tower_service::Service<Request<B>> for Passed {
    type Response = http::Response<()>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        std::future::ready(Ok(http::Response::new(())))
    }
}

/// `GET /path?query` → its method and URI.
fn request_line(request: &str) -> Result<(Method, Uri), String> {
    let malformed = || format!("`{request}` is not `METHOD /path`");
    let (method, target) = request.trim().split_once(' ').ok_or_else(malformed)?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| malformed())?;
    let uri: Uri = target.trim().parse().map_err(|_| malformed())?;
    if !uri.path().starts_with('/') || uri.authority().is_some() {
        return Err(malformed());
    }
    Ok((method, uri))
}

/// The principal an authenticator would have made for `identity`, with the permissions its
/// roles grant under `rules`.
fn principal(rules: &RouteRules, identity: &TestIdentity) -> Principal {
    let method = match identity.method.as_deref().unwrap_or("bearer") {
        "bearer" => AuthMethod::Bearer,
        "oidc" => AuthMethod::Oidc,
        "api_key" => AuthMethod::ApiKey {
            key_id: "test".into(),
        },
        other => AuthMethod::Custom(other.into()),
    };
    let principal = Principal::builder(identity.subject.as_str(), method)
        .roles(identity.roles.iter().map(String::as_str))
        .scopes(identity.scopes.iter().map(String::as_str))
        .permissions(identity.permissions.iter().map(String::as_str))
        .claims(identity.claims.clone())
        .build();
    match rules.resolve_permissions(&principal) {
        Some(permissions) => principal.with_permission_names(permissions),
        None => principal,
    }
}
