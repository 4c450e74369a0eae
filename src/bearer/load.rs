//! Bounds on the load anonymous callers can put on an introspection endpoint: the call
//! budget (a token bucket) and the rate-limited warning sent while calls are refused.
//!
//! Both read [`tokio::time::Instant`], so tests drive them with tokio's paused clock.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket over outbound calls, kept as the time at which it would be full again
/// (the generic cell rate algorithm): `calls` back to back, then one per `per / calls`.
#[derive(Debug)]
pub(super) struct CallBudget {
    /// The time one call costs: `per / calls`.
    interval: Duration,
    /// How far ahead of now the bucket may be spent: `per`.
    window: Duration,
    /// When the bucket is full again; `None` until the first call (full).
    full_at: Mutex<Option<Instant>>,
}

impl CallBudget {
    /// A budget of `calls` per `per`, as a burst of `calls`. `None` when the budget cannot
    /// be kept: no calls, no time, or less than a nanosecond per call.
    pub(super) fn new(calls: u32, per: Duration) -> Option<Self> {
        if calls == 0 {
            return None;
        }
        let interval = per / calls;
        if interval.is_zero() {
            return None;
        }
        Some(Self {
            interval,
            window: interval * calls,
            full_at: Mutex::new(None),
        })
    }

    /// Spends one call at `now`, or says how long until one is available.
    pub(super) fn try_take(&self, now: Instant) -> Result<(), Duration> {
        let mut full_at = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        let from = full_at.map_or(now, |at| at.max(now));
        let Some(next) = from.checked_add(self.interval) else {
            return Err(self.interval);
        };
        let ahead = next.saturating_duration_since(now);
        if ahead > self.window {
            return Err(ahead - self.window);
        }
        *full_at = Some(next);
        Ok(())
    }
}

/// Why a new token was refused without a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Overload {
    /// Every concurrent-call permit is taken.
    Busy,
    /// The call budget is spent.
    OverBudget,
}

/// Refusals since the last warning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Refused {
    pub(super) busy: u64,
    pub(super) over_budget: u64,
}

/// Turns a flood of refusals into at most one warning per interval, carrying the counts
/// since the last one.
#[derive(Debug)]
pub(super) struct LoadWarning {
    interval: Duration,
    state: Mutex<WarningState>,
}

#[derive(Debug, Default)]
struct WarningState {
    last: Option<Instant>,
    refused: Refused,
}

impl LoadWarning {
    pub(super) fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(WarningState::default()),
        }
    }

    /// Notes one refusal at `now`; returns the counts to report when a warning is due.
    pub(super) fn note(&self, overload: Overload, now: Instant) -> Option<Refused> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match overload {
            Overload::Busy => state.refused.busy += 1,
            Overload::OverBudget => state.refused.over_budget += 1,
        }
        let due = state
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if !due {
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.refused))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_allows_a_burst_then_one_call_per_interval() {
        let budget = CallBudget::new(5, SECOND).expect("valid budget");
        for _ in 0..5 {
            assert_eq!(budget.try_take(Instant::now()), Ok(()));
        }
        // Spent: the next call is 200 ms away.
        assert_eq!(
            budget.try_take(Instant::now()),
            Err(Duration::from_millis(200))
        );
        tokio::time::advance(Duration::from_millis(199)).await;
        assert_eq!(
            budget.try_take(Instant::now()),
            Err(Duration::from_millis(1))
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(budget.try_take(Instant::now()), Ok(()));
        assert!(budget.try_take(Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_refills_to_its_burst_and_no_further() {
        let budget = CallBudget::new(3, SECOND).expect("valid budget");
        assert_eq!(budget.try_take(Instant::now()), Ok(()));
        // Idle for a long time: the bucket holds 3 calls again, not more.
        tokio::time::advance(Duration::from_secs(3600)).await;
        for _ in 0..3 {
            assert_eq!(budget.try_take(Instant::now()), Ok(()));
        }
        assert!(budget.try_take(Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn over_time_the_calls_stay_within_burst_plus_rate() {
        let budget = CallBudget::new(10, SECOND).expect("valid budget");
        let start = Instant::now();
        let mut allowed = 0_u64;
        // Try every millisecond for 5 s: 10 at once, then 10 a second.
        for _ in 0..5_000 {
            if budget.try_take(Instant::now()).is_ok() {
                allowed += 1;
            }
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        let elapsed = Instant::now().duration_since(start).as_secs_f64();
        assert!(allowed <= 10 + (elapsed * 10.0).ceil() as u64, "{allowed}");
        assert!(
            allowed >= 10 + (elapsed * 10.0).floor() as u64 - 1,
            "{allowed}"
        );
    }

    #[test]
    fn impossible_budgets_are_refused() {
        assert!(CallBudget::new(0, SECOND).is_none());
        assert!(CallBudget::new(5, Duration::ZERO).is_none());
        assert!(CallBudget::new(10, Duration::from_nanos(5)).is_none());
        assert!(CallBudget::new(1, Duration::from_nanos(1)).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_refusals_makes_one_warning_per_interval() {
        let warning = LoadWarning::new(SECOND);
        let first = warning.note(Overload::Busy, Instant::now());
        assert_eq!(
            first,
            Some(Refused {
                busy: 1,
                over_budget: 0
            })
        );
        for _ in 0..999 {
            assert_eq!(warning.note(Overload::OverBudget, Instant::now()), None);
        }
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(warning.note(Overload::Busy, Instant::now()), None);
        tokio::time::advance(Duration::from_millis(500)).await;
        // The next warning carries everything refused since the last one.
        assert_eq!(
            warning.note(Overload::Busy, Instant::now()),
            Some(Refused {
                busy: 2,
                over_budget: 999
            })
        );
    }
}
