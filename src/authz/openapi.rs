//! Turning OpenAPI `security` requirements into [`Access`] rules.

use super::requirement::{Access, Requirement, all, any, auth_method, optional, public, scope};
use crate::validate::openapi::{SchemeKind, SchemeRequirement, Security};

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

fn scheme(requirement: &SchemeRequirement) -> Requirement {
    match &requirement.kind {
        SchemeKind::OAuth2 | SchemeKind::OpenIdConnect if !requirement.scopes.is_empty() => {
            let mut scopes: Vec<Requirement> = requirement
                .scopes
                .iter()
                .map(|name| scope(name.as_str()))
                .collect();
            if scopes.len() == 1 {
                scopes.remove(0)
            } else {
                all(scopes)
            }
        }
        SchemeKind::OAuth2 | SchemeKind::OpenIdConnect | SchemeKind::HttpBearer => bearer_caller(),
        SchemeKind::ApiKey => auth_method("api_key"),
        SchemeKind::HttpBasic => auth_method("basic"),
        SchemeKind::MutualTls => auth_method("mtls"),
        SchemeKind::HttpOther(name) => auth_method(name.to_ascii_lowercase()),
    }
}
