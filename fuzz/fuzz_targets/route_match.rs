//! The route matcher shared by authorization and validation, on a fixed table.
//!
//! Input: `{method} {path}`. Properties: a match is sound (the rule's pattern with the
//! captured parameters put back gives the path exactly; a `{name}` captures one segment,
//! without `/`; the rule covers the method, `HEAD` falling back to `GET`; a rule for `*`
//! is used only when no rule names the method); and complete where the answer is plain
//! (the static paths, and `/orders/{id}`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::fuzzing::{ROUTES, route_match};

fn split_rule(rule: &str) -> (Option<Vec<&str>>, &str) {
    let (methods, path) = rule.split_once(' ').expect("rule");
    let methods = (methods != "*" && methods != "ANY").then(|| methods.split('|').collect());
    (methods, path)
}

/// The pattern with each parameter replaced by its captured value.
fn rebuild(pattern: &str, params: &[(String, String)]) -> String {
    pattern
        .split('/')
        .map(|segment| {
            let name = segment
                .strip_prefix("{*")
                .or_else(|| segment.strip_prefix('*'))
                .or_else(|| segment.strip_prefix('{'))
                .map(|name| name.trim_end_matches('}'));
            match name {
                Some(name) => {
                    let value = params
                        .iter()
                        .find(|(held, _)| held == name)
                        .map(|(_, value)| value.as_str());
                    if !segment.contains('*') {
                        // matchit (as axum routes) captures an empty segment between two
                        // slashes (`/users//keys/k`), so only the slash is ruled out.
                        let value = value.expect("every parameter captured");
                        assert!(!value.contains('/'), "{name} = {value:?}");
                    }
                    value.unwrap_or("").to_owned()
                }
                None => segment.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn index_of(rule: &str) -> usize {
    ROUTES
        .iter()
        .position(|r| *r == rule)
        .expect("rule in table")
}

fuzz_target!(|data: &[u8]| {
    let Some(space) = data.iter().position(|&b| b == b' ') else {
        return;
    };
    let (method, path) = (&data[..space], &data[space + 1..]);
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let matched = route_match(method, path);
    let method = std::str::from_utf8(method).ok();

    if let Some((index, params)) = &matched {
        let (methods, pattern) = split_rule(ROUTES[*index]);
        assert_eq!(rebuild(pattern, params), path, "{} matched", ROUTES[*index]);
        let method = method.expect("a matched method is text");
        match methods {
            Some(methods) => assert!(
                methods.contains(&method) || (method == "HEAD" && methods.contains(&"GET")),
                "{method} matched {}",
                ROUTES[*index]
            ),
            None => {
                // `*` only when nothing for the same pattern names the method.
                for rule in ROUTES {
                    let (other, other_pattern) = split_rule(rule);
                    if other_pattern == pattern {
                        if let Some(other) = other {
                            assert!(!other.contains(&method), "{rule} should win for {method}");
                            assert!(
                                method != "HEAD" || !other.contains(&"GET"),
                                "{rule} should win for HEAD"
                            );
                        }
                    }
                }
            }
        }
    }

    let Some(method) = method else {
        return;
    };
    let expect = |rule: &str| {
        assert_eq!(
            matched.as_ref().map(|(index, _)| *index),
            Some(index_of(rule)),
            "{method} {path}"
        );
    };
    match (method, path) {
        ("GET" | "HEAD", "/") => expect("GET /"),
        ("GET" | "HEAD", "/orders") => expect("GET /orders"),
        ("POST" | "PUT", "/orders") => expect("POST|PUT /orders"),
        ("GET" | "HEAD", "/orders/new") => expect("GET /orders/new"),
        ("GET" | "HEAD", "/files/readme") => expect("GET /files/readme"),
        ("GET" | "HEAD", "/users/me") => expect("GET /users/me"),
        _ => {}
    }
    if let Some(id) = path.strip_prefix("/orders/") {
        if !id.is_empty()
            && !id.contains('/')
            && id != "new"
            && http::Method::from_bytes(method.as_bytes()).is_ok()
        {
            match method {
                "GET" | "HEAD" => expect("GET /orders/{id}"),
                _ => expect("* /orders/{id}"),
            }
        }
    }
});
