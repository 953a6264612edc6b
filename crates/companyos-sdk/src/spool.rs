//! The disk spool: every emitted event is appended (one NDJSON line, written straight to the
//! file, so a killed process loses nothing it acknowledged) before it is queued; a cursor file
//! records how far the server has confirmed. On start, everything past the cursor is sent again
//! (the server dedupes). When everything is confirmed the spool is truncated.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::client::SdkError;

const DATA_FILE: &str = "spool.ndjson";
const CURSOR_FILE: &str = "spool.cursor";

fn error(action: &str, path: &Path, e: std::io::Error) -> SdkError {
    SdkError::Spool(format!("failed to {action} {}: {e}", path.display()))
}

/// An append-only spool of events not yet confirmed by the server.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    data: File,
    /// Bytes written to the data file.
    written: u64,
    /// Bytes of the data file the server has confirmed.
    confirmed: u64,
}

impl Spool {
    /// Opens (or creates) a spool in `dir`.
    pub fn open(dir: &Path) -> Result<Spool, SdkError> {
        std::fs::create_dir_all(dir).map_err(|e| error("create", dir, e))?;
        let data_path = dir.join(DATA_FILE);
        let data = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&data_path)
            .map_err(|e| error("open", &data_path, e))?;
        let written = data
            .metadata()
            .map_err(|e| error("stat", &data_path, e))?
            .len();
        let cursor_path = dir.join(CURSOR_FILE);
        let confirmed = match std::fs::read_to_string(&cursor_path) {
            Ok(text) => text.trim().parse().unwrap_or(0).min(written),
            Err(_) => 0,
        };
        Ok(Spool {
            dir: dir.to_owned(),
            data,
            written,
            confirmed,
        })
    }

    /// Appends one event; returns the file offset after it.
    pub fn append(&mut self, event: &Value) -> Result<u64, SdkError> {
        let mut line = serde_json::to_vec(event).map_err(|e| SdkError::Spool(e.to_string()))?;
        line.push(b'\n');
        self.data
            .write_all(&line)
            .map_err(|e| error("append to", &self.dir.join(DATA_FILE), e))?;
        self.written += line.len() as u64;
        Ok(self.written)
    }

    /// Makes the appended events durable across power loss too.
    pub fn sync(&self) -> Result<(), SdkError> {
        self.data
            .sync_data()
            .map_err(|e| error("sync", &self.dir.join(DATA_FILE), e))
    }

    /// Events appended but not confirmed, in order, with the offset after each.
    pub fn pending(&self) -> Result<Vec<(u64, Value)>, SdkError> {
        let path = self.dir.join(DATA_FILE);
        let mut file = File::open(&path).map_err(|e| error("open", &path, e))?;
        file.seek(SeekFrom::Start(self.confirmed))
            .map_err(|e| error("seek", &path, e))?;
        let mut reader = BufReader::new(file);
        let mut offset = self.confirmed;
        let mut events = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            let read = reader
                .read_line(&mut line)
                .map_err(|e| error("read", &path, e))?;
            if read == 0 || !line.ends_with('\n') {
                // A torn last line (killed mid-write) was never acknowledged to the caller.
                break;
            }
            offset += read as u64;
            if let Ok(value) = serde_json::from_str(line.trim_end()) {
                events.push((offset, value));
            }
        }
        Ok(events)
    }

    /// Records that the server confirmed everything up to `offset`.
    pub fn confirm(&mut self, offset: u64) -> Result<(), SdkError> {
        if offset <= self.confirmed {
            return Ok(());
        }
        self.confirmed = offset.min(self.written);
        if self.confirmed == self.written {
            // Nothing pending: start the spool afresh.
            self.data
                .set_len(0)
                .map_err(|e| error("truncate", &self.dir.join(DATA_FILE), e))?;
            self.written = 0;
            self.confirmed = 0;
        }
        let cursor_path = self.dir.join(CURSOR_FILE);
        let temp = self.dir.join("spool.cursor.tmp");
        std::fs::write(&temp, self.confirmed.to_string()).map_err(|e| error("write", &temp, e))?;
        std::fs::rename(&temp, &cursor_path).map_err(|e| error("rename", &cursor_path, e))?;
        Ok(())
    }

    pub fn pending_bytes(&self) -> u64 {
        self.written - self.confirmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spool_survives_reopen_and_truncates_when_confirmed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut spool = Spool::open(dir.path()).expect("open");
        let first = spool.append(&json!({"n": 1})).expect("append");
        spool.append(&json!({"n": 2})).expect("append");
        drop(spool);
        let mut spool = Spool::open(dir.path()).expect("reopen");
        assert_eq!(spool.pending().expect("pending").len(), 2);
        spool.confirm(first).expect("confirm");
        let reopened = Spool::open(dir.path()).expect("reopen");
        let pending = reopened.pending().expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].1, json!({"n": 2}));
        let mut spool = reopened;
        let last = pending[0].0;
        spool.confirm(last).expect("confirm");
        assert_eq!(spool.pending_bytes(), 0);
        assert!(
            Spool::open(dir.path())
                .expect("reopen")
                .pending()
                .expect("pending")
                .is_empty()
        );
    }
}
