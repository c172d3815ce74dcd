//! What every long-running command shares: bounded reads of operator files
//! and the content digest ([`files`]), the policy in force and its
//! file source ([`policy_store`]), the namespace-label port the webhook reads
//! and the cache fills ([`namespace_labels`]), supervised background tasks
//! ([`supervise`]), periodic file reloads reported once per change
//! ([`reload`]), and logs and metrics ([`telemetry`], the log line formats in
//! [`log_format`], the batched stderr writer in [`log_writer`]).

pub mod files;
pub mod log_format;
pub mod log_writer;
pub mod namespace_labels;
pub mod policy_store;
pub mod reload;
pub mod supervise;
pub mod telemetry;
