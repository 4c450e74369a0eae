//! From a [`PolicyFile`] to [`RouteRules`], every problem reported at once; and the policy's
//! tests and explanations, decided by the same rules the gateway runs.

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use super::error::{PolicyError, PolicyErrors};
use super::file::{PolicyFile, TestCaller, TestIdentity};
use crate::authz::{Access, RouteRules};
use crate::error::ConfigError;
use crate::principal::{AuthMethod, Principal};
use crate::suggest::closest;

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
    /// Every problem in the rules and the validation rules, or else every test that fails,
    /// each with its place (`tests[2]`) and what was expected and decided.
    pub fn check(&self) -> Result<CheckedPolicy, PolicyErrors> {
        let (rules, validation) = match (self.rules(), self.validation()) {
            (Ok(rules), Ok(validation)) => (rules, validation),
            (rules, validation) => {
                let mut errors = Vec::new();
                for found in [rules.err(), validation.err()].into_iter().flatten() {
                    errors.extend(found.0);
                }
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
                let decided = match self.decide(
                    &rules,
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

    /// What the policy decides for `request` (`GET /orders/1`) from `caller`, and which rule
    /// decides it.
    ///
    /// # Errors
    ///
    /// The request is not `METHOD /path`, or a header is not a valid header.
    pub fn explain(
        rules: &RouteRules,
        caller: &TestCaller,
        request: &str,
        headers: &std::collections::BTreeMap<String, String>,
        body: Option<&serde_json::Value>,
    ) -> Result<Explanation, String> {
        Self::default().decide(rules, caller, request, headers, body)
    }

    fn decide(
        &self,
        rules: &RouteRules,
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
        let decided = rules.explain(&method, &uri, &map, principal.as_ref(), body);
        Ok(Explanation {
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
        })
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
