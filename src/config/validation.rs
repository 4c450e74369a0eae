//! From the policy file's `validate` section to [`ValidationRules`], every problem reported
//! at once.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::error::{PolicyError, PolicyErrors};
use super::file::{PolicyFile, ValidateRoute};
use crate::authz::RouteRules;
use crate::error::ConfigError;
use crate::validate::{OpenApiSpec, RequestSchema, ValidationRules};

impl PolicyFile {
    /// Builds the validation rules of the `validate` section (`None` without one): schemas
    /// inline or from files (relative to the policy file), or an OpenAPI document.
    ///
    /// # Errors
    ///
    /// Every problem, each with its place: a file that cannot be read, a schema given both
    /// inline and from a file, a schema that does not compile (`validate.routes[2].body`), an
    /// OpenAPI document that cannot be used, conflicting routes, a zero limit.
    pub fn validation(&self) -> Result<Option<ValidationRules>, PolicyErrors> {
        let Some(builder) = self.validation_builder()? else {
            return Ok(None);
        };
        let section = self
            .validate
            .as_ref()
            .map_or(&[][..], |section| &section.routes[..]);
        builder.build().map(Some).map_err(|error| {
            let place = match &error {
                ConfigError::ConflictingRules { second, .. } => section
                    .iter()
                    .rposition(|route| route.route.trim() == second.trim())
                    .map(|index| format!("validate.routes[{index}].route")),
                ConfigError::InvalidLimit { .. } => Some("validate.max_body_bytes".to_owned()),
                _ => Some("validate".to_owned()),
            };
            PolicyError::at(place.unwrap_or_default(), error.to_string()).into()
        })
    }

    /// The `validate` section as a builder not yet built, each route's schemas already
    /// checked: to add what a file cannot say, such as business rules
    /// (`.rule("PUT /orders/{id}", "order exists", …)`), before
    /// [`build`](crate::validate::ValidationRulesBuilder::build).
    ///
    /// # Errors
    ///
    /// As [`validation`](Self::validation), except the problems only the whole set shows
    /// (conflicts between routes), which `build` reports.
    pub fn validation_builder(
        &self,
    ) -> Result<Option<crate::validate::ValidationRulesBuilder>, PolicyErrors> {
        let Some(section) = &self.validate else {
            return Ok(None);
        };
        let mut errors = Vec::new();
        let mut builder = ValidationRules::builder();
        if let Some(limit) = section.max_body_bytes {
            builder = builder.max_body_bytes(limit);
        }
        if section.unprocessable_entity {
            builder = builder.unprocessable_entity();
        }
        if let Some(path) = &section.openapi {
            match self
                .read(path)
                .map_err(|error| error.to_string())
                .and_then(|text| OpenApiSpec::parse(&text).map_err(|error| error.to_string()))
            {
                Ok(spec) => builder = builder.openapi(&spec),
                Err(message) => errors.push(PolicyError::at("validate.openapi", message)),
            }
        }
        for (index, route) in section.routes.iter().enumerate() {
            let place = format!("validate.routes[{index}]");
            match self.request_schema(route, &place) {
                Ok(schema) => {
                    // Alone first, so that each route's own problems are all found.
                    match ValidationRules::builder()
                        .route(&route.route, schema.clone())
                        .build()
                    {
                        Ok(_) => builder = builder.route(&route.route, schema),
                        Err(error) => errors.push(PolicyError::at(
                            format!("{place}.{}", part_of(&error)),
                            error.to_string(),
                        )),
                    }
                }
                Err(mut found) => errors.append(&mut found),
            }
        }
        if !errors.is_empty() {
            return Err(PolicyErrors(errors));
        }
        Ok(Some(builder))
    }

    /// The schemas of one route, read from the file or from their files.
    fn request_schema(
        &self,
        route: &ValidateRoute,
        place: &str,
    ) -> Result<RequestSchema, Vec<PolicyError>> {
        let mut errors = Vec::new();
        let mut part =
            |name: &str, inline: &Option<Value>, file: &Option<String>| match (inline, file) {
                (Some(_), Some(_)) => {
                    errors.push(PolicyError::at(
                        format!("{place}.{name}"),
                        format!("give `{name}` or `{name}_file`, not both"),
                    ));
                    None
                }
                (Some(schema), None) => Some(schema.clone()),
                (None, Some(path)) => match self
                    .read(path)
                    .map_err(|error| error.to_string())
                    .and_then(|text| {
                        serde_json::from_str::<Value>(&text)
                            .or_else(|_| serde_yaml_ng::from_str::<Value>(&text))
                            .map_err(|error| format!("{path}: not JSON or YAML: {error}"))
                    }) {
                    Ok(schema) => Some(schema),
                    Err(message) => {
                        errors.push(PolicyError::at(format!("{place}.{name}_file"), message));
                        None
                    }
                },
                (None, None) => None,
            };
        let body = part("body", &route.body, &route.body_file);
        let query = part("query", &route.query, &route.query_file);
        let path = part("path", &route.path, &route.path_file);
        let headers = part("headers", &route.headers, &route.headers_file);
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut schema = RequestSchema::new();
        if let Some(body) = body {
            schema = schema.body(body);
        }
        if let Some(query) = query {
            schema = schema.query(query);
        }
        if let Some(path) = path {
            schema = schema.path(path);
        }
        if let Some(headers) = headers {
            schema = schema.headers(headers);
        }
        if route.optional_body {
            schema = schema.optional_body();
        }
        if let Some(media_types) = &route.media_types {
            schema = schema.media_types(media_types.iter().cloned());
        }
        if let Some(limit) = route.max_body_bytes {
            schema = schema.max_body_bytes(limit);
        }
        Ok(schema)
    }

    /// Reads a file named in the policy: relative to the policy file's directory (the
    /// working directory for a policy not read from a file), and inside it. An absolute
    /// path, or one that leaves the directory (`..`, a symbolic link out), is refused: a
    /// policy under review must not read the host's other files (into an error message, say).
    pub(crate) fn read(&self, path: &str) -> Result<String, String> {
        let base = match &self.base {
            Some(base) if !base.as_os_str().is_empty() => base.clone(),
            _ => PathBuf::from("."),
        };
        let base = base
            .canonicalize()
            .map_err(|error| format!("{}: {error}", base.display()))?;
        if Path::new(path).is_absolute() {
            return Err(format!(
                "`{path}`: absolute paths are refused; name files relative to the policy file"
            ));
        }
        let full = base
            .join(path)
            .canonicalize()
            .map_err(|error| format!("{path}: {error}"))?;
        if !full.starts_with(&base) {
            return Err(format!(
                "`{path}` is outside the policy file's directory, and is refused"
            ));
        }
        super::file::read_bounded(&full)
    }

    /// The routes whose rule reads the body without a JSON body schema for it in `validation`.
    pub(crate) fn unvalidated_body_rules(
        &self,
        rules: &RouteRules,
        validation: Option<&ValidationRules>,
    ) -> Vec<PolicyError> {
        rules
            .body_rules()
            .filter(|rule| {
                validation
                    .is_none_or(|validation| !validation.has_body_schema(rule).unwrap_or(false))
            })
            .map(|rule| {
                let place = self
                    .routes
                    .iter()
                    .position(|entry| entry.route.trim() == rule.trim())
                    .map_or_else(String::new, |index| format!("routes[{index}].require"));
                PolicyError::at(
                    place,
                    format!(
                        "`{rule}` reads the request body, but `validate` has no JSON body \
                         schema for it: the body must be validated first"
                    ),
                )
            })
            .collect()
    }
}

/// Which part of a route a build error is about.
fn part_of(error: &ConfigError) -> &str {
    match error {
        ConfigError::InvalidSchema { part, .. } => match part.as_str() {
            "header" => "headers",
            part => part,
        },
        ConfigError::InvalidLimit { .. } => "max_body_bytes",
        _ => "route",
    }
}
