//! Standard output, shared by rmcp and the direct path: each hands over whole lines,
//! and one task writes whatever is waiting in one write. A line's place on stdout is
//! fixed when it is handed over, so a plugin's notification that rmcp has sent comes
//! before the answer to the call that sent it.

use super::pipes::Output;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// Lines waiting for stdout before whoever hands over the next one waits.
const QUEUE: usize = 1024;
/// Lines gathered into one write at most (they are written as they arrive).
const BATCH: usize = 64;

/// Where whole lines (each ending in a newline) go to be written.
pub type Lines = mpsc::Sender<Vec<u8>>;

/// Starts the task writing lines to `out`. It ends when every [`Lines`] is dropped and
/// every line is written.
pub fn start(out: Output) -> (Lines, tokio::task::JoinHandle<()>) {
    let (lines, waiting) = mpsc::channel(QUEUE);
    (lines, tokio::spawn(write(out, waiting)))
}

async fn write(mut out: Output, mut waiting: mpsc::Receiver<Vec<u8>>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut bytes = Vec::new();
    while waiting.recv_many(&mut batch, BATCH).await > 0 {
        bytes.clear();
        for line in batch.drain(..) {
            bytes.extend_from_slice(&line);
        }
        if let Err(error) = out.write_all(&bytes).await.and(out.flush().await) {
            // The client has gone (or stdout was closed): nothing more can reach it.
            // Lines are still taken, so no one waits for room that never comes.
            tracing::error!(%error, "stdout cannot be written; MCP messages to the client are lost");
            while waiting.recv().await.is_some() {}
            return;
        }
    }
}

/// rmcp's writer: the bytes rmcp writes, handed over a line at a time (rmcp writes
/// each message as one line and flushes it before its send completes).
pub struct RmcpOutput {
    lines: PollSender<Vec<u8>>,
    /// Bytes of a line rmcp has not finished.
    partial: Vec<u8>,
}

impl RmcpOutput {
    /// A writer handing lines to `lines`.
    pub fn new(lines: Lines) -> Self {
        Self {
            lines: PollSender::new(lines),
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
        ready!(this.lines.poll_reserve(cx)).map_err(|_| stopped())?;
        let mut line = std::mem::take(&mut this.partial);
        line.extend_from_slice(&buf[..=end]);
        this.partial.extend_from_slice(&buf[end + 1..]);
        this.lines.send_item(line).map_err(|_| stopped())?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lines.close();
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
        lines.send(b"direct\n".to_vec()).await.unwrap();
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
            lines.send(b"lost\n".to_vec()).await.unwrap();
        }
        drop(lines);
        writer.await.unwrap();
    }
}
