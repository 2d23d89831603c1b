//! Standard input, read a line at a time, each line routed: a call the direct path
//! takes, or a message for rmcp, written on to it as it came (a cancellation goes to
//! both). Lines past rmcp's length limit are not held: their bytes stream on to rmcp,
//! which discards them and says so, as it would have.

use super::direct::Direct;
use super::pipes::Input;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The longest line read whole (rmcp's own limit).
pub const MAX_LINE: usize = rmcp::transport::async_rw::DEFAULT_MAX_LINE_LENGTH;

/// Bytes read from stdin at a time.
const READ_BUFFER: usize = 64 * 1024;
/// The largest line buffer kept for the next line.
const KEEP_LINE_BUFFER: usize = 1024 * 1024;

/// What reading stopped at.
enum Next {
    /// A whole line, in the line buffer.
    Line,
    /// A line too long to hold, already streamed on to rmcp.
    Passed,
    /// The end of input.
    End,
}

/// Routes stdin's lines until it ends, rmcp stops reading, or `stop` is cancelled;
/// returns the direct calls still running and rmcp's input. The caller waits for the
/// calls before it drops rmcp's input (rmcp stops serving at the end of its input,
/// and those calls may still send the client notifications through it).
pub async fn route(
    input: Input,
    mut rmcp: DuplexStream,
    direct: Arc<Direct>,
    stop: CancellationToken,
) -> (JoinSet<()>, DuplexStream) {
    let mut input = BufReader::with_capacity(READ_BUFFER, input);
    let mut line = Vec::new();
    let mut calls = JoinSet::new();
    loop {
        line.clear();
        // A long line's buffer is not kept for the short ones after it.
        if line.capacity() > KEEP_LINE_BUFFER {
            line = Vec::new();
        }
        let next = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            next = next_line(&mut input, &mut line, &mut rmcp, MAX_LINE) => next,
        };
        // Calls that ended are reaped as lines come, so the set stays small.
        while calls.try_join_next().is_some() {}
        match next {
            Ok(Next::Line) => {}
            Ok(Next::Passed) => continue,
            Ok(Next::End) => break,
            Err(error) => {
                // rmcp's reader treats a read error as the end of input; so does this.
                tracing::error!(%error, "stdin cannot be read; ending the session");
                break;
            }
        }
        if direct.take(&line, &mut calls) {
            continue;
        }
        direct.note_cancellation(&line);
        if rmcp.write_all(&line).await.is_err() {
            // rmcp has stopped reading: the session is over.
            break;
        }
    }
    (calls, rmcp)
}

/// Reads the next line into `line` (its newline included). A line longer than `max`
/// is streamed on to `rmcp` instead; so is an unfinished line at the end of input.
/// Cancel-safe only between lines.
async fn next_line(
    input: &mut BufReader<Input>,
    line: &mut Vec<u8>,
    rmcp: &mut DuplexStream,
    max: usize,
) -> std::io::Result<Next> {
    let mut passing = false;
    loop {
        let available = input.fill_buf().await?;
        if available.is_empty() {
            if !line.is_empty() {
                rmcp.write_all(line).await?;
            }
            return Ok(Next::End);
        }
        let newline = available.iter().position(|&b| b == b'\n');
        let take = newline.map_or(available.len(), |at| at + 1);
        if !passing && line.len() + take > max {
            passing = true;
            rmcp.write_all(line).await?;
            line.clear();
        }
        if passing {
            let chunk = input.buffer()[..take].to_vec();
            input.consume(take);
            rmcp.write_all(&chunk).await?;
            if newline.is_some() {
                return Ok(Next::Passed);
            }
            continue;
        }
        line.extend_from_slice(&input.buffer()[..take]);
        input.consume(take);
        if newline.is_some() {
            return Ok(Next::Line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Lines up to the limit are held whole; a longer one streams on to rmcp, and so
    /// does an unfinished last line; reading goes on after either.
    #[tokio::test]
    async fn long_and_unfinished_lines_stream_on_to_rmcp() {
        let text = format!("short\n{}\nnext\ntail", "x".repeat(100));
        let mut input = BufReader::with_capacity(8, Box::new(std::io::Cursor::new(text)) as Input);
        let (mut rmcp, mut rmcp_side) = tokio::io::duplex(1 << 16);
        let mut line = Vec::new();
        let mut seen = Vec::new();
        loop {
            line.clear();
            match next_line(&mut input, &mut line, &mut rmcp, 10)
                .await
                .unwrap()
            {
                Next::Line => seen.push(String::from_utf8(line.clone()).unwrap()),
                Next::Passed => seen.push("(passed)".to_owned()),
                Next::End => break,
            }
        }
        assert_eq!(seen, ["short\n", "(passed)", "next\n"]);
        drop(rmcp);
        let mut passed = String::new();
        rmcp_side.read_to_string(&mut passed).await.unwrap();
        assert_eq!(passed, format!("{}\ntail", "x".repeat(100)));
    }
}
