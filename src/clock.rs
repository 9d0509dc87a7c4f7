//! Time, read in this file only, so everything else takes time as a parameter.
//!
//! Two clocks: the wall clock, for timestamps people and peers read (audit records, sample
//! times, `startsAt`), which NTP or an operator may step back or forward; and a monotonic
//! clock, which only moves forward, for timers that must not stretch or shrink when the wall
//! clock steps (the receivers' circuit breakers). [`Stopwatch`] measures how long work took
//! (self-metrics, logs, benchmarks) and [`deadline_after`] sets a deadline for tokio timers.
//!
//! `clippy.toml` disallows `Instant::now` and `SystemTime::now` everywhere else, and the system
//! clock is reached only through [`system`], so a clock read outside this file does not
//! compile warning-free.

#![allow(clippy::disallowed_methods)]

#[cfg(test)]
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch, as the wall clock says.
    fn now_ms(&self) -> i64;

    /// Milliseconds since an arbitrary start, never going back.
    fn monotonic_ms(&self) -> i64;
}

/// The system's clocks: the one [`Clock`] a running foretell reads.
struct SystemClock;

/// The system's clocks, shared.
pub fn system() -> Arc<dyn Clock> {
    static SYSTEM: OnceLock<Arc<dyn Clock>> = OnceLock::new();
    Arc::clone(SYSTEM.get_or_init(|| Arc::new(SystemClock)))
}

/// How long something has taken so far, on the monotonic clock.
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    pub fn start() -> Self {
        Stopwatch(Instant::now())
    }

    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// The tokio instant `after` from now: a deadline shared by several awaits.
pub fn deadline_after(after: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + after
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn monotonic_ms(&self) -> i64 {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_millis() as i64
    }
}

/// A clock that tests move by hand: `set` lets time pass (both clocks move), `step_wall`
/// steps the wall clock alone, as NTP or an operator would.
#[cfg(test)]
#[derive(Default)]
pub struct ManualClock {
    wall_ms: AtomicI64,
    monotonic_ms: AtomicI64,
}

#[cfg(test)]
impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        ManualClock {
            wall_ms: AtomicI64::new(now_ms),
            monotonic_ms: AtomicI64::new(0),
        }
    }

    /// Time passes until the wall clock reads `now_ms` (never backwards for the monotonic one).
    pub fn set(&self, now_ms: i64) {
        let before = self.wall_ms.swap(now_ms, Ordering::SeqCst);
        self.monotonic_ms
            .fetch_add((now_ms - before).max(0), Ordering::SeqCst);
    }

    /// Lets `ms` pass on both clocks.
    pub fn advance(&self, ms: i64) {
        self.wall_ms.fetch_add(ms, Ordering::SeqCst);
        self.monotonic_ms.fetch_add(ms.max(0), Ordering::SeqCst);
    }

    /// Steps the wall clock by `ms` (negative: back) while no time passes.
    pub fn step_wall(&self, ms: i64) {
        self.wall_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.wall_ms.load(Ordering::SeqCst)
    }

    fn monotonic_ms(&self) -> i64 {
        self.monotonic_ms.load(Ordering::SeqCst)
    }
}
