//! The policy's answers to browsers and to refused callers: CORS and the rejection format.

use serde::Deserialize;

use super::error::PolicyError;
use crate::rejection::ProblemJson;

/// The `cors` section: which other origins' pages may call the API from a browser. The
/// gateway answers every preflight (`OPTIONS`) itself, in front of authentication; other
/// requests are checked as ever and get the CORS headers (needs the `cors` feature).
///
/// Without the section, no CORS header is sent and a preflight is a request like any
/// other, refused unless a rule makes its route public.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CorsSection {
    /// The origins allowed (`https://app.example.com`: scheme, host and port, nothing
    /// more), or `["*"]` for any origin (not with `allow_credentials`).
    pub allow_origins: Vec<String>,
    /// The methods a page may use. Defaults to `GET`, `HEAD` and `POST`; `["*"]` for any.
    #[serde(default)]
    pub allow_methods: Option<Vec<String>>,
    /// The request headers a page may send (`authorization`, `x-api-key`, `content-type`,
    /// …). Defaults to none beyond the CORS-safelisted ones; `["*"]` for any.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// The response headers a page may read beyond the safelisted ones (`ratelimit`, …);
    /// `["*"]` for any.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Let pages send cookies and `Authorization` (`Access-Control-Allow-Credentials`).
    /// Needs explicit origins, methods and headers: never with `*`. Defaults to `false`.
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight's answer, in seconds. Defaults to not
    /// saying (browsers then cache for 5 seconds).
    #[serde(default)]
    pub max_age: Option<u64>,
}

/// The `rejection` section: how refusals are written. They are always RFC 9457
/// `application/problem+json` with the reason in `code`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RejectionSection {
    /// A base URI for the problem's `type`: `https://errors.example.com/` makes a refused
    /// key's `type` `https://errors.example.com/invalid_credentials`. Defaults to
    /// `about:blank`.
    #[serde(default)]
    pub type_base: Option<String>,
}

/// The longest preflight cache a browser honours is a day (Firefox; Chromium stops at two
/// hours): more is a mistake.
const MAX_PREFLIGHT_AGE: u64 = 24 * 60 * 60;

impl RejectionSection {
    /// The renderer the section describes.
    pub(crate) fn renderer(&self) -> Result<ProblemJson, PolicyError> {
        let Some(base) = &self.type_base else {
            return Ok(ProblemJson::new());
        };
        let absolute = base
            .parse::<http::Uri>()
            .ok()
            .is_some_and(|uri| uri.scheme().is_some() && uri.host().is_some());
        if !absolute {
            return Err(PolicyError::at(
                "rejection.type_base",
                format!("`{base}` is not an absolute URI (`https://errors.example.com/`)"),
            ));
        }
        Ok(ProblemJson::new().type_base(base.as_str()))
    }
}

impl CorsSection {
    /// tower-http's layer for the section, after checking every entry: an entry tower-http
    /// would refuse (or panic on) is an error here, with its place.
    #[cfg(feature = "cors")]
    pub(crate) fn layer(&self) -> Result<tower_http::cors::CorsLayer, Vec<PolicyError>> {
        let errors = self.problems();
        if errors.is_empty() {
            Ok(self.layer_unchecked())
        } else {
            Err(errors)
        }
    }

    /// Every problem with the section.
    pub(crate) fn problems(&self) -> Vec<PolicyError> {
        let mut errors = Vec::new();
        let any = |list: &[String]| list.iter().any(|entry| entry == "*");
        let lists = [
            ("allow_origins", &self.allow_origins[..]),
            (
                "allow_methods",
                self.allow_methods.as_deref().unwrap_or(&[]),
            ),
            ("allow_headers", &self.allow_headers[..]),
            ("expose_headers", &self.expose_headers[..]),
        ];
        for (name, list) in lists {
            if any(list) && list.len() > 1 {
                errors.push(PolicyError::at(
                    format!("cors.{name}"),
                    "`*` stands alone: it already means every value",
                ));
            }
            if any(list) && self.allow_credentials {
                errors.push(PolicyError::at(
                    format!("cors.{name}"),
                    "`*` cannot go with `allow_credentials: true` (browsers refuse it): name \
                     the values",
                ));
            }
        }
        if self.allow_origins.is_empty() {
            errors.push(PolicyError::at(
                "cors.allow_origins",
                "name at least one origin (or `*`)",
            ));
        }
        for (index, origin) in self.allow_origins.iter().enumerate() {
            if origin != "*" && !is_origin(origin) {
                errors.push(PolicyError::at(
                    format!("cors.allow_origins[{index}]"),
                    format!(
                        "`{origin}` is not an origin: `https://host` or `https://host:port`, \
                         with no path, lower case"
                    ),
                ));
            }
        }
        for (index, method) in self.allow_methods.iter().flatten().enumerate() {
            if method != "*" && method.parse::<http::Method>().is_err() {
                errors.push(PolicyError::at(
                    format!("cors.allow_methods[{index}]"),
                    format!("`{method}` is not a method"),
                ));
            }
        }
        for (name, list) in [
            ("allow_headers", &self.allow_headers),
            ("expose_headers", &self.expose_headers),
        ] {
            for (index, header) in list.iter().enumerate() {
                if header != "*" && header.parse::<http::HeaderName>().is_err() {
                    errors.push(PolicyError::at(
                        format!("cors.{name}[{index}]"),
                        format!("`{header}` is not a header name"),
                    ));
                }
            }
        }
        if self.max_age.is_some_and(|age| age > MAX_PREFLIGHT_AGE) {
            errors.push(PolicyError::at(
                "cors.max_age",
                "at most 86400 seconds (a day): browsers ignore more",
            ));
        }
        errors
    }

    /// tower-http's layer for the section, once [`problems`](Self::problems) found none.
    #[cfg(feature = "cors")]
    fn layer_unchecked(&self) -> tower_http::cors::CorsLayer {
        use http::{HeaderName, HeaderValue, Method};
        use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, Any, CorsLayer};
        let is_any = |list: &[String]| list.first().is_some_and(|entry| entry == "*");
        let mut layer = CorsLayer::new().allow_credentials(self.allow_credentials);
        layer = if is_any(&self.allow_origins) {
            layer.allow_origin(Any)
        } else {
            layer.allow_origin(AllowOrigin::list(
                self.allow_origins
                    .iter()
                    .filter_map(|origin| HeaderValue::from_str(origin).ok()),
            ))
        };
        layer = match &self.allow_methods {
            Some(methods) if is_any(methods) => layer.allow_methods(Any),
            Some(methods) => layer.allow_methods(AllowMethods::list(
                methods
                    .iter()
                    .filter_map(|method| method.parse::<Method>().ok()),
            )),
            None => layer.allow_methods([Method::GET, Method::HEAD, Method::POST]),
        };
        let names = |list: &[String]| -> Vec<HeaderName> {
            list.iter().filter_map(|name| name.parse().ok()).collect()
        };
        if is_any(&self.allow_headers) {
            layer = layer.allow_headers(Any);
        } else if !self.allow_headers.is_empty() {
            layer = layer.allow_headers(AllowHeaders::list(names(&self.allow_headers)));
        }
        if is_any(&self.expose_headers) {
            layer = layer.expose_headers(Any);
        } else if !self.expose_headers.is_empty() {
            layer = layer.expose_headers(names(&self.expose_headers));
        }
        if let Some(seconds) = self.max_age {
            layer = layer.max_age(std::time::Duration::from_secs(seconds));
        }
        layer
    }
}

/// Whether `text` is a serialised origin as browsers send it: `scheme://host[:port]`,
/// lower case, no path, query, user or trailing slash.
fn is_origin(text: &str) -> bool {
    let Ok(uri) = text.parse::<http::Uri>() else {
        return false;
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return false;
    };
    // A browser never writes the scheme's default port: an origin naming it never matches.
    let default_port = match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    let port_ok = match uri.port_u16() {
        Some(port) if Some(port) == default_port => false,
        Some(port) => uri
            .host()
            .is_some_and(|host| authority == &*format!("{host}:{port}")),
        None => uri.host() == Some(authority.as_str()),
    };
    port_ok
        && scheme.starts_with(|first: char| first.is_ascii_alphabetic())
        && text == format!("{scheme}://{authority}")
        && !text.bytes().any(|byte| byte.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RejectionResponse;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for good in [
            "https://app.example.com",
            "http://localhost:3000",
            "https://[::1]:8443",
            "https://[::1]",
        ] {
            assert!(is_origin(good), "{good}");
        }
        for bad in [
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://App.example.com",
            "app.example.com",
            "https://user@app.example.com",
            "https://app.example.com:",
            "https://app.example.com:x",
            "https://app.example.com:443",
            "http://app.example.com:80",
            "https://",
            "://host",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let section = CorsSection {
            allow_origins: vec!["*".into(), "https://App.example".into()],
            allow_methods: Some(vec!["GET".into(), "BAD METHOD".into()]),
            allow_headers: vec!["*".into()],
            expose_headers: vec!["not a header".into()],
            allow_credentials: true,
            max_age: Some(100_000),
        };
        let places: Vec<String> = section
            .problems()
            .into_iter()
            .map(|error| error.place)
            .collect();
        assert_eq!(
            places,
            [
                "cors.allow_origins",
                "cors.allow_origins",
                "cors.allow_headers",
                "cors.allow_origins[1]",
                "cors.allow_methods[1]",
                "cors.expose_headers[0]",
                "cors.max_age",
            ]
        );
    }

    #[test]
    fn a_type_base_must_be_absolute() {
        let relative = RejectionSection {
            type_base: Some("/errors/".into()),
        };
        let error = relative.renderer().expect_err("relative");
        assert_eq!(error.place, "rejection.type_base");
        let absolute = RejectionSection {
            type_base: Some("https://errors.example.com/".into()),
        };
        let problem = absolute
            .renderer()
            .expect("absolute")
            .respond(&crate::Rejection::new(crate::Reason::Forbidden));
        let body: serde_json::Value = serde_json::from_slice(problem.body()).expect("JSON");
        assert_eq!(body["type"], "https://errors.example.com/forbidden");
    }
}
