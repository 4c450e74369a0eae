//! Entry points for the cargo-fuzz targets in `fuzz/`, compiled only under `--cfg fuzzing`
//! (which cargo-fuzz sets). Not part of the public API: nothing here is stable.
//!
//! Each function is a thin wrapper that reaches a crate-private parser with bytes or text
//! and hands back plain values, so that the targets can state the properties that must
//! hold. Fixed tables (routes, issuer rules, validation rules) are built once per process.

#[cfg(any(feature = "api-key", feature = "bearer"))]
pub use self::credentials::*;

#[cfg(feature = "api-key")]
pub use self::api_key::*;

#[cfg(feature = "bearer")]
pub use self::jwt::*;

#[cfg(feature = "validate")]
pub use self::validate::*;

#[cfg(any(feature = "authz", feature = "validate"))]
pub use self::route::*;

#[cfg(feature = "shield")]
pub use self::forwarded::*;

#[cfg(feature = "api-key")]
mod api_key {
    use crate::api_key::{FormatError, KeyFormat};

    /// [`KeyFormat::parse`]: the key's `(id, secret)`, or `"malformed"`/`"bad_checksum"`.
    pub fn api_key_parse<'a>(
        format: &KeyFormat,
        key: &'a [u8],
    ) -> Result<(String, &'a [u8]), &'static str> {
        match format.parse(key) {
            Ok(parsed) => Ok((parsed.id.as_str().to_owned(), parsed.secret)),
            Err(FormatError::Malformed) => Err("malformed"),
            Err(FormatError::BadChecksum) => Err("bad_checksum"),
        }
    }
}

#[cfg(any(feature = "api-key", feature = "bearer"))]
mod credentials {
    use http::request::Parts;

    use crate::authenticate::credentials::{self, SchemeValue};

    /// [`credentials::scheme_value`]: `None` when the value is not `scheme`'s, `Some(Err(()))`
    /// when it names `scheme` but is malformed, `Some(Ok(token68))` otherwise.
    pub fn scheme_value<'a>(value: &'a [u8], scheme: &str) -> Option<Result<&'a str, ()>> {
        match credentials::scheme_value(value, scheme) {
            SchemeValue::Other => None,
            SchemeValue::Malformed => Some(Err(())),
            SchemeValue::Credentials(token) => Some(Ok(token)),
        }
    }

    /// [`credentials::names_scheme`].
    pub fn names_scheme(value: &[u8], scheme: &str) -> bool {
        credentials::names_scheme(value, scheme)
    }

    /// [`credentials::is_token68`].
    pub fn is_token68(bytes: &[u8]) -> bool {
        credentials::is_token68(bytes)
    }

    /// [`credentials::remove_scheme`].
    pub fn remove_scheme(request: &mut Parts, scheme: &str) {
        credentials::remove_scheme(request, scheme);
    }

    /// [`credentials::remove_query_parameter`].
    pub fn remove_query_parameter(request: &mut Parts, name: &str) {
        credentials::remove_query_parameter(request, name);
    }

    /// [`credentials::query_values`], collected.
    pub fn query_values(query: &str, name: &str) -> Vec<String> {
        credentials::query_values(query, name)
            .map(std::borrow::Cow::into_owned)
            .collect()
    }
}

#[cfg(feature = "bearer")]
mod jwt {
    use std::sync::OnceLock;
    use std::time::Duration;

    use jsonwebtoken::{Algorithm, EncodingKey};

    use crate::bearer::{BearerAuthenticator, IssuerRules, KeySet, VerificationKey};
    use crate::jwt::token::{Failure, parse as parse_token};

    /// The HMAC secret the targets sign with and the rules verify with.
    pub const JWT_SECRET: &[u8] = b"fuzzing-secret-of-at-least-32-bytes!";
    /// The `kid` of that key.
    pub const JWT_KID: &str = "k1";
    /// The only trusted issuer.
    pub const JWT_ISSUER: &str = "https://issuer.example";
    /// The only accepted audience.
    pub const JWT_AUDIENCE: &str = "api";
    /// "Now" for claim checks, in seconds since the epoch (2023-11-14), so runs repeat.
    pub const JWT_NOW: f64 = 1_700_000_000.0;
    /// The clock-skew leeway of the rules, in seconds.
    pub const JWT_LEEWAY: f64 = 60.0;
    /// The maximum token age of the strict rules, in seconds.
    pub const JWT_MAX_AGE: f64 = 3_600.0;
    /// The roles claim path of the strict rules.
    pub const JWT_ROLES_CLAIM: &str = "realm_access.roles";

    /// What a token that passed every check yields.
    #[derive(Debug)]
    pub struct VerifiedToken {
        /// `sub`, or `client_id` without one.
        pub subject: String,
        /// The words of `scope`, then those of `scp`.
        pub scopes: Vec<String>,
        /// The roles claim's values (strict rules only).
        pub roles: Vec<String>,
    }

    struct Fixture {
        keys: KeySet,
        /// Defaults only.
        plain: IssuerRules,
        /// With a roles claim, a maximum age, and `typ: JWT` accepted.
        strict: IssuerRules,
        authenticator: BearerAuthenticator,
    }

    fn fixture() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            crate::bearer::select_crypto_backend();
            let key = || {
                VerificationKey::from_hmac_secret(JWT_SECRET)
                    .and_then(|key| key.with_kid(JWT_KID))
                    .expect("fuzzing key")
            };
            let keys = || KeySet::new([key()]).expect("fuzzing key set");
            let leeway = Duration::from_secs_f64(JWT_LEEWAY);
            let plain = IssuerRules::builder(JWT_ISSUER)
                .audience(JWT_AUDIENCE)
                .keys(keys())
                .leeway(leeway)
                .build()
                .expect("fuzzing rules");
            let strict = IssuerRules::builder(JWT_ISSUER)
                .audience(JWT_AUDIENCE)
                .audience("other-api")
                .keys(keys())
                .leeway(leeway)
                .max_token_age(Duration::from_secs_f64(JWT_MAX_AGE))
                .roles_claim(JWT_ROLES_CLAIM)
                .insecure_allow_jwt_typ()
                .build()
                .expect("fuzzing rules");
            let authenticator = BearerAuthenticator::builder()
                .issuer(plain.clone())
                .no_cache()
                .build()
                .expect("fuzzing authenticator");
            Fixture {
                keys: keys(),
                plain,
                strict,
                authenticator,
            }
        })
    }

    /// Parses `token` strictly and, when it parses, checks it against the plain (`strict =
    /// false`) or strict rules at [`JWT_NOW`]. `Err` carries the failure code.
    pub fn jwt_check(token: &str, strict: bool) -> Result<VerifiedToken, &'static str> {
        let fixture = fixture();
        let rules = if strict {
            &fixture.strict
        } else {
            &fixture.plain
        };
        let unverified = parse_token(token).map_err(Failure::code)?;
        let verified = rules
            .verify(unverified, &fixture.keys, JWT_NOW)
            .map_err(Failure::code)?;
        Ok(VerifiedToken {
            subject: verified.subject,
            scopes: verified.scopes,
            roles: verified.roles,
        })
    }

    /// Whether the public [`BearerAuthenticator::verify`] (plain rules, real clock, no cache)
    /// accepts `token`.
    pub fn jwt_authenticate(token: &str) -> bool {
        fixture().authenticator.verify(token).is_ok()
    }

    /// Signs `header` and `claims` (JSON text, used byte for byte) with [`JWT_SECRET`] under
    /// `alg`, as a compact JWS.
    pub fn jwt_sign(header: &[u8], claims: &[u8], alg: Algorithm) -> String {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;

        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &EncodingKey::from_secret(JWT_SECRET),
            alg,
        )
        .expect("HMAC signing does not fail");
        format!("{signing_input}.{signature}")
    }
}

#[cfg(feature = "validate")]
mod validate {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::OnceLock;
    use std::task::{Context, Poll, Waker};

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::Empty;
    use serde_json::json;
    use tower_layer::Layer;
    use tower_service::Service;

    use crate::validate::{JsonLimits, RequestSchema, ValidateLayer, ValidationRules};
    use crate::validate::{RequestBody, parse_json};

    /// The result of parsing with the JSON limits: the value, or `Err((keyword, message))`
    /// naming the limit code (`json_syntax`, `json_too_deep`, …) and the message.
    pub type JsonParse = Result<serde_json::Value, (String, String)>;

    /// Parses `body` with `limits` in one pass, as the validation layer does.
    pub fn json_limits_parse(limits: &JsonLimits, body: &[u8]) -> JsonParse {
        parse_json(body, limits).map_err(|error| {
            let violation = error.to_violation();
            (
                violation.keyword().to_owned(),
                violation.message().to_owned(),
            )
        })
    }

    /// The service behind the validation layer: answers 200 at once.
    #[derive(Clone, Debug)]
    struct Answer;

    impl Service<Request<RequestBody<Empty<Bytes>>>> for Answer {
        type Response = Response<Empty<Bytes>>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<RequestBody<Empty<Bytes>>>) -> Self::Future {
            std::future::ready(Ok(Response::new(Empty::new())))
        }
    }

    fn rules() -> &'static ValidationRules {
        static RULES: OnceLock<ValidationRules> = OnceLock::new();
        RULES.get_or_init(|| {
            let query = json!({
                "type": "object",
                "properties": {
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                    "ratio": {"type": "number"},
                    "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}},
                    "ids": {"type": "array", "items": {"type": "integer"}},
                    "dry_run": {"type": "boolean"},
                    "name": {"type": "string", "pattern": "^[a-z]+$"}
                },
                "required": ["limit"],
                "additionalProperties": false
            });
            let path = json!({
                "type": "object",
                "properties": {"id": {"type": "integer"}},
                "required": ["id"]
            });
            ValidationRules::builder()
                .route(
                    "GET /items/{id}",
                    RequestSchema::new().query(query).path(path),
                )
                .build()
                .expect("fuzzing validation rules")
        })
    }

    /// Sends `GET /items/{id}?{query}` through the validation layer and returns the status,
    /// or `None` when that is not a valid request target. The route declares an integer
    /// `id`, and query parameters `limit` (integer, required), `ratio`, `tags`, `ids`,
    /// `dry_run`, `name`, no others.
    pub fn validate_query(id: &str, query: &str) -> Option<u16> {
        let request = Request::get(format!("/items/{id}?{query}"))
            .body(Empty::<Bytes>::new())
            .ok()?;
        let mut service = ValidateLayer::new(rules().clone()).layer(Answer);
        let future = pin!(service.call(request));
        match future.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(response)) => Some(response.status().as_u16()),
            Poll::Ready(Err(never)) => match never {},
            // A request without a body is decided at once.
            Poll::Pending => panic!("validation of a bodiless request did not finish at once"),
        }
    }
}

#[cfg(any(feature = "authz", feature = "validate"))]
mod route {
    use std::sync::OnceLock;

    use http::Method;

    use crate::route::RouteTable;

    /// The fixed table the route target matches against, in insertion order.
    pub const ROUTES: &[&str] = &[
        "GET /",
        "GET /orders",
        "POST|PUT /orders",
        "GET /orders/{id}",
        "* /orders/{id}",
        "GET /orders/{id}/items/{item}",
        "DELETE /orders/{id}/items/{item}",
        "GET /orders/new",
        "ANY /files/*rest",
        "GET /files/readme",
        "PATCH /users/{user}/keys/{key}",
        "GET /users/me",
    ];

    fn table() -> &'static RouteTable<usize> {
        static TABLE: OnceLock<RouteTable<usize>> = OnceLock::new();
        TABLE.get_or_init(|| {
            let mut table = RouteTable::default();
            for (index, rule) in ROUTES.iter().enumerate() {
                table.insert(rule, index).expect("fuzzing route table");
            }
            table
        })
    }

    /// Matches `method` (`None` when not a valid method) and `path`: the index in
    /// [`ROUTES`] and the path parameters, in order.
    pub fn route_match(method: &[u8], path: &str) -> Option<(usize, Vec<(String, String)>)> {
        let method = Method::from_bytes(method).ok()?;
        let matched = table().at(&method, path)?;
        let params = matched
            .params
            .iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Some((*matched.value, params))
    }
}

#[cfg(feature = "shield")]
mod forwarded {
    use std::net::IpAddr;
    use std::sync::OnceLock;

    use http::{HeaderMap, HeaderName, HeaderValue};

    use crate::shield::client_ip::{forwarded_for, walk, x_forwarded_for};
    use crate::shield::ip_rules::NetList;

    /// The trusted proxies of the target: `10.0.0.0/8` and `2001:db8:ffff::/48`.
    pub const FORWARDED_TRUSTED: [&str; 2] = ["10.0.0.0/8", "2001:db8:ffff::/48"];

    fn trusted() -> &'static NetList {
        static TRUSTED: OnceLock<NetList> = OnceLock::new();
        TRUSTED.get_or_init(|| NetList::parse(FORWARDED_TRUSTED).expect("trusted ranges"))
    }

    /// Whether `address` (normalised) is one of [`FORWARDED_TRUSTED`].
    pub fn forwarded_is_trusted(address: IpAddr) -> bool {
        trusted().contains(address.to_canonical())
    }

    /// The client a request from the trusted `peer` resolves to, with these header `lines`
    /// (`X-Forwarded-For` when `rfc7239` is false, else `Forwarded`; lines that are not valid
    /// header values are skipped): `Some(address)`, or `None` when it is unknown. Also gives
    /// each hop as the parser split it (raw bytes, from the right).
    pub fn forwarded_client(
        peer: IpAddr,
        rfc7239: bool,
        lines: &[&[u8]],
    ) -> (Option<IpAddr>, Vec<Vec<u8>>) {
        let name = if rfc7239 {
            http::header::FORWARDED
        } else {
            HeaderName::from_static("x-forwarded-for")
        };
        let mut headers = HeaderMap::new();
        for line in lines {
            if let Ok(value) = HeaderValue::from_bytes(line) {
                headers.append(name.clone(), value);
            }
        }
        let hops: Vec<Vec<u8>> = if rfc7239 {
            forwarded_for(&headers).map(<[u8]>::to_vec).collect()
        } else {
            x_forwarded_for(&headers).map(<[u8]>::to_vec).collect()
        };
        let client = walk(
            peer.to_canonical(),
            trusted(),
            hops.iter().map(Vec::as_slice),
        )
        .ok();
        (client, hops)
    }
}
