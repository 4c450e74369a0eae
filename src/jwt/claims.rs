//! Claim checks shared by every token profile (access tokens, introspection answers, and
//! next ID tokens and logout tokens): time claims with strict types and a range, audiences,
//! and reading scopes and roles out of the claims. One implementation of each.

use serde_json::{Map, Value};

use super::token::Failure;

/// The latest time a time claim may name: 9999-12-31T23:59:59Z.
const LATEST_TIME: f64 = 253_402_300_799.0;

/// A numeric time claim: absent is `None`; a JSON number from 0 to the end of year 9999 is
/// its value; another number is out of range; anything else (a string, a boolean, null)
/// is a type error.
pub(crate) fn time(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, Failure> {
    let seconds = match claims.get(name) {
        None => return Ok(None),
        Some(Value::Number(n)) => n.as_f64().ok_or(Failure::ClaimType)?,
        Some(_) => return Err(Failure::ClaimType),
    };
    if seconds.is_finite() && (0.0..=LATEST_TIME).contains(&seconds) {
        Ok(Some(seconds))
    } else {
        Err(Failure::TimeOutOfRange)
    }
}

/// Checks `aud` (a string, or an array of strings) against the accepted `audiences`: at
/// least one must be accepted, and every member must be a string.
pub(crate) fn check_audience(audiences: &[String], aud: Option<&Value>) -> Result<(), Failure> {
    let accepted = |aud: &str| audiences.iter().any(|ok| ok == aud);
    match aud {
        None => Err(Failure::MissingClaim),
        Some(Value::String(aud)) if accepted(aud) => Ok(()),
        Some(Value::String(_)) => Err(Failure::AudMismatch),
        Some(Value::Array(items)) => {
            let mut found = false;
            for item in items {
                found |= accepted(item.as_str().ok_or(Failure::ClaimType)?);
            }
            if found {
                Ok(())
            } else {
                Err(Failure::AudMismatch)
            }
        }
        Some(_) => Err(Failure::ClaimType),
    }
}

/// The roles at `path` (a dotted claim path, split): a string is one role, an array of
/// strings many; absent is none; anything else is a type error.
pub(crate) fn roles_at(
    claims: &Map<String, Value>,
    path: Option<&[String]>,
) -> Result<Vec<String>, Failure> {
    let mut roles = Vec::new();
    if let Some(path) = path {
        match claim_at(claims, path) {
            None => {}
            Some(Value::String(role)) => roles.push(role.clone()),
            Some(Value::Array(items)) => push_strings(items, &mut roles)?,
            Some(_) => return Err(Failure::ClaimType),
        }
    }
    Ok(roles)
}

pub(crate) fn push_words(text: &str, out: &mut Vec<String>) {
    out.extend(text.split(' ').filter(|w| !w.is_empty()).map(str::to_owned));
}

pub(crate) fn push_strings(items: &[Value], out: &mut Vec<String>) -> Result<(), Failure> {
    for item in items {
        out.push(item.as_str().ok_or(Failure::ClaimType)?.to_owned());
    }
    Ok(())
}

pub(crate) fn claim_at<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = claims.get(first)?;
    for segment in rest {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}
