//! Request statistics: every API request, tokens issued, and the requests each Gallery API
//! operation handled (a benchmark counts Alteryx calls per tracker pass with these). Together
//! with the job counts of [`crate::jobs`] they make `GET /_emulator/stats`.

use serde::Serialize;

use crate::jobs::JobCounts;

/// The Gallery API operations the emulator counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Token,
    ListWorkflows,
    GetWorkflow,
    Questions,
    Submit,
    ListJobs,
    GetJob,
    JobOutput,
}

/// Requests handled per operation (after injected faults and authentication let them through).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OperationCounts {
    pub token: u64,
    pub list_workflows: u64,
    pub get_workflow: u64,
    pub questions: u64,
    pub submit: u64,
    pub list_jobs: u64,
    pub get_job: u64,
    pub job_output: u64,
}

/// Request counters.
#[derive(Default)]
pub(crate) struct Stats {
    /// Every API request, token requests, refused and faulted ones included.
    pub requests: u64,
    pub tokens_issued: u64,
    pub operations: OperationCounts,
}

impl Stats {
    pub(crate) fn count(&mut self, operation: Operation) {
        let o = &mut self.operations;
        let counter = match operation {
            Operation::Token => &mut o.token,
            Operation::ListWorkflows => &mut o.list_workflows,
            Operation::GetWorkflow => &mut o.get_workflow,
            Operation::Questions => &mut o.questions,
            Operation::Submit => &mut o.submit,
            Operation::ListJobs => &mut o.list_jobs,
            Operation::GetJob => &mut o.get_job,
            Operation::JobOutput => &mut o.job_output,
        };
        *counter += 1;
    }
}

/// Everything `GET /_emulator/stats` reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EmulatorStats {
    /// Every API request since the start or the last reset.
    pub requests: u64,
    pub tokens_issued: u64,
    #[serde(flatten)]
    pub jobs: JobCounts,
    pub operations: OperationCounts,
}
