//! Dry runs (`backfill --dry-run`): what routing an object would do, rule by rule, without
//! claiming, writing or submitting anything. It reads what routing would read (the execution
//! record, and the object when a plugin runs) so the question values shown are the ones that
//! would be sent.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Questions, Router, RouterError};
use crate::event::ObjectCreated;
use crate::executions::{Execution, Found, execution_id_of, now_unix, on_claim};

/// What routing would do with one rule's execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Would {
    /// Submit a job.
    Run,
    /// Nothing: the execution already ran or ended.
    Duplicate,
    /// Nothing yet: another invocation holds a live claim on it.
    InProgress,
    /// The plugin would skip the object (or it is gone).
    Skip,
    /// The question values cannot be made (a plugin failed, no plugin store, ...).
    Fail,
}

/// One rule's execution in a dry run.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    pub rule_id: String,
    pub execution_id: String,
    pub workflow: String,
    pub would: Would,
    /// The values that would be sent (for `run`).
    pub questions: BTreeMap<String, String>,
    /// Why it would not run, or the existing execution's status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a claim would find in `existing` at `now`: `None` when it would take it over.
fn on_claim_would(existing: &Execution, now: i64) -> Option<Would> {
    match on_claim(existing, now) {
        Found::Takeover => None,
        Found::InProgress => Some(Would::InProgress),
        Found::Done => Some(Would::Duplicate),
    }
}

impl Router {
    /// What [`route_rules`](Router::route_rules) would do with `object`, writing nothing.
    pub async fn plan(
        &self,
        object: &ObjectCreated,
        only: Option<&str>,
    ) -> Result<Vec<Planned>, RouterError> {
        let rule_set = self.rules.rule_set().await?;
        let mut matched = rule_set.matching(object);
        if let Some(only) = only {
            matched.retain(|rule| rule.rule.id == only);
        }
        let mut planned = Vec::with_capacity(matched.len());
        for rule in matched {
            let execution_id = execution_id_of(&rule.rule.id, object);
            let mut plan = Planned {
                rule_id: rule.rule.id.clone(),
                execution_id: execution_id.clone(),
                workflow: rule.rule.workflow.clone(),
                would: Would::Run,
                questions: BTreeMap::new(),
                message: None,
            };
            if let Some(existing) = self.executions.get(&execution_id).await? {
                match on_claim_would(&existing, now_unix()) {
                    Some(would) => {
                        plan.would = would;
                        plan.workflow = existing.workflow.clone();
                        plan.message = Some(format!(
                            "execution is {} (attempt {})",
                            existing.status, existing.attempt
                        ));
                        planned.push(plan);
                        continue;
                    }
                    None => {
                        plan.message = Some(format!(
                            "takes over attempt {} ({})",
                            existing.attempt, existing.status
                        ));
                    }
                }
            }
            if let Some(batch) = rule.batch() {
                plan.message = Some(match batch.key_of(rule, object) {
                    Ok(group) => format!(
                        "joins the open batch of group `{group}`; its job runs when the batch closes"
                    ),
                    Err(e) => crate::error_chain(&e),
                });
                planned.push(plan);
                continue;
            }
            match self.questions_for(rule, object, None).await {
                Ok(Questions::Values { questions, plugin }) => {
                    if let Some(workflow) = plugin.and_then(|p| p.workflow) {
                        plan.workflow = workflow;
                    }
                    plan.questions = questions;
                }
                Ok(Questions::Skip {
                    questions, reason, ..
                }) => {
                    plan.would = Would::Skip;
                    plan.questions = questions;
                    plan.message = Some(reason);
                }
                Err(failure) => {
                    plan.would = Would::Fail;
                    plan.message = Some(failure.message);
                }
            }
            planned.push(plan);
        }
        Ok(planned)
    }
}
