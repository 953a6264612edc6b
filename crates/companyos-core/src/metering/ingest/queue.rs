//! The bounded queue between the requests' tasks and the one ingestion writer of a node: a
//! request's checked events go in as a [`Job`], the writer's decisions and the request's own
//! events come back, and the request's task builds the result rows from them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::writer::run_writer;
use super::{Checked, EventResult, IngestOutcome, Rejected};
use crate::app::{Actor, App};
use crate::dedupe::KeyIndex;
use crate::metering::group_commit::Decision;

/// One request waiting for the writer.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) actor: Actor,
    pub(crate) checked: Vec<Checked>,
    pub(crate) rejected: Vec<Rejected>,
    pub(super) reply: oneshot::Sender<Answer>,
}

/// What the writer sends back: its decision for each checked event, and the request's own
/// events, from which the request's task builds the result rows (in parallel with the
/// writer's next group) and which it frees (freeing memory that another thread allocated is
/// slow, and the writer is the one part of ingestion that runs alone).
pub(super) type Answer = (Result<Vec<Decision>, String>, Spent);

#[derive(Debug)]
pub(super) struct Spent {
    checked: Vec<Checked>,
    rejected: Vec<Rejected>,
}

impl Spent {
    /// The request's outcome: a result row per event, in request order.
    pub(super) fn outcome(&self, decisions: Vec<Decision>) -> IngestOutcome {
        assert_eq!(
            decisions.len(),
            self.checked.len(),
            "the writer decides every checked event"
        );
        let mut results: Vec<EventResult> =
            Vec::with_capacity(self.checked.len() + self.rejected.len());
        results.extend(self.rejected.iter().map(Rejected::result));
        results.extend(
            self.checked
                .iter()
                .zip(decisions)
                .map(|(checked, decision)| checked.result(decision)),
        );
        results.sort_by_key(|r| r.index);
        IngestOutcome { results }
    }
}

impl Job {
    pub(super) fn answer(self, result: Result<Vec<Decision>, String>) {
        let Job {
            reply,
            checked,
            rejected,
            actor: _,
        } = self;
        let spent = Spent { checked, rejected };
        // A requester that went away no longer wants the answer.
        let _ = reply.send((result, spent));
    }

    pub(super) fn len(&self) -> usize {
        self.checked.len() + self.rejected.len()
    }
}

/// The bounded queue in front of the writer task.
#[derive(Debug)]
pub struct IngestQueue {
    /// The store's dedupe key index (on SQLite: tail, runs, compaction, held by the writer for
    /// a whole group commit).
    pub(super) key_index: KeyIndex,
    pub(super) sender: mpsc::Sender<Job>,
    receiver: Mutex<Option<mpsc::Receiver<Job>>>,
    started: AtomicBool,
}

impl IngestQueue {
    pub fn new(capacity: usize, key_index: KeyIndex) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        Self {
            key_index,
            sender,
            receiver: Mutex::new(Some(receiver)),
            started: AtomicBool::new(false),
        }
    }
}

impl App {
    /// Starts the writer on a thread of its own, with a single-threaded runtime: request tasks
    /// parse and check events for milliseconds at a time on the shared runtime's workers, and a
    /// writer queued behind them would hold every group commit (and the store's single SQLite
    /// writer connection) waiting for a worker at each of its statements.
    pub(super) fn ensure_writer(&self) {
        if self.inner.ingest.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let receiver = self
            .inner
            .ingest
            .receiver
            .lock()
            .ok()
            .and_then(|mut r| r.take());
        let Some(receiver) = receiver else { return };
        // Weak: the writer must not keep the App (and so its own queue) alive.
        let app = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("companyos-ingest-writer".to_owned())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(run_writer(app, receiver)),
                    Err(error) => {
                        tracing::error!(%error, "could not start the ingestion writer's runtime");
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "could not start the ingestion writer thread");
        }
    }
}
