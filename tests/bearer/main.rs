//! Bearer-token authentication tests: an axum router end to end, a table of forged tokens,
//! JWKS key filtering, and property tests over arbitrary input.

#![allow(missing_docs, unreachable_pub, clippy::expect_used)]

mod forged;
mod jwks;
mod properties;
mod revocation;
mod router;
mod support;
