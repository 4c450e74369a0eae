//! Security requirements (`security`, at the top level and per operation) and the kinds of
//! the schemes they name, as the authorization layer consumes them.

use serde_json::Value;

use super::error::{OpenApiError, invalid};
use super::model::{SchemeKind, SchemeRequirement, Security};
use super::pointer::child;
use super::reader::Reader;

impl<'a> Reader<'a> {
    /// Reads a `security` list into the requirement alternatives it allows.
    pub(super) fn security(
        &self,
        security: &Value,
        pointer: &str,
    ) -> Result<Security, OpenApiError> {
        let Value::Array(requirements) = security else {
            return Err(invalid(
                pointer,
                "`security` must be a list of security requirement objects",
            ));
        };
        if requirements.is_empty() {
            return Ok(Security::Public);
        }
        let mut alternatives = Vec::with_capacity(requirements.len());
        for (index, requirement) in requirements.iter().enumerate() {
            let at = child(pointer, &index.to_string());
            let Value::Object(schemes) = requirement else {
                return Err(invalid(&at, "a security requirement must be a mapping"));
            };
            let mut all_of = Vec::with_capacity(schemes.len());
            for (scheme, scopes) in schemes {
                let kind = self.scheme_kind(scheme, &at)?;
                let scopes = match scopes {
                    Value::Array(scopes) => scopes
                        .iter()
                        .map(|scope| scope.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>(),
                    _ => None,
                }
                .ok_or_else(|| {
                    invalid(
                        &child(&at, scheme),
                        "a security requirement's scopes must be a list of strings",
                    )
                })?;
                all_of.push(SchemeRequirement {
                    scheme: scheme.clone(),
                    kind,
                    scopes,
                });
            }
            all_of.sort_by(|left, right| left.scheme.cmp(&right.scheme));
            alternatives.push(all_of);
        }
        Ok(Security::Alternatives(alternatives))
    }

    /// The kind of the security scheme `name`, named by the requirement at `pointer`.
    fn scheme_kind(&self, name: &str, pointer: &str) -> Result<SchemeKind, OpenApiError> {
        let Some(definition) = self
            .root
            .get("components")
            .and_then(|components| components.get("securitySchemes"))
            .and_then(|schemes| schemes.get(name))
        else {
            return Err(OpenApiError::UnknownScheme {
                pointer: pointer.to_owned(),
                scheme: name.to_owned(),
            });
        };
        let (definition, at) =
            self.resolve(definition, child("/components/securitySchemes", name))?;
        match definition.get("type").and_then(Value::as_str) {
            Some("apiKey") => Ok(SchemeKind::ApiKey),
            Some("http") => match definition
                .get("scheme")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
            {
                Some(scheme) if scheme == "bearer" => Ok(SchemeKind::HttpBearer),
                Some(scheme) if scheme == "basic" => Ok(SchemeKind::HttpBasic),
                Some(scheme) if !scheme.is_empty() => Ok(SchemeKind::HttpOther(scheme)),
                _ => Err(invalid(
                    &child(&at, "scheme"),
                    "an `http` security scheme needs a `scheme`",
                )),
            },
            Some("oauth2") => Ok(SchemeKind::OAuth2),
            Some("openIdConnect") => Ok(SchemeKind::OpenIdConnect),
            Some("mutualTLS") => Ok(SchemeKind::MutualTls),
            _ => Err(invalid(
                &child(&at, "type"),
                "`type` must be one of apiKey, http, oauth2, openIdConnect, mutualTLS",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::json;

    use super::super::parse;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn orders_3_0_security_is_effective_per_operation() {
        let document = parse(ORDERS_3_0).expect("the orders document parses");
        let top_level = Security::Alternatives(vec![
            vec![requirement("bearerAuth", SchemeKind::HttpBearer, &[])],
            vec![requirement("apiKey", SchemeKind::ApiKey, &[])],
        ]);
        assert_eq!(find(&document, Method::POST, "/orders").security, top_level);
        assert_eq!(
            find(&document, Method::PATCH, "/orders/{orderId}").security,
            top_level
        );
        assert_eq!(
            find(&document, Method::GET, "/orders").security,
            Security::Alternatives(vec![vec![requirement(
                "oauth",
                SchemeKind::OAuth2,
                &["orders:read"]
            )]])
        );
        assert_eq!(
            find(&document, Method::GET, "/orders/{orderId}").security,
            Security::Alternatives(vec![
                vec![],
                vec![requirement("oauth", SchemeKind::OAuth2, &["read"])],
            ])
        );
        assert_eq!(
            find(&document, Method::DELETE, "/orders/{orderId}").security,
            Security::Alternatives(vec![vec![
                requirement("apiKey", SchemeKind::ApiKey, &[]),
                requirement(
                    "oidc",
                    SchemeKind::OpenIdConnect,
                    &["openid", "orders:admin"]
                ),
            ]])
        );
        assert_eq!(
            find(&document, Method::GET, "/health").security,
            Security::Public
        );
    }

    #[test]
    fn pets_3_1_security_is_effective_per_operation() {
        let document = parse(PETS_3_1).expect("the pet store document parses");
        assert_eq!(
            find(&document, Method::GET, "/pets").security,
            Security::Alternatives(vec![
                vec![],
                vec![requirement("oauth", SchemeKind::OAuth2, &["read"])],
            ])
        );
        assert_eq!(
            find(&document, Method::POST, "/pets").security,
            Security::Alternatives(vec![
                vec![
                    requirement("api_key", SchemeKind::ApiKey, &[]),
                    requirement("bearer", SchemeKind::HttpBearer, &[]),
                ],
                vec![requirement("oauth", SchemeKind::OAuth2, &["pets:write"])],
            ])
        );
        assert_eq!(
            find(&document, Method::GET, "/pets/{petId}").security,
            Security::Public
        );
        // Inherited from the top level; `petstore_oauth` is a `$ref` to `oauth`.
        assert_eq!(
            find(&document, Method::PUT, "/pets/{petId}").security,
            Security::Alternatives(vec![
                vec![requirement(
                    "petstore_oauth",
                    SchemeKind::OAuth2,
                    &["pets:read"]
                )],
                vec![requirement("oidc", SchemeKind::OpenIdConnect, &["openid"])],
            ])
        );
        assert_eq!(
            find(&document, Method::GET, "/status").security,
            Security::Public
        );
    }

    #[test]
    fn undeclared_security_and_other_http_schemes() {
        let document = json!({
            "openapi": "3.0.0",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/open": {"get": {"responses": {}}},
                "/signed": {"get": {"security": [{"sig": []}, {"basic": []}, {"tls": []}]}}
            },
            "components": {"securitySchemes": {
                "sig": {"type": "http", "scheme": "HOBA"},
                "basic": {"type": "http", "scheme": "basic"},
                "tls": {"type": "mutualTLS"}
            }}
        });
        let document = parse_value(&document).expect("parses");
        assert_eq!(
            find(&document, Method::GET, "/open").security,
            Security::Undeclared
        );
        assert_eq!(
            find(&document, Method::GET, "/signed").security,
            Security::Alternatives(vec![
                vec![requirement(
                    "sig",
                    SchemeKind::HttpOther("hoba".to_owned()),
                    &[]
                )],
                vec![requirement("basic", SchemeKind::HttpBasic, &[])],
                vec![requirement("tls", SchemeKind::MutualTls, &[])],
            ])
        );
    }

    #[test]
    fn unknown_security_schemes_are_refused() {
        let in_operation = document_3_0(
            json!({"/things": {"get": {"security": [{"key": []}, {"nope": ["x"]}]}}}),
            json!({"securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "K"}}}),
        );
        match parse_value(&in_operation) {
            Err(OpenApiError::UnknownScheme { pointer, scheme }) => {
                assert_eq!(pointer, "/paths/~1things/get/security/1");
                assert_eq!(scheme, "nope");
            }
            other => panic!("expected UnknownScheme, got {other:?}"),
        }
        let mut top_level = document_3_0(json!({}), json!({}));
        top_level["security"] = json!([{"ghost": []}]);
        assert!(matches!(
            parse_value(&top_level),
            Err(OpenApiError::UnknownScheme { pointer, scheme })
                if pointer == "/security/0" && scheme == "ghost"
        ));
        let bad_kind = document_3_0(
            json!({"/things": {"get": {"security": [{"weird": []}]}}}),
            json!({"securitySchemes": {"weird": {"type": "carrierPigeon"}}}),
        );
        assert!(matches!(
            parse_value(&bad_kind),
            Err(OpenApiError::Invalid { pointer, .. })
                if pointer == "/components/securitySchemes/weird/type"
        ));
    }
}
