//! The emitter: a background task that batches emitted events by count, bytes and time, sends
//! each batch with the [`Client`]'s retries, and (with a spool) keeps every event on disk until
//! the server confirms it, resending after a restart.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::client::{BatchResult, Client, SdkError};
use crate::event::Event;
use crate::spool::Spool;

/// Emitter settings; every bound explicit.
#[derive(Debug, Clone)]
pub struct EmitterConfig {
    /// Events per batch.
    pub batch_events_max: usize,
    /// Encoded bytes per batch.
    pub batch_bytes_max: usize,
    /// A partial batch is sent after this long.
    pub flush_interval: Duration,
    /// Events waiting in memory; `emit` waits when full (back-pressure).
    pub queue_capacity: usize,
    /// Keep events on disk until confirmed.
    pub spool_dir: Option<PathBuf>,
    /// Pause between rounds when the server stays unavailable.
    pub unavailable_pause: Duration,
}

impl Default for EmitterConfig {
    fn default() -> Self {
        Self {
            batch_events_max: 1000,
            batch_bytes_max: 4 * 1024 * 1024,
            flush_interval: Duration::from_secs(1),
            queue_capacity: 100_000,
            spool_dir: None,
            unavailable_pause: Duration::from_secs(1),
        }
    }
}

enum Command {
    Emit(Value),
    Flush(oneshot::Sender<Result<(), SdkError>>),
}

/// Totals of what the emitter sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmitterStats {
    pub batches: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub late: u64,
    pub rejected: u64,
    pub conflicts: u64,
}

impl EmitterStats {
    fn add(&mut self, result: &BatchResult) {
        self.batches += 1;
        self.accepted += result.accepted;
        self.duplicates += result.duplicates;
        self.late += result.late;
        self.rejected += result.rejected;
        self.conflicts += result.conflicts;
    }
}

/// A handle to the background sender.
#[derive(Debug)]
pub struct Emitter {
    commands: mpsc::Sender<Command>,
    task: JoinHandle<Result<EmitterStats, SdkError>>,
}

struct Worker {
    client: Client,
    config: EmitterConfig,
    spool: Option<Spool>,
    /// Events not yet confirmed, with their spool offsets.
    pending: Vec<(u64, Value)>,
    pending_bytes: usize,
    stats: EmitterStats,
}

impl Emitter {
    /// Starts the emitter; with a spool, first resends whatever a previous run left.
    pub fn start(client: Client, config: EmitterConfig) -> Result<Emitter, SdkError> {
        let spool = config.spool_dir.as_deref().map(Spool::open).transpose()?;
        let mut pending = Vec::new();
        if let Some(spool) = &spool {
            pending = spool.pending()?;
        }
        let pending_bytes = pending.iter().map(|(_, v)| v.to_string().len()).sum();
        let (commands, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let worker = Worker {
            client,
            config,
            spool,
            pending,
            pending_bytes,
            stats: EmitterStats::default(),
        };
        let task = tokio::spawn(worker.run(receiver));
        Ok(Emitter { commands, task })
    }

    /// Queues an event (waits while the queue is full).
    pub async fn emit(&self, event: Event) -> Result<(), SdkError> {
        self.commands
            .send(Command::Emit(event.into_value()))
            .await
            .map_err(|_| SdkError::Stopped)
    }

    /// Queues a raw event object (for tools that forward events they did not build).
    pub async fn emit_value(&self, event: Value) -> Result<(), SdkError> {
        self.commands
            .send(Command::Emit(event))
            .await
            .map_err(|_| SdkError::Stopped)
    }

    /// Sends everything queued so far and waits for the server to confirm it.
    pub async fn flush(&self) -> Result<(), SdkError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Flush(reply))
            .await
            .map_err(|_| SdkError::Stopped)?;
        answer.await.map_err(|_| SdkError::Stopped)?
    }

    /// Flushes, stops the task and returns the totals.
    pub async fn shutdown(self) -> Result<EmitterStats, SdkError> {
        self.flush().await?;
        drop(self.commands);
        self.task.await.map_err(|_| SdkError::Stopped)?
    }
}

impl Worker {
    async fn run(
        mut self,
        mut receiver: mpsc::Receiver<Command>,
    ) -> Result<EmitterStats, SdkError> {
        let mut ticker = tokio::time::interval(self.config.flush_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = receiver.recv() => match command {
                    Some(Command::Emit(value)) => {
                        self.accept(value)?;
                        if self.pending.len() >= self.config.batch_events_max
                            || self.pending_bytes >= self.config.batch_bytes_max
                        {
                            // A full batch: try once; on failure keep it (spooled) for later.
                            let _ = self.send_pending(false).await;
                        }
                    }
                    Some(Command::Flush(reply)) => {
                        let result = self.send_pending(true).await;
                        let _ = reply.send(result);
                    }
                    None => {
                        self.send_pending(true).await?;
                        return Ok(self.stats);
                    }
                },
                _ = ticker.tick() => {
                    if !self.pending.is_empty() {
                        let _ = self.send_pending(false).await;
                    }
                }
            }
        }
    }

    fn accept(&mut self, value: Value) -> Result<(), SdkError> {
        let offset = match &mut self.spool {
            Some(spool) => spool.append(&value)?,
            None => 0,
        };
        self.pending_bytes += value.to_string().len();
        self.pending.push((offset, value));
        Ok(())
    }

    /// Sends pending events in batches. With `until_done`, keeps retrying through outages.
    async fn send_pending(&mut self, until_done: bool) -> Result<(), SdkError> {
        if let Some(spool) = &self.spool {
            spool.sync()?;
        }
        while !self.pending.is_empty() {
            let mut count = 0;
            let mut bytes = 0;
            for (_, value) in &self.pending {
                let size = value.to_string().len();
                if count > 0
                    && (count >= self.config.batch_events_max
                        || bytes + size > self.config.batch_bytes_max)
                {
                    break;
                }
                count += 1;
                bytes += size;
            }
            let batch: Vec<Value> = self.pending[..count]
                .iter()
                .map(|(_, v)| v.clone())
                .collect();
            match self.client.send_batch(&batch).await {
                Ok(result) => {
                    self.stats.add(&result);
                    let last_offset = self.pending[count - 1].0;
                    self.pending.drain(..count);
                    self.pending_bytes = self.pending_bytes.saturating_sub(bytes);
                    if let Some(spool) = &mut self.spool {
                        spool.confirm(last_offset)?;
                    }
                }
                Err(SdkError::Unavailable { .. }) if until_done => {
                    tokio::time::sleep(self.config.unavailable_pause).await;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}
