//! OpenID Connect relying-party tests: against the real provider in `tests/idp` with an
//! HTTP client and a cookie jar, against a hand-made provider for forged tokens, and one
//! login in a real headless Chromium.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::expect_used,
    clippy::unwrap_used
)]

mod chromium;
mod endings;
mod flow;
mod forged;
mod harness;
mod refresh;
#[path = "../support/mod.rs"]
mod support;
