//! Standard output, shared by rmcp and the direct path, a whole line at a time. A line
//! with nothing waiting before it is written by whoever hands it over (an answer goes
//! out from the call's own task, with no hop to another); otherwise it is queued for
//! the writer task, which writes whatever is waiting in one write. A line's place on
//! stdout is fixed when it is handed over, so a plugin's notification that rmcp has
//! sent comes before the answer to the call that sent it.

use super::pipes::Output;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::PollSender;

/// Lines waiting for stdout before whoever hands over the next one waits.
const QUEUE: usize = 1024;
/// Lines gathered into one write at most (they are written as they arrive).
const BATCH: usize = 64;

/// What the senders and the writer task share.
struct Shared {
    out: Mutex<Output>,
    /// Lines queued and not yet written: while any is, a new line queues behind it.
    queued: AtomicUsize,
    /// stdout could not be written: the client has gone, lines are dropped.
    failed: AtomicBool,
}

impl Shared {
    /// Writes `bytes` to `out`; once that fails, nothing more is written.
    async fn write(&self, out: &mut Output, bytes: &[u8]) {
        if self.failed.load(Ordering::Relaxed) {
            return;
        }
        if let Err(error) = out.write_all(bytes).await.and(out.flush().await)
            && !self.failed.swap(true, Ordering::Relaxed)
        {
            tracing::error!(%error, "stdout cannot be written; MCP messages to the client are lost");
        }
    }
}

/// Where whole lines (each ending in a newline) go to be written.
#[derive(Clone)]
pub struct Lines {
    queue: mpsc::Sender<Vec<u8>>,
    shared: Arc<Shared>,
}

impl Lines {
    /// Writes `line` now if nothing waits before it and no one else is writing, or
    /// queues it behind what does.
    pub async fn send(&self, line: Vec<u8>) {
        let shared = &self.shared;
        if shared.queued.load(Ordering::SeqCst) == 0
            && let Ok(mut out) = shared.out.try_lock()
            // Checked again holding stdout: the writer empties the count only once
            // it has written what it took.
            && shared.queued.load(Ordering::SeqCst) == 0
        {
            shared.write(&mut out, &line).await;
            return;
        }
        shared.queued.fetch_add(1, Ordering::SeqCst);
        if self.queue.send(line).await.is_err() {
            shared.queued.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Starts the task writing queued lines to `out`. It ends when every [`Lines`] is
/// dropped and every line is written.
pub fn start(out: Output) -> (Lines, tokio::task::JoinHandle<()>) {
    let (queue, waiting) = mpsc::channel(QUEUE);
    let shared = Arc::new(Shared {
        out: Mutex::new(out),
        queued: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
    });
    let writer = tokio::spawn(write(shared.clone(), waiting));
    (Lines { queue, shared }, writer)
}

async fn write(shared: Arc<Shared>, mut waiting: mpsc::Receiver<Vec<u8>>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut bytes = Vec::new();
    while waiting.recv_many(&mut batch, BATCH).await > 0 {
        bytes.clear();
        for line in &batch {
            bytes.extend_from_slice(line);
        }
        let mut out = shared.out.lock().await;
        shared.write(&mut out, &bytes).await;
        shared.queued.fetch_sub(batch.len(), Ordering::SeqCst);
        drop(out);
        batch.clear();
    }
}

/// rmcp's writer: the bytes rmcp writes, handed over a line at a time (rmcp writes
/// each message as one line and flushes it before its send completes).
pub struct RmcpOutput {
    queue: PollSender<Vec<u8>>,
    shared: Arc<Shared>,
    /// Bytes of a line rmcp has not finished.
    partial: Vec<u8>,
}

impl RmcpOutput {
    /// A writer handing lines to `lines`.
    pub fn new(lines: Lines) -> Self {
        Self {
            queue: PollSender::new(lines.queue),
            shared: lines.shared,
            partial: Vec::new(),
        }
    }
}

/// The error once the writer task has stopped.
fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the stdout writer has stopped")
}

impl AsyncWrite for RmcpOutput {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
            this.partial.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        };
        // Always queued: rmcp's writes come from its own tasks, and the queue keeps
        // them in order with no lock to wait for here.
        ready!(this.queue.poll_reserve(cx)).map_err(|_| stopped())?;
        let mut line = std::mem::take(&mut this.partial);
        line.extend_from_slice(&buf[..=end]);
        this.partial.extend_from_slice(&buf[end + 1..]);
        this.shared.queued.fetch_add(1, Ordering::SeqCst);
        if this.queue.send_item(line).is_err() {
            this.shared.queued.fetch_sub(1, Ordering::SeqCst);
            return Poll::Ready(Err(stopped()));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.queue.close();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes written in pieces come out as whole lines, in order, and once every
    /// sender is gone the writer ends having written all of them.
    #[tokio::test]
    async fn pieces_become_whole_lines_in_order() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let (lines, writer) = start(Box::new(ours));
        let mut rmcp = RmcpOutput::new(lines.clone());
        rmcp.write_all(b"{\"a\":").await.unwrap();
        rmcp.write_all(b"1}\n{\"b\"").await.unwrap();
        lines.send(b"direct\n".to_vec()).await;
        rmcp.write_all(b":2}\n").await.unwrap();
        drop((rmcp, lines));
        writer.await.unwrap();
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut theirs, &mut out)
            .await
            .unwrap();
        assert_eq!(out, "{\"a\":1}\ndirect\n{\"b\":2}\n");
    }

    /// Once stdout cannot be written, lines are still taken: no sender waits forever.
    #[tokio::test]
    async fn a_closed_stdout_does_not_hold_up_senders() {
        let (ours, theirs) = tokio::io::duplex(16);
        drop(theirs);
        let (lines, writer) = start(Box::new(ours));
        for _ in 0..(QUEUE * 2) {
            lines.send(b"lost\n".to_vec()).await;
        }
        drop(lines);
        writer.await.unwrap();
    }
}
