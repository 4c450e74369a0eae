//! What a route needs: [`Access`] levels and [`Requirement`]s combined with `all`/`any`/`not`.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use super::object::{Comparison, Facts, Quoted, Source, Truth, same_json};
use crate::principal::Principal;

/// A condition on the caller, built with [`role`], [`scope`], [`permission`], [`claim`],
/// object-level comparisons of the request's data with the caller
/// ([`param`](super::param)`("id").equals(`[`subject`](super::subject)`())`), and combined
/// with [`all`], [`any`] and [`not`]. A requirement always needs an identity: without one
/// the answer is 401.
///
/// Its text form is what [`Display`](fmt::Display) prints and [`FromStr`](std::str::FromStr)
/// reads back, the same requirement:
/// `role("admin") or (param("id") == subject() and scope("orders:read"))`.
#[derive(Clone, PartialEq)]
pub struct Requirement(pub(crate) Term);

#[derive(Clone, PartialEq)]
pub(crate) enum Term {
    Role(Box<str>),
    Scope(Box<str>),
    Permission(Box<str>),
    Claim(Box<str>, Value),
    Method(Box<str>),
    Compare(Box<Comparison>),
    All(Vec<Term>),
    Any(Vec<Term>),
    Not(Box<Term>),
}

/// What a requirement reads of the request, beyond the caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reads {
    /// A path parameter.
    pub(crate) params: bool,
    /// The JSON body.
    pub(crate) body: bool,
    /// Anything of the request (parameters, query, headers or body).
    pub(crate) request: bool,
}

/// What a requirement's evaluation found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) truth: Truth,
    /// Whether a term needed the body, which is not parsed yet.
    pub(crate) pending: bool,
}

/// The caller holds `role`.
pub fn role(role: impl Into<Box<str>>) -> Requirement {
    Requirement(Term::Role(role.into()))
}

/// The caller holds OAuth scope `scope`. When missing, the 403 says `insufficient_scope`
/// and names it.
pub fn scope(scope: impl Into<Box<str>>) -> Requirement {
    Requirement(Term::Scope(scope.into()))
}

/// The caller holds `permission`, directly or through a role mapped to it, exactly or by a
/// wildcard (`orders:*`).
pub fn permission(permission: impl Into<Box<str>>) -> Requirement {
    Requirement(Term::Permission(permission.into()))
}

/// The caller's claim at dotted `path` equals `value`, or, when the claim is an array,
/// contains it: `claim("tenant", "acme")`, `claim("groups", "ops")`. Strict JSON equality
/// (`"1"` is not `1`; numbers by value, `3` is `3.0`). Unlike the object-level comparisons,
/// a missing claim makes this plainly *not met* (so `not(claim("contractor", true))` is met
/// by a caller without the claim).
pub fn claim(path: impl Into<Box<str>>, value: impl Into<Value>) -> Requirement {
    Requirement(Term::Claim(path.into(), value.into()))
}

/// The caller authenticated with the method named `name`, in any case (see
/// [`AuthMethod::name`](crate::AuthMethod::name): `api_key`, `bearer`, `oidc`, or a custom
/// authenticator's name).
pub fn auth_method(name: impl Into<Box<str>>) -> Requirement {
    Requirement(Term::Method(name.into()))
}

/// Every requirement holds.
pub fn all(requirements: impl IntoIterator<Item = Requirement>) -> Requirement {
    Requirement::from_term(Term::All(flatten(requirements, |term| match term {
        Term::All(terms) => Ok(terms),
        other => Err(other),
    })))
}

/// At least one requirement holds.
pub fn any(requirements: impl IntoIterator<Item = Requirement>) -> Requirement {
    Requirement::from_term(Term::Any(flatten(requirements, |term| match term {
        Term::Any(terms) => Ok(terms),
        other => Err(other),
    })))
}

/// The terms of a list, with nested lists of the same kind spliced in: `all(a, all(b, c))`
/// is `all(a, b, c)`, so that a requirement has one form and its text reads back the same.
fn flatten(
    requirements: impl IntoIterator<Item = Requirement>,
    nested: impl Fn(Term) -> Result<Vec<Term>, Term>,
) -> Vec<Term> {
    let mut terms = Vec::new();
    for requirement in requirements {
        match nested(requirement.0) {
            Ok(inner) => terms.extend(inner),
            Err(term) => terms.push(term),
        }
    }
    terms
}

/// The requirement does not hold (the caller must still be authenticated). When the
/// requirement reads request data that is absent, its negation does not hold either:
/// absence never allows.
pub fn not(requirement: Requirement) -> Requirement {
    Requirement(Term::Not(Box::new(requirement.0)))
}

impl Requirement {
    /// The requirement of one term; a list of one is its term.
    pub(crate) fn from_term(term: Term) -> Self {
        match term {
            Term::All(mut terms) | Term::Any(mut terms) if terms.len() == 1 => {
                Self(terms.pop().unwrap_or(Term::All(Vec::new())))
            }
            term => Self(term),
        }
    }

    /// Whether `principal` meets the requirement. Comparisons with the request's data
    /// ([`param`](super::param), …) have no request here and are not met.
    #[must_use]
    pub fn is_met_by(&self, principal: &Principal) -> bool {
        self.evaluate(principal, &Facts::NONE).truth == Truth::Yes
    }

    /// Evaluates the requirement for `principal` on the request data in `facts`.
    pub(crate) fn evaluate(&self, principal: &Principal, facts: &Facts<'_>) -> Verdict {
        let mut pending = false;
        let truth = self.0.eval(principal, facts, None, &mut pending);
        Verdict { truth, pending }
    }

    /// Whether some outcome of the comparisons with the request would meet the requirement
    /// (they count as unknown): when one would, a refusal is about the object, not about
    /// the caller's grants.
    pub(crate) fn met_but_for_objects(&self, principal: &Principal) -> bool {
        self.0
            .eval(principal, &Facts::NONE, Some(Truth::Unknown), &mut false)
            != Truth::No
    }

    /// When the requirement fails only for want of scopes: the scopes whose grant would
    /// make it pass, space-separated, for an `insufficient_scope` answer. `None` when a
    /// role, permission, claim or method is (also) missing: then scopes are not the reason.
    /// Comparisons with the request count as met.
    pub(crate) fn missing_scopes(&self, principal: &Principal) -> Option<String> {
        let missing = self.0.needed_scopes(principal)?;
        (!missing.is_empty()).then(|| missing.into_iter().collect::<Vec<_>>().join(" "))
    }

    /// Every role named anywhere in the requirement.
    pub(crate) fn roles(&self) -> Vec<&str> {
        let mut roles = Vec::new();
        self.0.collect_roles(&mut roles);
        roles
    }

    /// What the requirement reads of the request.
    pub(crate) fn reads(&self) -> Reads {
        let mut reads = Reads::default();
        self.0.visit(&mut |comparison| {
            reads.request = true;
            match comparison.field {
                Source::Param { .. } => reads.params = true,
                Source::Body(_) => reads.body = true,
                Source::Query(_) | Source::Header(_) => {}
            }
        });
        reads
    }

    /// Binds each path parameter to where the route's pattern puts it, from `params`
    /// (the pattern's parameters).
    ///
    /// # Errors
    ///
    /// The name of a parameter the pattern does not have.
    pub(crate) fn bind_params(
        &mut self,
        params: &[(String, crate::route::ParamAt)],
    ) -> Result<(), String> {
        let mut unknown = None;
        self.0.visit_mut(&mut |comparison| {
            if let Source::Param { name, at } = &mut comparison.field {
                match params.iter().find(|(held, _)| **held == **name) {
                    Some((_, found)) => *at = Some(*found),
                    None => {
                        unknown.get_or_insert_with(|| name.to_string());
                    }
                }
            }
        });
        unknown.map_or(Ok(()), Err)
    }

    /// Why the requirement can never be met or is meaningless, if it is.
    pub(crate) fn defect(&self) -> Option<&'static str> {
        self.0.defect()
    }
}

impl Term {
    /// Three-valued (Kleene) evaluation: a comparison with absent data is unknown, and
    /// unknown stays unknown through `not`. With `assume_objects`, every comparison is that
    /// value instead of being made.
    fn eval(
        &self,
        principal: &Principal,
        facts: &Facts<'_>,
        assume_objects: Option<Truth>,
        pending: &mut bool,
    ) -> Truth {
        match self {
            Self::Role(role) => principal.has_role(role).into(),
            Self::Scope(scope) => principal.has_scope(scope).into(),
            Self::Permission(permission) => principal.has_permission(permission).into(),
            Self::Claim(path, expected) => match principal.claim(path) {
                Some(value @ Value::Array(values)) => {
                    same_json(value, expected)
                        || values.iter().any(|value| same_json(value, expected))
                }
                Some(value) => same_json(value, expected),
                None => false,
            }
            .into(),
            Self::Method(name) => principal
                .auth_method()
                .name()
                .eq_ignore_ascii_case(name)
                .into(),
            Self::Compare(comparison) => match assume_objects {
                Some(truth) => truth,
                None => comparison.eval(principal, facts, pending),
            },
            Self::All(terms) => {
                let mut truth = Truth::Yes;
                for term in terms {
                    match term.eval(principal, facts, assume_objects, pending) {
                        Truth::No => return Truth::No,
                        Truth::Unknown => truth = Truth::Unknown,
                        Truth::Yes => {}
                    }
                }
                truth
            }
            Self::Any(terms) => {
                let mut truth = Truth::No;
                for term in terms {
                    match term.eval(principal, facts, assume_objects, pending) {
                        Truth::Yes => return Truth::Yes,
                        Truth::Unknown => truth = Truth::Unknown,
                        Truth::No => {}
                    }
                }
                truth
            }
            Self::Not(term) => match term.eval(principal, facts, assume_objects, pending) {
                Truth::Yes => Truth::No,
                Truth::No => Truth::Yes,
                Truth::Unknown => Truth::Unknown,
            },
        }
    }

    fn visit(&self, visit: &mut impl FnMut(&Comparison)) {
        match self {
            Self::Compare(comparison) => visit(comparison),
            Self::All(terms) | Self::Any(terms) => {
                for term in terms {
                    term.visit(visit);
                }
            }
            Self::Not(term) => term.visit(visit),
            _ => {}
        }
    }

    fn visit_mut(&mut self, visit: &mut impl FnMut(&mut Comparison)) {
        match self {
            Self::Compare(comparison) => visit(comparison),
            Self::All(terms) | Self::Any(terms) => {
                for term in terms {
                    term.visit_mut(visit);
                }
            }
            Self::Not(term) => term.visit_mut(visit),
            _ => {}
        }
    }

    /// The fewest scopes whose grant makes this term pass, or `None` when scopes alone
    /// cannot.
    fn needed_scopes(&self, principal: &Principal) -> Option<BTreeSet<&str>> {
        match self {
            Self::Scope(scope) if !principal.has_scope(scope) => Some(BTreeSet::from([&**scope])),
            Self::All(terms) => terms.iter().try_fold(BTreeSet::new(), |mut needed, term| {
                needed.extend(term.needed_scopes(principal)?);
                Some(needed)
            }),
            Self::Any(terms) => terms
                .iter()
                .filter_map(|term| term.needed_scopes(principal))
                .min_by_key(BTreeSet::len),
            other => (other.eval(principal, &Facts::NONE, Some(Truth::Yes), &mut false)
                == Truth::Yes)
                .then(BTreeSet::new),
        }
    }

    fn collect_roles<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Self::Role(role) => out.push(role),
            Self::All(terms) | Self::Any(terms) => {
                for term in terms {
                    term.collect_roles(out);
                }
            }
            Self::Not(term) => term.collect_roles(out),
            _ => {}
        }
    }

    fn defect(&self) -> Option<&'static str> {
        match self {
            Self::Any(terms) if terms.is_empty() => Some("`any` of nothing is never met"),
            Self::All(terms) if terms.is_empty() => {
                Some("`all` of nothing is always met; say `authenticated()` instead")
            }
            Self::All(terms) => {
                let contradiction = terms.iter().any(|term| match term {
                    Self::Not(negated) => terms.contains(negated),
                    _ => false,
                });
                if contradiction {
                    return Some("`all` contains a requirement and its negation");
                }
                terms.iter().find_map(Self::defect)
            }
            Self::Any(terms) => terms.iter().find_map(Self::defect),
            Self::Not(term) => term.defect(),
            Self::Compare(comparison) => comparison.defect(),
            _ => None,
        }
    }
}

impl fmt::Debug for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How tightly a term binds in the text form: `or` < `and` < `not` < an atom.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Binding {
    Or,
    And,
    Not,
    Atom,
}

impl Term {
    fn binding(&self) -> Binding {
        match self {
            Self::Any(terms) if terms.len() > 1 => Binding::Or,
            Self::All(terms) if terms.len() > 1 => Binding::And,
            Self::Not(_) => Binding::Not,
            // A comparison is an atom to the grammar, but reads better in parentheses
            // after `not`.
            Self::Compare(_) => Binding::And,
            _ => Binding::Atom,
        }
    }

    /// Writes the term, in parentheses when it binds more loosely than `context`.
    fn write_in(&self, f: &mut fmt::Formatter<'_>, context: Binding) -> fmt::Result {
        if self.binding() < context {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined = |f: &mut fmt::Formatter<'_>, terms: &[Term], word: &str, binding| {
            for (i, term) in terms.iter().enumerate() {
                if i > 0 {
                    write!(f, " {word} ")?;
                }
                // A comparison is an atom inside `and`/`or`: no parentheses needed.
                match term {
                    Self::Compare(comparison) => write!(f, "{comparison}")?,
                    term => term.write_in(f, binding)?,
                }
            }
            Ok(())
        };
        match self {
            Self::Role(role) => write!(f, "role({})", Quoted(role)),
            Self::Scope(scope) => write!(f, "scope({})", Quoted(scope)),
            Self::Permission(permission) => write!(f, "permission({})", Quoted(permission)),
            Self::Claim(path, value) => write!(f, "claim({}, {value})", Quoted(path)),
            Self::Method(name) => write!(f, "auth_method({})", Quoted(name)),
            Self::Compare(comparison) => write!(f, "{comparison}"),
            Self::All(terms) if terms.is_empty() => f.write_str("all()"),
            Self::Any(terms) if terms.is_empty() => f.write_str("any()"),
            // A list of one is never built; print it as its term would read back.
            Self::All(terms) | Self::Any(terms) if terms.len() == 1 => write!(f, "{}", terms[0]),
            Self::All(terms) => joined(f, terms, "and", Binding::And),
            Self::Any(terms) => joined(f, terms, "or", Binding::Or),
            Self::Not(term) => {
                f.write_str("not ")?;
                term.write_in(f, Binding::Atom)
            }
        }
    }
}

/// Who may use a route.
#[derive(Clone, PartialEq)]
pub struct Access(pub(crate) Level);

#[derive(Clone, PartialEq)]
pub(crate) enum Level {
    /// Anyone; no identity needed. Inside `GatewaySecurityLayer`, credentials on such
    /// routes are not even checked (and still stripped).
    Public,
    /// Anyone; an identity is attached when valid credentials are presented, and bad
    /// credentials are still refused.
    Optional,
    /// Any authenticated caller.
    Authenticated,
    /// An authenticated caller meeting the requirement.
    Require(Requirement),
    /// No one.
    Deny,
}

/// Anyone may call, with or without credentials; credentials are not checked.
#[must_use]
pub fn public() -> Access {
    Access(Level::Public)
}

/// Anyone may call; valid credentials attach an identity, bad ones are refused.
#[must_use]
pub fn optional() -> Access {
    Access(Level::Optional)
}

/// Any authenticated caller may call.
#[must_use]
pub fn authenticated() -> Access {
    Access(Level::Authenticated)
}

/// No one may call (403).
#[must_use]
pub fn deny() -> Access {
    Access(Level::Deny)
}

impl From<Requirement> for Access {
    fn from(requirement: Requirement) -> Self {
        Self(Level::Require(requirement))
    }
}

impl Access {
    pub(crate) fn is_public(&self) -> bool {
        self.0 == Level::Public
    }

    pub(crate) fn requirement(&self) -> Option<&Requirement> {
        match &self.0 {
            Level::Require(requirement) => Some(requirement),
            _ => None,
        }
    }

    pub(crate) fn requirement_mut(&mut self) -> Option<&mut Requirement> {
        match &mut self.0 {
            Level::Require(requirement) => Some(requirement),
            _ => None,
        }
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Level::Public => f.write_str("public"),
            Level::Optional => f.write_str("optional"),
            Level::Authenticated => f.write_str("authenticated"),
            Level::Require(requirement) => write!(f, "{requirement}"),
            Level::Deny => f.write_str("deny"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::AuthMethod;

    fn alice() -> Principal {
        let Value::Object(claims) = serde_json::json!({"tenant": "acme", "groups": ["ops"]}) else {
            unreachable!()
        };
        Principal::builder("alice", AuthMethod::Bearer)
            .roles(["admin"])
            .scopes(["orders:read"])
            .permissions(["users:*"])
            .claims(claims)
            .build()
    }

    #[test]
    fn combinators_evaluate() {
        let p = alice();
        assert!(all([role("admin"), scope("orders:read")]).is_met_by(&p));
        assert!(!all([role("admin"), scope("orders:write")]).is_met_by(&p));
        assert!(any([role("viewer"), permission("users:delete")]).is_met_by(&p));
        assert!(not(role("viewer")).is_met_by(&p));
        assert!(claim("tenant", "acme").is_met_by(&p));
        assert!(claim("groups", "ops").is_met_by(&p));
        assert!(!claim("groups", "dev").is_met_by(&p));
        assert!(!claim("missing", "x").is_met_by(&p));
    }

    #[test]
    fn missing_scopes_are_the_fewest_that_would_do() {
        let p = alice();
        let requirement = all([
            scope("orders:read"),
            scope("orders:write"),
            not(scope("admin:all")),
            any([all([scope("b"), scope("c")]), scope("a")]),
        ]);
        assert_eq!(
            requirement.missing_scopes(&p).as_deref(),
            Some("a orders:write")
        );
        // A satisfied `any` asks for nothing more.
        let satisfied = all([scope("x"), any([scope("orders:read"), scope("y")])]);
        assert_eq!(satisfied.missing_scopes(&p).as_deref(), Some("x"));
        // A missing role is not a scope problem.
        assert_eq!(role("x").missing_scopes(&p), None);
        assert_eq!(all([role("viewer"), scope("x")]).missing_scopes(&p), None);
    }

    #[test]
    fn defects_are_found() {
        assert!(any([]).defect().is_some());
        assert!(all([]).defect().is_some());
        assert!(all([role("a"), not(role("a"))]).defect().is_some());
        assert!(all([role("a"), any([])]).defect().is_some());
        // An empty `any` inside an `any` adds nothing and is dropped.
        assert_eq!(any([role("a"), any([])]), role("a"));
        assert!(all([role("a"), not(role("b"))]).defect().is_none());
    }

    #[test]
    fn display_reads_like_the_code() {
        let requirement = all([role("admin"), not(scope("x")), claim("t", 1)]);
        assert_eq!(
            requirement.to_string(),
            r#"role("admin") and not scope("x") and claim("t", 1)"#
        );
        let nested = any([
            all([role("a"), any([scope("b"), scope("c")])]),
            not(all([role("d"), role("e")])),
            super::super::param("id").equals(super::super::subject()),
        ]);
        assert_eq!(
            nested.to_string(),
            r#"role("a") and (scope("b") or scope("c")) or not (role("d") and role("e")) or param("id") == subject()"#
        );
        assert_eq!(
            not(super::super::query("q").is_in(super::super::Caller::claim("x"))).to_string(),
            r#"not (query("q") in claim("x"))"#
        );
    }
}
