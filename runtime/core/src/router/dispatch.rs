//! Dispatch from the waiting line: the tracker hands a `WAITING` execution to the router,
//! which takes it over ([`Takeover::Dispatch`]: attempt + 1, place in line kept) and runs its
//! rule for the stored object facts through the same path as a delivery — reconciliation if
//! needed, templates and plugin, the intent (which takes a slot of its group, or puts it back
//! in line when the group filled meanwhile), the job request and its record.

use super::{Deadline, Router, RouterError, RuleOutcome};
use crate::executions::Takeover;

impl Router {
    /// Submit the `WAITING` execution `execution_id` by `deadline`. Another dispatcher (or an
    /// operator's cancel) that changed it first makes this one refused, changing nothing.
    pub async fn dispatch(
        &self,
        execution_id: &str,
        deadline: Deadline,
    ) -> Result<RuleOutcome, RouterError> {
        let outcome = self
            .take_over_and_run(execution_id, Takeover::Dispatch, deadline)
            .await?;
        self.requeue_batch_failure(&outcome).await;
        Ok(outcome)
    }
}
