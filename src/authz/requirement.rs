//! What a route needs: [`Access`] levels and [`Requirement`]s combined with `all`/`any`/`not`.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use crate::principal::Principal;

/// A condition on the caller, built with [`role`], [`scope`], [`permission`], [`claim`] and
/// combined with [`all`], [`any`] and [`not`]. A requirement always needs an identity:
/// without one the answer is 401.
#[derive(Clone, PartialEq)]
pub struct Requirement(Term);

#[derive(Clone, PartialEq)]
enum Term {
    Role(Box<str>),
    Scope(Box<str>),
    Permission(Box<str>),
    Claim(Box<str>, Value),
    Method(Box<str>),
    All(Vec<Term>),
    Any(Vec<Term>),
    Not(Box<Term>),
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
/// contains it: `claim("tenant", "acme")`, `claim("groups", "ops")`.
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
    Requirement(Term::All(requirements.into_iter().map(|r| r.0).collect()))
}

/// At least one requirement holds.
pub fn any(requirements: impl IntoIterator<Item = Requirement>) -> Requirement {
    Requirement(Term::Any(requirements.into_iter().map(|r| r.0).collect()))
}

/// The requirement does not hold (the caller must still be authenticated).
pub fn not(requirement: Requirement) -> Requirement {
    Requirement(Term::Not(Box::new(requirement.0)))
}

impl Requirement {
    /// Whether `principal` meets the requirement.
    #[must_use]
    pub fn is_met_by(&self, principal: &Principal) -> bool {
        self.0.eval(principal)
    }

    /// When the requirement fails only for want of scopes: the scopes whose grant would
    /// make it pass, space-separated, for an `insufficient_scope` answer. `None` when a
    /// role, permission, claim or method is (also) missing: then scopes are not the reason.
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

    /// Why the requirement can never be met or is meaningless, if it is.
    pub(crate) fn defect(&self) -> Option<&'static str> {
        self.0.defect()
    }
}

impl Term {
    fn eval(&self, principal: &Principal) -> bool {
        match self {
            Self::Role(role) => principal.has_role(role),
            Self::Scope(scope) => principal.has_scope(scope),
            Self::Permission(permission) => principal.has_permission(permission),
            Self::Claim(path, expected) => match principal.claim(path) {
                Some(Value::Array(values)) => values.contains(expected),
                Some(value) => value == expected,
                None => false,
            },
            Self::Method(name) => principal.auth_method().name().eq_ignore_ascii_case(name),
            Self::All(terms) => terms.iter().all(|term| term.eval(principal)),
            Self::Any(terms) => terms.iter().any(|term| term.eval(principal)),
            Self::Not(term) => !term.eval(principal),
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
            other => other.eval(principal).then(BTreeSet::new),
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

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, name: &str, terms: &[Term]| {
            write!(f, "{name}(")?;
            for (i, term) in terms.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{term}")?;
            }
            f.write_str(")")
        };
        match self {
            Self::Role(role) => write!(f, "role({role:?})"),
            Self::Scope(scope) => write!(f, "scope({scope:?})"),
            Self::Permission(permission) => write!(f, "permission({permission:?})"),
            Self::Claim(path, value) => write!(f, "claim({path:?}, {value})"),
            Self::Method(name) => write!(f, "auth_method({name:?})"),
            Self::All(terms) => list(f, "all", terms),
            Self::Any(terms) => list(f, "any", terms),
            Self::Not(term) => write!(f, "not({term})"),
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
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Level::Public => f.write_str("public()"),
            Level::Optional => f.write_str("optional()"),
            Level::Authenticated => f.write_str("authenticated()"),
            Level::Require(requirement) => write!(f, "{requirement}"),
            Level::Deny => f.write_str("deny()"),
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
        assert!(any([role("a"), any([])]).defect().is_some());
        assert!(all([role("a"), not(role("b"))]).defect().is_none());
    }

    #[test]
    fn display_reads_like_the_code() {
        let requirement = all([role("admin"), not(scope("x")), claim("t", 1)]);
        assert_eq!(
            requirement.to_string(),
            r#"all(role("admin"), not(scope("x")), claim("t", 1))"#
        );
    }
}
