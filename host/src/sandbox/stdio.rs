//! A plugin's stdout and stderr: captured in memory up to a cap (the rest is dropped,
//! never an error the plugin could trip over), then written to the host log tagged
//! with the plugin. Nothing a plugin prints reaches the client.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Bytes of each stream kept per call: enough for a panic message and a few lines of
/// diagnostics; a chatty plugin cannot fill the host log.
pub const CAPTURE_BYTES: usize = 16 * 1024;

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    dropped: usize,
}

/// One captured stream; clones share the buffer.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Buffer>>);

impl Capture {
    /// What was captured, lossily decoded, and how many bytes were dropped.
    pub fn take(&self) -> (String, usize) {
        let mut buffer = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&buffer.bytes).into_owned();
        let dropped = buffer.dropped;
        *buffer = Buffer::default();
        (text, dropped)
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut buffer = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let room = CAPTURE_BYTES.saturating_sub(buffer.bytes.len());
        let kept = room.min(data.len());
        buffer.bytes.extend_from_slice(&data[..kept]);
        buffer.dropped += data.len() - kept;
        // Everything counts as written: output past the cap is dropped, not refused.
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Writes what a call printed to the host log, one event per stream.
pub fn log_output(plugin: &str, stream: &str, capture: &Capture) {
    let (text, dropped) = capture.take();
    if text.is_empty() && dropped == 0 {
        return;
    }
    tracing::info!(
        plugin,
        stream,
        dropped_bytes = dropped,
        output = %text.trim_end(),
        "plugin output"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn keeps_up_to_the_cap_and_counts_the_rest() {
        let capture = Capture::default();
        let mut writer = capture.clone();
        writer.write_all(b"hello\n").await.unwrap();
        writer.write_all(&vec![b'x'; CAPTURE_BYTES]).await.unwrap();
        let (text, dropped) = capture.take();
        assert_eq!(text.len(), CAPTURE_BYTES);
        assert!(text.starts_with("hello\n"));
        assert_eq!(dropped, 6);
        assert_eq!(capture.take(), (String::new(), 0));
    }
}
