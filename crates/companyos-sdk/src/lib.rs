//! The CompanyOS usage SDK (MET-1): build usage events, digest and sign them with a source key,
//! and send them reliably: batched by size and time, retried with backoff and jitter on network
//! errors and 5xx, resent safely (the server dedupes by `(tenant_id, event_id)`), and spooled
//! to disk so events survive the emitting process being killed while the server is away.

pub mod client;
pub mod emitter;
pub mod event;
pub mod spool;

pub use client::{BatchResult, Client, ClientConfig, SdkError};
pub use emitter::{Emitter, EmitterConfig};
pub use event::{Event, EventBuilder, SourceKey};
