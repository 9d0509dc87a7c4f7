//! How long to wait before trying again, for everything foretell retries (Prometheus reads,
//! remote write, deliveries to receivers): exponential from an initial wait, capped, with
//! "equal jitter" (uniform in the upper half), so that many retries spread out but none comes
//! immediately.

/// Milliseconds to wait after failed attempt number `attempts` (counted from 1):
/// `initial_ms * 2^(attempts-1)` capped at `max_ms`, then scaled into its upper half by
/// `unit_random` (in [0, 1]). At least 1.
pub fn backoff_ms(attempts: u32, unit_random: f64, initial_ms: i64, max_ms: i64) -> i64 {
    let exponent = attempts.saturating_sub(1).min(62);
    let uncapped = initial_ms.max(0).saturating_mul(1_i64 << exponent);
    let capped = uncapped.min(max_ms).max(1);
    ((capped as f64) * (0.5 + 0.5 * unit_random.clamp(0.0, 1.0))).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_jitter_stays_in_the_upper_half() {
        assert_eq!(backoff_ms(1, 1.0, 100, 1000), 100);
        assert_eq!(backoff_ms(1, 0.0, 100, 1000), 50);
        assert_eq!(backoff_ms(3, 1.0, 100, 1000), 400);
        assert_eq!(backoff_ms(10, 1.0, 100, 1000), 1000);
        assert_eq!(backoff_ms(u32::MAX, 1.0, 100, 1000), 1000, "no overflow");
        assert_eq!(
            backoff_ms(0, 1.0, 100, 1000),
            100,
            "attempt 0 reads as the first"
        );
        assert_eq!(backoff_ms(1, 7.0, 100, 1000), 100, "jitter clamped");
        assert_eq!(backoff_ms(1, 0.5, 0, 1000), 1, "never zero");
    }
}
