//! The text form of requirements and access levels, as a policy file writes them:
//!
//! ```text
//! access      = "public" | "optional" | "authenticated" | "deny" | requirement
//! requirement = and-list { "or" and-list }
//! and-list    = unary { "and" unary }
//! unary       = "not" unary | "(" requirement ")" | call | comparison
//! call        = role(NAME) | scope(NAME) | permission(NAME) | auth_method(NAME)
//!             | claim(PATH, JSON) | all(requirement, …) | any(requirement, …)
//! comparison  = field ("==" | "in") caller
//! field       = param(NAME) | query(NAME) | header(NAME) | body(POINTER)
//! caller      = subject() | claim(PATH)
//! ```
//!
//! `NAME`, `PATH` and `POINTER` are JSON strings (`"orders:read"`), or bare words of
//! letters, digits and `_ . : * / + - @`. Access levels may carry empty parentheses
//! (`public()`). What [`Display`](std::fmt::Display) prints parses back to the same value.

use std::str::FromStr;

use serde_json::Value;

use super::object::{Caller, Field, body, header, param, query, subject};
use super::requirement::{
    Access, Requirement, all, any, auth_method, authenticated, claim, deny, not, optional,
    permission, public, role, scope,
};
use crate::error::ConfigError;

impl FromStr for Requirement {
    type Err = ConfigError;

    /// Reads a requirement's text form.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidRequirement`] naming the byte where the text goes wrong.
    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let mut parser = Parser {
            text,
            at: 0,
            depth: 0,
        };
        let requirement = parser.requirement()?;
        parser.end()?;
        Ok(requirement)
    }
}

impl FromStr for Access {
    type Err = ConfigError;

    /// Reads an access level (`public`, `optional`, `authenticated`, `deny`) or a
    /// requirement.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidRequirement`] naming the byte where the text goes wrong.
    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let mut parser = Parser {
            text,
            at: 0,
            depth: 0,
        };
        let start = parser.save();
        if let Some(word) = parser.word() {
            let level = match word {
                "public" => Some(public()),
                "optional" => Some(optional()),
                "authenticated" => Some(authenticated()),
                "deny" => Some(deny()),
                _ => None,
            };
            if let Some(level) = level {
                if parser.eat("(") {
                    parser.expect(")")?;
                }
                parser.end()?;
                return Ok(level);
            }
        }
        parser.restore(start);
        let requirement = parser.requirement()?;
        parser.end()?;
        Ok(requirement.into())
    }
}

/// The functions a requirement may call, for "did you mean" hints.
const FUNCTIONS: &[&str] = &[
    "role",
    "scope",
    "permission",
    "auth_method",
    "claim",
    "all",
    "any",
    "not",
    "param",
    "query",
    "header",
    "body",
    "subject",
];

struct Parser<'t> {
    text: &'t str,
    at: usize,
    /// How deeply `not`, parentheses and `all(`/`any(` nest here.
    depth: usize,
}

/// The deepest nesting a requirement may have: far beyond any real policy, far below what
/// would exhaust a thread's stack (a 2 MiB tokio worker included).
const MAX_DEPTH: usize = 64;

impl<'t> Parser<'t> {
    fn error(&self, at: usize, reason: impl Into<String>) -> ConfigError {
        ConfigError::InvalidRequirement {
            text: self.text.to_owned(),
            at,
            reason: reason.into(),
        }
    }

    fn rest(&self) -> &'t str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn save(&self) -> usize {
        self.at
    }

    fn restore(&mut self, at: usize) {
        self.at = at;
    }

    /// Consumes `token` (after spaces) if it comes next.
    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(token) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), ConfigError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.error(self.at, format!("expected `{token}`")))
        }
    }

    fn end(&mut self) -> Result<(), ConfigError> {
        self.skip_space();
        if self.rest().is_empty() {
            Ok(())
        } else {
            Err(self.error(
                self.at,
                "unexpected text; join requirements with `and` / `or`",
            ))
        }
    }

    /// An identifier: a letter or `_`, then letters, digits and `_`.
    fn word(&mut self) -> Option<&'t str> {
        self.skip_space();
        let rest = self.rest();
        let first = rest.chars().next()?;
        if !(first.is_ascii_alphabetic() || first == '_') {
            return None;
        }
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.at += len;
        Some(&rest[..len])
    }

    /// Consumes the keyword `keyword` if the next word is it.
    fn keyword(&mut self, keyword: &str) -> bool {
        let start = self.save();
        if self.word() == Some(keyword) {
            return true;
        }
        self.restore(start);
        false
    }

    fn requirement(&mut self) -> Result<Requirement, ConfigError> {
        let mut alternatives = vec![self.and_list()?];
        while self.keyword("or") {
            alternatives.push(self.and_list()?);
        }
        Ok(if alternatives.len() == 1 {
            alternatives.remove(0)
        } else {
            any(alternatives)
        })
    }

    fn and_list(&mut self) -> Result<Requirement, ConfigError> {
        let mut terms = vec![self.unary()?];
        while self.keyword("and") {
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            all(terms)
        })
    }

    fn unary(&mut self) -> Result<Requirement, ConfigError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(self.at, format!("nested more than {MAX_DEPTH} deep")));
        }
        self.depth += 1;
        let parsed = self.unary_within();
        self.depth -= 1;
        parsed
    }

    fn unary_within(&mut self) -> Result<Requirement, ConfigError> {
        if self.keyword("not") {
            return Ok(not(self.unary()?));
        }
        if self.eat("(") {
            let inner = self.requirement()?;
            self.expect(")")?;
            return Ok(inner);
        }
        self.call()
    }

    fn call(&mut self) -> Result<Requirement, ConfigError> {
        self.skip_space();
        let start = self.at;
        let Some(name) = self.word() else {
            return Err(self.error(start, "expected a requirement such as `role(\"admin\")`"));
        };
        if matches!(name, "public" | "optional" | "authenticated" | "deny") {
            return Err(self.error(
                start,
                format!("`{name}` is an access level: it stands alone, not in a requirement"),
            ));
        }
        if !self.eat("(") {
            return Err(self.error(self.at, format!("expected `(` after `{name}`")));
        }
        let requirement = match name {
            "role" => role(self.last_argument()?),
            "scope" => scope(self.last_argument()?),
            "permission" => permission(self.last_argument()?),
            "auth_method" => auth_method(self.last_argument()?),
            "claim" => {
                let path = self.argument()?;
                if !self.eat(",") {
                    return Err(self.error(
                        self.at,
                        "`claim(path)` alone is one of the caller's values: compare a \
                         request field with it (`param(\"id\") == claim(\"sub\")`) or give \
                         the value it must hold (`claim(\"tenant\", \"acme\")`)",
                    ));
                }
                let value = self.json()?;
                self.expect(")")?;
                claim(path, value)
            }
            "all" | "any" => {
                let mut terms = Vec::new();
                if !self.eat(")") {
                    loop {
                        terms.push(self.requirement()?);
                        if self.eat(")") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                if name == "all" {
                    all(terms)
                } else {
                    any(terms)
                }
            }
            "param" | "query" | "header" | "body" => {
                let argument = self.last_argument()?;
                let field = match name {
                    "param" => param(argument),
                    "query" => query(argument),
                    "header" => header(argument),
                    _ => body(argument),
                };
                self.comparison(field)?
            }
            "subject" => {
                return Err(self.error(
                    start,
                    "`subject()` is compared with a request field: `param(\"id\") == subject()`",
                ));
            }
            unknown => {
                let hint = crate::suggest::closest(unknown, FUNCTIONS.iter().copied())
                    .map(|near| format!(" (did you mean `{near}`?)"))
                    .unwrap_or_default();
                return Err(self.error(start, format!("unknown function `{unknown}`{hint}")));
            }
        };
        Ok(requirement)
    }

    /// `== caller` or `in caller`, after a field.
    fn comparison(&mut self, field: Field) -> Result<Requirement, ConfigError> {
        let equals = if self.eat("==") {
            true
        } else if self.keyword("in") {
            false
        } else {
            return Err(self.error(
                self.at,
                "a request field is compared with the caller: `== subject()`, \
                 `== claim(\"path\")` or `in claim(\"path\")`",
            ));
        };
        self.skip_space();
        let start = self.at;
        let caller = match self.word() {
            Some("subject") => {
                self.expect("(")?;
                self.expect(")")?;
                subject()
            }
            Some("claim") => {
                self.expect("(")?;
                Caller::claim(self.last_argument()?)
            }
            _ => {
                return Err(self.error(start, "expected `subject()` or `claim(\"path\")`"));
            }
        };
        Ok(if equals {
            field.equals(caller)
        } else {
            field.is_in(caller)
        })
    }

    /// An argument, then the closing `)`.
    fn last_argument(&mut self) -> Result<String, ConfigError> {
        let argument = self.argument()?;
        self.expect(")")?;
        Ok(argument)
    }

    /// A JSON string, or a bare word.
    fn argument(&mut self) -> Result<String, ConfigError> {
        self.skip_space();
        let start = self.at;
        if self.rest().starts_with('"') {
            return match self.json()? {
                Value::String(text) => Ok(text),
                _ => Err(self.error(start, "expected a string")),
            };
        }
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_.:*/+-@".contains(c)))
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(self.error(start, "expected a name: a JSON string or a bare word"));
        }
        self.at += len;
        Ok(rest[..len].to_owned())
    }

    /// A JSON value.
    fn json(&mut self) -> Result<Value, ConfigError> {
        self.skip_space();
        let start = self.at;
        let rest = self.rest();
        let (value, len) = if rest.starts_with(['"', '[', '{']) {
            // Delimited: serde_json finds the end itself.
            let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
            let value = values.next().and_then(Result::ok);
            (value, values.byte_offset())
        } else {
            // A number or literal ends where the argument list goes on.
            let len = rest
                .find(|c: char| c == ',' || c == ')' || c.is_whitespace())
                .unwrap_or(rest.len());
            (serde_json::from_str(&rest[..len]).ok(), len)
        };
        let value = value.ok_or_else(|| self.error(start, "expected a JSON value"))?;
        self.at += len;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::Caller;
    use proptest::arbitrary::any as arbitrary;
    use proptest::prelude::{
        Just, Strategy, TestCaseError, prop, prop_assert, prop_assert_eq, prop_oneof, proptest,
    };

    fn parse(text: &str) -> Requirement {
        text.parse()
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn reads_the_policy_file_form() {
        assert_eq!(
            parse(r#"role(admin) and (scope("orders:write") or permission("orders:*"))"#),
            all([
                role("admin"),
                any([scope("orders:write"), permission("orders:*")])
            ])
        );
        assert_eq!(
            parse(r#"param("id") == subject() or role("admin")"#),
            any([param("id").equals(subject()), role("admin")])
        );
        assert_eq!(
            parse(r#"param(tenant) == claim(tenant_id)"#),
            param("tenant").equals(Caller::claim("tenant_id"))
        );
        assert_eq!(
            parse(r#"body("/customer/id") in claim("customers") and not claim("banned", true)"#),
            all([
                body("/customer/id").is_in(Caller::claim("customers")),
                not(claim("banned", true))
            ])
        );
        // The combinator form reads the same.
        assert_eq!(
            parse(r#"all(role("a"), any(scope("b"), not(role("c"))))"#),
            parse(r#"role("a") and (scope("b") or not role("c"))"#)
        );
        assert_eq!(parse("claim(level, 3)"), claim("level", 3));
        assert_eq!(
            parse("claim(x, [1, \"a\"])"),
            claim("x", serde_json::json!([1, "a"]))
        );
        assert_eq!("public()".parse::<Access>().ok(), Some(public()));
        assert_eq!(" deny ".parse::<Access>().ok(), Some(deny()));
        assert_eq!(
            "role(admin)".parse::<Access>().ok(),
            Some(Access::from(role("admin")))
        );
        // `or` inside a name is not the keyword.
        assert_eq!(
            parse("role(order) and role(organ)"),
            all([role("order"), role("organ")])
        );
    }

    #[test]
    fn errors_say_where_and_why() {
        let cases = [
            ("rol(admin)", 0, "did you mean `role`"),
            ("role(admin) or", 14, "expected a requirement"),
            ("role(admin) role(x)", 12, "join requirements"),
            ("param(id) == sub()", 13, "expected `subject()`"),
            ("param(id)", 9, "compared with the caller"),
            ("claim(tenant)", 12, "alone is one of the caller's values"),
            ("subject()", 0, "compared with a request field"),
            ("role(admin) and public", 16, "access level"),
            ("claim(x, nope)", 9, "expected a JSON value"),
            ("(role(a)", 8, "expected `)`"),
        ];
        for (text, at, reason) in cases {
            match text.parse::<Requirement>() {
                Err(ConfigError::InvalidRequirement {
                    at: found,
                    reason: why,
                    ..
                }) => {
                    assert_eq!(found, at, "{text}: {why}");
                    assert!(why.contains(reason), "{text}: {why}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        for deep in [
            format!("{}role(a)", "not ".repeat(100_000)),
            format!("{}role(a){}", "(".repeat(100_000), ")".repeat(100_000)),
            format!("{}role(a){}", "all(".repeat(100_000), ")".repeat(100_000)),
        ] {
            match deep.parse::<Requirement>() {
                Err(ConfigError::InvalidRequirement { reason, .. }) => {
                    assert!(reason.contains("nested more than"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
        // Real policies are far shallower, and parse.
        let fine = format!("{}role(a){}", "(".repeat(40), ")".repeat(40));
        assert_eq!(parse(&fine), role("a"));
    }

    fn name() -> impl Strategy<Value = String> {
        // Quotes, backslashes, spaces, keywords and non-ASCII all survive the round trip.
        prop_oneof![
            "[a-z:*_.-]{1,12}",
            "\\PC{0,8}",
            Just("and".to_owned()),
            Just("a \"quoted\" \\ name".to_owned()),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            arbitrary::<i64>().prop_map(Value::from),
            (-1.0e9f64..1.0e9).prop_map(Value::from),
            arbitrary::<bool>().prop_map(Value::from),
            name().prop_map(Value::from),
            Just(Value::Null),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop::collection::vec(inner, 0..3).prop_map(Value::Array)
        })
    }

    fn caller() -> impl Strategy<Value = Caller> {
        prop_oneof![Just(subject()), name().prop_map(Caller::claim)]
    }

    fn atom() -> impl Strategy<Value = Requirement> {
        prop_oneof![
            name().prop_map(role),
            name().prop_map(scope),
            name().prop_map(permission),
            name().prop_map(auth_method),
            (name(), json_value()).prop_map(|(path, value)| claim(path, value)),
            (0..4u8, name(), caller(), arbitrary::<bool>()).prop_map(
                |(kind, name, caller, equals)| {
                    let field = match kind {
                        0 => param(name),
                        1 => query(name),
                        2 => header(name),
                        _ => body(name),
                    };
                    if equals {
                        field.equals(caller)
                    } else {
                        field.is_in(caller)
                    }
                }
            ),
        ]
    }

    fn requirement() -> impl Strategy<Value = Requirement> {
        atom().prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(all),
                prop::collection::vec(inner.clone(), 0..4).prop_map(any),
                inner.prop_map(not),
            ]
        })
    }

    proptest! {
        #[test]
        fn printed_requirements_parse_back_the_same(requirement in requirement()) {
            let text = requirement.to_string();
            let parsed: Requirement = text.parse().map_err(|error| {
                TestCaseError::fail(format!("{text}: {error}"))
            })?;
            prop_assert_eq!(&parsed, &requirement, "{}", text);
            let access = Access::from(requirement);
            prop_assert_eq!(access.to_string().parse::<Access>().ok(), Some(access));
        }

        #[test]
        fn any_text_parses_or_fails_cleanly(text in "\\PC{0,40}") {
            // Never a panic; an error points inside the text.
            if let Err(ConfigError::InvalidRequirement { at, .. }) = text.parse::<Requirement>() {
                prop_assert!(at <= text.len());
            }
        }
    }
}
