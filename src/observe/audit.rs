//! [`AuditLog`]: one structured `tracing` event per decision, with a stable schema.

use std::time::SystemTime;

use super::{BlockEvent, Decision, Observe};
use crate::principal::{AuthMethod, Principal};
use crate::rejection::Reason;

/// The audit log: one `tracing` event per decision, at target `portcullis::audit`, level
/// `INFO`, with a stable schema (version 1), so that you route it where you like (a JSON
/// lines file, a log pipeline) with a `tracing` subscriber; `docs/monitoring.md` shows
/// how.
///
/// | field | example | |
/// |---|---|---|
/// | `audit_schema` | `1` | the schema version; fields are only ever added |
/// | `time` | `2026-11-30T14:03:07.123Z` | when the decision was made, UTC |
/// | `stage` | `authenticate` | `shield`, `rate_limit`, `authenticate`, `authorize`, `validate` |
/// | `decision` | `refused` | `allowed`, `refused`, `answered`, `would_refuse` |
/// | `reason` | `key_revoked` | the precise reason code (empty when allowed) |
/// | `status` | `401` | the refusal's status (0 when allowed) |
/// | `rule` | `GET /orders/{id}` | the matched rule, when the stage has one |
/// | `route` | `/orders/{id}` | the rule's route template (never the raw path) |
/// | `method` | `GET` | the request method |
/// | `client_ip` | `198.51.100.7` | from the shield, when installed |
/// | `subject` | `vera` | the caller, when known |
/// | `auth_method` | `api_key` | how the caller authenticated |
/// | `key_id` | `k_3f9a…` | the API key's public identifier (never the secret) |
/// | `limit` | `per-key` | the rate limit that refused |
/// | `latency_us` | `41` | how long the stage took to decide, in µs |
///
/// Block and unblock events go to the same target with `event = "block"` and the fields
/// `action`, `kind`, `source`, `failures`, `offences`, `duration_s`, `report_only`.
///
/// Absent values are empty strings or zero, so every event has every field. Never a
/// credential, a claim, a body or a path.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditLog;

impl AuditLog {
    /// An audit log.
    #[must_use]
    pub fn new() -> Self {
        Self
    }
}

impl Observe for AuditLog {
    fn decision(&self, d: &Decision<'_>) {
        let key_id = d
            .principal
            .map_or("", |principal| match principal.auth_method() {
                AuthMethod::ApiKey { key_id } => key_id,
                _ => "",
            });
        let rule = d.route.unwrap_or("");
        let route = rule.split_once(' ').map_or(rule, |(_, path)| path);
        tracing::info!(
            target: "portcullis::audit",
            audit_schema = 1u8,
            event = "decision",
            time = %rfc3339(SystemTime::now()),
            stage = d.stage.name(),
            decision = d.outcome.name(),
            reason = d.reason.map_or("", Reason::code),
            status = d.status.map_or(0, |status| status.as_u16()),
            rule,
            route,
            method = d.method.as_str(),
            client_ip = %d.client_ip().map(|ip| ip.to_string()).unwrap_or_default(),
            subject = d.principal.map_or("", Principal::subject),
            auth_method = d.principal.map_or("", |p| p.auth_method().name()),
            key_id,
            limit = d.limit.unwrap_or(""),
            latency_us = u64::try_from(d.elapsed().as_micros()).unwrap_or(u64::MAX),
            "decision"
        );
    }

    fn block(&self, event: &BlockEvent<'_>) {
        tracing::info!(
            target: "portcullis::audit",
            audit_schema = 1u8,
            event = "block",
            time = %rfc3339(SystemTime::now()),
            action = event.action.name(),
            kind = event.kind,
            source = event.source,
            reason = event.reason,
            failures = event.failures,
            offences = event.offences,
            duration_s = event.duration.as_secs(),
            report_only = event.report_only,
            "block"
        );
    }
}

/// `time` as RFC 3339 in UTC with milliseconds: `2026-11-30T14:03:07.123Z`.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs();
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since.subsec_millis()
    )
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_in_rfc3339() {
        let at = |seconds: u64, millis: u64| {
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(seconds * 1000 + millis))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_796_043_787, 123), "2026-11-30T13:03:07.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
    }
}
