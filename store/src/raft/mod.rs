//! openraft glue: log storage, state machine, snapshots, and the transport between replicas.

pub mod forward;
pub mod log_store;
pub mod network;
pub mod service;
pub mod snapshot;
pub mod state_machine;
