//! Container probes (startup, liveness, readiness) and lifecycle hooks (postStart,
//! preStop), split like the pod sync: [`state`] is the pure bookkeeping that decides
//! when a probe is due and what its results mean; [`action`] turns a probe or hook of the
//! pod spec into something to run; [`run`] runs it (exec in the container, an HTTP GET,
//! a TCP connect) with its timeout; [`hooks`] runs lifecycle hooks around container
//! starts and stops.
//!
//! Data flow: [`super::sync::PodSync::plan`] tells [`state::Probes`] which container
//! attempts run → the worker asks for the due probes, runs them concurrently inside its
//! own task ([`run::probe`]) and feeds each [`state::Outcome`] back → a result that changes
//! readiness, `started`, or asks for a kill wakes the worker at once, and the next plan
//! carries the kill (`Step::StopContainer`) and the readiness the status reports.
//!
//! Kubernetes semantics kept here (upstream `pkg/kubelet/prober`):
//! - defaults: periodSeconds 10, timeoutSeconds 1, successThreshold 1 (forced to 1 for
//!   liveness and startup), failureThreshold 3, initialDelaySeconds 0;
//! - a result changes a probe's state only after `threshold` equal results in a row;
//! - the startup probe runs until it succeeds once, and liveness and readiness wait for
//!   it; it never runs again for that container attempt;
//! - readiness starts failed, liveness starts passing; a new attempt starts afresh;
//! - a probe that cannot run (an unsupported kind, a port name that resolves to nothing)
//!   gives [`state::Outcome::Unknown`], which is logged and changes nothing.

pub mod action;
pub mod hooks;
pub mod run;
pub mod state;
