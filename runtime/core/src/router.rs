//! The pipeline: event → matching rules → claim → question values → submit → record.
//!
//! One [`Router`] serves the Lambda, `alteryx-router invoke`, `executions retry|resolve` and
//! `demo`; only the stores behind it differ. For every object, every matching rule gets its
//! own execution, and one rule's failure never stops the others. Every invocation has a
//! [`Deadline`] (the Lambda context's, or `INVOCATION_TIMEOUT_SECONDS`).
//!
//! Order of a rule's steps, and why:
//! 1. **claim** the execution first, so a duplicate delivery costs one conditional write and
//!    never reads the object or runs a plugin. The claim's lease ends with the invocation
//!    (deadline + `CLAIM_LEASE_MARGIN_SECONDS`); a delivery that meets a live claim of another
//!    invocation is *in progress*, not done: it fails retryably so the event comes back;
//! 2. if an earlier attempt's job request may have reached Alteryx, **reconcile** with
//!    Alteryx's job list before anything else ([`crate::executions::reconcile`]);
//! 3. render the templates, then run the plugin (which may add or override values, or skip);
//! 4. write the **intent** (`SUBMITTING`), send the job request within the time left, and
//!    record `SUBMITTED` with the job id and its ownership item, or what the failure leaves
//!    behind ([`crate::executions::submit::after_failure`]). Outcome writes are retried within
//!    the deadline; if they still fail, the invocation fails and the next attempt reconciles.
//!
//! Whatever a redelivery may fix (Alteryx down, an outcome to reconcile, a claim in progress)
//! is recorded first and then reported to the caller, so the Lambda fails the invocation and
//! the event comes back: nothing is lost, and no job request is sent twice on a guess.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error_chain;
use crate::event::{self, Decoded, ObjectCreated};
use crate::executions::reconcile::{ReconcileSettings, Reconciler};
use crate::executions::submit::{Recorder, write_within};
use crate::executions::{
    Claim, Claimant, Execution, ExecutionError, ExecutionStatus, ExecutionStore, LeaseState,
    PluginSummary, execution_id_of, format_unix, now_unix,
};
use crate::notify::{LogNotifier, Notifier};
use crate::plugin::{ObjectReader, ObjectVersion, PluginHost, PluginInput, PluginOutcome};
use crate::render::{ObjectDetails, QuestionRenderer};
use crate::rules::{CompiledRule, RuleError, RuleSource};
use crate::secrets::{ClientPool, PoolError};

mod attempt;
mod batching;
mod dispatch;
mod manual;
mod plan;
mod summary;

pub use crate::executions::submit::Deadline;
pub use batching::BatchClosed;
pub use plan::{Planned, Would};
pub use summary::{
    BatchActivity, InvocationFailure, InvocationSummary, ObjectSummary, OutcomeCounts, RuleOutcome,
};

/// Tunables of the pipeline; all have defaults that suit the Lambda.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// `CLAIM_LEASE_MARGIN_SECONDS`: a claim's lease ends this long after the invocation's
    /// deadline (clocks of different hosts differ a little; the process is gone by then).
    pub claim_lease_margin: Duration,
    /// How long execution records live before DynamoDB's TTL removes them.
    pub execution_ttl: Duration,
    /// `INVOCATION_TIMEOUT_SECONDS`: the deadline of callers that have none of their own (the
    /// CLI's `invoke`, `executions retry|resolve`, `demo`).
    pub invocation_timeout: Duration,
    /// `OUTCOME_WRITE_RESERVE_SECONDS`: time kept back before the deadline to record an
    /// outcome; no job request starts unless the request timeout fits before it.
    pub write_reserve: Duration,
    /// `RECONCILE_GRACE_SECONDS`: how long after a job request surely ended (its time budget)
    /// reconciliation waits before it trusts Alteryx's job list to show its job.
    pub reconcile_grace: Duration,
    pub reconcile: ReconcileSettings,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            claim_lease_margin: Duration::from_secs(60),
            execution_ttl: Duration::from_secs(90 * 24 * 3600),
            invocation_timeout: Duration::from_secs(300),
            write_reserve: Duration::from_secs(5),
            reconcile_grace: Duration::from_secs(30),
            reconcile: ReconcileSettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Event(#[from] event::EventError),
    #[error("could not load routing rules: {0}")]
    Rules(#[from] RuleError),
    #[error(transparent)]
    Execution(#[from] ExecutionError),
    #[error("execution {execution}: rule `{rule}` no longer exists, so it cannot be retried")]
    RuleGone { execution: String, rule: String },
    #[error("execution {execution} is {status}; only UNCERTAIN executions are resolved")]
    NotUncertain {
        execution: String,
        status: ExecutionStatus,
    },
    #[error("execution {execution} cannot be rerun: {reason}")]
    RerunRefused { execution: String, reason: String },
    #[error("checking job {job} at Alteryx")]
    JobCheck {
        job: String,
        #[source]
        source: PoolError,
    },
    #[error("job {job} belongs to workflow {actual}, not to the execution's workflow {expected}")]
    WrongWorkflow {
        job: String,
        actual: String,
        expected: String,
    },
}

impl RouterError {
    /// Rules or execution-store outages are worth a redelivery; a malformed event is not
    /// going to get better, but failing still sends it to the DLQ where it is kept.
    pub fn is_retryable(&self) -> bool {
        match self {
            RouterError::RuleGone { .. }
            | RouterError::RerunRefused { .. }
            | RouterError::NotUncertain { .. }
            | RouterError::WrongWorkflow { .. } => false,
            RouterError::JobCheck { source, .. } => source.is_retryable(),
            _ => true,
        }
    }

    /// What Lambda reports as the failed invocation's `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            RouterError::Event(_) => "MalformedEvent",
            RouterError::Rules(_) => "RulesUnavailable",
            RouterError::Execution(_) => "ExecutionStoreError",
            RouterError::RuleGone { .. } => "RuleGone",
            RouterError::RerunRefused { .. } => "RerunRefused",
            RouterError::NotUncertain { .. }
            | RouterError::JobCheck { .. }
            | RouterError::WrongWorkflow { .. } => "ResolveRefused",
        }
    }
}

/// How a person settles an `UNCERTAIN` execution (`executions resolve`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// This job (it exists at Alteryx) is the execution's.
    Job(String),
    /// No job at Alteryx is the execution's: submit a new attempt.
    Resubmit,
}

/// The rule engine. Cheap to share: hold it in an `Arc` for the life of the process.
pub struct Router {
    rules: Arc<dyn RuleSource>,
    executions: Arc<dyn ExecutionStore>,
    alteryx: Arc<ClientPool>,
    plugins: Option<Arc<PluginHost>>,
    objects: Option<Arc<dyn ObjectReader>>,
    /// Renders question values, fetching metadata and signing URLs only for templates that
    /// use them.
    renderer: QuestionRenderer,
    notifier: Arc<dyn Notifier>,
    settings: RouterSettings,
}

impl Router {
    pub fn new(
        rules: Arc<dyn RuleSource>,
        executions: Arc<dyn ExecutionStore>,
        alteryx: Arc<ClientPool>,
    ) -> Self {
        Self {
            rules,
            executions,
            alteryx,
            plugins: None,
            objects: None,
            renderer: QuestionRenderer::default(),
            notifier: Arc::new(LogNotifier),
            settings: RouterSettings::default(),
        }
    }

    /// Enable plugins: the host that runs them and the reader that fetches objects' heads.
    pub fn with_plugins(mut self, host: Arc<PluginHost>, objects: Arc<dyn ObjectReader>) -> Self {
        self.plugins = Some(host);
        self.objects = Some(objects);
        self
    }

    /// Let templates use `{meta.NAME}` and `{presigned_url}` (S3, or `LOCAL_OBJECTS_DIR`).
    pub fn with_object_details(mut self, details: Arc<dyn ObjectDetails>) -> Self {
        self.renderer = QuestionRenderer::new(Some(details));
        self
    }

    pub fn with_settings(mut self, settings: RouterSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Where `UNCERTAIN` executions are announced (SNS in AWS; the log by default).
    pub fn with_notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifier = notifier;
        self
    }

    pub fn executions(&self) -> &Arc<dyn ExecutionStore> {
        &self.executions
    }

    pub fn rules(&self) -> &Arc<dyn RuleSource> {
        &self.rules
    }

    pub fn alteryx(&self) -> &Arc<ClientPool> {
        &self.alteryx
    }

    pub fn settings(&self) -> &RouterSettings {
        &self.settings
    }

    fn recorder(&self) -> Recorder {
        Recorder::new(Arc::clone(&self.executions), Arc::clone(&self.notifier))
    }

    fn reconciler(&self) -> Reconciler {
        Reconciler::new(
            self.recorder(),
            Arc::clone(&self.alteryx),
            self.settings.reconcile.clone(),
        )
    }

    /// The deadline of a caller without one of its own (`INVOCATION_TIMEOUT_SECONDS` from now).
    pub fn default_deadline(&self) -> Deadline {
        Deadline::after(self.settings.invocation_timeout)
    }

    /// Load the rules and the default credentials concurrently, before the first event (the
    /// Lambda calls this during init). Failures are only logged: the first event retries them
    /// and records what went wrong.
    pub async fn warm_up(&self) {
        let (rules, client) = tokio::join!(self.rules.rule_set(), self.alteryx.client(None));
        if let Err(e) = rules {
            tracing::warn!(error = %error_chain(&e), "could not load rules during init");
        }
        if let Err(e) = client {
            tracing::debug!(error = %error_chain(&e), "no default Alteryx credentials during init");
        }
    }

    /// Route a raw invocation payload (EventBridge, S3, SNS or SQS shaped) by the default
    /// deadline.
    pub async fn handle_payload(
        &self,
        payload: &serde_json::Value,
    ) -> Result<InvocationSummary, RouterError> {
        self.handle_payload_until(payload, self.default_deadline())
            .await
    }

    /// Route a raw invocation payload by `deadline` (the Lambda context's).
    pub async fn handle_payload_until(
        &self,
        payload: &serde_json::Value,
        deadline: Deadline,
    ) -> Result<InvocationSummary, RouterError> {
        let decoded = event::decode(payload)?;
        let mut summary = InvocationSummary::default();
        match decoded {
            Decoded::Sqs(messages) => {
                summary.sqs = true;
                for message in messages {
                    match message.result {
                        Ok(inner) => {
                            let objects_before = summary.objects.len();
                            let rejected_before = summary.rejected.len();
                            // A message's own nested batch is handled like the top level;
                            // a failure anywhere in it fails the message.
                            let failed = self
                                .handle_decoded(inner, &mut summary, deadline)
                                .await
                                .is_err()
                                || summary.rejected.len() > rejected_before
                                || summary.objects[objects_before..]
                                    .iter()
                                    .any(ObjectSummary::has_retryable_failure);
                            if failed {
                                summary.failed_messages.push(message.message_id);
                            }
                        }
                        Err(e) => {
                            tracing::error!(message_id = %message.message_id, error = %error_chain(&e),
                                "SQS message is not an event we can read; leaving it to SQS redrive / DLQ");
                            summary.failed_messages.push(message.message_id);
                        }
                    }
                }
            }
            other => self.handle_decoded(other, &mut summary, deadline).await?,
        }
        let counts = summary.counts();
        tracing::info!(
            objects = summary.objects.len(),
            submitted = counts.submitted,
            duplicates = counts.duplicates,
            in_progress = counts.in_progress,
            skipped = counts.skipped,
            errors = counts.errors,
            unknown = counts.unknown,
            uncertain = counts.uncertain,
            waiting = counts.waiting,
            ignored = summary.skipped.len(),
            rejected = summary.rejected.len(),
            failed_messages = summary.failed_messages.len(),
            "invocation routed"
        );
        Ok(summary)
    }

    async fn handle_decoded(
        &self,
        decoded: Decoded,
        summary: &mut InvocationSummary,
        deadline: Deadline,
    ) -> Result<(), RouterError> {
        match decoded {
            Decoded::Objects(objects) => {
                for object in &objects {
                    summary
                        .objects
                        .push(self.route_object_until(object, deadline).await?);
                }
            }
            Decoded::Partial { objects, rejected } => {
                for reason in &rejected {
                    tracing::error!(%reason, "record rejected; the other records are routed");
                }
                summary.rejected.extend(rejected);
                for object in &objects {
                    summary
                        .objects
                        .push(self.route_object_until(object, deadline).await?);
                }
            }
            Decoded::Skipped(reason) => {
                tracing::info!(%reason, "input ignored");
                summary.skipped.push(reason);
            }
            Decoded::Sqs(messages) => {
                // SQS inside SQS does not happen in AWS; treat each inner message in turn.
                for m in messages {
                    let inner = m.result?;
                    Box::pin(self.handle_decoded(inner, summary, deadline)).await?;
                }
            }
        }
        Ok(())
    }

    /// Route one object by the default deadline.
    pub async fn route_object(&self, object: &ObjectCreated) -> Result<ObjectSummary, RouterError> {
        self.route_object_until(object, self.default_deadline())
            .await
    }

    /// Route one object: every matching rule, in priority order, each on its own.
    pub async fn route_object_until(
        &self,
        object: &ObjectCreated,
        deadline: Deadline,
    ) -> Result<ObjectSummary, RouterError> {
        self.route_rules(object, None, deadline).await
    }

    /// Route one object through the matching rules, or only through rule `only` (backfill's
    /// `--rule`) when it matches.
    pub async fn route_rules(
        &self,
        object: &ObjectCreated,
        only: Option<&str>,
        deadline: Deadline,
    ) -> Result<ObjectSummary, RouterError> {
        let started = Instant::now();
        let rule_set = self.rules.rule_set().await?;
        let mut matched = rule_set.matching(object);
        if let Some(only) = only {
            matched.retain(|rule| rule.rule.id == only);
        }
        let mut outcomes = Vec::with_capacity(matched.len());
        for rule in &matched {
            outcomes.push(self.run_rule(rule, object, deadline).await);
        }
        let summary = ObjectSummary {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            version: object.version_token().to_string(),
            rules_matched: matched.len(),
            outcomes,
        };
        if summary.rules_matched == 0 {
            tracing::info!(bucket = %object.bucket, key = %object.key, "no rule matches");
        }
        for o in &summary.outcomes {
            tracing::info!(
                bucket = %object.bucket, key = %object.key, rule = %o.rule_id,
                execution = %o.execution_id, status = %o.status, duplicate = o.duplicate,
                in_progress = o.in_progress, attempt = o.attempt,
                job_id = o.job_id.as_deref().unwrap_or(""), message = o.message.as_deref().unwrap_or(""),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "rule outcome"
            );
        }
        Ok(summary)
    }

    /// The least time left with which a rule is started: a job request plus its record.
    pub fn time_to_start(&self) -> Duration {
        self.alteryx.options().request_timeout + self.settings.write_reserve
    }

    /// One rule for one object: claim, then execute unless it is done or in progress.
    async fn run_rule(
        &self,
        rule: &CompiledRule,
        object: &ObjectCreated,
        deadline: Deadline,
    ) -> RuleOutcome {
        if let Some(batch) = rule.batch() {
            return self.join_batch(rule, batch, object, deadline).await;
        }
        let claimant = Claimant::new(deadline.lease_until(self.settings.claim_lease_margin));
        let record = self.new_execution(rule, object, &claimant);
        if deadline.left() < self.settings.write_reserve * 2 {
            // Not even time to claim and record a place in line: a claim now would only
            // block the redelivery until it expires.
            return RuleOutcome {
                status: ExecutionStatus::Error,
                message: Some(format!(
                    "not started: {} ms left before the invocation's deadline, a claim and its record need {} ms",
                    deadline.left().as_millis(),
                    (self.settings.write_reserve * 2).as_millis()
                )),
                retryable: true,
                ..outcome_of(&record)
            };
        }
        let claim = write_claim(self.executions.as_ref(), &deadline, record.clone()).await;
        match claim {
            // Too little time for a job request: the line keeps it for the next tracker pass
            // (one whose earlier request may have reached Alteryx reconciles first instead).
            Ok(Claim::Acquired(claimed))
                if deadline.left() < self.time_to_start() && !claimed.must_reconcile() =>
            {
                self.wait_for_time(claimed, rule, deadline).await
            }
            Ok(Claim::Acquired(claimed)) => self.execute(claimed, rule, object, deadline).await,
            Ok(Claim::Duplicate(existing)) => RuleOutcome {
                duplicate: true,
                retryable: false,
                ..outcome_of(&existing)
            },
            Ok(Claim::InProgress(existing)) => in_progress(&existing),
            Err(e) => {
                // The store is unreachable: nothing was recorded, so the only safe move is
                // to have the whole event delivered again.
                let error = error_chain(&e);
                tracing::error!(rule = %rule.rule.id, %error, "could not claim execution");
                RuleOutcome {
                    status: ExecutionStatus::Error,
                    message: Some(format!("could not claim the execution: {error}")),
                    retryable: true,
                    ..outcome_of(&record)
                }
            }
        }
    }

    /// Template values, then the plugin's (which win on the same name), and what the plugin
    /// read and chose. An object deleted or overwritten since the event is skipped.
    async fn questions_for(
        &self,
        rule: &CompiledRule,
        object: &ObjectCreated,
        batch: Option<&crate::plugin::BatchInput>,
    ) -> Result<Questions, Failure> {
        let mut questions = match self.renderer.render_batch(rule, object, batch).await {
            Ok(questions) => questions,
            Err(e) => match e.skip_reason() {
                Some(reason) => {
                    return Ok(Questions::Skip {
                        questions: BTreeMap::new(),
                        reason,
                        plugin: None,
                    });
                }
                None => {
                    return Err(Failure {
                        retryable: e.is_retryable(),
                        message: error_chain(&e),
                    });
                }
            },
        };
        let Some(spec) = &rule.rule.plugin else {
            return Ok(Questions::Values {
                questions,
                plugin: None,
            });
        };
        let (Some(host), Some(objects)) = (&self.plugins, &self.objects) else {
            return Err(Failure {
                message: format!(
                    "rule `{}` uses plugin `{}` but no plugin store is configured (set PLUGIN_DIR or PLUGIN_S3_URI)",
                    rule.rule.id, spec.name
                ),
                retryable: false,
            });
        };
        let head = match crate::plugin::read_head(
            objects.as_ref(),
            &ObjectVersion::of(object),
            spec.read_bytes,
        )
        .await
        {
            Ok(head) => head,
            Err(e) if e.is_gone() => {
                return Ok(Questions::Skip {
                    questions,
                    reason: e.to_string(),
                    plugin: None,
                });
            }
            Err(e) => {
                return Err(Failure {
                    retryable: e.is_retryable(),
                    message: crate::error_chain(&e),
                });
            }
        };
        let config_json = if spec.config.is_null() {
            "{}".to_string()
        } else {
            spec.config.to_string()
        };
        let input = PluginInput {
            batch,
            rule_id: &rule.rule.id,
            object,
            content_type: head.content_type.as_deref(),
            head: &head.bytes,
            config_json: &config_json,
            workflow: &rule.rule.workflow,
            reader: Arc::clone(objects),
        };
        let run = match host.run(spec, input).await {
            Ok(run) => run,
            Err(e) => {
                if let Some(gone) = e.object_gone() {
                    return Ok(Questions::Skip {
                        questions,
                        reason: gone.to_string(),
                        plugin: None,
                    });
                }
                return Err(Failure {
                    retryable: e.is_retryable(),
                    message: crate::error_chain(&e),
                });
            }
        };
        tracing::debug!(rule = %rule.rule.id, plugin = %spec.name,
            elapsed_us = run.elapsed.as_micros() as u64, bytes_read = run.reads.total_bytes(),
            "plugin ran");
        let mut summary = PluginSummary {
            workflow: None,
            reads: run.reads,
        };
        match run.outcome {
            PluginOutcome::Questions(values) => {
                questions.extend(values);
                Ok(Questions::Values {
                    questions,
                    plugin: Some(summary),
                })
            }
            PluginOutcome::Workflow {
                workflow,
                questions: values,
            } => {
                questions.extend(values);
                summary.workflow = Some(workflow);
                Ok(Questions::Values {
                    questions,
                    plugin: Some(summary),
                })
            }
            PluginOutcome::Skip(reason) => Ok(Questions::Skip {
                questions,
                reason: format!("plugin `{}` skipped the object: {reason}", spec.name),
                plugin: Some(summary),
            }),
        }
    }

    fn new_execution(
        &self,
        rule: &CompiledRule,
        object: &ObjectCreated,
        claimant: &Claimant,
    ) -> Execution {
        let version = object.version_token().to_string();
        let now = now_unix();
        Execution {
            id: execution_id_of(&rule.rule.id, object),
            rule_id: rule.rule.id.clone(),
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            object_version: version,
            version_id: object.version_id.clone(),
            size: object.size,
            etag: object.etag.clone(),
            event_time: object.event_time.clone(),
            workflow: rule.rule.workflow.clone(),
            secret_id: rule.rule.secret_id.clone(),
            status: ExecutionStatus::Claimed,
            attempt: 1,
            questions: BTreeMap::new(),
            job_id: None,
            disposition: None,
            message: None,
            retryable: false,
            created_at: now,
            updated_at: now,
            submitted_at: None,
            finished_at: None,
            stuck_at: None,
            lease_until: Some(claimant.lease_until),
            claim_token: Some(claimant.token.clone()),
            submit_started_at: None,
            reconcile_from: None,
            reconcile_after: None,
            candidates: Vec::new(),
            plugin: None,
            reruns: 0,
            rerun_at: None,
            history: Vec::new(),
            expires_at: now + self.settings.execution_ttl.as_secs() as i64,
            source: object.source.clone(),
            group: rule.rule.cap().map(|c| c.group),
            slot_held: false,
            wait_reason: None,
            waiting_since: None,
            next_attempt_at: None,
            job_report: None,
            batch_id: None,
        }
    }
}

/// A claim, tried again within the deadline when the store fails: the claim's token makes a
/// try that meets its own earlier (applied) claim `Acquired`.
async fn write_claim(
    store: &dyn ExecutionStore,
    deadline: &Deadline,
    record: Execution,
) -> Result<Claim, ExecutionError> {
    let claim = std::sync::Mutex::new(None);
    write_within(deadline, "claiming the execution", || async {
        let result = store.claim(record.clone()).await?;
        if let Ok(mut slot) = claim.lock() {
            *slot = Some(result);
        }
        Ok(())
    })
    .await?;
    claim
        .into_inner()
        .ok()
        .flatten()
        .ok_or_else(|| ExecutionError::Inconsistent("a claim returned nothing".into()))
}

/// The outcome of a delivery that met a claim of another invocation.
fn in_progress(existing: &Execution) -> RuleOutcome {
    let now = now_unix();
    let message = match existing.lease_state(now) {
        Some(LeaseState::Live(until)) => format!(
            "in progress: attempt {} is claimed by another invocation until {}",
            existing.attempt,
            format_unix(until)
        ),
        _ => format!(
            "in progress: the job request of attempt {} may still be settling at Alteryx; it is reconciled after {}",
            existing.attempt,
            format_unix(existing.reconcile_after.unwrap_or_default() / 1000)
        ),
    };
    RuleOutcome {
        in_progress: true,
        retryable: true,
        message: Some(message),
        ..outcome_of(existing)
    }
}

enum Questions {
    Values {
        questions: BTreeMap<String, String>,
        plugin: Option<PluginSummary>,
    },
    Skip {
        questions: BTreeMap<String, String>,
        reason: String,
        plugin: Option<PluginSummary>,
    },
}

struct Failure {
    message: String,
    retryable: bool,
}

fn outcome_of(record: &Execution) -> RuleOutcome {
    RuleOutcome {
        rule_id: record.rule_id.clone(),
        execution_id: record.id.clone(),
        workflow: record.workflow.clone(),
        status: record.status,
        duplicate: false,
        in_progress: false,
        attempt: record.attempt,
        job_id: record.job_id.clone(),
        questions: record.questions.clone(),
        message: record.message.clone(),
        retryable: record.retryable
            && matches!(
                record.status,
                ExecutionStatus::Error | ExecutionStatus::Submitting | ExecutionStatus::Claimed
            ),
        wait_reason: record
            .wait_reason
            .filter(|_| record.status == ExecutionStatus::Waiting),
        batch: None,
    }
}

/// The object facts an execution was created from (for retries).
pub fn object_of(record: &Execution) -> ObjectCreated {
    ObjectCreated {
        bucket: record.bucket.clone(),
        key: record.key.clone(),
        size: record.size,
        etag: record.etag.clone(),
        version_id: record.version_id.clone(),
        // The version token: the sequencer or etag when there is no version id.
        sequencer: Some(record.object_version.clone()),
        event_time: record.event_time.clone(),
        reason: None,
        source: "retry".to_string(),
    }
}
