//! What integration tests share: the outside programs they talk to ("peers"), made
//! available before they start ([`peers`]), the real identity provider ([`idp`]), real
//! Redis servers ([`redis`]), ports for peers told where to listen ([`ports`]), and a
//! bounded run of any other program ([`process`]).
//!
//! Include it with `mod support;` from a test file in `tests/`.

#![allow(dead_code, unreachable_pub)] // Each test binary uses part of it.

#[cfg(feature = "cli")]
pub mod binary;
pub mod idp;
pub mod peers;
pub mod ports;
pub mod process;
pub mod redis;
