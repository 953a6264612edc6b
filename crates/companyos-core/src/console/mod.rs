//! The operator console's service side (issue 18, ADR 0013): server-side sessions (so a logout
//! or a revoked operator takes effect on the next request on every node) and the audit records
//! of what an operator read through the console. Every action the console takes is an ordinary
//! service call with an [`Actor`](crate::Actor) whose channel is `console`.

mod sessions;

pub use sessions::{CONSOLE_SESSION_SECONDS, ConsoleSession, SESSION_TOKEN_PREFIX, SessionActor};
mod permissions;

pub use permissions::ApprovalDecisions;
