//! EC2 containment: isolate-instance, snapshot-volumes, and restoring isolation.

use ir_core::action::{ActionReport, ContainmentRequest};

use crate::{ActionError, Clients};

/// Isolates the instance named by the request (see the module docs).
pub async fn isolate_instance(_clients: &Clients, _req: &ContainmentRequest) -> Result<ActionReport, ActionError> {
    Err(ActionError::Configuration("isolate-instance is not built yet".into()))
}
