//! `portcullis`: checks a policy file, explains its decisions, and serves it in front of an
//! HTTP service.
//!
//! ```text
//! portcullis check POLICY                       # every problem, the tests, the route table
//! portcullis explain POLICY --as WHO [--header 'NAME: VALUE']... [--body JSON] METHOD PATH
//! portcullis serve POLICY [--upstream URL] [--listen ADDR]
//! ```
//!
//! `WHO` is `anonymous` or an identity in YAML flow form:
//! `'{subject: vic, roles: [viewer], claims: {tenant_id: acme}}'`. The exit status is 0 when
//! the policy checks (or the explanation could be made), 1 when it does not, 2 for a usage
//! error.
//!
//! `serve` listens on `ADDR` (default: `$PORTCULLIS_ADDR`, else `127.0.0.1:8080`), prints
//! `listening on http://ADDR` as its first line, and forwards every request the policy lets
//! through to `URL`, else to the file's `upstream.url` (see `docs/config.md`, "`portcullis
//! serve`"), as the file's `upstream` section says (timeout, identity headers, identity
//! token, whose JWKS it answers itself, in front of the gateway). SIGHUP reloads the policy
//! file's gateway (a file that fails its checks or tests is refused and the old policy keeps
//! serving); the `upstream` section is read once, at start. SIGTERM or SIGINT stop it,
//! letting in-flight requests finish for up to 10 seconds.

use std::collections::BTreeMap;
use std::process::ExitCode;

use portcullis::authz::RouteRules;
use portcullis::config::{PolicyFile, TestCaller};
use portcullis::{AuthFuture, AuthOutcome, GatewaySecurityLayer, ReloadableLayer};

const USAGE: &str = "usage:
  portcullis check POLICY
  portcullis explain POLICY --as WHO [--header 'NAME: VALUE']... [--body JSON] METHOD PATH
  portcullis serve POLICY [--upstream URL] [--listen ADDR]

POLICY is a .yaml, .yml, .toml or .json file. WHO is `anonymous` or an identity such as
'{subject: vic, roles: [viewer]}'. PATH may carry a query string.
URL is an http:// URL, needed unless the policy's `upstream.url` gives one (URL wins);
ADDR defaults to $PORTCULLIS_ADDR, else 127.0.0.1:8080.";

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
        ["serve", policy, rest @ ..] => match Serve::parse(policy, rest) {
            Some(serve) => serve.run(),
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

/// What `serve` is asked to do.
struct Serve<'a> {
    policy: &'a str,
    upstream: Option<&'a str>,
    listen: Option<&'a str>,
}

/// How long in-flight requests may run on after SIGTERM or SIGINT.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl<'a> Serve<'a> {
    /// `--upstream URL [--listen ADDR]`, in any order.
    fn parse(policy: &'a str, mut arguments: &[&'a str]) -> Option<Self> {
        let (mut upstream, mut listen) = (None, None);
        loop {
            match arguments {
                ["--upstream", value, rest @ ..] => (upstream, arguments) = (Some(*value), rest),
                ["--listen", value, rest @ ..] => (listen, arguments) = (Some(*value), rest),
                [] => {
                    return Some(Self {
                        policy,
                        upstream,
                        listen,
                    });
                }
                _ => return None,
            }
        }
    }

    fn run(&self) -> ExitCode {
        let listen = match self.listen {
            Some(listen) => listen.to_owned(),
            None => std::env::var("PORTCULLIS_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into()),
        };
        let listen: std::net::SocketAddr = match listen.parse() {
            Ok(listen) => listen,
            Err(error) => {
                eprintln!("listen address {listen}: {error}");
                return ExitCode::from(2);
            }
        };
        if let Some(upstream) = self.upstream
            && let Err(error) = portcullis::proxy::Proxy::builder(upstream).build()
        {
            eprintln!("--upstream: {error}");
            return ExitCode::from(2);
        }
        let policy = match PolicyFile::from_file(self.policy) {
            Ok(policy) => policy,
            Err(errors) => {
                eprintln!("{}: {errors}", self.policy);
                return ExitCode::FAILURE;
            }
        };
        if self.upstream.is_none()
            && policy
                .upstream
                .as_ref()
                .is_none_or(|section| section.url.is_none())
        {
            eprintln!(
                "{}: no upstream: give `--upstream URL` or `upstream.url` in the policy\n{USAGE}",
                self.policy
            );
            return ExitCode::from(2);
        }
        // Built once: the `upstream` section is not reloaded with the gateway.
        let proxy = match policy.proxy(self.upstream) {
            Ok(proxy) => proxy,
            Err(errors) => {
                eprintln!("{}: {errors}", self.policy);
                return ExitCode::FAILURE;
            }
        };
        let gateway = match gateway(self.policy) {
            Ok(gateway) => gateway,
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::FAILURE;
            }
        };
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("cannot start the runtime: {error}");
                return ExitCode::FAILURE;
            }
        };
        let served = runtime.block_on(self.serve(listen, proxy, gateway));
        // Whatever still runs (a request past the grace period, a DNS lookup) is dropped.
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        }
    }

    async fn serve(
        &self,
        listen: std::net::SocketAddr,
        proxy: portcullis::proxy::Proxy,
        gateway: GatewaySecurityLayer,
    ) -> Result<(), String> {
        use std::future::IntoFuture;

        let reloadable = ReloadableLayer::new(gateway);
        #[cfg(unix)]
        reload_on_hangup(self.policy.to_owned(), reloadable.handle())?;
        let mut app = axum::Router::new();
        if let Some(token) = proxy.identity_token() {
            // The JWKS path, exactly, goes to the proxy without the gateway: the proxy
            // answers it itself, whatever the method, and never forwards it, so the policy
            // need not list it and nothing else skips the gateway.
            app = app.route_service(token.jwks_path(), proxy.clone());
        }
        let app = app.fallback_service(tower_layer::Layer::layer(&reloadable, proxy.clone()));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|error| format!("cannot listen on {listen}: {error}"))?;
        let bound = listener
            .local_addr()
            .map_err(|error| format!("cannot listen on {listen}: {error}"))?;
        // Listening for the stop signals before saying we listen: a supervisor may signal as
        // soon as it reads the line.
        let stop_signal = StopSignal::listen()?;
        // The first line: a caller that asked for port 0 reads the port here.
        println!("listening on http://{bound}");
        println!("forwarding to {}", proxy.upstream());
        if let Some(token) = proxy.identity_token() {
            println!(
                "identity token in `{}`, its key set at {} (kid {})",
                token.header(),
                token.jwks_path(),
                token.kid()
            );
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let server = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown({
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            }
        });
        tokio::spawn(async move {
            stop_signal.received().await;
            say(&format!(
                "stopping: in-flight requests have {SHUTDOWN_GRACE:?} to finish"
            ));
            let _ = stop.send(true);
        });
        let mut stopped = stopped;
        tokio::select! {
            served = server.into_future() => {
                served.map_err(|error| format!("serving: {error}"))
            }
            () = async {
                let _ = stopped.wait_for(|stopped| *stopped).await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => {
                Err(format!("requests still running after {SHUTDOWN_GRACE:?}; stopped anyway"))
            }
        }
    }
}

/// The gateway the policy file at `path` describes, after its checks and tests passed: its
/// authenticators (bearer-token issuers for now), rules and validation. A file without
/// authenticators gives a gateway whose callers are all anonymous: only `public` and
/// `optional` routes (and `unmatched: public`) let a request through.
fn gateway(path: &str) -> Result<GatewaySecurityLayer, String> {
    let policy = PolicyFile::from_file(path).map_err(|errors| format!("{path}: {errors}"))?;
    let (mut builder, _) = policy
        .gateway()
        .map_err(|errors| format!("{path}: {errors}"))?;
    let has_authenticators = policy
        .authenticate
        .as_ref()
        .is_some_and(|section| !section.bearer.is_empty() || section.api_keys.is_some());
    if !has_authenticators {
        builder =
            builder.authenticate(|_: &http::request::Parts| AuthFuture::ready(AuthOutcome::Absent));
    }
    builder.build().map_err(|error| format!("{path}: {error}"))
}

/// Reloads the policy file on each SIGHUP; a file that fails is refused, and the policy
/// being served stays.
#[cfg(unix)]
fn reload_on_hangup(path: String, handle: portcullis::ReloadHandle) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())
        .map_err(|error| format!("cannot listen for SIGHUP: {error}"))?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            // Reading the file, compiling its schemas and running its tests is blocking work.
            let (path_, handle_) = (path.clone(), handle.clone());
            let reloaded =
                tokio::task::spawn_blocking(move || handle_.reload(|| gateway(&path_))).await;
            match reloaded {
                Ok(Ok(generation)) => say(&format!("{path}: reloaded (generation {generation})")),
                Ok(Err(error)) => {
                    complain(&format!(
                        "reload refused, the old policy keeps serving: {error}"
                    ));
                }
                Err(_) => complain("reload failed; the old policy keeps serving"),
            }
        }
    });
    Ok(())
}

/// Prints a line on standard output; a closed output is no reason to stop serving.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Prints a line on standard error, likewise.
fn complain(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM: listened for from the moment it is made.
struct StopSignal {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignal {
    fn listen() -> Result<Self, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let failed = |error: std::io::Error| format!("cannot listen for signals: {error}");
            Ok(Self {
                interrupt: signal(SignalKind::interrupt()).map_err(failed)?,
                terminate: signal(SignalKind::terminate()).map_err(failed)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn received(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
