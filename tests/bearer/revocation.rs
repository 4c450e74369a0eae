//! The revocation list: a revoked token is refused by its `jti`, cached or not; a list
//! that cannot answer makes the request 503.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use portcullis::bearer::{
    BearerAuthenticator, IssuerRules, MemoryRevocations, Revocation, RevokeFuture, StoreFuture,
    TokenRevocations,
};
use portcullis::{AuthOutcome, Authenticate, Reason};
use serde_json::json;

use crate::support::{AUDIENCE, ISSUER, claims, hs256, keys, mint};

fn with_list(list: Arc<dyn TokenRevocations>) -> BearerAuthenticator {
    BearerAuthenticator::builder()
        .issuer(
            IssuerRules::builder(ISSUER)
                .audience(AUDIENCE)
                .keys(keys())
                .build()
                .expect("rules"),
        )
        .revocations(list)
        .build()
        .expect("authenticator")
}

async fn outcome(authenticator: &BearerAuthenticator, token: &str) -> AuthOutcome {
    let (parts, ()) = http::Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .expect("request")
        .into_parts();
    authenticator.authenticate(&parts).await
}

fn refusal(outcome: AuthOutcome) -> (Reason, Option<&'static str>) {
    match outcome {
        AuthOutcome::Rejected(rejection) => (rejection.reason(), rejection.cause()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_revoked_token_is_refused_even_when_cached() {
    let list = Arc::new(MemoryRevocations::new());
    let authenticator = with_list(list.clone());
    let mut revoked = claims();
    revoked["jti"] = json!("token-1");
    let mut other = claims();
    other["jti"] = json!("token-2");
    let (revoked, other) = (mint(&hs256(), &revoked), mint(&hs256(), &other));

    // Accepted, and now in the verified-token cache.
    assert!(matches!(
        outcome(&authenticator, &revoked).await,
        AuthOutcome::Authenticated(_)
    ));
    list.revoke(
        ISSUER,
        "token-1",
        SystemTime::now() + Duration::from_secs(300),
    )
    .await
    .expect("revoked");
    assert_eq!(
        refusal(outcome(&authenticator, &revoked).await),
        (Reason::InvalidCredentials, Some("token_revoked"))
    );
    assert!(authenticator.verify(&revoked).is_err(), "verify agrees");
    // Another token of the same caller is not affected, nor is a token without `jti`.
    assert!(matches!(
        outcome(&authenticator, &other).await,
        AuthOutcome::Authenticated(_)
    ));
    assert!(matches!(
        outcome(&authenticator, &mint(&hs256(), &claims())).await,
        AuthOutcome::Authenticated(_)
    ));
}

/// A list whose backend is down: it never knows.
struct Down;

impl TokenRevocations for Down {
    fn check(&self, _issuer: &str, _jti: &str) -> StoreFuture<Revocation> {
        StoreFuture::new(async { Revocation::Unknown })
    }

    fn revoke<'a>(&'a self, _: &'a str, _: &'a str, _: SystemTime) -> RevokeFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn a_list_that_cannot_answer_makes_the_request_503() {
    let authenticator = with_list(Arc::new(Down));
    let mut with_jti = claims();
    with_jti["jti"] = json!("token-1");
    let token = mint(&hs256(), &with_jti);
    assert_eq!(
        refusal(outcome(&authenticator, &token).await),
        (Reason::Unavailable, Some("revocations_unavailable"))
    );
    // `verify` never waits: unavailable too.
    let refused = authenticator.verify(&token).expect_err("unavailable");
    assert_eq!(refused.reason(), Reason::Unavailable);
}
