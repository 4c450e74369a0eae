//! From a policy file to a [`GatewaySecurityBuilder`]: its authenticators, rules,
//! validation and traffic protection.

use std::sync::Arc;

use super::error::{PolicyError, PolicyErrors};
use super::file::PolicyFile;
use super::policy::CheckedPolicy;
use super::state::SharedState;
use crate::gateway::GatewaySecurityBuilder;
use crate::{Authenticate, GatewaySecurityLayer};

impl PolicyFile {
    /// Checks the policy (rules, validation, traffic, tests) and starts a gateway with
    /// everything the file says: its authenticators, in order, its rules, its validation and
    /// its traffic protection (shield and rate limits, their counters new: see
    /// [`gateway_with`](Self::gateway_with) to keep them across reloads). Add what a file
    /// cannot say yet (API-key stores, an observer) and
    /// [`build`](GatewaySecurityBuilder::build). A file without authenticators gives a
    /// builder without any: `build` then asks for one.
    ///
    /// # Errors
    ///
    /// Every problem [`check`](Self::check) finds, and every authenticator that cannot be
    /// built (`authenticate.bearer[0]: …`).
    pub fn gateway(&self) -> Result<(GatewaySecurityBuilder, CheckedPolicy), PolicyErrors> {
        self.gateway_with(&SharedState::new())
    }

    /// [`gateway`](Self::gateway), with the `traffic` section's counters (rate-limit
    /// buckets, brute-force counts and blocks) in `traffic`: build every gateway of a
    /// service from one [`SharedState`], and a reload keeps them.
    ///
    /// # Errors
    ///
    /// As [`gateway`](Self::gateway).
    pub fn gateway_with(
        &self,
        traffic: &SharedState,
    ) -> Result<(GatewaySecurityBuilder, CheckedPolicy), PolicyErrors> {
        let checked = self.check()?;
        let mut builder = GatewaySecurityLayer::builder();
        let mut errors = Vec::new();
        #[cfg(feature = "oidc")]
        let mut login = None;
        match self.authenticators_with(traffic) {
            Ok(authenticators) => {
                for authenticator in authenticators {
                    builder = builder.authenticate(authenticator);
                }
            }
            Err(mut problems) => errors.append(&mut problems.0),
        }
        if self
            .authenticate
            .as_ref()
            .is_some_and(|section| section.oidc.is_some())
        {
            #[cfg(feature = "oidc")]
            match self.login(traffic) {
                Ok(Some(built)) => {
                    builder = builder.login(built.oidc.clone());
                    login = Some(built);
                }
                Ok(None) => {}
                Err(mut problems) => errors.append(&mut problems),
            }
            #[cfg(not(feature = "oidc"))]
            {
                errors.push(PolicyError::at(
                    "authenticate.oidc",
                    "browser login needs the `oidc` feature",
                ));
            }
        }
        if let Some(rejection) = &self.rejection {
            match rejection.renderer() {
                Ok(renderer) => builder = builder.rejection_response(renderer),
                Err(error) => errors.push(error),
            }
        }
        if let Some(cors) = &self.cors {
            #[cfg(feature = "cors")]
            match cors.layer() {
                Ok(layer) => builder = builder.cors(layer),
                Err(mut problems) => errors.append(&mut problems),
            }
            #[cfg(not(feature = "cors"))]
            {
                errors.push(PolicyError::at("cors", "CORS needs the `cors` feature"));
                errors.append(&mut cors.problems());
            }
        }
        let layers = self
            .traffic
            .as_ref()
            .map(|section| section.build(traffic, &mut errors));
        if !errors.is_empty() {
            return Err(PolicyErrors(errors));
        }
        if let Some(layers) = layers {
            builder = layers.install(builder);
        }
        builder = builder.rules(checked.rules.clone());
        if let Some(validation) = &checked.validation {
            builder = builder.validate(validation.clone());
        }
        // The file is good: its login, if new, is the one later files must keep; without
        // one, the running login (if any) is gone with its routes.
        #[cfg(feature = "oidc")]
        match login {
            Some(login) => super::login::keep_login(traffic, login),
            None => super::login::forget_login(traffic),
        }
        Ok((builder, checked))
    }
}

impl PolicyFile {
    /// The authenticators the `authenticate` section names, built, in the order the gateway
    /// asks them: API keys, then bearer tokens (local JWTs, then introspection). For a
    /// gateway of your own beside the file's (an admin listener, say); [`gateway`](Self::gateway)
    /// adds them itself.
    ///
    /// # Errors
    ///
    /// Every authenticator that cannot be built, with its place; a secret that cannot be
    /// read; a section whose feature is off.
    pub fn authenticators(&self) -> Result<Vec<Arc<dyn Authenticate>>, PolicyErrors> {
        self.authenticators_with(&SharedState::new())
    }

    /// [`authenticators`](Self::authenticators), API keys kept in memory (`api_keys: {memory:
    /// {}}`) looked up in `state`'s store: the one every gateway built with `state` uses.
    ///
    /// # Errors
    ///
    /// As [`authenticators`](Self::authenticators).
    pub fn authenticators_with(
        &self,
        state: &SharedState,
    ) -> Result<Vec<Arc<dyn Authenticate>>, PolicyErrors> {
        // Without an authenticator's feature, nothing is ever pushed.
        #[cfg_attr(not(any(feature = "bearer", feature = "api-key")), allow(unused_mut))]
        let mut authenticators: Vec<Arc<dyn Authenticate>> = Vec::new();
        let mut errors = Vec::new();
        let section = self.authenticate.as_ref();
        if let Some(keys) = section.and_then(|section| section.api_keys.as_ref()) {
            match self.api_keys(keys, state) {
                Ok(authenticator) => authenticators.push(authenticator),
                Err(error) => errors.push(error),
            }
        }
        let issuers = section.map_or(&[][..], |section| &section.bearer[..]);
        let introspection = section.and_then(|section| section.introspection.as_ref());
        if !issuers.is_empty() || introspection.is_some() {
            #[cfg(feature = "bearer")]
            match self.bearer_authenticator(issuers, introspection) {
                Ok(authenticator) => authenticators.push(Arc::new(authenticator)),
                Err(mut problems) => errors.append(&mut problems),
            }
            #[cfg(not(feature = "bearer"))]
            {
                let _ = introspection;
                errors.push(PolicyError::at(
                    if issuers.is_empty() {
                        "authenticate.introspection"
                    } else {
                        "authenticate.bearer"
                    },
                    "bearer tokens need the `bearer` feature",
                ));
            }
        }
        if errors.is_empty() {
            Ok(authenticators)
        } else {
            Err(PolicyErrors(errors))
        }
    }
}

#[cfg(feature = "bearer")]
impl PolicyFile {
    /// The bearer-token authenticator: every issuer's JWTs checked locally, every other
    /// token introspected when the file names an endpoint.
    fn bearer_authenticator(
        &self,
        issuers: &[super::file::BearerIssuer],
        introspection: Option<&super::file::IntrospectionEndpoint>,
    ) -> Result<crate::bearer::BearerAuthenticator, Vec<PolicyError>> {
        let mut builder = crate::bearer::BearerAuthenticator::builder();
        let mut errors = Vec::new();
        for (index, issuer) in issuers.iter().enumerate() {
            match issuer_rules(issuer) {
                Ok(rules) => builder = builder.issuer(rules),
                Err(message) => {
                    errors.push(PolicyError::at(
                        format!("authenticate.bearer[{index}]"),
                        message,
                    ));
                }
            }
        }
        if let Some(endpoint) = introspection {
            match self.introspection(endpoint) {
                Ok(introspection) => builder = builder.introspection(introspection),
                Err(error) => errors.push(error),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        builder
            .build()
            .map_err(|error| vec![PolicyError::at("authenticate.bearer", error.to_string())])
    }

    /// The introspection client of an `introspection` section, its secret read from the
    /// environment or a file.
    fn introspection(
        &self,
        endpoint: &super::file::IntrospectionEndpoint,
    ) -> Result<crate::bearer::Introspection, PolicyError> {
        let place = "authenticate.introspection";
        let secret = self.secret(
            place,
            "client_secret",
            endpoint.client_secret_env.as_deref(),
            endpoint.client_secret_file.as_deref(),
        )?;
        let mut builder = crate::bearer::Introspection::builder(
            endpoint.url.as_str(),
            endpoint.client_id.as_str(),
            crate::secret::ClientSecret::from(secret.as_str()),
        );
        if endpoint.client_secret_post {
            builder = builder.client_secret_post();
        }
        if let Some(issuer) = &endpoint.issuer {
            builder = builder.issuer(issuer.as_str());
        }
        for audience in &endpoint.audiences {
            builder = builder.audience(audience.as_str());
        }
        if endpoint.insecure_skip_audience {
            builder = builder.insecure_skip_audience();
        }
        if let Some(path) = &endpoint.roles_claim {
            builder = builder.roles_claim(path.as_str());
        }
        builder
            .build()
            .map_err(|error| PolicyError::at(place, error.to_string()))
    }
}

/// The rules of one `bearer` issuer.
#[cfg(feature = "bearer")]
fn issuer_rules(issuer: &super::file::BearerIssuer) -> Result<crate::bearer::IssuerRules, String> {
    use crate::bearer::IssuerRules;
    let mut rules = IssuerRules::builder(issuer.issuer.as_str());
    match (issuer.discover, &issuer.jwks_url) {
        (true, None) => rules = rules.discover(),
        (false, Some(url)) => rules = rules.jwks_url(url.as_str()),
        _ => return Err("give exactly one of `discover: true` and `jwks_url`".to_owned()),
    }
    if issuer.audiences.is_empty() {
        return Err("`audiences` names at least one audience".to_owned());
    }
    for audience in &issuer.audiences {
        rules = rules.audience(audience.as_str());
    }
    if let Some(path) = &issuer.roles_claim {
        rules = rules.roles_claim(path.as_str());
    }
    rules.build().map_err(|error| error.to_string())
}

impl PolicyFile {
    /// The key store an `api_keys.redis` section names: a `RedisKeyStore` behind a
    /// `CachedKeyStore`, its URL read from the environment or a file. A new connection each
    /// call. For the key API ([`KeyAdminApi`](crate::api_key::KeyAdminApi)) beside the
    /// file's gateway; `None` when the file names no such store.
    ///
    /// # Errors
    ///
    /// The URL cannot be read, or is not a usable Redis URL (the error never repeats it).
    #[cfg(all(feature = "api-key", feature = "redis"))]
    pub fn key_store(
        &self,
    ) -> Result<
        Option<Arc<crate::api_key::CachedKeyStore<crate::redis::RedisKeyStore>>>,
        PolicyErrors,
    > {
        let Some(keys) = self
            .authenticate
            .as_ref()
            .and_then(|section| section.api_keys.as_ref())
        else {
            return Ok(None);
        };
        let Some(redis) = &keys.redis else {
            return Ok(None);
        };
        self.redis_key_store(redis)
            .map(|store| Some(Arc::new(store)))
            .map_err(|(place, message)| PolicyError::at(place, message).into())
    }

    /// The API-key authenticator of an `api_keys` section: on Redis, or in `state`.
    fn api_keys(
        &self,
        keys: &super::file::ApiKeys,
        state: &SharedState,
    ) -> Result<Arc<dyn Authenticate>, PolicyError> {
        let place = "authenticate.api_keys";
        match (&keys.redis, &keys.memory) {
            (Some(redis), None) => {
                #[cfg(all(feature = "api-key", feature = "redis"))]
                {
                    let _ = state;
                    let store = self
                        .redis_key_store(redis)
                        .map_err(|(place, message)| PolicyError::at(place, message))?;
                    Ok(Arc::new(crate::api_key::ApiKeyAuthenticator::new(
                        Arc::new(store),
                    )))
                }
                #[cfg(not(all(feature = "api-key", feature = "redis")))]
                {
                    let _ = (redis, state);
                    Err(PolicyError::at(
                        format!("{place}.redis"),
                        "API keys on Redis need the `api-key` and `redis` features",
                    ))
                }
            }
            (None, Some(_)) => {
                #[cfg(feature = "api-key")]
                {
                    Ok(Arc::new(crate::api_key::ApiKeyAuthenticator::new(
                        state.memory_key_store(),
                    )))
                }
                #[cfg(not(feature = "api-key"))]
                {
                    let _ = state;
                    Err(PolicyError::at(
                        format!("{place}.memory"),
                        "API keys need the `api-key` feature",
                    ))
                }
            }
            _ => Err(PolicyError::at(
                place,
                "give exactly one of `redis` and `memory`",
            )),
        }
    }

    #[cfg(all(feature = "api-key", feature = "redis"))]
    fn redis_key_store(
        &self,
        redis: &super::file::RedisStore,
    ) -> Result<crate::api_key::CachedKeyStore<crate::redis::RedisKeyStore>, (String, String)> {
        use crate::api_key::CachedKeyStore;
        use crate::redis::RedisKeyStore;
        let place = "authenticate.api_keys.redis";
        let connection = self
            .redis_connection(place, redis)
            .map_err(|error| (error.place, error.message))?;
        CachedKeyStore::builder(RedisKeyStore::new(connection))
            .build()
            .map_err(|error| (place.to_owned(), error.to_string()))
    }
}

#[cfg(all(feature = "redis", any(feature = "api-key", feature = "oidc")))]
impl PolicyFile {
    /// A connection to the Redis a section at `place` names, its URL read from the
    /// environment or a file; errors never repeat the URL.
    pub(crate) fn redis_connection(
        &self,
        place: &str,
        redis: &super::file::RedisStore,
    ) -> Result<crate::redis::RedisConnection, PolicyError> {
        let url = self.secret(
            place,
            "url",
            redis.url_env.as_deref(),
            redis.url_file.as_deref(),
        )?;
        let mut connection = crate::redis::RedisConnection::builder(url.as_str());
        if let Some(prefix) = &redis.prefix {
            connection = connection.prefix(prefix.as_str());
        }
        connection.build().map_err(|_| {
            PolicyError::at(
                place,
                "the Redis URL is not usable (a `redis://` or `rediss://` URL; plain text only \
                 to loopback)",
            )
        })
    }
}
