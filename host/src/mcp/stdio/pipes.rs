//! The byte streams of stdin and stdout. When stdin and stdout are pipes (as when an MCP
//! client starts the host), they are read and written by the async reactor directly;
//! tokio's own stdin and stdout hand every read and write to a blocking thread, a
//! thread hop per message. Anything else (a file, a terminal) uses those.

use tokio::io::{AsyncRead, AsyncWrite};

/// Standard input as an async reader.
pub type Input = Box<dyn AsyncRead + Send + Unpin>;
/// Standard output as an async writer.
pub type Output = Box<dyn AsyncWrite + Send + Unpin>;

/// Standard input and output, as pipes when they are.
pub fn streams() -> (Input, Output) {
    #[cfg(unix)]
    if let Some(pipes) = pipes() {
        return pipes;
    }
    (Box::new(tokio::io::stdin()), Box::new(tokio::io::stdout()))
}

/// Both ends as reactor-driven pipes, or `None` if either is not a pipe.
#[cfg(unix)]
fn pipes() -> Option<(Input, Output)> {
    use std::os::fd::AsFd;
    use tokio::net::unix::pipe;
    let stdin = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    // Both checked before either is switched to non-blocking.
    let is_pipe = |fd: &std::os::fd::OwnedFd| {
        use std::os::unix::fs::FileTypeExt;
        fd.try_clone()
            .map(std::fs::File::from)
            .and_then(|file| file.metadata())
            .is_ok_and(|meta| meta.file_type().is_fifo())
    };
    if !is_pipe(&stdin) || !is_pipe(&stdout) {
        return None;
    }
    let reader = pipe::Receiver::from_owned_fd(stdin).ok()?;
    let writer = pipe::Sender::from_owned_fd(stdout).ok()?;
    Some((Box::new(reader), Box::new(writer)))
}
