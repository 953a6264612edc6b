//! The `webhook` boundary driver: an external provisioner, told through the outbox.

use super::*;

impl BoundaryDriver for WebhookDriver {
    /// Only requested here: the outbox tells the provisioner, which calls back.
    async fn create(
        &self,
        _cx: BoundaryContext<'_>,
        _alert_rules: &str,
    ) -> Result<BoundarySpec, StepError> {
        Ok(BoundarySpec::Webhook {
            provisioner: self.url.clone(),
            state: "requested".to_owned(),
            provisioner_details: None,
        })
    }

    async fn set_access(
        &self,
        _spec: &BoundarySpec,
        _cx: BoundaryContext<'_>,
        allowed: bool,
        _reason: &str,
    ) -> Result<Value, StepError> {
        Ok(told_access(allowed))
    }

    async fn remove(
        &self,
        _spec: &BoundarySpec,
        _cx: BoundaryContext<'_>,
    ) -> Result<Value, StepError> {
        Ok(told_removal())
    }
}

/// The step details of a removal that is only told (through the outbox).
pub(super) fn told_removal() -> Value {
    json!({"told": "outbox"})
}

/// The step details of an access change that is only told (through the outbox).
pub(super) fn told_access(allowed: bool) -> Value {
    json!({"access": allowed, "told": "outbox"})
}
