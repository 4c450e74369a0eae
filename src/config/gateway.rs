//! From a policy file to a [`GatewaySecurityBuilder`]: its authenticators, rules,
//! validation and traffic protection.

use super::error::{PolicyError, PolicyErrors};
use super::file::PolicyFile;
use super::policy::CheckedPolicy;
use super::traffic::TrafficState;
use crate::GatewaySecurityLayer;
use crate::gateway::GatewaySecurityBuilder;

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
        self.gateway_with(&TrafficState::new())
    }

    /// [`gateway`](Self::gateway), with the `traffic` section's counters (rate-limit
    /// buckets, brute-force counts and blocks) in `traffic`: build every gateway of a
    /// service from one [`TrafficState`], and a reload keeps them.
    ///
    /// # Errors
    ///
    /// As [`gateway`](Self::gateway).
    pub fn gateway_with(
        &self,
        traffic: &TrafficState,
    ) -> Result<(GatewaySecurityBuilder, CheckedPolicy), PolicyErrors> {
        let checked = self.check()?;
        let mut builder = GatewaySecurityLayer::builder();
        let mut errors = Vec::new();
        if let Some(keys) = self
            .authenticate
            .as_ref()
            .and_then(|section| section.api_keys.as_ref())
        {
            #[cfg(all(feature = "api-key", feature = "redis"))]
            match self.redis_api_keys(keys) {
                Ok(authenticator) => builder = builder.authenticate(authenticator),
                Err((place, message)) => errors.push(PolicyError::at(place, message)),
            }
            #[cfg(not(all(feature = "api-key", feature = "redis")))]
            {
                let _ = keys;
                errors.push(PolicyError::at(
                    "authenticate.api_keys",
                    "API keys on Redis need the `api-key` and `redis` features",
                ));
            }
        }
        let bearer = self
            .authenticate
            .as_ref()
            .map_or(&[][..], |section| &section.bearer[..]);
        for (index, issuer) in bearer.iter().enumerate() {
            let place = format!("authenticate.bearer[{index}]");
            #[cfg(feature = "bearer")]
            match bearer_authenticator(issuer) {
                Ok(authenticator) => builder = builder.authenticate(authenticator),
                Err(message) => errors.push(PolicyError::at(place, message)),
            }
            #[cfg(not(feature = "bearer"))]
            {
                let _ = issuer;
                errors.push(PolicyError::at(
                    place,
                    "bearer tokens need the `bearer` feature",
                ));
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
        Ok((builder, checked))
    }
}

#[cfg(feature = "bearer")]
fn bearer_authenticator(
    issuer: &super::file::BearerIssuer,
) -> Result<crate::bearer::BearerAuthenticator, String> {
    use crate::bearer::{BearerAuthenticator, IssuerRules};
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
    let rules = rules.build().map_err(|error| error.to_string())?;
    Ok(BearerAuthenticator::new(rules))
}

impl PolicyFile {
    /// The API-key authenticator of an `api_keys.redis` section: a `RedisKeyStore` behind a
    /// `CachedKeyStore`, its URL read from the environment or a file.
    #[cfg(all(feature = "api-key", feature = "redis"))]
    fn redis_api_keys(
        &self,
        keys: &super::file::ApiKeys,
    ) -> Result<crate::api_key::ApiKeyAuthenticator, (String, String)> {
        use crate::api_key::{ApiKeyAuthenticator, CachedKeyStore};
        use crate::redis::{RedisConnection, RedisKeyStore};
        let place = "authenticate.api_keys.redis";
        let redis = &keys.redis;
        let url = match (&redis.url_env, &redis.url_file) {
            (Some(name), None) => std::env::var(name).map_err(|_| {
                (
                    format!("{place}.url_env"),
                    format!("the environment variable `{name}` is not set (or not UTF-8)"),
                )
            })?,
            (None, Some(path)) => self
                .read(path)
                .map_err(|message| (format!("{place}.url_file"), message))?
                .trim()
                .to_owned(),
            _ => {
                return Err((
                    place.to_owned(),
                    "give exactly one of `url_env` and `url_file`: the URL may hold a \
                     password, so it is never written in the policy"
                        .to_owned(),
                ));
            }
        };
        let mut connection = RedisConnection::builder(url);
        if let Some(prefix) = &redis.prefix {
            connection = connection.prefix(prefix.as_str());
        }
        // The URL is a secret: the error never repeats it.
        let connection = connection.build().map_err(|_| {
            (
                place.to_owned(),
                "the Redis URL is not usable (a `redis://` or `rediss://` URL; plain text only \
                 to loopback)"
                    .to_owned(),
            )
        })?;
        let store = CachedKeyStore::builder(RedisKeyStore::new(connection))
            .build()
            .map_err(|error| (place.to_owned(), error.to_string()))?;
        Ok(ApiKeyAuthenticator::new(std::sync::Arc::new(store)))
    }
}
