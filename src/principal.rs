//! Who is calling: [`Principal`] and how they proved it, [`AuthMethod`].
//!
//! Every authenticator puts a `Principal` into the request's extensions when the caller's
//! credentials are good. The authorization layer reads it to decide, and handlers read it
//! to know who they serve (with axum, through the `Principal` extractor).
//!
//! A `Principal` is one reference-counted allocation: cloning it is a counter increment.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::ser::SerializeStruct;
use serde_json::{Map, Value};

/// How a caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// An API key; `key_id` is the key's public identifier (never its secret).
    ApiKey {
        /// The non-secret identifier of the key that was presented.
        key_id: Arc<str>,
    },
    /// An OAuth 2.0 bearer token.
    Bearer,
    /// An OpenID Connect ID token or login session.
    Oidc,
    /// A user-supplied [`Authenticate`](crate::Authenticate) implementation, by its name.
    Custom(Arc<str>),
}

impl AuthMethod {
    /// A short, stable name for logs and JSON: `api_key`, `bearer`, `oidc` or the custom name.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::ApiKey { .. } => "api_key",
            Self::Bearer => "bearer",
            Self::Oidc => "oidc",
            Self::Custom(name) => name,
        }
    }

    /// The HTTP authentication scheme used in `WWW-Authenticate` challenges for callers
    /// who authenticated this way (`ApiKey`, `Bearer`, or the custom name).
    #[must_use]
    pub fn scheme(&self) -> &str {
        match self {
            Self::ApiKey { .. } => "ApiKey",
            Self::Bearer | Self::Oidc => "Bearer",
            Self::Custom(name) => name,
        }
    }
}

/// The authenticated caller of one request.
///
/// Built by authenticators with [`Principal::builder`]; read by authorization rules and by
/// handlers. Roles, scopes and permissions are kept sorted and free of duplicates, so the
/// `has_*` checks are binary searches.
///
/// # Example
///
/// ```
/// use portcullis::{AuthMethod, Principal};
///
/// let principal = Principal::builder("user-42", AuthMethod::Custom("mtls".into()))
///     .roles(["viewer"])
///     .scopes(["orders:read"])
///     .build();
/// assert!(principal.has_role("viewer"));
/// assert!(principal.has_scope("orders:read"));
/// assert!(!principal.has_scope("orders:write"));
/// ```
#[derive(Clone, PartialEq)]
pub struct Principal {
    inner: Arc<Inner>,
    /// Beside the shared part, so that authorization can add the permissions a principal's
    /// roles grant without copying a principal that a cache shares.
    permissions: Names,
}

#[derive(Clone, PartialEq)]
struct Inner {
    subject: Arc<str>,
    issuer: Option<Arc<str>>,
    method: AuthMethod,
    roles: Names,
    scopes: Names,
    tenant: Option<Arc<str>>,
    claims: Arc<Map<String, Value>>,
    /// The rate-limit buckets this principal counts in, worked out once.
    #[cfg(feature = "rate-limit")]
    bucket_keys: BucketKeys,
}

/// The rate-limit bucket keys of a principal, each worked out on first use: the shared part
/// lives as long as a key record or a cached token, so the requests after the first borrow
/// them (no allocation, no reference count touched). Derived from the principal's fields,
/// which never change once built.
#[cfg(feature = "rate-limit")]
#[derive(Clone, Default)]
pub(crate) struct BucketKeys {
    pub(crate) api_key: std::sync::OnceLock<Option<crate::rate_limit::BucketKey>>,
    pub(crate) subject: std::sync::OnceLock<Option<crate::rate_limit::BucketKey>>,
    pub(crate) client_id: std::sync::OnceLock<Option<crate::rate_limit::BucketKey>>,
    pub(crate) tenant: std::sync::OnceLock<Option<crate::rate_limit::BucketKey>>,
}

#[cfg(feature = "rate-limit")]
impl PartialEq for BucketKeys {
    /// A cache of what the principal's other fields say: never a difference of its own.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A sorted, duplicate-free, shared list of names (roles, scopes or permissions).
///
/// Cloning is a reference-count increment, so authenticators can keep one per key or
/// token issuer and hand it to every request.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Names(Arc<[Arc<str>]>);

impl Names {
    /// Sorts and de-duplicates the given names.
    pub fn new<I, T>(names: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<Box<str>>,
    {
        let mut names: Vec<Arc<str>> = names
            .into_iter()
            .map(|name| Arc::from(name.into()))
            .collect();
        names.sort_unstable();
        names.dedup();
        Self(names.into())
    }

    /// The union of sorted lists, merged in one pass each, sharing the names (no copies).
    #[cfg(feature = "authz")]
    pub(crate) fn union<'a>(lists: impl IntoIterator<Item = &'a Names>) -> Self {
        let mut merged: Vec<Arc<str>> = Vec::new();
        for list in lists {
            let mut out = Vec::with_capacity(merged.len() + list.len());
            let (mut left, mut right) = (merged.iter().peekable(), list.0.iter().peekable());
            loop {
                let next = match (left.peek(), right.peek()) {
                    (Some(a), Some(b)) => match a.cmp(b) {
                        std::cmp::Ordering::Less => left.next(),
                        std::cmp::Ordering::Greater => right.next(),
                        std::cmp::Ordering::Equal => {
                            right.next();
                            left.next()
                        }
                    },
                    (Some(_), None) => left.next(),
                    (None, _) => right.next(),
                };
                match next {
                    Some(name) => out.push(name.clone()),
                    None => break,
                }
            }
            merged = out;
        }
        Self(merged.into())
    }

    /// Whether `name` is in the list.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.0.binary_search_by(|held| (**held).cmp(name)).is_ok()
    }

    /// The names, sorted.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.iter().map(|name| &**name)
    }

    /// How many names there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the list is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Names {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Into<Box<str>>> FromIterator<T> for Names {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self::new(iter)
    }
}

impl Serialize for Names {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Names {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::new(Vec::<String>::deserialize(deserializer)?))
    }
}

impl Principal {
    /// Starts a principal for `subject`, authenticated by `method`.
    pub fn builder(subject: impl Into<Arc<str>>, method: AuthMethod) -> PrincipalBuilder {
        PrincipalBuilder {
            inner: Inner {
                subject: subject.into(),
                issuer: None,
                method,
                roles: Names::default(),
                scopes: Names::default(),
                tenant: None,
                claims: Arc::default(),
                #[cfg(feature = "rate-limit")]
                bucket_keys: BucketKeys::default(),
            },
            permissions: Names::default(),
        }
    }

    /// The rate-limit bucket keys worked out from this principal so far.
    #[cfg(feature = "rate-limit")]
    pub(crate) fn bucket_keys(&self) -> &BucketKeys {
        &self.inner.bucket_keys
    }

    /// The caller's identifier: the API key's owner, the token's `sub`, …
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// Who vouched for the subject (a token's `iss`), when there is such a party.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.inner.issuer.as_deref()
    }

    /// How the caller authenticated.
    #[must_use]
    pub fn auth_method(&self) -> &AuthMethod {
        &self.inner.method
    }

    /// The caller's roles.
    #[must_use]
    pub fn roles(&self) -> &Names {
        &self.inner.roles
    }

    /// The caller's OAuth scopes (or the scopes granted to an API key).
    #[must_use]
    pub fn scopes(&self) -> &Names {
        &self.inner.scopes
    }

    /// The caller's permissions: those granted directly, plus, once the authorization layer
    /// has run, those its role → permission mapping grants through [`roles`](Self::roles).
    #[must_use]
    pub fn permissions(&self) -> &Names {
        &self.permissions
    }

    /// The tenant the caller belongs to, in multi-tenant services.
    #[must_use]
    pub fn tenant(&self) -> Option<&str> {
        self.inner.tenant.as_deref()
    }

    /// The raw claims: a token's payload, or an API key's metadata.
    #[must_use]
    pub fn claims(&self) -> &Map<String, Value> {
        &self.inner.claims
    }

    /// The claim at a dotted path (`realm_access.roles`), if present.
    #[must_use]
    pub fn claim(&self, path: &str) -> Option<&Value> {
        let mut segments = path.split('.');
        let mut value = self.inner.claims.get(segments.next()?)?;
        for segment in segments {
            value = value.as_object()?.get(segment)?;
        }
        Some(value)
    }

    /// Whether the caller holds `role`.
    #[must_use]
    pub fn has_role(&self, role: &str) -> bool {
        self.inner.roles.contains(role)
    }

    /// Whether the caller holds `scope`.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.inner.scopes.contains(scope)
    }

    /// Whether the caller holds `permission`, directly or through a wildcard they hold:
    /// `orders:*` grants `orders:read` and `orders:items:read`; `*` grants everything.
    #[must_use]
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions
            .iter()
            .any(|held| permission_grants(held, permission))
    }

    /// Sets the permissions this principal holds, in place: nothing else is copied, even
    /// when a cache shares the rest of the principal.
    #[cfg(feature = "authz")]
    pub(crate) fn set_permission_names(&mut self, permissions: Names) {
        self.permissions = permissions;
    }

    /// A copy of this principal holding exactly `permissions` (shared, not copied).
    #[must_use]
    pub fn with_permission_names(&self, permissions: Names) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            permissions,
        }
    }

    /// A copy of this principal with `permissions` added to the ones it holds.
    #[must_use]
    pub fn with_permissions<'a>(&self, permissions: impl IntoIterator<Item = &'a str>) -> Self {
        let merged: Names = self
            .permissions
            .iter()
            .map(Box::<str>::from)
            .chain(permissions.into_iter().map(Box::<str>::from))
            .collect();
        self.with_permission_names(merged)
    }
}

/// Whether a held permission grants the required one. Permissions are `:`-separated
/// segments; a held permission ending in `*` grants everything below its prefix.
pub(crate) fn permission_grants(held: &str, required: &str) -> bool {
    if held == required || held == "*" {
        return true;
    }
    match held.strip_suffix(":*") {
        Some(prefix) => required
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(':')),
        None => false,
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claims are left out: they may carry personal data that has no place in logs.
        f.debug_struct("Principal")
            .field("subject", &self.inner.subject)
            .field("issuer", &self.inner.issuer)
            .field("auth_method", &self.inner.method)
            .field("roles", &self.inner.roles)
            .field("scopes", &self.inner.scopes)
            .field("permissions", &self.permissions)
            .field("tenant", &self.inner.tenant)
            .finish_non_exhaustive()
    }
}

impl Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let inner = &*self.inner;
        let mut out = serializer.serialize_struct("Principal", 8)?;
        out.serialize_field("subject", &*inner.subject)?;
        out.serialize_field("issuer", &inner.issuer.as_deref())?;
        out.serialize_field("auth_method", inner.method.name())?;
        if let AuthMethod::ApiKey { key_id } = &inner.method {
            out.serialize_field("key_id", &**key_id)?;
        } else {
            out.skip_field("key_id")?;
        }
        out.serialize_field("roles", &inner.roles)?;
        out.serialize_field("scopes", &inner.scopes)?;
        out.serialize_field("permissions", &self.permissions)?;
        out.serialize_field("tenant", &inner.tenant.as_deref())?;
        out.serialize_field("claims", &*inner.claims)?;
        out.end()
    }
}

/// Builds a [`Principal`]; see [`Principal::builder`].
#[derive(Debug)]
#[must_use]
pub struct PrincipalBuilder {
    inner: Inner,
    permissions: Names,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl PrincipalBuilder {
    /// Sets who vouched for the subject (a token's `iss`). Defaults to none.
    pub fn issuer(mut self, issuer: impl Into<Arc<str>>) -> Self {
        self.inner.issuer = Some(issuer.into());
        self
    }

    /// Sets the roles. Defaults to none.
    pub fn roles<I, T>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<Box<str>>,
    {
        self.inner.roles = Names::new(roles);
        self
    }

    /// Sets the roles from a shared list, without copying.
    pub fn role_names(mut self, roles: Names) -> Self {
        self.inner.roles = roles;
        self
    }

    /// Sets the scopes. Defaults to none.
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<Box<str>>,
    {
        self.inner.scopes = Names::new(scopes);
        self
    }

    /// Sets the scopes from a shared list, without copying.
    pub fn scope_names(mut self, scopes: Names) -> Self {
        self.inner.scopes = scopes;
        self
    }

    /// Sets the permissions granted directly (not through roles). Defaults to none.
    pub fn permissions<I, T>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<Box<str>>,
    {
        self.permissions = Names::new(permissions);
        self
    }

    /// Sets the tenant. Defaults to none.
    pub fn tenant(mut self, tenant: impl Into<Arc<str>>) -> Self {
        self.inner.tenant = Some(tenant.into());
        self
    }

    /// Sets the raw claims (a token's payload, a key's metadata). Defaults to empty.
    pub fn claims(mut self, claims: impl Into<Arc<Map<String, Value>>>) -> Self {
        self.inner.claims = claims.into();
        self
    }

    /// Finishes the principal.
    #[must_use]
    pub fn build(self) -> Principal {
        Principal {
            inner: Arc::new(self.inner),
            permissions: self.permissions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        let claims = serde_json::json!({"realm_access": {"roles": ["a"]}, "tenant": "acme"});
        let Value::Object(claims) = claims else {
            unreachable!()
        };
        Principal::builder("alice", AuthMethod::Bearer)
            .roles(["b", "a", "b"])
            .permissions(["orders:*"])
            .claims(claims)
            .build()
    }

    #[test]
    fn names_are_sorted_and_unique() {
        let p = principal();
        assert_eq!(p.roles().iter().collect::<Vec<_>>(), ["a", "b"]);
        assert!(p.has_role("a") && p.has_role("b") && !p.has_role("c"));
    }

    #[test]
    fn wildcard_permissions_grant_by_segment() {
        assert!(permission_grants("orders:*", "orders:read"));
        assert!(permission_grants("orders:*", "orders:items:read"));
        assert!(!permission_grants("orders:*", "orders"));
        assert!(!permission_grants("orders:*", "ordersx:read"));
        assert!(permission_grants("*", "anything"));
        assert!(!permission_grants("orders:read", "orders:write"));
        let p = principal();
        assert!(p.has_permission("orders:read"));
        assert!(!p.has_permission("users:read"));
    }

    #[test]
    fn claims_by_dotted_path() {
        let p = principal();
        assert_eq!(p.claim("tenant"), Some(&Value::from("acme")));
        assert_eq!(
            p.claim("realm_access.roles"),
            Some(&serde_json::json!(["a"]))
        );
        assert_eq!(p.claim("realm_access.missing"), None);
        assert_eq!(p.claim("tenant.x"), None);
    }

    #[test]
    #[cfg(feature = "authz")]
    fn union_merges_sorted_lists_without_duplicates() {
        let a = Names::new(["b", "d", "f"]);
        let b = Names::new(["a", "b", "c", "f", "g"]);
        let c = Names::new(["d"]);
        let union = Names::union([&a, &b, &c]);
        assert_eq!(
            union.iter().collect::<Vec<_>>(),
            ["a", "b", "c", "d", "f", "g"]
        );
        assert!(Names::union([]).is_empty());
    }

    #[cfg(feature = "authz")]
    #[test]
    fn permissions_set_in_place_leave_a_shared_copy_alone() {
        let cached = Principal::builder("p", AuthMethod::Bearer)
            .roles(["viewer"])
            .build();
        let mut for_the_request = cached.clone();
        for_the_request.set_permission_names(Names::new(["orders:read"]));
        assert!(for_the_request.has_permission("orders:read"));
        assert!(!cached.has_permission("orders:read"));
        assert!(
            Arc::ptr_eq(&cached.inner, &for_the_request.inner),
            "nothing else was copied"
        );
    }

    #[test]
    fn with_permissions_adds_without_touching_the_original() {
        let p = principal();
        let q = p.with_permissions(["users:read"]);
        assert!(q.has_permission("users:read") && q.has_permission("orders:read"));
        assert!(!p.has_permission("users:read"));
    }

    #[test]
    fn debug_leaves_out_claims() {
        let debug = format!("{:?}", principal());
        assert!(debug.contains("alice"));
        assert!(!debug.contains("acme"));
    }
}
