//! Structured logs on stderr: text or JSON lines, level from `RUST_LOG` (default `info`).
//!
//! Logging never blocks the server. Lines go through a bounded queue to a writer thread; when
//! stderr stalls (a pipe nobody reads, a wedged terminal) the queue fills and further lines are
//! dropped and counted (`iii_stream_log_lines_dropped_total`) instead of stopping the threads
//! that log. Once the sink takes lines again, the writer first reports how many were lost.

mod sanitize;

use iii_stream_metrics::metrics;
use sanitize::{JsonLines, SanitizedFields};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines the queue holds before it drops. At a few hundred bytes a line, a few MiB.
const QUEUED_LINES: usize = 16_384;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

/// Keeps the writer thread alive; [`Logging::finish`] flushes it at exit.
pub(crate) struct Logging {
    guard: WorkerGuard,
}

impl Logging {
    /// Flushes what is queued, waiting at most a second: a stalled sink must not keep the
    /// process from exiting.
    pub(crate) fn finish(self) {
        let (done, flushed) = std::sync::mpsc::channel();
        let guard = self.guard;
        let _ = std::thread::Builder::new()
            .name("iii-stream-log-flush".into())
            .spawn(move || {
                drop(guard);
                let _ = done.send(());
            });
        let _ = flushed.recv_timeout(Duration::from_secs(1));
    }
}

pub(crate) fn init(format: Format) -> Logging {
    let drops = Arc::new(Drops::default());
    let sink = Reporting {
        inner: std::io::stderr(),
        drops: drops.clone(),
    };
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("iii-stream-log")
        .finish(sink);
    let _ = drops.counter.set(writer.error_counter());
    // The metric must move while the sink is stalled too, when nothing gets written.
    let counting = drops.clone();
    let _ = std::thread::Builder::new()
        .name("iii-stream-log-drops".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                counting.count();
            }
        });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        Format::Text => builder.fmt_fields(SanitizedFields).init(),
        Format::Json => builder.event_format(JsonLines).init(),
    }
    Logging { guard }
}

/// Dropped lines: the queue's own count, what the metric has seen, what a line has reported.
#[derive(Default)]
struct Drops {
    counter: OnceLock<ErrorCounter>,
    counted: AtomicUsize,
    reported: AtomicUsize,
}

impl Drops {
    fn dropped(&self) -> usize {
        self.counter.get().map_or(0, ErrorCounter::dropped_lines)
    }

    /// Adds drops not counted yet to the metric.
    fn count(&self) {
        let dropped = self.dropped();
        let before = self.counted.swap(dropped, Ordering::Relaxed);
        if dropped > before {
            metrics()
                .log_lines_dropped
                .inc_by((dropped - before) as u64);
        }
    }

    /// Drops not reported in a line yet; marks them reported.
    fn unreported(&self) -> usize {
        let dropped = self.dropped();
        dropped.saturating_sub(self.reported.swap(dropped, Ordering::Relaxed))
    }
}

/// The sink behind the queue. Runs on the writer thread, so it only writes when the sink took
/// the previous line: exactly the moment to say what was lost meanwhile.
struct Reporting<W> {
    inner: W,
    drops: Arc<Drops>,
}

impl<W: Write> Write for Reporting<W> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let lost = self.drops.unreported();
        if lost > 0 {
            self.drops.count();
            writeln!(
                self.inner,
                "iii-stream: {lost} log lines dropped: the log sink did not keep up"
            )?;
        }
        self.inner.write(line)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
