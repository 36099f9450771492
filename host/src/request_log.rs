//! The request log: one line per request on stdout, written in batches.
//!
//! A line is written at once when no other request is in flight, so someone watching sees
//! each request as it ends. Under load, the lines of requests that end while others are
//! still running wait for the last of them, for [`BATCH_BYTES`] to gather, or for the next
//! [`RequestLog::flush`] (`serve` calls it every [`FLUSH_EVERY`]): one write for many lines,
//! where a write per line cost about 4% of a static request's time (perf, docs/BENCHMARKS.md).

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Lines gathered past this size are written without waiting.
pub const BATCH_BYTES: usize = 16 << 10;
/// The longest a line waits while requests keep overlapping.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Where request lines go (stdout in `caseport up`), and those not yet written.
pub struct RequestLog<W: Write> {
    state: Mutex<Pending<W>>,
}

struct Pending<W> {
    out: W,
    lines: Vec<u8>,
    in_flight: usize,
}

impl<W: Write> Pending<W> {
    fn write(&mut self) {
        if self.lines.is_empty() {
            return;
        }
        // A log that cannot be written (stdout closed) must not stop the server.
        let _ = self.out.write_all(&self.lines);
        let _ = self.out.flush();
        self.lines.clear();
    }
}

impl<W: Write> RequestLog<W> {
    pub fn new(out: W) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Pending {
                out,
                lines: Vec::with_capacity(BATCH_BYTES),
                in_flight: 0,
            }),
        })
    }

    /// Counts a request as in flight until its line is logged or it is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight<W> {
        self.with(|p| p.in_flight += 1);
        InFlight {
            log: Some(self.clone()),
        }
    }

    /// Writes every line not yet written.
    pub fn flush(&self) {
        self.with(Pending::write);
    }

    fn end(&self, line: Option<fmt::Arguments<'_>>) {
        self.with(|p| {
            if let Some(line) = line {
                let _ = p.lines.write_fmt(line);
                p.lines.push(b'\n');
            }
            p.in_flight = p.in_flight.saturating_sub(1);
            if p.in_flight == 0 || p.lines.len() >= BATCH_BYTES {
                p.write();
            }
        });
    }

    fn with<R>(&self, f: impl FnOnce(&mut Pending<W>) -> R) -> R {
        // A panic while the lock was held leaves whole lines behind: go on with them.
        let mut pending = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut pending)
    }
}

/// One request in flight. Logging its line ends it; so does dropping it (a client that went
/// away before the answer), without a line.
pub struct InFlight<W: Write> {
    log: Option<Arc<RequestLog<W>>>,
}

impl<W: Write> InFlight<W> {
    pub fn finish(mut self, line: fmt::Arguments<'_>) {
        if let Some(log) = self.log.take() {
            log.end(Some(line));
        }
    }
}

impl<W: Write> Drop for InFlight<W> {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            log.end(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that records each write it was given.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<String>>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(buf).into_owned());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Writes {
        fn taken(&self) -> Vec<String> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }

    #[test]
    fn a_request_alone_is_written_at_once() {
        let out = Writes::default();
        let log = RequestLog::new(out.clone());
        log.begin().finish(format_args!("GET / web 200"));
        assert_eq!(out.taken(), ["GET / web 200\n"]);
    }

    #[test]
    fn overlapping_requests_are_written_together_in_the_order_they_ended() {
        let out = Writes::default();
        let log = RequestLog::new(out.clone());
        let (a, b, c) = (log.begin(), log.begin(), log.begin());
        b.finish(format_args!("b"));
        a.finish(format_args!("a"));
        assert!(out.taken().is_empty(), "c is still in flight");
        c.finish(format_args!("c"));
        assert_eq!(out.taken(), ["b\na\nc\n"]);
    }

    #[test]
    fn a_dropped_request_logs_nothing_and_no_longer_holds_the_others() {
        let out = Writes::default();
        let log = RequestLog::new(out.clone());
        let (a, gone) = (log.begin(), log.begin());
        a.finish(format_args!("a"));
        assert!(out.taken().is_empty());
        drop(gone);
        assert_eq!(out.taken(), ["a\n"]);
        log.begin().finish(format_args!("next"));
        assert_eq!(
            out.taken(),
            ["next\n"],
            "the count is back to none in flight"
        );
    }

    #[test]
    fn lines_are_written_when_enough_gathered_or_when_flushed() {
        let out = Writes::default();
        let log = RequestLog::new(out.clone());
        let _busy = log.begin();
        let line = "x".repeat(1000);
        let mut ended = 0;
        while out.taken().is_empty() {
            log.begin().finish(format_args!("{line}"));
            ended += 1;
            assert!(ended <= BATCH_BYTES / 1000 + 1, "never written");
        }
        assert_eq!(ended, BATCH_BYTES.div_ceil(1001));
        log.begin().finish(format_args!("late"));
        assert!(out.taken().is_empty());
        log.flush();
        assert_eq!(out.taken(), ["late\n"]);
        log.flush();
        assert!(out.taken().is_empty(), "nothing is written twice");
    }
}
