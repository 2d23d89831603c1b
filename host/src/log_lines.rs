//! The host log's lines on their way to stderr: formatted on the thread that logs,
//! gathered in memory, and written in batches by a thread of their own, which wakes on
//! the first line after a quiet spell and lets lines gather for [`LINGER`] before it
//! writes. A busy host pays one wake-up and one write per batch, not per line (with a
//! writer thread that wakes for every line, that was a tenth of the host's CPU at one
//! client). Nothing is dropped: past [`MAX_PENDING`] bytes, loggers wait for the writer.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// How long the writer lets lines gather after the first one wakes it.
pub const LINGER: Duration = Duration::from_millis(2);

/// Bytes of lines waiting to be written before loggers wait for the writer.
pub const MAX_PENDING: usize = 4 * 1024 * 1024;

/// The lines waiting to be written, and who waits on whom.
struct State {
    pending: Vec<u8>,
    /// The writer sleeps until a line arrives.
    writer_waiting: bool,
    /// Loggers waiting for room.
    loggers_waiting: usize,
    /// The writer has stopped: lines are written by whoever logs them.
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer.
    lines: Condvar,
    /// Wakes loggers waiting for room.
    room: Condvar,
    /// Where lines go.
    out: Mutex<Box<dyn Write + Send>>,
    max_pending: usize,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_out(&self, bytes: &[u8]) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // Nowhere to report a log that cannot be written: the line is lost, as a
        // line written to a closed stderr would be.
        let _ = out.write_all(bytes).and_then(|()| out.flush());
    }
}

/// The `tracing` writer: hands each line to the writer thread.
#[derive(Clone)]
pub struct Lines {
    shared: Arc<Shared>,
}

/// Stops the writer thread when dropped, once every line handed to it is written.
pub struct Flush {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Lines written to `out` by a thread named `log-writer`.
pub fn to(out: impl Write + Send + 'static) -> std::io::Result<(Lines, Flush)> {
    with_limit(Box::new(out), MAX_PENDING)
}

fn with_limit(out: Box<dyn Write + Send>, max_pending: usize) -> std::io::Result<(Lines, Flush)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            pending: Vec::new(),
            writer_waiting: false,
            loggers_waiting: 0,
            closed: false,
        }),
        lines: Condvar::new(),
        room: Condvar::new(),
        out: Mutex::new(out),
        max_pending,
    });
    let writer = shared.clone();
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_batches(&writer))?;
    Ok((
        Lines {
            shared: shared.clone(),
        },
        Flush {
            shared,
            thread: Some(thread),
        },
    ))
}

/// The writer thread: waits for a line, lets more gather, writes them all at once.
fn write_batches(shared: &Shared) {
    let mut batch = Vec::new();
    loop {
        let mut state = shared.state();
        while state.pending.is_empty() && !state.closed {
            state.writer_waiting = true;
            state = shared.lines.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.pending.is_empty() {
            return;
        }
        if !state.closed && state.loggers_waiting == 0 {
            drop(state);
            std::thread::sleep(LINGER);
            state = shared.state();
        }
        std::mem::swap(&mut batch, &mut state.pending);
        if state.loggers_waiting > 0 {
            shared.room.notify_all();
        }
        drop(state);
        shared.write_out(&batch);
        batch.clear();
    }
}

impl Write for Lines {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let shared = &*self.shared;
        let mut state = shared.state();
        while state.pending.len() >= shared.max_pending && !state.closed {
            state.loggers_waiting += 1;
            state = shared.room.wait(state).unwrap_or_else(|e| e.into_inner());
            state.loggers_waiting -= 1;
        }
        if state.closed {
            drop(state);
            shared.write_out(line);
            return Ok(line.len());
        }
        state.pending.extend_from_slice(line);
        if std::mem::take(&mut state.writer_waiting) {
            shared.lines.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        self.shared.state().closed = true;
        self.shared.lines.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read, and hold shut (every write waits while it is held).
    #[derive(Clone, Default)]
    struct Sink {
        bytes: Arc<Mutex<Vec<u8>>>,
        gate: Arc<Mutex<()>>,
        writes: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn every_line_arrives_whole_and_in_order_and_lines_share_writes() {
        let sink = Sink::default();
        let (lines, flush) = to(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let lines = lines.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let mut writer = lines.make_writer();
                        writer
                            .write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(flush);
        let text = sink.text();
        for t in 0..4 {
            let numbers: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("thread {t} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(numbers, (0..2000).collect::<Vec<_>>(), "thread {t}");
        }
        assert_eq!(text.lines().count(), 8000);
        let writes = sink.writes.load(std::sync::atomic::Ordering::SeqCst);
        assert!(writes < 8000, "{writes} writes for 8000 lines");
    }

    #[test]
    fn a_stuck_output_makes_loggers_wait_and_loses_nothing() {
        let sink = Sink::default();
        let (lines, flush) = with_limit(Box::new(sink.clone()), 64).unwrap();
        let held = sink.gate.lock().unwrap();
        let logger = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    lines
                        .make_writer()
                        .write_all(format!("line {i:03} of a stuck output\n").as_bytes())
                        .unwrap();
                }
            })
        };
        // The writer is stuck on its first write and 64 bytes are pending: the
        // logger waits instead of dropping lines or growing the buffer.
        std::thread::sleep(Duration::from_millis(100));
        assert!(!logger.is_finished());
        assert!(lines.shared.state().pending.len() < 64 + 40);
        drop(held);
        logger.join().unwrap();
        drop(flush);
        let text = sink.text();
        assert_eq!(text.lines().count(), 100, "{text}");
        assert!(text.ends_with("line 099 of a stuck output\n"));
    }

    #[test]
    fn lines_after_the_writer_stopped_are_written_directly() {
        let sink = Sink::default();
        let (lines, flush) = to(sink.clone()).unwrap();
        lines.make_writer().write_all(b"before\n").unwrap();
        drop(flush);
        assert_eq!(sink.text(), "before\n");
        lines.make_writer().write_all(b"after\n").unwrap();
        assert_eq!(sink.text(), "before\nafter\n");
    }
}
