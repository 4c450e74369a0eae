//! What integration tests share: the outside programs they talk to ("peers"), made
//! available before they start ([`peers`]), the real identity provider ([`idp`]) and real
//! Redis servers ([`redis`]).
//!
//! Include it with `mod support;` from a test file in `tests/`.

#![allow(dead_code, unreachable_pub)] // Each test binary uses part of it.

#[cfg(feature = "cli")]
pub mod binary;
pub mod idp;
pub mod peers;
pub mod redis;
