//! `portcullis`: checks a policy file, explains its decisions, and serves it in front of an
//! HTTP service.
//!
//! ```text
//! portcullis check POLICY                       # every problem, the tests, the route table
//! portcullis explain POLICY --as WHO [--header 'NAME: VALUE']... [--body JSON] METHOD PATH
//! portcullis serve POLICY [--upstream URL] [--listen ADDR] [--admin ADDR [--admin-role ROLE]]
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
//! serving; rate-limit buckets, brute-force blocks and login sessions carry over to the new
//! one); the `upstream` section is read once, at start. SIGTERM or SIGINT stop it, letting
//! in-flight requests finish for up to 10 seconds.
//!
//! With `--admin ADDR`, a second listener serves `/ready`, `/metrics`, `POST /reload` and
//! the key API (see `admin.rs`), and prints `admin on http://ADDR` after the first line.

#[path = "portcullis/admin.rs"]
mod admin;
#[path = "portcullis/listen.rs"]
mod listen;

use std::collections::BTreeMap;
use std::process::ExitCode;

use portcullis::authz::RouteRules;
use portcullis::config::{PolicyFile, SharedState, TestCaller};
use portcullis::{AuthFuture, AuthOutcome, GatewaySecurityLayer, ReloadableLayer};

const USAGE: &str = "usage:
  portcullis check POLICY
  portcullis explain POLICY --as WHO [--header 'NAME: VALUE']... [--body JSON] METHOD PATH
  portcullis serve POLICY [--upstream URL] [--listen ADDR] [--admin ADDR [--admin-role ROLE]]
                   [--header-timeout SECS] [--max-connections N]

POLICY is a .yaml, .yml, .toml or .json file. WHO is `anonymous` or an identity such as
'{subject: vic, roles: [viewer]}'. PATH may carry a query string.
URL is an http:// URL, needed unless the policy's `upstream.url` gives one (URL wins);
--listen defaults to $PORTCULLIS_ADDR, else 127.0.0.1:8080.
--admin serves /ready, /metrics, POST /reload and /keys on its own address, for ROLE
(default admin). A client has --header-timeout seconds (1 to 3600, default 20) to send a request
head or between requests; at most --max-connections (1 to 1000000, default 4096) are open
at once. Logs (an audit event per decision) go to standard error: PORTCULLIS_LOG filters
them (default info), PORTCULLIS_LOG_FORMAT=json writes JSON lines.";

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

/// The effective route table: method, path, what is validated, the rate limits that count
/// its requests, who may call it.
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
    let limits = |rule: Option<&str>| -> String {
        let names = policy
            .traffic
            .as_ref()
            .map(|traffic| traffic.limits_on(rule))
            .unwrap_or_default();
        if names.is_empty() {
            "-".to_owned()
        } else {
            names.join(", ")
        }
    };
    let rows: Vec<[String; 5]> = rules
        .iter()
        .map(|(rule, access)| {
            let (method, path) = rule.trim().split_once(' ').unwrap_or(("*", rule));
            [
                method.to_owned(),
                path.trim().to_owned(),
                validated(rule),
                limits(Some(rule)),
                access.to_string(),
            ]
        })
        .chain(std::iter::once([
            "*".to_owned(),
            "(unmatched)".to_owned(),
            "-".to_owned(),
            limits(None),
            rules.unmatched().to_string(),
        ]))
        .collect();
    let titles = ["METHOD", "PATH", "VALIDATED", "LIMITS", "WHO MAY CALL"];
    let widths: Vec<usize> = (0..4)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain(std::iter::once(titles[column].len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |row: [&str; 5]| {
        let [method, path, validated, limits, who] = row;
        println!(
            "{method:w0$}  {path:w1$}  {validated:w2$}  {limits:w3$}  {who}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
    };
    line(titles);
    for [method, path, validated, limits, who] in &rows {
        line([method, path, validated, limits, who]);
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
    admin: Option<&'a str>,
    admin_role: Option<&'a str>,
    limits: listen::Limits,
}

/// How long in-flight requests may run on after SIGTERM or SIGINT.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

impl<'a> Serve<'a> {
    /// `--upstream URL [--listen ADDR] [--admin ADDR] [--admin-role ROLE]
    /// [--header-timeout SECS] [--max-connections N]`, in any order.
    fn parse(policy: &'a str, mut arguments: &[&'a str]) -> Option<Self> {
        let (mut upstream, mut listen, mut admin, mut admin_role) = (None, None, None, None);
        let mut limits = listen::Limits::default();
        loop {
            match arguments {
                ["--header-timeout", value, rest @ ..] => {
                    let seconds = value
                        .parse::<u64>()
                        .ok()
                        .filter(|seconds| (1..=3600).contains(seconds))?;
                    limits.header_timeout = std::time::Duration::from_secs(seconds);
                    arguments = rest;
                }
                ["--max-connections", value, rest @ ..] => {
                    limits.max_connections = value
                        .parse()
                        .ok()
                        .filter(|cap| (1..=1_000_000).contains(cap))?;
                    arguments = rest;
                }
                ["--upstream", value, rest @ ..] => (upstream, arguments) = (Some(*value), rest),
                ["--listen", value, rest @ ..] => (listen, arguments) = (Some(*value), rest),
                ["--admin", value, rest @ ..] => (admin, arguments) = (Some(*value), rest),
                ["--admin-role", value, rest @ ..] => {
                    (admin_role, arguments) = (Some(*value), rest);
                }
                [] => {
                    // A role without a listener is a mistake worth saying.
                    if admin.is_none() && admin_role.is_some() {
                        return None;
                    }
                    return Some(Self {
                        policy,
                        upstream,
                        listen,
                        admin,
                        admin_role,
                        limits,
                    });
                }
                _ => return None,
            }
        }
    }

    fn run(&self) -> ExitCode {
        if let Err(error) = log_to_stderr() {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
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
        let admin = match self.admin.map(str::parse::<std::net::SocketAddr>) {
            None => None,
            Some(Ok(listen)) => Some(admin::AdminSettings {
                listen,
                role: self.admin_role.unwrap_or("admin").to_owned(),
            }),
            Some(Err(error)) => {
                eprintln!("--admin {}: {error}", self.admin.unwrap_or_default());
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
        // The rate-limit buckets and brute-force blocks, kept across reloads.
        let traffic = SharedState::new();
        // Built inside the runtime, so that the issuers' keys start loading now.
        // The file read once at start: the proxy, this gateway and the admin listener.
        let gateway = match runtime.block_on(async { gateway_of(&policy, self.policy, &traffic) }) {
            Ok(gateway) => gateway,
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::FAILURE;
            }
        };
        let served = runtime.block_on(self.serve(listen, admin, proxy, gateway, traffic, policy));
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
        admin: Option<admin::AdminSettings>,
        proxy: portcullis::proxy::Proxy,
        gateway: GatewaySecurityLayer,
        traffic: SharedState,
        policy: PolicyFile,
    ) -> Result<(), String> {
        let started = std::sync::Arc::new(policy.upstream.clone());
        let reloadable = ReloadableLayer::new(gateway);
        let serving = reloadable.handle();
        let state = traffic.clone();
        let reload: admin::Reload = {
            let (path, handle) = (self.policy.to_owned(), reloadable.handle());
            // One reload at a time (SIGHUP and `POST /reload` alike): the file read last is
            // the one served.
            let one_at_a_time = std::sync::Arc::new(tokio::sync::Mutex::new(()));
            std::sync::Arc::new(move || {
                let (path, handle, traffic) = (path.clone(), handle.clone(), traffic.clone());
                let started = started.clone();
                let one_at_a_time = one_at_a_time.clone();
                // A task of its own: a `POST /reload` whose client goes away does not cut it
                // short (and let the next one run beside it).
                let task = tokio::spawn(async move {
                    let _turn = one_at_a_time.lock().await;
                    reload(path, handle, traffic, started).await
                });
                Box::pin(async move {
                    task.await.unwrap_or_else(|_| {
                        Err("the reload failed; the old policy keeps serving".into())
                    })
                })
            })
        };
        #[cfg(unix)]
        reload_on_hangup(reload.clone())?;
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
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let admin = match admin {
            Some(settings) => Some(
                self.admin_listener(&settings, serving, reload, &state, &policy)
                    .await?,
            ),
            None => None,
        };
        // The first line: a caller that asked for port 0 reads the port here.
        println!("listening on http://{bound}");
        if let Some(admin) = &admin {
            println!("admin on http://{}", admin.bound);
            if let Some(key) = &admin.first_key {
                println!("admin key (shown once; keys live in memory): {key}");
            }
        }
        println!("forwarding to {}", proxy.upstream());
        if let Some(token) = proxy.identity_token() {
            println!(
                "identity token in `{}`, its key set at {} (kid {})",
                token.header(),
                token.jwks_path(),
                token.kid()
            );
        }
        if let Some(admin) = admin {
            let stopped = stopped.clone();
            tokio::spawn(async move {
                let limits = listen::Limits::default();
                let AdminListener {
                    listener, router, ..
                } = admin;
                if let Err(error) =
                    listen::serve(listener, router, limits, stopped, SHUTDOWN_GRACE).await
                {
                    complain(&format!("admin listener: {error}"));
                }
            });
        }
        tokio::spawn(async move {
            stop_signal.received().await;
            say(&format!(
                "stopping: in-flight requests have {SHUTDOWN_GRACE:?} to finish"
            ));
            let _ = stop.send(true);
        });
        listen::serve(listener, app, self.limits, stopped, SHUTDOWN_GRACE).await
    }
}

impl Serve<'_> {
    /// Binds the admin listener and builds its router (its own gateway over the policy
    /// file's authenticators); installs the Prometheus recorder `/metrics` reads.
    async fn admin_listener(
        &self,
        settings: &admin::AdminSettings,
        serving: portcullis::ReloadHandle,
        reload: admin::Reload,
        state: &SharedState,
        policy: &PolicyFile,
    ) -> Result<AdminListener, String> {
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(|error| format!("--admin: cannot record metrics: {error}"))?;
        // Histograms are summarised on upkeep; without it their samples would pile up.
        let upkeep = metrics.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
        let router = admin::router(policy, state, settings, serving, reload, metrics)
            .map_err(|error| format!("{}: admin listener: {error}", self.policy))?;
        let first_key = admin::first_admin_key(policy, state, &settings.role).await?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|error| format!("cannot listen on {}: {error}", settings.listen))?;
        let bound = listener
            .local_addr()
            .map_err(|error| format!("cannot listen on {}: {error}", settings.listen))?;
        Ok(AdminListener {
            bound,
            listener,
            router,
            first_key,
        })
    }
}

/// The admin listener, bound, before it serves.
struct AdminListener {
    bound: std::net::SocketAddr,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    /// With keys in memory and none yet, the first admin key, to print once.
    first_key: Option<String>,
}

/// The gateway the policy file at `path` describes, after its checks and tests passed: its
/// authenticators, rules, validation and traffic protection, the traffic counters in
/// `traffic` (one for the process, so that a reload keeps them). A file without
/// authenticators gives a gateway whose callers are all anonymous: only `public` and
/// `optional` routes (and `unmatched: public`) let a request through.
fn gateway(path: &str, traffic: &SharedState) -> Result<Gateway, String> {
    let policy = PolicyFile::from_file(path).map_err(|errors| format!("{path}: {errors}"))?;
    let layer = gateway_of(&policy, path, traffic)?;
    Ok(Gateway {
        layer,
        upstream: policy.upstream,
    })
}

/// The gateway of a policy read from `path`, as [`gateway`] builds it.
fn gateway_of(
    policy: &PolicyFile,
    path: &str,
    traffic: &SharedState,
) -> Result<GatewaySecurityLayer, String> {
    let (mut builder, _) = policy
        .gateway_with(traffic)
        .map_err(|errors| format!("{path}: {errors}"))?;
    let has_authenticators = policy
        .authenticate
        .as_ref()
        .is_some_and(|section| !section.is_empty());
    if !has_authenticators {
        builder =
            builder.authenticate(|_: &http::request::Parts| AuthFuture::ready(AuthOutcome::Absent));
    }
    // Every decision is an audit event (see `log_to_stderr`) and counted (the admin
    // listener's `/metrics` shows the counts).
    let observer = (
        portcullis::observe::AuditLog::new(),
        portcullis::observe::MetricsObserver::new(),
    );
    builder
        .observer(std::sync::Arc::new(observer))
        .build()
        .map_err(|error| format!("{path}: {error}"))
}

/// A gateway built from the file, and the file's `upstream` section (which a reload does not
/// apply).
struct Gateway {
    layer: GatewaySecurityLayer,
    upstream: Option<portcullis::config::UpstreamSection>,
}

/// Reads the policy file at `path` again and, if it passes its checks and tests, serves it
/// from the next request on; what SIGHUP and the admin listener's `POST /reload` do.
async fn reload(
    path: String,
    handle: portcullis::ReloadHandle,
    traffic: SharedState,
    started: std::sync::Arc<Option<portcullis::config::UpstreamSection>>,
) -> Result<u64, String> {
    // Reading the file, compiling its schemas and running its tests is blocking work.
    let path_ = path.clone();
    let built = match tokio::task::spawn_blocking(move || gateway(&path_, &traffic)).await {
        Ok(built) => built,
        Err(_) => Err("reading the policy failed".to_owned()),
    };
    let gateway = match built {
        Ok(Gateway { layer, upstream }) => {
            if upstream != *started {
                complain(&format!(
                    "{path}: the `upstream` section changed; it applies at the next start"
                ));
            }
            layer
        }
        Err(error) => {
            complain(&format!(
                "reload refused, the old policy keeps serving: {error}"
            ));
            return Err(error);
        }
    };
    // The new authenticators fetch their keys now: give them a moment, so that the swap
    // does not turn away callers the old policy served (bounded; then it serves anyway).
    let ready = tokio::time::timeout(RELOAD_READY_WAIT, async {
        while gateway.ready().await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    if ready.await.is_err() {
        complain(&format!(
            "{path}: the new policy is not ready after {RELOAD_READY_WAIT:?}; serving it anyway"
        ));
    }
    let generation = handle.replace(gateway);
    say(&format!("{path}: reloaded (generation {generation})"));
    Ok(generation)
}

/// How long a reload waits for the new policy's keys and stores before swapping it in.
const RELOAD_READY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reloads the policy file on each SIGHUP; a file that fails is refused, and the policy
/// being served stays.
#[cfg(unix)]
fn reload_on_hangup(reload: admin::Reload) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())
        .map_err(|error| format!("cannot listen for SIGHUP: {error}"))?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            // Reported by `reload` itself.
            let _ = reload().await;
        }
    });
    Ok(())
}

/// The environment variable holding the log filter (`tracing-subscriber`'s `EnvFilter`
/// syntax), `info` when unset: one audit event per decision (target `portcullis::audit`),
/// key-API changes, reloads and warnings.
const LOG_FILTER: &str = "PORTCULLIS_LOG";
/// The environment variable choosing the log format: `json` for JSON lines, else text.
const LOG_FORMAT: &str = "PORTCULLIS_LOG_FORMAT";

/// Logs `serve`'s events to standard error, filtered and formatted as `PORTCULLIS_LOG` and
/// `PORTCULLIS_LOG_FORMAT` say.
fn log_to_stderr() -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var(LOG_FILTER) {
        Ok(filter) => EnvFilter::try_new(&filter)
            .map_err(|error| format!("{LOG_FILTER}={filter}: {error}"))?,
        Err(_) => EnvFilter::new("info"),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match std::env::var(LOG_FORMAT) {
        Ok(format) if format == "json" => logs.json().try_init(),
        Ok(format) if format == "text" => logs.with_ansi(false).try_init(),
        Err(std::env::VarError::NotPresent) => logs.with_ansi(false).try_init(),
        Ok(_) | Err(std::env::VarError::NotUnicode(_)) => {
            return Err(format!("{LOG_FORMAT}: `json` or `text`"));
        }
    };
    installed.map_err(|error| format!("cannot log: {error}"))
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
