//! The user-defined bridge network every sandbox joins.
//!
//! Invariant: one network of the configured name, found by name or created with the
//! configured subnet. Docker (API 1.41) does not refuse a second network of the same name,
//! but it does refuse a second one over the same subnet ("Pool overlaps"); so when two
//! agents (or test processes) race to create it, exactly one succeeds and the loser finds
//! the winner's by name. A subnet that overlaps another Docker network is refused by
//! Docker with that message, which is passed on with a hint; overlaps with host routes
//! are not checked by Docker, so pick a subnet unused on the host.

use std::collections::HashMap;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::InspectNetworkOptions;
use bollard::Docker;

use super::error;
use crate::runtime::RuntimeError;

/// Label put on the network flotilla creates.
const NETWORK_LABEL: &str = "io.flotilla.network";

/// Find network `name`, or create it over `subnet`; its id.
pub(super) async fn ensure(docker: &Docker, name: &str, subnet: &str) -> Result<String, RuntimeError> {
    if let Some(id) = find(docker, name).await? {
        return Ok(id);
    }
    let request = NetworkCreateRequest {
        name: name.to_string(),
        driver: Some("bridge".to_string()),
        ipam: Some(Ipam {
            config: Some(vec![IpamConfig { subnet: Some(subnet.to_string()), ..IpamConfig::default() }]),
            ..Ipam::default()
        }),
        labels: Some(HashMap::from([(NETWORK_LABEL.to_string(), "true".to_string())])),
        ..NetworkCreateRequest::default()
    };
    match docker.create_network(request).await {
        Ok(created) => {
            tracing::info!(network = name, subnet, id = created.id, "created the docker network for pods");
            Ok(created.id)
        }
        Err(e) => {
            // The winner of a race holds the subnet a moment before its network can be
            // found by name (seen with two agents started together on a fresh host).
            for _ in 0..RACE_LOOKUPS {
                if let Some(id) = find(docker, name).await? {
                    return Ok(id);
                }
                tokio::time::sleep(RACE_PAUSE).await;
            }
            Err(RuntimeError::Failed(format!(
                "docker: creating network {name} over {subnet}: {e} (choose another subnet if it overlaps)"
            )))
        }
    }
}

/// Lookups by name after a refused create, [`RACE_PAUSE`] apart: 2 s for the winner of a
/// race to finish creating the network, far longer than Docker takes.
const RACE_LOOKUPS: usize = 10;
const RACE_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

async fn find(docker: &Docker, name: &str) -> Result<Option<String>, RuntimeError> {
    match docker.inspect_network(name, None::<InspectNetworkOptions>).await {
        Ok(network) => Ok(Some(network.id.unwrap_or_else(|| name.to_string()))),
        Err(e) if error::status(&e) == Some(404) => Ok(None),
        Err(e) => Err(error::failed(e, &format!("inspecting network {name}"))),
    }
}
