//! [`RouteRules`]: the route table, role → permission mapping, and the decision.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use http::Method;

#[cfg(feature = "validate")]
use super::object::{BodyFacts, Params};
use super::object::{Facts, Truth};
use super::requirement::{Access, Level, Reads};
use crate::error::ConfigError;
use crate::principal::{Names, Principal};
use crate::rejection::{Reason, Rejection};
use crate::route::{RouteMatch, RouteTable, rule_parameters};

/// A validated set of access rules: `METHOD /path` patterns mapped to [`Access`], the
/// access of unmatched routes, and the role → permission mapping.
///
/// Patterns use matchit's syntax, as axum does: `/orders/{id}` matches one segment,
/// `/files/{*rest}` (or `/files/*rest`) the rest of the path. The method is an HTTP method,
/// several joined by `|` (`GET|POST`), or `*` for any. A more specific path wins over a
/// wildcard; for one path, a rule naming the method wins over `*`, and `HEAD` falls back to
/// the `GET` rule, as axum routes it.
///
/// Paths are matched as they arrive, not decoded or normalised, exactly as axum's router
/// matches them, so the rule that applies is the rule for the handler that runs.
///
/// # Example
///
/// ```
/// use portcullis::authz::{RouteRules, all, authenticated, permission, public, role, scope};
///
/// let rules = RouteRules::builder()
///     .role("admin", ["orders:*", "users:*"])
///     .role("viewer", ["orders:read"])
///     .route("GET /health", public())
///     .route("GET /orders/{id}", permission("orders:read"))
///     .route("POST|DELETE /orders/{id}", all([role("admin"), scope("orders:write")]))
///     .route("* /admin/{*rest}", role("admin"))
///     .unmatched(authenticated())
///     .build()?;
/// # Ok::<(), portcullis::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RouteRules {
    inner: Arc<Table>,
}

struct Table {
    routes: RouteTable<Access>,
    /// What each entry's requirement reads of the request, by entry index.
    reads: Vec<Reads>,
    unmatched: Access,
    /// How the unmatched rule shows in logs: `unmatched`, or the requirement of `require`.
    unmatched_text: Box<str>,
    role_permissions: HashMap<Box<str>, Names>,
}

/// What the rules decided for one request.
#[derive(Debug)]
pub(crate) struct Decision<'a> {
    /// The rule that applied, as written (`GET /orders/{id}`), or `unmatched`.
    pub(crate) rule: &'a str,
    /// `None` when allowed.
    pub(crate) rejection: Option<Rejection>,
    /// Allowed for now: the rule reads the body, and is decided again once validation has
    /// parsed it.
    pub(crate) deferred: bool,
}

impl RouteRules {
    /// Starts an empty rule set whose unmatched routes are denied.
    pub fn builder() -> RouteRulesBuilder {
        RouteRulesBuilder::default()
    }

    /// A rule set with no routes, applying `access` to every request.
    pub(crate) fn everywhere(access: Access) -> Self {
        Self {
            inner: Arc::new(Table {
                routes: RouteTable::default(),
                reads: Vec::new(),
                unmatched_text: access.to_string().into(),
                unmatched: access,
                role_permissions: HashMap::new(),
            }),
        }
    }

    /// Finds the rule for a request.
    pub(crate) fn find(&self, method: &Method, path: &str) -> RouteMatch {
        RouteMatch {
            table: Arc::as_ptr(&self.inner) as usize,
            index: self
                .inner
                .routes
                .at(method, path)
                .map(|matched| matched.index),
        }
    }

    /// The rules as written, in the order they were added: `(rule, access)`, such as
    /// `("GET /orders/{id}", permission("orders:read"))`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Access)> {
        self.inner.routes.iter()
    }

    /// Who may call routes no rule matches.
    #[must_use]
    pub fn unmatched(&self) -> &Access {
        &self.inner.unmatched
    }

    /// What the rule of a match reads of the request.
    pub(crate) fn reads(&self, matched: RouteMatch) -> Reads {
        match matched.index {
            Some(index) => self.inner.reads.get(index).copied().unwrap_or_default(),
            None => self
                .inner
                .unmatched
                .requirement()
                .map(|requirement| requirement.reads())
                .unwrap_or_default(),
        }
    }

    /// The rules whose requirement reads the request body, as written.
    #[cfg_attr(not(feature = "validate"), allow(dead_code))]
    pub(crate) fn body_rules(&self) -> impl Iterator<Item = &str> {
        let table = &*self.inner;
        table
            .routes
            .iter()
            .zip(&table.reads)
            .filter(|(_, reads)| reads.body)
            .map(|((text, _), _)| text)
    }

    /// The rule text and access of a match: the matching rule, or `unmatched`.
    fn rule_of(&self, matched: RouteMatch) -> (&str, &Access) {
        let table = &*self.inner;
        match matched.index.and_then(|index| table.routes.entry(index)) {
            Some(entry) => entry,
            None => (&table.unmatched_text, &table.unmatched),
        }
    }

    /// `matched` if it was found in this rule set, else a fresh match.
    pub(crate) fn resolve(
        &self,
        carried: Option<&RouteMatch>,
        method: &Method,
        path: &str,
    ) -> RouteMatch {
        match carried {
            Some(matched) if matched.table == Arc::as_ptr(&self.inner) as usize => *matched,
            _ => self.find(method, path),
        }
    }

    /// The rule text (`GET /orders/{id}`, or `unmatched`) of a match.
    pub(crate) fn rule_text(&self, matched: RouteMatch) -> &str {
        self.rule_of(matched).0
    }

    /// Whether a match is a `public()` rule: the gateway skips authentication for it.
    pub(crate) fn is_public(&self, matched: RouteMatch) -> bool {
        self.rule_of(matched).1.is_public()
    }

    /// Whether a role → permission mapping is configured.
    pub(crate) fn maps_roles(&self) -> bool {
        !self.inner.role_permissions.is_empty()
    }

    /// The permissions `principal` holds once its roles' are added, when they add any.
    pub(crate) fn resolve_permissions(&self, principal: &Principal) -> Option<Names> {
        let mapping = &self.inner.role_permissions;
        let mut mapped = principal
            .roles()
            .iter()
            .filter_map(|role| mapping.get(role))
            .peekable();
        let first = mapped.next()?;
        // The common case, one mapped role and no direct permissions: share the role's
        // list as it is, without copying a name.
        if principal.permissions().is_empty() && mapped.peek().is_none() {
            return (!first.is_empty()).then(|| first.clone());
        }
        let held = principal.permissions();
        let merged = Names::union(
            std::iter::once(held)
                .chain(std::iter::once(first))
                .chain(mapped),
        );
        (merged.len() > held.len()).then_some(merged)
    }

    /// Decides whether `principal` (or an anonymous caller) may make this request, on the
    /// request data in `facts`. With `defer`, a requirement that cannot be decided without
    /// the body (not parsed yet) is allowed for now and marked `deferred`; without, it is
    /// refused.
    pub(crate) fn decide(
        &self,
        matched: RouteMatch,
        principal: Option<&Principal>,
        facts: &Facts<'_>,
        defer: bool,
    ) -> Decision<'_> {
        let (rule, access) = self.rule_of(matched);
        let mut deferred = false;
        let rejection = match (&access.0, principal) {
            (Level::Public | Level::Optional, _) => None,
            (Level::Deny, _) => Some(Rejection::new(
                if std::ptr::eq(access, &self.inner.unmatched) {
                    Reason::RouteDenied
                } else {
                    Reason::Forbidden
                },
            )),
            (Level::Authenticated | Level::Require(_), None) => {
                Some(Rejection::new(Reason::MissingCredentials))
            }
            (Level::Authenticated, Some(_)) => None,
            (Level::Require(requirement), Some(principal)) => {
                let verdict = requirement.evaluate(principal, facts);
                if verdict.truth == Truth::Yes {
                    None
                } else if !requirement.met_but_for_objects(principal) {
                    // The caller's grants fall short, whatever the object.
                    Some(match requirement.missing_scopes(principal) {
                        Some(scopes) => {
                            Rejection::new(Reason::InsufficientScope).with_scope(scopes)
                        }
                        None => Rejection::new(Reason::Forbidden),
                    })
                } else if verdict.truth == Truth::Unknown && verdict.pending && defer {
                    deferred = true;
                    None
                } else {
                    // Never names the object or its owner.
                    Some(Rejection::new(Reason::ObjectDenied))
                }
            }
        };
        Decision {
            rule,
            rejection,
            deferred,
        }
    }

    /// Decides a deferred rule again, now that validation has parsed the body (`None`: the
    /// request has no JSON body).
    #[cfg(feature = "validate")]
    pub(crate) fn decide_with_body(
        &self,
        matched: RouteMatch,
        parts: &http::request::Parts,
        body: Option<&serde_json::Value>,
    ) -> Decision<'_> {
        let facts = Facts {
            path: parts.uri.path(),
            params: Params::Path,
            query: parts.uri.query(),
            headers: Some(&parts.headers),
            body: body.map_or(BodyFacts::Absent, BodyFacts::Parsed),
        };
        self.decide(matched, parts.extensions.get::<Principal>(), &facts, false)
    }
}

/// What the rules decide for a request described in full (a policy test, an explanation):
/// the rule, what it requires, and the refusal if refused.
#[cfg(feature = "config")]
pub(crate) struct Explained<'a> {
    pub(crate) rule: &'a str,
    pub(crate) requires: String,
    pub(crate) rejection: Option<Rejection>,
    /// Allowed for now: the rule needs the body, which validation parses first.
    pub(crate) deferred: bool,
}

#[cfg(feature = "config")]
impl RouteRules {
    /// Decides a request described in full, as the gateway would. With `body` `None`, before
    /// the body is read: a rule that needs it is `deferred`. With `Some`, on the body as
    /// validation parsed it (`Some(None)`: there is no JSON body).
    pub(crate) fn explain(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        principal: Option<&Principal>,
        body: Option<Option<&serde_json::Value>>,
    ) -> Explained<'_> {
        use super::object::BodyFacts;
        let matched = self.find(method, uri.path());
        let facts = Facts {
            path: uri.path(),
            params: super::object::Params::Path,
            query: uri.query(),
            headers: Some(headers),
            body: match body {
                None => BodyFacts::NotYet,
                Some(None) => BodyFacts::Absent,
                Some(Some(value)) => BodyFacts::Parsed(value),
            },
        };
        let decision = self.decide(matched, principal, &facts, body.is_none());
        Explained {
            rule: decision.rule,
            requires: self.rule_of(matched).1.to_string(),
            rejection: decision.rejection,
            deferred: decision.deferred,
        }
    }
}

/// An object-level rule that reads the body, allowed by authorization until validation
/// has parsed the body: the gateway's validation stage decides it then. Put in the request's
/// extensions by authorization, taken out by validation before the service is called.
#[cfg(feature = "validate")]
#[derive(Clone)]
pub(crate) struct PendingObjectCheck {
    pub(crate) rules: RouteRules,
    pub(crate) matched: RouteMatch,
    /// Report-only authorization: report a refusal, refuse nothing.
    pub(crate) report_only: bool,
}

#[cfg(feature = "validate")]
impl fmt::Debug for PendingObjectCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingObjectCheck")
            .field("rule", &self.rules.rule_text(self.matched))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RouteRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = &*self.inner;
        f.debug_struct("RouteRules")
            .field(
                "rules",
                &table
                    .routes
                    .iter()
                    .map(|(text, access)| format!("{text} => {access}"))
                    .collect::<Vec<_>>(),
            )
            .field("unmatched", &table.unmatched)
            .field(
                "roles",
                &table.role_permissions.keys().collect::<BTreeSet<_>>(),
            )
            .finish()
    }
}

/// Builds [`RouteRules`]; every problem is reported by [`build`](Self::build).
#[derive(Default)]
#[must_use]
pub struct RouteRulesBuilder {
    routes: Vec<(String, Access)>,
    roles: Vec<(String, Vec<String>)>,
    unmatched: Option<Access>,
}

impl fmt::Debug for RouteRulesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteRulesBuilder")
            .field("routes", &self.routes)
            .field("unmatched", &self.unmatched)
            .finish_non_exhaustive()
    }
}

impl RouteRulesBuilder {
    /// Adds a rule: `"GET /orders/{id}"` → who may call it.
    pub fn route(mut self, rule: &str, access: impl Into<Access>) -> Self {
        self.routes.push((rule.to_owned(), access.into()));
        self
    }

    /// Declares a role and the permissions it grants (possibly none). Rules may only name
    /// declared roles, so a typo is a build error, not a silent 403.
    pub fn role<I, T>(mut self, role: &str, permissions: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.roles.push((
            role.to_owned(),
            permissions.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// Adds a rule for every operation of an OpenAPI document from its `security`
    /// requirements (the operation's, else the document's):
    ///
    /// - `security: []` → [`public`](super::public);
    /// - a requirement list containing `{}` → [`optional`](super::optional);
    /// - otherwise [`any`](super::any) of the listed requirements, each [`all`](super::all)
    ///   of its schemes. A scheme needs a caller authenticated its way — OAuth 2.0, OpenID
    ///   Connect and `http` `bearer`: a bearer or OIDC caller; `apiKey`: an API-key caller;
    ///   other schemes: the custom authenticator of that name (`basic`, `mtls`, …), see
    ///   [`auth_method`](super::auth_method) — holding what the scheme lists: the
    ///   [`scope`](super::scope)s for OAuth 2.0 and OpenID Connect, the
    ///   [`role`](super::role)s for the others (OpenAPI 3.1), which must be declared.
    ///
    /// An operation with the `x-portcullis-owner` extension also needs the caller to own
    /// the object: `{param: id, claim: sub}` adds
    /// [`param`](super::param)`("id").equals(`[`subject`](super::subject)`())` (see
    /// `docs/validation.md` for the extension's keys); a rule reading the body needs the
    /// body validated, as from [`ValidationRulesBuilder::openapi`](crate::validate::ValidationRulesBuilder::openapi).
    ///
    /// Operations whose document declares neither security nor an owner get no rule:
    /// [`unmatched`](Self::unmatched) decides for them.
    #[cfg(feature = "openapi")]
    #[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
    pub fn openapi_security(mut self, spec: &crate::openapi::OpenApiSpec) -> Self {
        for operation in spec.operations() {
            if let Some(access) = super::openapi::operation_access(operation) {
                let rule = format!("{} {}", operation.method, operation.path);
                self.routes.push((rule, access));
            }
        }
        self
    }

    /// Who may call routes no rule matches. Defaults to nobody ([`deny`](super::deny)):
    /// a route you forgot is closed, not open. [`authenticated`](super::authenticated) is
    /// the usual relaxation.
    pub fn unmatched(mut self, access: impl Into<Access>) -> Self {
        self.unmatched = Some(access.into());
        self
    }

    /// Checks the rules and builds the table.
    ///
    /// # Errors
    ///
    /// - [`ConfigError::InvalidRoute`] for a rule that is not `METHOD /path` with a valid
    ///   method and matchit pattern;
    /// - [`ConfigError::ConflictingRules`] when two rules cover the same method and path
    ///   (one could never apply), or their patterns overlap ambiguously;
    /// - [`ConfigError::UnknownRole`] for a role no [`role`](Self::role) declares;
    /// - [`ConfigError::DuplicateRole`] for a role declared twice;
    /// - [`ConfigError::UnsatisfiableRule`] for a requirement that can never be met.
    pub fn build(self) -> Result<RouteRules, ConfigError> {
        let mut role_permissions = HashMap::new();
        for (role, permissions) in self.roles {
            if role_permissions
                .insert(role.clone().into_boxed_str(), Names::new(permissions))
                .is_some()
            {
                return Err(ConfigError::DuplicateRole { role });
            }
        }

        let mut routes = RouteTable::default();
        let mut reads = Vec::new();
        for (text, mut access) in self.routes {
            check_access(&text, &access, &role_permissions)?;
            if let Some(requirement) = access.requirement_mut()
                && requirement.reads().params
            {
                let names = rule_parameters(&text)?;
                requirement
                    .bind_params(&names)
                    .map_err(|name| ConfigError::UnsatisfiableRule {
                        rule: text.clone(),
                        reason: format!(
                            "it reads path parameter `{name}`, which its pattern does not have"
                        ),
                    })?;
            }
            reads.push(
                access
                    .requirement()
                    .map(|requirement| requirement.reads())
                    .unwrap_or_default(),
            );
            routes.insert(&text, access)?;
        }

        let unmatched = self.unmatched.unwrap_or(Access(Level::Deny));
        check_access("unmatched", &unmatched, &role_permissions)?;
        if let Some(requirement) = unmatched.requirement()
            && (requirement.reads().params || requirement.reads().body)
        {
            return Err(ConfigError::UnsatisfiableRule {
                rule: "unmatched".to_owned(),
                reason: "unmatched routes have no path parameters and no body schema to read"
                    .to_owned(),
            });
        }
        Ok(RouteRules {
            inner: Arc::new(Table {
                routes,
                reads,
                unmatched,
                unmatched_text: "unmatched".into(),
                role_permissions,
            }),
        })
    }
}

fn check_access(
    text: &str,
    access: &Access,
    roles: &HashMap<Box<str>, Names>,
) -> Result<(), ConfigError> {
    let Some(requirement) = access.requirement() else {
        return Ok(());
    };
    if let Some(reason) = requirement.defect() {
        return Err(ConfigError::UnsatisfiableRule {
            rule: text.to_owned(),
            reason: reason.to_owned(),
        });
    }
    if let Some(role) = requirement
        .roles()
        .into_iter()
        .find(|role| !roles.contains_key(*role))
    {
        return Err(ConfigError::UnknownRole {
            rule: text.to_owned(),
            role: role.to_owned(),
        });
    }
    Ok(())
}

/// The gateway matches a request's route against the rules once, before authentication.
impl crate::authenticate::MatchRoute for RouteRules {
    fn find(&self, request: &http::request::Parts) -> (Option<RouteMatch>, bool) {
        let matched = RouteRules::find(self, &request.method, request.uri.path());
        (Some(matched), self.is_public(matched))
    }

    fn text(&self, route: &Option<RouteMatch>) -> Option<&str> {
        route
            .filter(|matched| matched.table == Arc::as_ptr(&self.inner) as usize)
            .map(|matched| self.rule_text(matched))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::{
        all, any, authenticated, deny, not, optional, permission, public, role, scope,
    };
    use crate::principal::AuthMethod;

    fn rules() -> RouteRules {
        RouteRules::builder()
            .role("admin", ["orders:*"])
            .role("viewer", ["orders:read"])
            .route("GET /health", public())
            .route("GET /feed", optional())
            .route("GET /orders/{id}", permission("orders:read"))
            .route("* /orders/{id}", role("admin"))
            .route("POST /orders", all([role("admin"), scope("orders:write")]))
            .route("* /internal/*rest", deny())
            .build()
            .expect("valid rules")
    }

    fn principal(roles: &[&str], scopes: &[&str]) -> Principal {
        let p = Principal::builder("p", AuthMethod::Bearer)
            .roles(roles.iter().copied())
            .scopes(scopes.iter().copied())
            .build();
        match rules().resolve_permissions(&p) {
            Some(permissions) => p.with_permission_names(permissions),
            None => p,
        }
    }

    fn reason(
        rules: &RouteRules,
        method: Method,
        path: &str,
        who: Option<&Principal>,
    ) -> Option<Reason> {
        rules
            .decide(rules.find(&method, path), who, &Facts::NONE, false)
            .rejection
            .map(|r| r.reason())
    }

    #[test]
    fn decisions_follow_the_table() {
        let rules = rules();
        let viewer = principal(&["viewer"], &[]);
        let admin = principal(&["admin"], &["orders:write"]);
        assert_eq!(reason(&rules, Method::GET, "/health", None), None);
        assert_eq!(reason(&rules, Method::GET, "/feed", None), None);
        assert_eq!(
            reason(&rules, Method::GET, "/orders/1", None),
            Some(Reason::MissingCredentials)
        );
        assert_eq!(
            reason(&rules, Method::GET, "/orders/1", Some(&viewer)),
            None
        );
        assert_eq!(
            reason(&rules, Method::HEAD, "/orders/1", Some(&viewer)),
            None
        );
        assert_eq!(
            reason(&rules, Method::DELETE, "/orders/1", Some(&viewer)),
            Some(Reason::Forbidden)
        );
        assert_eq!(
            reason(&rules, Method::DELETE, "/orders/1", Some(&admin)),
            None
        );
        assert_eq!(reason(&rules, Method::POST, "/orders", Some(&admin)), None);
        assert_eq!(
            reason(&rules, Method::GET, "/internal/x/y", Some(&admin)),
            Some(Reason::Forbidden)
        );
        assert_eq!(
            reason(&rules, Method::GET, "/nowhere", Some(&admin)),
            Some(Reason::RouteDenied)
        );
        // Paths are matched raw, as axum matches them.
        assert_eq!(
            reason(&rules, Method::GET, "/health/", None),
            Some(Reason::RouteDenied)
        );
    }

    #[test]
    fn missing_scope_is_named() {
        let rules = rules();
        let admin = principal(&["admin"], &[]);
        let rejection = rules
            .decide(
                rules.find(&Method::POST, "/orders"),
                Some(&admin),
                &Facts::NONE,
                false,
            )
            .rejection
            .expect("refused");
        assert_eq!(rejection.reason(), Reason::InsufficientScope);
        assert_eq!(rejection.scope(), Some("orders:write"));
    }

    #[test]
    fn roles_resolve_to_permissions() {
        let viewer = principal(&["viewer"], &[]);
        assert!(viewer.has_permission("orders:read"));
        assert!(!viewer.has_permission("orders:write"));
        let admin = principal(&["admin"], &[]);
        assert!(admin.has_permission("orders:write"));
    }

    #[test]
    fn public_routes_are_known() {
        let rules = rules();
        let public = |method: Method, path| rules.is_public(rules.find(&method, path));
        assert!(public(Method::GET, "/health"));
        assert!(!public(Method::POST, "/health"));
        assert!(!public(Method::GET, "/feed"));
        // A match is carried by its rule set only: another set matches again.
        let other = RouteRules::builder().build().expect("rules");
        let carried = rules.find(&Method::GET, "/health");
        let resolved = other.resolve(Some(&carried), &Method::GET, "/health");
        assert!(!other.is_public(resolved));
        assert_eq!(other.rule_text(resolved), "unmatched");
        assert_eq!(
            rules.rule_text(rules.resolve(Some(&carried), &Method::GET, "/x")),
            "GET /health"
        );
    }

    #[test]
    fn bad_rule_sets_fail_to_build() {
        type Expectation = fn(&ConfigError) -> bool;
        let cases: Vec<(RouteRulesBuilder, Expectation)> = vec![
            (
                RouteRules::builder()
                    .route("GET /a", public())
                    .route("GET /a", authenticated()),
                |e| matches!(e, ConfigError::ConflictingRules { .. }),
            ),
            (
                RouteRules::builder()
                    .route("GET|POST /a", public())
                    .route("POST /a", authenticated()),
                |e| matches!(e, ConfigError::ConflictingRules { .. }),
            ),
            (
                RouteRules::builder()
                    .route("* /a", public())
                    .route("ANY /a", authenticated()),
                |e| matches!(e, ConfigError::ConflictingRules { .. }),
            ),
            (
                RouteRules::builder()
                    .route("GET /a/{id}", public())
                    .route("GET /a/{name}", public()),
                |e| matches!(e, ConfigError::ConflictingRules { .. }),
            ),
            (
                RouteRules::builder().route("GET /a", role("admin")),
                |e| matches!(e, ConfigError::UnknownRole { role, .. } if role == "admin"),
            ),
            (
                RouteRules::builder().role("a", ["x"]).role("a", ["y"]),
                |e| matches!(e, ConfigError::DuplicateRole { .. }),
            ),
            (RouteRules::builder().route("GET /a", any([])), |e| {
                matches!(e, ConfigError::UnsatisfiableRule { .. })
            }),
            (
                RouteRules::builder().route("GET /a", all([scope("x"), not(scope("x"))])),
                |e| matches!(e, ConfigError::UnsatisfiableRule { .. }),
            ),
            (RouteRules::builder().route("GET a", public()), |e| {
                matches!(e, ConfigError::InvalidRoute { .. })
            }),
            (RouteRules::builder().route("get /a", public()), |e| {
                matches!(e, ConfigError::InvalidRoute { .. })
            }),
            (RouteRules::builder().route("/a", public()), |e| {
                matches!(e, ConfigError::InvalidRoute { .. })
            }),
            (RouteRules::builder().route("GET /a/{", public()), |e| {
                matches!(e, ConfigError::InvalidRoute { .. })
            }),
            (RouteRules::builder().unmatched(role("ghost")), |e| {
                matches!(e, ConfigError::UnknownRole { .. })
            }),
        ];
        for (builder, expected) in cases {
            let debug = format!("{builder:?}");
            match builder.build() {
                Err(error) => assert!(expected(&error), "{debug}: unexpected {error}"),
                Ok(_) => panic!("{debug} built"),
            }
        }
    }
}
