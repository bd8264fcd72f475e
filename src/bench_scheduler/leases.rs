//! Heartbeats for the simulated nodes: their `kube-node-lease` Leases renewed as kubelets
//! would, but only once a run lasts long enough to need it.
//!
//! The node lifecycle controller treats a node whose Lease has not been renewed for its
//! grace period (40 s) as unreachable and taints it, which would stop the scheduler placing
//! pods there. A short run never gets near that, and renewing 5,000 leases costs 500 writes
//! a second, so renewals start only [`FIRST_RENEWAL_AFTER`] after the leases were created;
//! from then on every lease is renewed once per [`RENEW_EVERY`] (the kubelet's period),
//! spread evenly over the period rather than in bursts, until the run ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use tokio_util::sync::CancellationToken;

use super::batch::{self, Plan, Req};
use super::objects::{lease, node_leases};

/// Age of the leases at which renewing starts: 15 s before the 40 s grace runs out, which
/// leaves room for one renewal period (10 s) and for renewals delayed by a busy API.
pub const FIRST_RENEWAL_AFTER: Duration = Duration::from_secs(25);
/// How often each lease is renewed once renewing has started (upstream kubelet: 10 s).
pub const RENEW_EVERY: Duration = Duration::from_secs(10);
/// Connections renewing leases: at 5,000 nodes a renewal is due every 2 ms, which 8
/// connections sustain while each renewal takes up to 16 ms.
const RENEW_CLIENTS: usize = 8;

/// What the renewer did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Renewals {
    /// Sweeps started (the last one may have been cut short by the end of the run).
    pub sweeps: u64,
    pub renewed: u64,
    pub errors: u64,
}

/// Renews the leases of `nodes` until `cancel` fires; the leases were created at `created`.
pub async fn renew(
    urls: Vec<String>,
    nodes: Arc<Vec<String>>,
    run: String,
    created: Instant,
    cancel: CancellationToken,
) -> Renewals {
    let mut out = Renewals::default();
    let mut sweep_at = created + FIRST_RENEWAL_AFTER;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return out,
            _ = tokio::time::sleep_until(sweep_at.into()) => {}
        }
        let plan = Plan {
            measure: "renew-leases",
            clients: RENEW_CLIENTS,
            count: nodes.len(),
            pace: Some(RENEW_EVERY / nodes.len().max(1) as u32),
            stop: Some(cancel.clone()),
        };
        let (names, run) = (nodes.clone(), run.clone());
        let sweep = batch::run(&urls, plan, move |i| Req {
            method: Method::PUT,
            path: format!("{}/{}", node_leases(), names[i]),
            body: Some(lease(&names[i], &run)),
            want: StatusCode::OK,
        });
        // A sweep cut short by the end of the run still reports what it renewed.
        match sweep.await {
            Ok(d) => {
                out.sweeps += 1;
                out.renewed += d.report.ok;
                out.errors += d.report.errors;
                if let Some(e) = d.report.first_error {
                    tracing::warn!(error = %e, errors = d.report.errors, "some node leases were not renewed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "a lease renewal sweep failed"),
        }
        sweep_at += RENEW_EVERY;
    }
}
