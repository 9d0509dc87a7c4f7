//! Progress of a long offline run on a terminal: one line on standard error, rewritten in
//! place a few times a second, cleared at the end. Only for a person watching: the caller
//! creates it when standard error is a terminal, so scripts and pipes see nothing.

use std::io::Write;
use std::time::Duration;

use crate::clock::Stopwatch;

/// Files shorter than this finish before a progress line would help.
pub const MIN_ROWS: usize = 5_000;

/// How often the line is rewritten at most.
const EVERY: Duration = Duration::from_millis(200);

/// Writes `what: 45% (4,500 of 10,000 rows)` to `out`, throttled, and clears it when done.
pub struct Meter<W: Write> {
    what: &'static str,
    out: W,
    /// When the line was last written.
    last: Option<Stopwatch>,
}

impl<W: Write> Meter<W> {
    pub fn new(what: &'static str, out: W) -> Self {
        Meter {
            what,
            out,
            last: None,
        }
    }

    /// Reports `done` of `total`; rewrites the line if the last one is old enough, and clears
    /// it once everything is done. Write errors are ignored: progress is a courtesy.
    pub fn report(&mut self, done: usize, total: usize) {
        if done >= total {
            let _ = write!(self.out, "\r\x1b[2K");
            let _ = self.out.flush();
            return;
        }
        if self.last.is_some_and(|last| last.elapsed() < EVERY) {
            return;
        }
        self.last = Some(Stopwatch::start());
        let _ = write!(self.out, "\r\x1b[2K{}", line(self.what, done, total));
        let _ = self.out.flush();
    }
}

/// `detect: 45% (4,500 of 10,000 rows)`.
pub fn line(what: &str, done: usize, total: usize) -> String {
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    format!(
        "{what}: {percent}% ({} of {} rows)",
        thousands(done),
        thousands(total)
    )
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_how_far_in_percent_and_rows() {
        assert_eq!(
            line("detect", 4_500, 10_000),
            "detect: 45% (4,500 of 10,000 rows)"
        );
        assert_eq!(
            line("detect", 0, 1_234_567),
            "detect: 0% (0 of 1,234,567 rows)"
        );
        assert_eq!(line("detect", 0, 0), "detect: 100% (0 of 0 rows)");
    }

    #[test]
    fn updates_are_throttled_and_the_line_is_cleared_at_the_end() {
        let mut out = Vec::new();
        let mut meter = Meter::new("detect", &mut out);
        for done in (0..10_000).step_by(1_000) {
            meter.report(done, 10_000);
        }
        meter.report(10_000, 10_000);
        let text = String::from_utf8(out).expect("utf-8");
        // Ten reports within far less than 200 ms: only the first is drawn.
        assert_eq!(text.matches("detect:").count(), 1, "{text:?}");
        assert!(
            text.starts_with("\r\x1b[2Kdetect: 0% (0 of 10,000 rows)"),
            "{text:?}"
        );
        assert!(text.ends_with("\r\x1b[2K"), "{text:?}");
    }
}
