//! Where logs and one-line error messages go: stderr, written so that a failing sink can
//! never take the service down.
//!
//! `eprintln!`/`println!` panic when the write fails (`2>/dev/full`, a pipe whose reader died),
//! and tracing-subscriber prints its own write errors with `eprintln!`, so one failed log line
//! used to panic a request task (the request was dropped unanswered) or the whole server (exit
//! 101). Logging is best effort: a line that cannot be written is dropped and the request goes
//! on.

use std::io::{self, IsTerminal as _, Write};

/// A `MakeWriter` for tracing-subscriber: stderr, with every write error swallowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

/// One log event's writer: reports success whatever stderr did.
#[derive(Debug)]
pub struct StderrLine {
    failed: bool,
}

impl Write for StderrLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // After one failed write the rest of the line is dropped too (no half lines later).
        if !self.failed && io::stderr().lock().write_all(buf).is_err() {
            self.failed = true;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ignored = io::stderr().flush();
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = StderrLine;

    fn make_writer(&'a self) -> Self::Writer {
        StderrLine { failed: false }
    }
}

/// Whether stderr is a terminal (colours only then).
pub fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}

/// Writes one line to stderr; a failed write is ignored.
pub fn err_line(line: std::fmt::Arguments<'_>) {
    let mut stderr = io::stderr().lock();
    let _ignored = stderr
        .write_fmt(line)
        .and_then(|()| stderr.write_all(b"\n"));
}
