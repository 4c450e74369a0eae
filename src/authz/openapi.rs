//! Turning OpenAPI `security` requirements and `x-portcullis-owner` into [`Access`] rules.

use super::object::{Caller, body, header, param, query, subject};
use super::requirement::{
    Access, Requirement, all, any, auth_method, optional, public, role, scope,
};
use crate::openapi::model::{
    Operation, Owner, OwnerField, SchemeKind, SchemeRequirement, Security,
};

/// The access an operation asks for: its effective security, and the caller must own the
/// object when it names an owner. `None` when it declares neither.
pub(crate) fn operation_access(operation: &Operation) -> Option<Access> {
    let security = access(&operation.security);
    let Some(owner) = &operation.owner else {
        return security;
    };
    let owner = owner_requirement(owner);
    // The reader refuses an owner on a public operation; `optional` needs a caller now.
    Some(match security.as_ref().and_then(Access::requirement) {
        Some(requirement) => all([requirement.clone(), owner]).into(),
        None => owner.into(),
    })
}

/// `x-portcullis-owner` as a requirement: the field equals (or, with `member`, is one of)
/// the claim; `sub` is the caller's subject.
fn owner_requirement(owner: &Owner) -> Requirement {
    let field = match &owner.field {
        OwnerField::Param(name) => param(name.as_str()),
        OwnerField::Query(name) => query(name.as_str()),
        OwnerField::Header(name) => header(name.as_str()),
        OwnerField::Body(pointer) => body(pointer.as_str()),
    };
    let caller = if owner.claim == "sub" {
        subject()
    } else {
        Caller::claim(owner.claim.as_str())
    };
    let owns = if owner.member {
        field.is_in(caller)
    } else {
        field.equals(caller)
    };
    match &owner.unless_role {
        Some(exempt) => any([owns, role(exempt.as_str())]),
        None => owns,
    }
}

/// The access an operation's effective security asks for; `None` when it declares none.
fn access(security: &Security) -> Option<Access> {
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
