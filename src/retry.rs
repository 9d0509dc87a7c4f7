//! Waiting before a retry of an outgoing request (Prometheus reads, remote write): the core's
//! one backoff ([`foretell_core::backoff`]) under a configured [`RetryPolicy`], with the
//! server's `Retry-After` honoured up to the cap.

use std::time::Duration;

use crate::config::RetryPolicy;

/// Delay before attempt `attempt + 1` (attempt counts from 1): exponential from the initial
/// backoff, capped, with "equal jitter" (uniform in the upper half) so that many series
/// retrying at once spread out but never retry immediately. A `Retry-After` wins, capped too.
pub fn backoff(
    policy: &RetryPolicy,
    attempt: u32,
    retry_after: Option<Duration>,
    unit_random: f64,
) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(policy.max_backoff);
    }
    Duration::from_millis(foretell_core::backoff::backoff_ms(
        attempt,
        unit_random,
        policy.initial_backoff.as_millis() as i64,
        policy.max_backoff.as_millis() as i64,
    ) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        assert_eq!(backoff(&policy, 1, None, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(&policy, 1, None, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(&policy, 3, None, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(&policy, 10, None, 1.0), Duration::from_millis(1000));
        assert_eq!(
            backoff(&policy, 1, Some(Duration::from_secs(60)), 0.5),
            Duration::from_millis(1000)
        );
        assert_eq!(
            backoff(&policy, 1, Some(Duration::from_millis(200)), 0.5),
            Duration::from_millis(200)
        );
    }
}
