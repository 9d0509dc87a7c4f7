//! Per-client token buckets for the webhook: a client (one address) may send `burst`
//! notifications at once and `per_second` on average; beyond that it is told when to come back
//! (`429` with `Retry-After`, which Alertmanager honours by retrying). Clients are forgotten
//! once their bucket is full again, and at most `max_clients` are remembered, so a flood of
//! addresses cannot grow the table without bound.

use std::collections::HashMap;
use std::hash::Hash;

/// Limits of every client's bucket, validated by the caller (both > 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated_ms: i64,
}

/// What to tell a client.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Admission {
    Allowed,
    /// Refused; a token is back after this many milliseconds.
    RetryAfterMs(i64),
}

#[derive(Debug)]
pub struct RateLimiter<K> {
    limit: RateLimit,
    max_clients: usize,
    buckets: HashMap<K, Bucket>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    pub fn new(limit: RateLimit, max_clients: usize) -> Self {
        RateLimiter {
            limit,
            max_clients: max_clients.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes a token from `client`'s bucket at `now_ms` (a monotonic clock: a clock stepping
    /// back only delays refilling).
    pub fn admit(&mut self, client: &K, now_ms: i64) -> Admission {
        let limit = self.limit;
        if !self.buckets.contains_key(client) && self.buckets.len() >= self.max_clients {
            self.forget_full(now_ms);
            if self.buckets.len() >= self.max_clients {
                // Every remembered client is busy: a new one shares the strictest answer
                // rather than evicting a limited one (which would reset its bucket).
                return Admission::RetryAfterMs(self.refill_ms(1.0));
            }
        }
        let bucket = self.buckets.entry(client.clone()).or_insert(Bucket {
            tokens: limit.burst,
            updated_ms: now_ms,
        });
        let elapsed_ms = (now_ms - bucket.updated_ms).max(0);
        bucket.tokens =
            (bucket.tokens + elapsed_ms as f64 / 1000.0 * limit.per_second).min(limit.burst);
        bucket.updated_ms = bucket.updated_ms.max(now_ms);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Admission::Allowed
        } else {
            let missing = 1.0 - bucket.tokens;
            Admission::RetryAfterMs(self.refill_ms(missing))
        }
    }

    /// Clients remembered now.
    pub fn clients(&self) -> usize {
        self.buckets.len()
    }

    fn refill_ms(&self, tokens: f64) -> i64 {
        ((tokens / self.limit.per_second) * 1000.0).ceil().max(1.0) as i64
    }

    /// Drops the clients whose bucket would be full by now: they are as good as new.
    fn forget_full(&mut self, now_ms: i64) {
        let limit = self.limit;
        self.buckets.retain(|_, bucket| {
            let elapsed_ms = (now_ms - bucket.updated_ms).max(0);
            bucket.tokens + elapsed_ms as f64 / 1000.0 * limit.per_second < limit.burst
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 2.0,
        burst: 3.0,
    };

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let mut limiter = RateLimiter::new(LIMIT, 10);
        for _ in 0..3 {
            assert_eq!(limiter.admit(&"am-1", 0), Admission::Allowed);
        }
        assert_eq!(limiter.admit(&"am-1", 0), Admission::RetryAfterMs(500));
        assert_eq!(limiter.admit(&"am-1", 250), Admission::RetryAfterMs(250));
        assert_eq!(limiter.admit(&"am-1", 500), Admission::Allowed);
        // Another client has its own bucket.
        assert_eq!(limiter.admit(&"am-2", 500), Admission::Allowed);
        // A clock stepping back neither refills nor panics.
        assert!(matches!(
            limiter.admit(&"am-1", -10_000),
            Admission::RetryAfterMs(_)
        ));
        // After a long quiet spell the bucket is full again, not more.
        for _ in 0..3 {
            assert_eq!(limiter.admit(&"am-1", 60_000), Admission::Allowed);
        }
        assert!(matches!(
            limiter.admit(&"am-1", 60_000),
            Admission::RetryAfterMs(_)
        ));
    }

    #[test]
    fn the_table_of_clients_stays_bounded() {
        let mut limiter = RateLimiter::new(LIMIT, 2);
        assert_eq!(limiter.admit(&1, 0), Admission::Allowed);
        assert_eq!(limiter.admit(&2, 0), Admission::Allowed);
        // Both are partly drained: a third client waits instead of evicting them.
        assert!(matches!(limiter.admit(&3, 0), Admission::RetryAfterMs(_)));
        assert_eq!(limiter.clients(), 2);
        // Once their buckets have refilled they are forgotten and the newcomer gets in.
        assert_eq!(limiter.admit(&3, 10_000), Admission::Allowed);
        assert_eq!(limiter.clients(), 1);
    }
}
