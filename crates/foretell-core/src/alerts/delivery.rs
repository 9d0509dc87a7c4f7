//! What to do after an attempt to deliver a notification to a receiver: done, retry when, or
//! give up into the dead-letter state; and the per-receiver circuit breaker that stops
//! hammering a receiver that is down.
//!
//! Times are milliseconds passed in; randomness (the jitter) is a number in [0, 1) passed in.

/// How retries are spaced and when they stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    pub initial_backoff_ms: i64,
    pub max_backoff_ms: i64,
    /// A delivery still failing this long after the notification arrived is dead-lettered.
    pub give_up_after_ms: i64,
}

/// `Retry-After` beyond this is taken as this: a receiver asking for a day of silence is
/// asked again within the hour.
pub const MAX_RETRY_AFTER_MS: i64 = 3_600_000;

/// A delivery is given up only after at least one attempt per this much of its age: a wall
/// clock stepping forward makes deliveries look old, not tried, so it dead-letters nothing.
pub const GIVE_UP_ATTEMPT_SPACING_MS: i64 = MAX_RETRY_AFTER_MS;

/// How an attempt ended, as seen on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered with this status (and `Retry-After`, when it sent one).
    Answered {
        status: u16,
        retry_after_ms: Option<i64>,
    },
    /// No answer: connection refused, reset, timed out, TLS failure.
    Transport(String),
}

/// What to do next with a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again at this time; `reason` says why the attempt failed.
    RetryAt {
        at_ms: i64,
        reason: String,
    },
    /// Never retried automatically; `reason` says why.
    DeadLetter {
        reason: String,
    },
}

impl Attempt {
    /// True when the failure says something about the receiver's health (it is down,
    /// overloaded or broken) rather than about this request; those trip the circuit breaker.
    pub fn is_receiver_failure(&self) -> bool {
        match self {
            Attempt::Transport(_) => true,
            Attempt::Answered { status, .. } => *status == 429 || *status >= 500,
        }
    }

    fn describe(&self) -> String {
        match self {
            Attempt::Transport(detail) => detail.clone(),
            Attempt::Answered { status, .. } => format!("HTTP {status}"),
        }
    }
}

/// Judges attempt number `attempts` (1 for the first) of a delivery created at `created_ms`.
/// Connect errors, timeouts, 408, 429 and 5xx are retried with capped exponential backoff and
/// full jitter in its upper half (429 waits for `Retry-After` when given); any other answer
/// outside 2xx is a dead letter at once, as is a retryable failure past the give-up age.
pub fn judge(
    attempt: &Attempt,
    attempts: u32,
    created_ms: i64,
    now_ms: i64,
    jitter: f64,
    schedule: &RetrySchedule,
) -> Verdict {
    let retryable = match attempt {
        Attempt::Answered { status, .. } if (200..300).contains(status) => {
            return Verdict::Delivered
        }
        Attempt::Answered { status, .. } => matches!(status, 408 | 429 | 500..=599),
        Attempt::Transport(_) => true,
    };
    let reason = attempt.describe();
    if !retryable {
        return Verdict::DeadLetter {
            reason: format!("{reason}: the receiver rejected the notification; not retried"),
        };
    }
    if now_ms.saturating_sub(created_ms) >= schedule.give_up_after_ms
        && i64::from(attempts) >= schedule.give_up_min_attempts()
    {
        return Verdict::DeadLetter {
            reason: format!("{reason}: still failing after {attempts} attempts; gave up"),
        };
    }
    let delay_ms = match attempt {
        Attempt::Answered {
            retry_after_ms: Some(wait),
            ..
        } => (*wait).clamp(0, MAX_RETRY_AFTER_MS),
        _ => backoff_ms(attempts, jitter, schedule),
    };
    Verdict::RetryAt {
        at_ms: now_ms.saturating_add(delay_ms),
        reason,
    }
}

impl RetrySchedule {
    /// Failed attempts a delivery needs, besides its age, before it is given up.
    pub fn give_up_min_attempts(&self) -> i64 {
        let spacing = GIVE_UP_ATTEMPT_SPACING_MS;
        (self.give_up_after_ms.max(1) + spacing - 1) / spacing
    }

    /// The longest wait `judge` ever schedules.
    pub fn longest_wait_ms(&self) -> i64 {
        self.max_backoff_ms.max(MAX_RETRY_AFTER_MS)
    }
}

/// Whether a delivery is due whose next attempt was set, at `scheduled_ms`, for
/// `next_attempt_ms`. A wall clock now behind the moment of scheduling, or a schedule further
/// ahead than any wait `judge` sets, means the clock stepped back since: such a delivery is
/// due now (one early retry) rather than after the step.
pub fn is_due(
    next_attempt_ms: i64,
    scheduled_ms: i64,
    now_ms: i64,
    schedule: &RetrySchedule,
) -> bool {
    next_attempt_ms <= now_ms
        || now_ms < scheduled_ms
        || next_attempt_ms.saturating_sub(now_ms) > schedule.longest_wait_ms()
}

/// The wait after failed attempt number `attempts`: `initial * 2^(attempts-1)` capped at the
/// maximum, then scaled into its upper half by `jitter` so that retries of many deliveries
/// spread out instead of arriving together.
pub fn backoff_ms(attempts: u32, jitter: f64, schedule: &RetrySchedule) -> i64 {
    crate::backoff::backoff_ms(
        attempts,
        jitter,
        schedule.initial_backoff_ms,
        schedule.max_backoff_ms,
    )
}

/// Stops attempts to a receiver after `threshold` consecutive receiver failures, for a
/// cooldown that doubles (up to `max_cooldown_ms`) each time a trial attempt fails again.
#[derive(Clone, Debug, PartialEq)]
pub struct CircuitBreaker {
    threshold: u32,
    base_cooldown_ms: i64,
    max_cooldown_ms: i64,
    consecutive_failures: u32,
    cooldown_ms: i64,
    open_until_ms: Option<i64>,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cooldown_ms: i64, max_cooldown_ms: i64) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            base_cooldown_ms: cooldown_ms.max(1),
            max_cooldown_ms: max_cooldown_ms.max(cooldown_ms.max(1)),
            consecutive_failures: 0,
            cooldown_ms: cooldown_ms.max(1),
            open_until_ms: None,
        }
    }

    /// `None` when an attempt may go out now; otherwise the time the breaker lets a trial
    /// attempt through.
    pub fn blocked_until(&self, now_ms: i64) -> Option<i64> {
        self.open_until_ms.filter(|until| now_ms < *until)
    }

    /// True while attempts are held back.
    pub fn is_open(&self, now_ms: i64) -> bool {
        self.blocked_until(now_ms).is_some()
    }

    /// Records the outcome of an attempt.
    pub fn record(&mut self, attempt: &Attempt, now_ms: i64) {
        if !attempt.is_receiver_failure() {
            self.consecutive_failures = 0;
            self.cooldown_ms = self.base_cooldown_ms;
            self.open_until_ms = None;
            return;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.open_until_ms.is_some() {
            // A trial after the cooldown failed: wait longer before the next one.
            self.cooldown_ms = (self.cooldown_ms.saturating_mul(2)).min(self.max_cooldown_ms);
            self.open_until_ms = Some(now_ms.saturating_add(self.cooldown_ms));
        } else if self.consecutive_failures >= self.threshold {
            self.open_until_ms = Some(now_ms.saturating_add(self.cooldown_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: RetrySchedule = RetrySchedule {
        initial_backoff_ms: 1_000,
        max_backoff_ms: 60_000,
        give_up_after_ms: 3_600_000,
    };

    fn answered(status: u16) -> Attempt {
        Attempt::Answered {
            status,
            retry_after_ms: None,
        }
    }

    #[test]
    fn two_hundreds_are_delivered() {
        for status in [200, 202, 204] {
            assert_eq!(
                judge(&answered(status), 1, 0, 0, 0.5, &SCHEDULE),
                Verdict::Delivered
            );
        }
    }

    #[test]
    fn client_errors_are_dead_letters_at_once() {
        for status in [400, 401, 403, 404, 413, 422] {
            let verdict = judge(&answered(status), 1, 0, 0, 0.5, &SCHEDULE);
            assert!(
                matches!(&verdict, Verdict::DeadLetter { reason } if reason.starts_with(&format!("HTTP {status}"))),
                "{status}: {verdict:?}"
            );
        }
    }

    #[test]
    fn server_errors_and_transport_failures_back_off_exponentially_to_the_cap() {
        let at = |attempts, jitter| match judge(&answered(503), attempts, 0, 0, jitter, &SCHEDULE) {
            Verdict::RetryAt { at_ms, .. } => at_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(at(1, 1.0), 1_000);
        assert_eq!(at(2, 1.0), 2_000);
        assert_eq!(at(3, 1.0), 4_000);
        assert_eq!(at(3, 0.0), 2_000, "jitter spreads over the upper half");
        assert_eq!(at(20, 1.0), 60_000, "capped");
        assert_eq!(at(u32::MAX, 1.0), 60_000, "no overflow");
        let transport = judge(
            &Attempt::Transport("connection refused".into()),
            1,
            0,
            5,
            1.0,
            &SCHEDULE,
        );
        assert_eq!(
            transport,
            Verdict::RetryAt {
                at_ms: 1_005,
                reason: "connection refused".into()
            }
        );
    }

    #[test]
    fn too_many_requests_waits_for_retry_after_within_a_bound() {
        let verdict = |wait| {
            judge(
                &Attempt::Answered {
                    status: 429,
                    retry_after_ms: Some(wait),
                },
                1,
                0,
                100,
                0.0,
                &SCHEDULE,
            )
        };
        assert!(matches!(
            verdict(30_000),
            Verdict::RetryAt { at_ms: 30_100, .. }
        ));
        assert!(matches!(
            verdict(86_400_000),
            Verdict::RetryAt { at_ms, .. } if at_ms == 100 + MAX_RETRY_AFTER_MS
        ));
    }

    #[test]
    fn retryable_failures_past_the_give_up_age_are_dead_letters() {
        let verdict = judge(&answered(502), 40, 0, 3_600_000, 0.5, &SCHEDULE);
        assert!(
            matches!(&verdict, Verdict::DeadLetter { reason } if reason.contains("after 40 attempts")),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_wall_clock_stepping_forward_does_not_make_deliveries_dead_letters() {
        let day = 86_400_000;
        let schedule = RetrySchedule {
            give_up_after_ms: day,
            ..SCHEDULE
        };
        assert_eq!(schedule.give_up_min_attempts(), 24);
        // Twelve attempts over an hour, then the clock reads a day later.
        let verdict = judge(&answered(503), 13, 0, day + 3_600_000, 0.5, &schedule);
        assert!(matches!(verdict, Verdict::RetryAt { .. }), "{verdict:?}");
        // Tried through the day (at least hourly), it is given up.
        let verdict = judge(&answered(503), 24, 0, day, 0.5, &schedule);
        assert!(matches!(verdict, Verdict::DeadLetter { .. }), "{verdict:?}");
        // A short give-up age needs one attempt, as before.
        assert_eq!(SCHEDULE.give_up_min_attempts(), 1);
    }

    #[test]
    fn a_retry_is_due_early_when_the_clock_stepped_back_since_it_was_set() {
        let now = 10 * 3_600_000;
        let set = now - 10_000;
        assert!(is_due(now, set, now, &SCHEDULE));
        assert!(is_due(now - 1, set, now, &SCHEDULE));
        assert!(
            !is_due(now + 60_000, set, now, &SCHEDULE),
            "a backoff to wait for"
        );
        assert!(
            !is_due(now + MAX_RETRY_AFTER_MS, now, now, &SCHEDULE),
            "a Retry-After to wait for"
        );
        // Set for 30 s after it was set, then the clock went back a minute.
        assert!(is_due(set + 30_000, set, set - 60_000, &SCHEDULE));
        // A schedule beyond any wait (set before a step back, by an older version).
        assert!(is_due(now + 3_600_000 + 30_000, 0, now, &SCHEDULE));
        assert!(
            is_due(i64::MAX, i64::MIN, i64::MIN, &SCHEDULE),
            "no overflow"
        );
    }

    #[test]
    fn the_breaker_opens_after_consecutive_failures_and_backs_off_its_trials() {
        let mut breaker = CircuitBreaker::new(3, 1_000, 4_000);
        let down = Attempt::Transport("refused".into());
        breaker.record(&down, 0);
        breaker.record(&down, 1);
        assert!(!breaker.is_open(2));
        breaker.record(&down, 2);
        assert_eq!(breaker.blocked_until(3), Some(1_002));
        assert!(
            !breaker.is_open(1_002),
            "a trial goes through after the cooldown"
        );
        breaker.record(&down, 1_002);
        assert_eq!(
            breaker.blocked_until(1_003),
            Some(3_002),
            "cooldown doubled"
        );
        breaker.record(&down, 3_002);
        assert_eq!(breaker.blocked_until(3_003), Some(7_002), "capped at 4 s");
        breaker.record(&answered(200), 7_002);
        assert!(!breaker.is_open(7_003));
        breaker.record(&down, 7_003);
        assert!(
            !breaker.is_open(7_004),
            "closed again: counting starts over"
        );
    }

    #[test]
    fn a_rejected_request_does_not_count_against_the_receiver() {
        let mut breaker = CircuitBreaker::new(1, 1_000, 1_000);
        breaker.record(&answered(400), 0);
        assert!(!breaker.is_open(1));
        breaker.record(&answered(429), 1);
        assert!(breaker.is_open(2));
    }
}
