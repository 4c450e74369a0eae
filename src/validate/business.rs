//! Business rules: a route's own checks over the schema-valid request (its parsed body, path
//! and query parameters, and principal), answered like schema violations.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Extensions;
use serde_json::Value;

use crate::principal::Principal;
use crate::rejection::{Reason, Rejection, Violation};

/// A check over a schema-valid request that a JSON Schema cannot express: "`end` is after
/// `start`", "a viewer may order at most 10 items".
///
/// It returns the violations it finds, none when the request passes; build them with
/// [`Violation::new`] (location `body`, `path` or `query`, a JSON pointer, a keyword such as
/// the rule's name, and a short message). The request is then refused with **422**
/// `rule_violation` listing them, in the same problem+json as schema violations.
///
/// A rule runs on the request's thread, in the layer's future, and must not block: for a
/// lookup (a database, a service) use an [`AsyncBusinessRule`]. Closures
/// `Fn(&RuleInput<'_>) -> Vec<Violation>` are rules; attach them with
/// [`RequestSchema::rule`](super::RequestSchema::rule) or
/// [`ValidationRulesBuilder::rule`](super::ValidationRulesBuilder::rule).
///
/// A rule that panics is caught: the request gets **500** `rule_failed` and the panic is
/// logged with the rule's name and route (with `panic = "abort"` there is nothing to catch).
pub trait BusinessRule: Send + Sync + 'static {
    /// The violations `input` breaks; empty when it passes.
    fn check(&self, input: &RuleInput<'_>) -> Vec<Violation>;
}

impl<F> BusinessRule for F
where
    F: Fn(&RuleInput<'_>) -> Vec<Violation> + Send + Sync + 'static,
{
    fn check(&self, input: &RuleInput<'_>) -> Vec<Violation> {
        self(input)
    }
}

/// The boxed future of an [`AsyncBusinessRule`].
pub type RuleFuture = Pin<Box<dyn Future<Output = Vec<Violation>> + Send + 'static>>;

/// A business rule that waits (a lookup in the user's database), given an owned
/// [`RuleRequest`] it can hold across `.await`.
///
/// It is bounded by the rules' timeout
/// ([`business_rule_timeout`](super::ValidationRulesBuilder::business_rule_timeout), 1
/// second by default): past it the request gets **503** `unavailable` with `Retry-After: 1`.
/// A panic, when the future is made or while it is polled, gets **500** `rule_failed`.
/// Closures `Fn(RuleRequest) -> impl Future<Output = Vec<Violation>>` are async rules;
/// attach them with [`RequestSchema::async_rule`](super::RequestSchema::async_rule) or
/// [`ValidationRulesBuilder::async_rule`](super::ValidationRulesBuilder::async_rule).
pub trait AsyncBusinessRule: Send + Sync + 'static {
    /// The violations `request` breaks, once known; empty when it passes.
    fn check(&self, request: RuleRequest) -> RuleFuture;
}

/// An async closure rule, boxing its future (the one allocation of an async rule).
pub(crate) struct AsyncFn<F>(pub(crate) F);

impl<F, Fut> AsyncBusinessRule for AsyncFn<F>
where
    F: Fn(RuleRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Violation>> + Send + 'static,
{
    fn check(&self, request: RuleRequest) -> RuleFuture {
        Box::pin((self.0)(request))
    }
}

/// The matched path parameters of a request, percent-decoded, in the order of the route's
/// pattern (`/orders/{id}` → `id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams(Vec<(Box<str>, Box<str>)>);

impl PathParams {
    /// Decodes `params` (raw, as matched).
    pub(crate) fn decode<'a>(params: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            params
                .map(|(name, raw)| {
                    let value = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
                    (name.into(), value.into())
                })
                .collect(),
        )
    }

    /// The value of parameter `name`, decoded.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(held, _)| &**held == name)
            .map(|(_, value)| &**value)
    }

    /// Every parameter, `(name, value)`, in the pattern's order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(|(name, value)| (&**name, &**value))
    }

    /// How many parameters the route matched.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the route has no parameters.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a [`BusinessRule`] sees: the request after its schemas passed, borrowed (nothing is
/// copied for a rule).
#[derive(Clone, Copy)]
pub struct RuleInput<'a> {
    body: Option<&'a Value>,
    path: &'a PathParams,
    query: Option<&'a str>,
    extensions: &'a Extensions,
}

impl fmt::Debug for RuleInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleInput")
            .field("body", &self.body.is_some())
            .field("path", &self.path)
            .field("principal", &self.principal().map(Principal::subject))
            .finish_non_exhaustive()
    }
}

impl<'a> RuleInput<'a> {
    pub(crate) fn new(
        body: Option<&'a Value>,
        path: &'a PathParams,
        query: Option<&'a str>,
        extensions: &'a Extensions,
    ) -> Self {
        Self {
            body,
            path,
            query,
            extensions,
        }
    }

    /// The parsed JSON body, valid against the route's schema; `None` when the route has no
    /// JSON body, or an optional body was absent.
    #[must_use]
    pub fn body(&self) -> Option<&'a Value> {
        self.body
    }

    /// The matched path parameters, percent-decoded.
    #[must_use]
    pub fn path(&self) -> &'a PathParams {
        self.path
    }

    /// The value of path parameter `name`, percent-decoded.
    #[must_use]
    pub fn path_param(&self, name: &str) -> Option<&'a str> {
        self.path.get(name)
    }

    /// The raw query string (without `?`), if the request has one.
    #[must_use]
    pub fn query(&self) -> Option<&'a str> {
        self.query
    }

    /// The value of query parameter `name`, decoded; parsed from the query string on each
    /// call. `None` when it is absent **or given more than once**: the handler might read
    /// another copy than the rule (axum's `Query` keeps the last). Read every copy from
    /// [`query`](Self::query) when repeats are meant.
    #[must_use]
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        crate::query::single_value(self.query?, name)
    }

    /// The authenticated caller, when a layer in front put one in the request's extensions.
    #[must_use]
    pub fn principal(&self) -> Option<&'a Principal> {
        self.extensions.get::<Principal>()
    }

    /// The owned form, for an async rule.
    fn to_request(self, body: Option<&Arc<Value>>) -> RuleRequest {
        RuleRequest {
            body: body.cloned(),
            path: self.path.clone(),
            query: self.query.map(Into::into),
            principal: self.principal().cloned(),
        }
    }
}

/// What an [`AsyncBusinessRule`] sees: the same as [`RuleInput`], owned, so the rule can
/// hold it across `.await`. The body is shared (an `Arc`), the principal cloned cheaply.
#[derive(Debug, Clone)]
pub struct RuleRequest {
    body: Option<Arc<Value>>,
    path: PathParams,
    query: Option<Box<str>>,
    principal: Option<Principal>,
}

impl RuleRequest {
    /// The parsed JSON body, valid against the route's schema; `None` when the route has no
    /// JSON body, or an optional body was absent.
    #[must_use]
    pub fn body(&self) -> Option<&Value> {
        self.body.as_deref()
    }

    /// The body, shared.
    #[must_use]
    pub fn body_arc(&self) -> Option<Arc<Value>> {
        self.body.clone()
    }

    /// The matched path parameters, percent-decoded.
    #[must_use]
    pub fn path(&self) -> &PathParams {
        &self.path
    }

    /// The value of path parameter `name`, percent-decoded.
    #[must_use]
    pub fn path_param(&self, name: &str) -> Option<&str> {
        self.path.get(name)
    }

    /// The raw query string (without `?`), if the request has one.
    #[must_use]
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The value of query parameter `name`, decoded; `None` when it is absent or given more
    /// than once (see [`RuleInput::query_param`]).
    #[must_use]
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        crate::query::single_value(self.query.as_deref()?, name)
    }

    /// The authenticated caller, when a layer in front put one in the request's extensions.
    #[must_use]
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }
}

/// A sync or async rule.
#[derive(Clone)]
pub(crate) enum RuleKind {
    Sync(Arc<dyn BusinessRule>),
    Async(Arc<dyn AsyncBusinessRule>),
}

/// A rule with its name, for logs.
#[derive(Clone)]
pub(crate) struct NamedRule {
    pub(crate) name: Arc<str>,
    pub(crate) kind: RuleKind,
}

impl fmt::Debug for NamedRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            RuleKind::Sync(_) => "sync",
            RuleKind::Async(_) => "async",
        };
        write!(f, "{} ({kind})", self.name)
    }
}

/// How far the sync rules got.
pub(crate) enum Progress {
    /// Every rule passed.
    Passed,
    /// A rule found violations, or failed.
    Refused(Rejection),
    /// The rule at this index is async: start it.
    Async(usize),
}

/// Runs the rules from `from` on, in order, until one refuses or an async one comes.
pub(crate) fn run_sync(
    rules: &[NamedRule],
    from: usize,
    input: &RuleInput<'_>,
    route: &str,
    max_violations: usize,
) -> Progress {
    for (at, rule) in rules.iter().enumerate().skip(from) {
        let check = match &rule.kind {
            RuleKind::Sync(check) => check,
            RuleKind::Async(_) => return Progress::Async(at),
        };
        match catch_unwind(AssertUnwindSafe(|| check.check(input))) {
            Ok(violations) if violations.is_empty() => {}
            Ok(violations) => {
                return Progress::Refused(rule_violation(violations, max_violations));
            }
            Err(panic) => return Progress::Refused(failed(&rule.name, route, &*panic)),
        }
    }
    Progress::Passed
}

/// Starts the async rule `rule` on `input`; a panic while making its future is caught.
pub(crate) fn start_async(
    rule: &NamedRule,
    input: &RuleInput<'_>,
    body: Option<&Arc<Value>>,
    route: &str,
) -> Result<CatchUnwind, Rejection> {
    let RuleKind::Async(check) = &rule.kind else {
        // Only called for async rules; a sync one here would be a bug: pass it.
        return Ok(CatchUnwind(Box::pin(std::future::ready(Vec::new()))));
    };
    let request = input.to_request(body);
    catch_unwind(AssertUnwindSafe(|| check.check(request)))
        .map(CatchUnwind)
        .map_err(|panic| failed(&rule.name, route, &*panic))
}

/// An async rule's future, with panics while polling caught.
pub(crate) struct CatchUnwind(RuleFuture);

impl CatchUnwind {
    /// Polls the rule; `Err` with the panic's payload if it panicked.
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Vec<Violation>, Box<dyn Any + Send>>> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(violations)) => Poll::Ready(Ok(violations)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// 422 `rule_violation` listing at most `max` of `violations`.
pub(crate) fn rule_violation(mut violations: Vec<Violation>, max: usize) -> Rejection {
    violations.truncate(max);
    Rejection::new(Reason::RuleViolation).with_violations(violations)
}

/// 500 `rule_failed` for rule `name` that panicked, logged.
pub(crate) fn failed(name: &str, route: &str, panic: &(dyn Any + Send)) -> Rejection {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    tracing::error!(
        rule = name,
        route,
        panic = message,
        "business rule panicked"
    );
    Rejection::new(Reason::RuleFailed)
}

/// 503 `unavailable` with `Retry-After: 1` for async rule `name` past its timeout, logged.
pub(crate) fn timed_out(name: &str, route: &str) -> Rejection {
    tracing::error!(rule = name, route, "business rule timed out");
    Rejection::new(Reason::Unavailable)
        .with_detail("The request could not be checked in time; try again later.")
        .with_retry_after(1)
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn path_params_are_decoded_and_found_by_name() {
        let params = PathParams::decode([("id", "a%20b"), ("rest", "x%2Fy")].into_iter());
        assert_eq!(params.get("id"), Some("a b"));
        assert_eq!(params.get("rest"), Some("x/y"));
        assert_eq!(params.get("other"), None);
        assert_eq!(
            params.iter().collect::<Vec<_>>(),
            [("id", "a b"), ("rest", "x/y")]
        );
    }

    #[test]
    fn a_rule_violation_is_422_and_capped() {
        let violations = (0..5)
            .map(|i| Violation::new("body", &format!("/{i}"), "rule", "no"))
            .collect();
        let rejection = rule_violation(violations, 3);
        assert_eq!(rejection.status(), http::StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(rejection.reason().code(), "rule_violation");
        assert_eq!(rejection.violations().len(), 3);
        let failed = Rejection::new(Reason::RuleFailed);
        assert_eq!(failed.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(failed.reason().public().code(), "rule_failed");
    }

    #[test]
    fn sync_rules_stop_at_the_first_refusal_or_the_first_async_rule() {
        let path = PathParams::default();
        let extensions = Extensions::new();
        let input = RuleInput::new(None, &path, Some("a=1"), &extensions);
        let pass = sync_rule("pass", |input: &RuleInput<'_>| {
            assert_eq!(input.query_param("a").as_deref(), Some("1"));
            Vec::new()
        });
        let waits = NamedRule {
            name: "waits".into(),
            kind: RuleKind::Async(Arc::new(AsyncFn(|_: RuleRequest| async { Vec::new() }))),
        };
        let panics = sync_rule("panics", |_: &RuleInput<'_>| panic!("boom"));
        let rules = [pass.clone(), waits, panics];
        assert!(matches!(
            run_sync(&rules, 0, &input, "GET /", 20),
            Progress::Async(1)
        ));
        match run_sync(&rules, 2, &input, "GET /", 20) {
            Progress::Refused(rejection) => assert_eq!(rejection.reason(), Reason::RuleFailed),
            _ => panic!("the panic is caught and refused"),
        }
        assert!(matches!(
            run_sync(&[pass], 0, &input, "GET /", 20),
            Progress::Passed
        ));
    }

    fn sync_rule(
        name: &str,
        check: impl Fn(&RuleInput<'_>) -> Vec<Violation> + Send + Sync + 'static,
    ) -> NamedRule {
        NamedRule {
            name: name.into(),
            kind: RuleKind::Sync(Arc::new(check)),
        }
    }
}
