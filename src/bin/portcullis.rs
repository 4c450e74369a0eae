//! `portcullis`: checks a policy file and explains its decisions.
//!
//! ```text
//! portcullis check POLICY                       # every problem, the tests, the route table
//! portcullis explain POLICY --as WHO [--header 'NAME: VALUE']... [--body JSON] METHOD PATH
//! ```
//!
//! `WHO` is `anonymous` or an identity in YAML flow form:
//! `'{subject: vic, roles: [viewer], claims: {tenant_id: acme}}'`. The exit status is 0 when
//! the policy checks (or the explanation could be made), 1 when it does not, 2 for a usage
//! error.

use std::collections::BTreeMap;
use std::process::ExitCode;

use portcullis::authz::RouteRules;
use portcullis::config::{PolicyFile, TestCaller};

const USAGE: &str = "usage:
  portcullis check POLICY
  portcullis explain POLICY --as WHO [--header 'NAME: VALUE']... [--body JSON] METHOD PATH

POLICY is a .yaml, .yml, .toml or .json file. WHO is `anonymous` or an identity such as
'{subject: vic, roles: [viewer]}'. PATH may carry a query string.";

fn main() -> ExitCode {
    let arguments: Vec<String> = match std::env::args_os()
        .skip(1)
        .map(|argument| argument.into_string())
        .collect::<Result<_, _>>()
    {
        Ok(arguments) => arguments,
        Err(_) => {
            eprintln!("arguments must be UTF-8\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    match arguments.as_slice() {
        ["check", policy] => check(policy),
        ["explain", policy, rest @ ..] => match Request::parse(rest) {
            Some(request) => explain(policy, &request),
            None => {
                eprintln!("{USAGE}");
                ExitCode::from(2)
            }
        },
        ["--help" | "-h" | "help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// What `explain` is asked about.
struct Request<'a> {
    who: &'a str,
    headers: Vec<&'a str>,
    body: Option<&'a str>,
    method: &'a str,
    target: &'a str,
}

impl<'a> Request<'a> {
    /// `--as WHO [--header H]... [--body JSON] METHOD PATH`, options in any order.
    fn parse(mut arguments: &[&'a str]) -> Option<Self> {
        let (mut who, mut headers, mut body) = (None, Vec::new(), None);
        loop {
            match arguments {
                ["--as", value, rest @ ..] => (who, arguments) = (Some(*value), rest),
                ["--header", value, rest @ ..] => {
                    headers.push(*value);
                    arguments = rest;
                }
                ["--body", value, rest @ ..] => (body, arguments) = (Some(*value), rest),
                [method, target] => {
                    return Some(Self {
                        who: who?,
                        headers,
                        body,
                        method,
                        target,
                    });
                }
                _ => return None,
            }
        }
    }
}

/// Checks the policy, runs its tests, and prints the route table.
fn check(path: &str) -> ExitCode {
    let checked = PolicyFile::from_file(path)
        .and_then(|policy| policy.check().map(|checked| (policy, checked)));
    let (policy, checked) = match checked {
        Ok(checked) => checked,
        Err(errors) => {
            eprintln!("{path}: {errors}");
            return ExitCode::FAILURE;
        }
    };
    print_table(&checked.rules, &policy);
    println!();
    println!(
        "{path}: ok ({} rules, {} tests passed)",
        checked.rules.iter().count(),
        checked.tests
    );
    ExitCode::SUCCESS
}

/// The effective route table: method, path, who may call it, what is validated.
fn print_table(rules: &RouteRules, policy: &PolicyFile) {
    let validated = |rule: &str| -> String {
        let section = policy.validate.as_ref();
        let parts: Vec<&str> = section
            .into_iter()
            .flat_map(|section| &section.routes)
            .filter(|route| route.route.trim() == rule.trim())
            .flat_map(|route| {
                [
                    ("body", route.body.is_some() || route.body_file.is_some()),
                    ("query", route.query.is_some() || route.query_file.is_some()),
                    ("path", route.path.is_some() || route.path_file.is_some()),
                    (
                        "headers",
                        route.headers.is_some() || route.headers_file.is_some(),
                    ),
                ]
            })
            .filter_map(|(part, given)| given.then_some(part))
            .collect();
        match (
            parts.is_empty(),
            section.and_then(|section| section.openapi.as_ref()),
        ) {
            (false, _) => parts.join(", "),
            (true, Some(_)) => "(openapi)".to_owned(),
            (true, None) => "-".to_owned(),
        }
    };
    let rows: Vec<[String; 4]> = rules
        .iter()
        .map(|(rule, access)| {
            let (method, path) = rule.trim().split_once(' ').unwrap_or(("*", rule));
            [
                method.to_owned(),
                path.trim().to_owned(),
                validated(rule),
                access.to_string(),
            ]
        })
        .chain(std::iter::once([
            "*".to_owned(),
            "(unmatched)".to_owned(),
            "-".to_owned(),
            rules.unmatched().to_string(),
        ]))
        .collect();
    let titles = ["METHOD", "PATH", "VALIDATED", "WHO MAY CALL"];
    let widths: Vec<usize> = (0..3)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain(std::iter::once(titles[column].len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |row: [&str; 4]| {
        let [method, path, validated, who] = row;
        println!(
            "{method:w0$}  {path:w1$}  {validated:w2$}  {who}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    };
    line(titles);
    for [method, path, validated, who] in &rows {
        line([method, path, validated, who]);
    }
}

/// Explains the decision for one request.
fn explain(path: &str, asked: &Request<'_>) -> ExitCode {
    let caller: TestCaller = match serde_yaml_ng::from_str(asked.who) {
        Ok(caller) => caller,
        Err(error) => {
            eprintln!(
                "--as {}: not `anonymous` or an identity: {error}",
                asked.who
            );
            return ExitCode::from(2);
        }
    };
    let mut headers = BTreeMap::new();
    for header in &asked.headers {
        let Some((name, value)) = header.split_once(':') else {
            eprintln!("--header {header}: expected `NAME: VALUE`");
            return ExitCode::from(2);
        };
        headers.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    let body = match asked
        .body
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()
    {
        Ok(body) => body,
        Err(error) => {
            eprintln!("--body: not JSON: {error}");
            return ExitCode::from(2);
        }
    };
    let built = PolicyFile::from_file(path).and_then(|policy| {
        let rules = policy.rules()?;
        Ok((rules, policy.validation()?))
    });
    let (rules, validation) = match built {
        Ok(built) => built,
        Err(errors) => {
            eprintln!("{path}: {errors}");
            return ExitCode::FAILURE;
        }
    };
    let request = format!("{} {}", asked.method, asked.target);
    match PolicyFile::explain(
        &rules,
        validation.as_ref(),
        &caller,
        &request,
        &headers,
        body.as_ref(),
    ) {
        Ok(explained) => {
            let decision = match explained.reason {
                None => "allowed (200)".to_owned(),
                Some(reason) => format!("refused: {} {reason}", explained.status),
            };
            println!("{request}: {decision}");
            println!("rule: {}", explained.rule);
            println!("requires: {}", explained.requires);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(2)
        }
    }
}
