//! Arbitrary input never panics and never authenticates.

use std::sync::OnceLock;

use http::Request;
use portcullis::bearer::BearerAuthenticator;
use portcullis::{AuthOutcome, Authenticate};
use proptest::prelude::*;

use crate::support::*;

fn shared() -> &'static BearerAuthenticator {
    static AUTHENTICATOR: OnceLock<BearerAuthenticator> = OnceLock::new();
    AUTHENTICATOR.get_or_init(authenticator)
}

/// Runs the authenticator on a request whose `Authorization` header is `value`.
fn outcome_for(value: &[u8]) -> Option<AuthOutcome> {
    let header = http::HeaderValue::from_bytes(value).ok()?;
    let (parts, ()) = Request::get("/")
        .header("authorization", header)
        .body(())
        .ok()?
        .into_parts();
    let future = shared().authenticate(&parts);
    Some(futures_ready(future))
}

/// Polls an already-complete authentication future.
fn futures_ready(mut future: portcullis::AuthFuture) -> AuthOutcome {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut future).poll(&mut cx) {
        Poll::Ready(outcome) => outcome,
        Poll::Pending => panic!("the bearer authenticator answers at once"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_strings_as_tokens(token in ".{0,400}") {
        prop_assert!(shared().verify(&token).is_err());
    }

    #[test]
    fn arbitrary_token_shaped_strings(
        parts in proptest::collection::vec("[A-Za-z0-9_=+/-]{0,120}", 0..5)
    ) {
        prop_assert!(shared().verify(&parts.join(".")).is_err());
    }

    #[test]
    fn arbitrary_json_in_a_token(header in "\\{.{0,80}\\}", payload in "\\{.{0,200}\\}") {
        let token = format!("{}.{}.{}", b64(&header), b64(&payload), b64("signature"));
        prop_assert!(shared().verify(&token).is_err());
    }

    #[test]
    fn arbitrary_bytes_as_headers(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut value = b"Bearer ".to_vec();
        value.extend_from_slice(&bytes);
        for candidate in [&bytes[..], &value[..]] {
            if let Some(outcome) = outcome_for(candidate) {
                prop_assert!(!matches!(outcome, AuthOutcome::Authenticated(_)));
            }
        }
    }

    #[test]
    fn mutated_valid_tokens(index in 0usize..2000, byte in any::<u8>()) {
        let token = mint(&es256(), &claims());
        let mut bytes = token.clone().into_bytes();
        let at = index % bytes.len();
        prop_assume!(bytes[at] != byte);
        bytes[at] = byte;
        if let Ok(mutated) = String::from_utf8(bytes) {
            prop_assert!(shared().verify(&mutated).is_err(), "{mutated}");
        }
    }
}
