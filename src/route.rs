//! A table of `METHOD /path` patterns, shared by authorization rules and validation schemas
//! so that both match requests exactly the same way.
//!
//! Patterns use matchit's syntax, as axum does (`/orders/{id}`, `/files/{*rest}`, with
//! `/*rest` accepted as shorthand). Methods are upper-case, `|`-separated, or `*`/`ANY`.
//! A more specific path wins over a wildcard; for one path, a named method wins over `*`,
//! and `HEAD` falls back to `GET`, as axum routes it. Paths are matched raw, as axum does.

use std::collections::HashMap;

use http::Method;

use crate::error::ConfigError;

/// Routes to values of type `T`, checked for conflicts as they are added.
pub(crate) struct RouteTable<T> {
    router: matchit::Router<usize>,
    paths: Vec<PathEntries>,
    path_index: HashMap<String, usize>,
    entries: Vec<(Box<str>, T)>,
}

#[derive(Default)]
struct PathEntries {
    methods: Vec<(Method, usize)>,
    any_method: Option<usize>,
}

/// Which entry of one table a request matched, found once per request and carried to the
/// layers after the one that matched (in the extensions, inside
/// [`Challenges`](crate::Challenges)), so that the route is matched once.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "authz"), allow(dead_code))] // Only authorization carries one.
pub(crate) struct RouteMatch {
    /// The table it was matched in (its address): any other table matches again.
    pub(crate) table: usize,
    /// The entry, or `None` when no entry matched.
    pub(crate) index: Option<usize>,
}

/// Where a path parameter of a pattern is in a matching path: after `prefix` bytes of
/// segment `segment` (the pattern's static text before `{`), to the segment's end, or with
/// `rest` (a catch-all) to the path's end. matchit parameters end at a `/` or the path's end,
/// so this finds exactly the value matchit would, without its per-match UTF-8 checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "authz"), allow(dead_code))]
pub(crate) struct ParamAt {
    segment: u16,
    prefix: u16,
    rest: bool,
}

#[cfg_attr(not(feature = "authz"), allow(dead_code))]
impl ParamAt {
    /// The raw (still percent-encoded) value in `path`, a path its pattern matched.
    pub(crate) fn value(self, path: &str) -> Option<&str> {
        // Byte scans: paths are short, and `str::find` costs more to set up than to run.
        let slash = |from: usize| {
            path.as_bytes()
                .get(from..)?
                .iter()
                .position(|&byte| byte == b'/')
                .map(|at| from + at)
        };
        let mut start = 0;
        for _ in 0..self.segment {
            start = slash(start)? + 1;
        }
        let from = start + usize::from(self.prefix);
        let end = if self.rest {
            path.len()
        } else {
            slash(from).unwrap_or(path.len())
        };
        path.get(from..end)
    }
}

/// The path parameters of rule `text` (`GET /orders/{id}` → `id`), with where each is.
#[cfg_attr(not(feature = "authz"), allow(dead_code))]
pub(crate) fn rule_parameters(text: &str) -> Result<Vec<(String, ParamAt)>, ConfigError> {
    let (_, pattern) = parse_rule(text)?;
    let mut found = Vec::new();
    for (segment, text) in pattern.split('/').enumerate() {
        let Some(open) = text.find('{') else { continue };
        let Some(name) = text[open + 1..].strip_suffix('}') else {
            continue;
        };
        let (name, rest) = match name.strip_prefix('*') {
            Some(name) => (name, true),
            None => (name, false),
        };
        let (Ok(segment), Ok(prefix)) = (u16::try_from(segment), u16::try_from(open)) else {
            continue;
        };
        found.push((
            name.to_owned(),
            ParamAt {
                segment,
                prefix,
                rest,
            },
        ));
    }
    Ok(found)
}

/// A matched route: its entry (the rule text and value are [`RouteTable::entry`]), its
/// value, and the path parameters.
pub(crate) struct Matched<'t, 'p, T> {
    /// The entry's position, stable for the table's life: a match can be carried as it.
    #[cfg_attr(not(any(feature = "authz", feature = "validate")), allow(dead_code))]
    pub(crate) index: usize,
    #[cfg_attr(not(feature = "validate"), allow(dead_code))] // Authorization uses `index`.
    pub(crate) value: &'t T,
    #[cfg_attr(not(feature = "validate"), allow(dead_code))] // Only validation reads them.
    pub(crate) params: matchit::Params<'t, 'p>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        Self {
            router: matchit::Router::new(),
            paths: Vec::new(),
            path_index: HashMap::new(),
            entries: Vec::new(),
        }
    }
}

impl<T> RouteTable<T> {
    /// Adds `value` for the rule `text` (`GET|POST /orders/{id}`).
    pub(crate) fn insert(&mut self, text: &str, value: T) -> Result<(), ConfigError> {
        let (methods, pattern) = parse_rule(text)?;
        let index = match self.path_index.get(&pattern) {
            Some(&index) => index,
            None => {
                let index = self.paths.len();
                self.router
                    .insert(pattern.clone(), index)
                    .map_err(|error| self.insert_error(text, &error))?;
                self.path_index.insert(pattern, index);
                self.paths.push(PathEntries::default());
                index
            }
        };
        let entry = self.entries.len();
        let path = &mut self.paths[index];
        match methods {
            None => {
                if let Some(previous) = path.any_method {
                    return Err(conflict(&self.entries[previous].0, text));
                }
                path.any_method = Some(entry);
            }
            Some(methods) => {
                for method in &methods {
                    if let Some(&(_, previous)) =
                        path.methods.iter().find(|(held, _)| held == method)
                    {
                        return Err(conflict(&self.entries[previous].0, text));
                    }
                }
                path.methods
                    .extend(methods.into_iter().map(|method| (method, entry)));
            }
        }
        self.entries.push((text.into(), value));
        Ok(())
    }

    /// The entry for a request, if any rule matches it.
    pub(crate) fn at<'t, 'p>(
        &'t self,
        method: &Method,
        path: &'p str,
    ) -> Option<Matched<'t, 'p, T>> {
        let found = self.router.at(path).ok()?;
        let entries = self.paths.get(*found.value)?;
        let by_method = |wanted: &Method| {
            entries
                .methods
                .iter()
                .find(|(method, _)| method == wanted)
                .map(|&(_, index)| index)
        };
        let index = by_method(method)
            .or_else(|| {
                (*method == Method::HEAD)
                    .then(|| by_method(&Method::GET))
                    .flatten()
            })
            .or(entries.any_method)?;
        let (_, value) = self.entries.get(index)?;
        Some(Matched {
            index,
            value,
            params: found.params,
        })
    }

    /// The entry at `index` (from an earlier [`Matched::index`]): its text and value.
    #[cfg_attr(not(any(feature = "authz", feature = "validate")), allow(dead_code))]
    pub(crate) fn entry(&self, index: usize) -> Option<(&str, &T)> {
        self.entries
            .get(index)
            .map(|(text, value)| (&**text, value))
    }

    /// The entries of this table for exactly the methods and pattern of rule `text`, one
    /// per method (`None` when a method, or the pattern, has none). For `*`, the entry for
    /// any method.
    #[cfg_attr(not(all(feature = "authz", feature = "validate")), allow(dead_code))]
    pub(crate) fn same_route(&self, text: &str) -> Result<Vec<Option<&T>>, ConfigError> {
        let (methods, pattern) = parse_rule(text)?;
        let path = self
            .path_index
            .get(&pattern)
            .map(|&index| &self.paths[index]);
        let value = |entry: Option<usize>| entry.and_then(|entry| self.entries.get(entry));
        Ok(match methods {
            None => vec![value(path.and_then(|path| path.any_method)).map(|(_, v)| v)],
            Some(methods) => methods
                .iter()
                .map(|wanted| {
                    let entry = path.and_then(|path| {
                        path.methods
                            .iter()
                            .find(|(method, _)| method == wanted)
                            .map(|&(_, entry)| entry)
                            .or(path.any_method)
                    });
                    value(entry).map(|(_, v)| v)
                })
                .collect(),
        })
    }

    /// Every entry, in insertion order.
    #[cfg_attr(not(any(feature = "authz", feature = "validate")), allow(dead_code))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.entries.iter().map(|(text, value)| (&**text, value))
    }

    fn insert_error(&self, text: &str, error: &matchit::InsertError) -> ConfigError {
        match error {
            matchit::InsertError::Conflict { with } => {
                let first = self
                    .entries
                    .iter()
                    .map(|(text, _)| text)
                    .find(|rule| parse_rule(rule).is_ok_and(|(_, pattern)| pattern == *with))
                    .map_or_else(|| with.clone(), ToString::to_string);
                ConfigError::ConflictingRules {
                    first,
                    second: text.to_owned(),
                    reason: "the patterns overlap ambiguously".into(),
                }
            }
            other => ConfigError::InvalidRoute {
                rule: text.to_owned(),
                reason: other.to_string(),
            },
        }
    }
}

fn conflict(first: &str, second: &str) -> ConfigError {
    ConfigError::ConflictingRules {
        first: first.to_owned(),
        second: second.to_owned(),
        reason: "both cover the same method and path, so the later one could never apply".into(),
    }
}

/// Splits `GET|POST /path` into its methods (`None` for `*`) and a matchit pattern.
pub(crate) fn parse_rule(text: &str) -> Result<(Option<Vec<Method>>, String), ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidRoute {
        rule: text.to_owned(),
        reason: reason.to_owned(),
    };
    let (methods, path) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| invalid("expected `METHOD /path`"))?;
    let path = path.trim();
    if !path.starts_with('/') {
        return Err(invalid("the path must start with `/`"));
    }
    let methods = if methods == "*" || methods.eq_ignore_ascii_case("any") {
        None
    } else {
        let mut parsed = Vec::new();
        for method in methods.split('|') {
            let upper = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
            let method = Method::from_bytes(method.as_bytes())
                .ok()
                .filter(|_| upper)
                .ok_or_else(|| {
                    invalid("methods are upper-case HTTP methods, `|`-separated, or `*`")
                })?;
            if parsed.contains(&method) {
                return Err(invalid("a method is listed twice"));
            }
            parsed.push(method);
        }
        Some(parsed)
    };
    Ok((methods, normalise_path(path)))
}

/// Accepts `/*rest` as a shorthand for matchit's `/{*rest}`.
fn normalise_path(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment.strip_prefix('*') {
            Some(name) if !name.is_empty() => format!("{{*{name}}}"),
            _ => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable<u8> {
        let mut table = RouteTable::default();
        table.insert("GET /orders/{id}", 1).expect("insert");
        table.insert("* /orders/{id}", 2).expect("insert");
        table.insert("POST|PUT /orders", 3).expect("insert");
        table.insert("ANY /files/*rest", 4).expect("insert");
        table
    }

    #[test]
    fn precedence_and_head_fallback() {
        let table = table();
        let value = |method, path| table.at(&method, path).map(|m| *m.value);
        assert_eq!(value(Method::GET, "/orders/1"), Some(1));
        assert_eq!(value(Method::HEAD, "/orders/1"), Some(1));
        assert_eq!(value(Method::DELETE, "/orders/1"), Some(2));
        assert_eq!(value(Method::PUT, "/orders"), Some(3));
        assert_eq!(value(Method::GET, "/orders"), None);
        assert_eq!(value(Method::GET, "/files/a/b"), Some(4));
        assert_eq!(value(Method::GET, "/orders/1/"), None);
        let matched = table.at(&Method::GET, "/orders/42").expect("matches");
        assert_eq!(matched.params.get("id"), Some("42"));
        let (text, _) = table.entry(matched.index).expect("an entry");
        assert_eq!(text, "GET /orders/{id}");
    }

    #[test]
    fn parameters_are_found_where_matchit_finds_them() {
        let mut table = RouteTable::default();
        let rules = [
            "GET /orders/{id}",
            "GET /a/{x}/b/{y}",
            "GET /files/{*rest}",
            "GET /users/user-{name}",
            "GET /t/{tenant}/docs/*path",
        ];
        for (index, rule) in rules.iter().enumerate() {
            table.insert(rule, index).expect("insert");
        }
        let paths = [
            "/orders/42",
            "/orders/%2F",
            "/a/1/b/2",
            "/files/x/y/z",
            "/files/%20",
            "/users/user-ann",
            "/t/acme/docs/a/b",
        ];
        for path in paths {
            let matched = table
                .at(&Method::GET, path)
                .unwrap_or_else(|| panic!("{path} matches"));
            let (text, _) = table.entry(matched.index).expect("entry");
            let params = rule_parameters(text).expect("parameters");
            let expected: Vec<(&str, &str)> = matched.params.iter().collect();
            let found: Vec<(&str, &str)> = params
                .iter()
                .map(|(name, at)| (name.as_str(), at.value(path).expect("a value")))
                .collect();
            assert_eq!(found, expected, "{text} on {path}");
        }
    }

    #[test]
    fn star_rest_is_shorthand_for_catch_all() {
        assert_eq!(normalise_path("/files/*rest"), "/files/{*rest}");
        assert_eq!(normalise_path("/files/{*rest}"), "/files/{*rest}");
        assert_eq!(normalise_path("/"), "/");
    }
}
