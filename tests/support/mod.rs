//! What integration tests share: the outside programs they talk to ("peers"), made
//! available before they start ([`peers`]), and the real identity provider ([`idp`]).
//!
//! Include it with `mod support;` from a test file in `tests/`.

#![allow(dead_code, unreachable_pub)] // Each test binary uses part of it.

pub mod idp;
pub mod peers;
