//! CompanyOS domain types: validated ids, roles, the tenant lifecycle state machine, plans and
//! regions, usage events and metering declarations. Pure types and rules, no I/O: the service
//! layer and every adapter share them, so an invariant is checked in exactly one place.

pub mod action;
pub mod audit;
pub mod backoff;
pub mod boundary;
pub mod catalog;
pub mod cloudevent;
pub mod error;
pub mod event_packing;
pub mod ids;
pub mod log_id;
pub mod meter;
pub mod metering;
pub mod plan;
pub mod role;
pub mod statement;
pub mod tenant;
pub mod time_util;
pub mod usage;
mod usage_fast;
pub mod window;

pub use action::Action;
pub use error::{FieldError, ValidationErrors};
pub use ids::*;
pub use log_id::LogId;
pub use role::Role;
pub use tenant::{LifecycleAction, TenantStatus};
