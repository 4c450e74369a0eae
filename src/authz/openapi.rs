//! Turning OpenAPI `security` requirements into [`Access`] rules.

use super::requirement::{
    Access, Requirement, all, any, auth_method, optional, public, role, scope,
};
use crate::openapi::model::{SchemeKind, SchemeRequirement, Security};

/// The access an operation's effective security asks for; `None` when it declares none.
pub(crate) fn access(security: &Security) -> Option<Access> {
    match security {
        Security::Undeclared => None,
        Security::Public => Some(public()),
        Security::Alternatives(alternatives) => {
            if alternatives.iter().any(Vec::is_empty) {
                return Some(optional());
            }
            let mut options: Vec<Requirement> = alternatives
                .iter()
                .map(|schemes| {
                    let mut terms: Vec<Requirement> = schemes.iter().map(scheme).collect();
                    if terms.len() == 1 {
                        terms.remove(0)
                    } else {
                        all(terms)
                    }
                })
                .collect();
            Some(if options.len() == 1 {
                options.remove(0).into()
            } else {
                any(options).into()
            })
        }
    }
}

fn bearer_caller() -> Requirement {
    any([auth_method("bearer"), auth_method("oidc")])
}

/// One scheme of a requirement: a caller authenticated that way, holding what it lists —
/// scopes for OAuth 2.0 and OpenID Connect, roles for the other schemes (OpenAPI 3.1).
fn scheme(requirement: &SchemeRequirement) -> Requirement {
    let oauth = matches!(
        requirement.kind,
        SchemeKind::OAuth2 | SchemeKind::OpenIdConnect
    );
    let caller = match &requirement.kind {
        SchemeKind::OAuth2 | SchemeKind::OpenIdConnect | SchemeKind::HttpBearer => bearer_caller(),
        SchemeKind::ApiKey => auth_method("api_key"),
        SchemeKind::HttpBasic => auth_method("basic"),
        SchemeKind::MutualTls => auth_method("mtls"),
        SchemeKind::HttpOther(name) => auth_method(name.as_str()),
    };
    let grants: Vec<Requirement> = requirement
        .scopes
        .iter()
        .map(|name| {
            if oauth {
                scope(name.as_str())
            } else {
                role(name.as_str())
            }
        })
        .collect();
    if grants.is_empty() {
        caller
    } else {
        all(std::iter::once(caller).chain(grants))
    }
}
