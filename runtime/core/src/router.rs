//! The pipeline: event → matching rules → claim → question values → submit → record.
//!
//! One [`Router`] serves the Lambda, `alteryx-router invoke`, `executions retry` and `demo`;
//! only the stores behind it differ. For every object, every matching rule gets its own
//! execution, and one rule's failure never stops the others.
//!
//! Order of a rule's steps, and why:
//! 1. **claim** the execution first, so a duplicate delivery costs one conditional write and
//!    never reads the object or runs a plugin;
//! 2. render the templates, then run the plugin (which may add or override values, or skip);
//! 3. submit the job and record `SUBMITTED` with the job id, or `ERROR` with the reason.
//!
//! A failure that a retry could fix (Alteryx down, throttled, an S3 read that failed) is
//! recorded as a *retryable* `ERROR` first and then reported to the caller, so the Lambda fails
//! the invocation and EventBridge redelivers: the redelivery takes the execution over instead
//! of being skipped as a duplicate. Nothing is lost, nothing is submitted twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::alteryx::AlteryxError;
use crate::error_chain;
use crate::event::{self, Decoded, ObjectCreated};
use crate::executions::{
    Claim, Execution, ExecutionError, ExecutionStatus, ExecutionStore, PluginSummary, execution_id,
    now_unix,
};
use crate::plugin::{ObjectReader, ObjectVersion, PluginHost, PluginInput, PluginOutcome};
use crate::render::{ObjectDetails, QuestionRenderer};
use crate::rules::{CompiledRule, RuleError, RuleSource};
use crate::secrets::ClientPool;

/// Tunables of the pipeline; all have defaults that suit the Lambda.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// How long a claim belongs to its claimant before another delivery may take it over.
    /// Longer than the function timeout, so a live invocation is never overtaken.
    pub claim_lease: Duration,
    /// How long execution records live before DynamoDB's TTL removes them.
    pub execution_ttl: Duration,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            claim_lease: Duration::from_secs(300),
            execution_ttl: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// What happened to one rule for one object.
#[derive(Debug, Clone, Serialize)]
pub struct RuleOutcome {
    pub rule_id: String,
    pub execution_id: String,
    pub workflow: String,
    /// The execution's status after this delivery (for a duplicate: the existing record's).
    pub status: ExecutionStatus,
    /// True when this delivery found the execution already claimed or done and did nothing.
    pub duplicate: bool,
    pub attempt: u32,
    pub job_id: Option<String>,
    pub questions: BTreeMap<String, String>,
    pub message: Option<String>,
    /// A failure that a redelivery may fix; makes the invocation fail after it is recorded.
    pub retryable: bool,
}

/// What happened to one object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectSummary {
    pub bucket: String,
    pub key: String,
    pub version: String,
    pub rules_matched: usize,
    pub outcomes: Vec<RuleOutcome>,
}

impl ObjectSummary {
    pub fn has_retryable_failure(&self) -> bool {
        self.outcomes.iter().any(|o| o.retryable)
    }
}

/// What happened to one invocation's payload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InvocationSummary {
    pub objects: Vec<ObjectSummary>,
    /// Inputs that were deliberately ignored, with the reason (not object creation, folder
    /// placeholder, S3 test event, ...).
    pub skipped: Vec<String>,
    /// SQS message ids to report as `batchItemFailures` (retryable failure or undecodable).
    pub failed_messages: Vec<String>,
    /// Whether the payload was an SQS batch (the Lambda then answers with batch failures).
    pub sqs: bool,
}

impl InvocationSummary {
    /// True when the Lambda should fail this invocation so the event is delivered again.
    pub fn needs_redelivery(&self) -> bool {
        !self.sqs
            && self
                .objects
                .iter()
                .any(ObjectSummary::has_retryable_failure)
    }

    pub fn counts(&self) -> OutcomeCounts {
        let mut c = OutcomeCounts::default();
        for o in self.objects.iter().flat_map(|s| &s.outcomes) {
            match (o.duplicate, o.status) {
                (true, _) => c.duplicates += 1,
                (false, ExecutionStatus::Submitted) => c.submitted += 1,
                (false, ExecutionStatus::Skipped) => c.skipped += 1,
                (false, _) => c.errors += 1,
            }
        }
        c
    }
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub submitted: usize,
    pub duplicates: usize,
    pub skipped: usize,
    pub errors: usize,
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
}

impl RouterError {
    /// Rules or execution-store outages are worth a redelivery; a malformed event is not
    /// going to get better, but failing still sends it to the DLQ where it is kept.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, RouterError::RuleGone { .. })
    }
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

    pub fn executions(&self) -> &Arc<dyn ExecutionStore> {
        &self.executions
    }

    pub fn rules(&self) -> &Arc<dyn RuleSource> {
        &self.rules
    }

    pub fn alteryx(&self) -> &Arc<ClientPool> {
        &self.alteryx
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

    /// Route a raw invocation payload (EventBridge, S3, SNS or SQS shaped).
    pub async fn handle_payload(
        &self,
        payload: &serde_json::Value,
    ) -> Result<InvocationSummary, RouterError> {
        let decoded = event::decode(payload)?;
        let mut summary = InvocationSummary::default();
        match decoded {
            Decoded::Sqs(messages) => {
                summary.sqs = true;
                for message in messages {
                    match message.result {
                        Ok(inner) => {
                            let before = summary.objects.len();
                            // A message's own nested batch is handled like the top level;
                            // a failure anywhere in it fails the message.
                            let failed = self.handle_decoded(inner, &mut summary).await.is_err()
                                || summary.objects[before..]
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
            other => self.handle_decoded(other, &mut summary).await?,
        }
        let counts = summary.counts();
        tracing::info!(
            objects = summary.objects.len(),
            submitted = counts.submitted,
            duplicates = counts.duplicates,
            skipped = counts.skipped,
            errors = counts.errors,
            ignored = summary.skipped.len(),
            failed_messages = summary.failed_messages.len(),
            "invocation routed"
        );
        Ok(summary)
    }

    async fn handle_decoded(
        &self,
        decoded: Decoded,
        summary: &mut InvocationSummary,
    ) -> Result<(), RouterError> {
        match decoded {
            Decoded::Objects(objects) => {
                for object in &objects {
                    summary.objects.push(self.route_object(object).await?);
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
                    Box::pin(self.handle_decoded(inner, summary)).await?;
                }
            }
        }
        Ok(())
    }

    /// Route one object: every matching rule, in priority order, each on its own.
    pub async fn route_object(&self, object: &ObjectCreated) -> Result<ObjectSummary, RouterError> {
        let started = Instant::now();
        let rule_set = self.rules.rule_set().await?;
        let matched = rule_set.matching(object);
        let mut outcomes = Vec::with_capacity(matched.len());
        for rule in &matched {
            outcomes.push(self.run_rule(rule, object).await);
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
                execution = %o.execution_id, status = ?o.status, duplicate = o.duplicate,
                job_id = o.job_id.as_deref().unwrap_or(""), message = o.message.as_deref().unwrap_or(""),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "rule outcome"
            );
        }
        Ok(summary)
    }

    /// One rule for one object: claim, then execute unless it is a duplicate.
    async fn run_rule(&self, rule: &CompiledRule, object: &ObjectCreated) -> RuleOutcome {
        let record = self.new_execution(rule, object);
        match self
            .executions
            .claim(record.clone(), self.settings.claim_lease)
            .await
        {
            Ok(Claim::Acquired(claimed)) => self.execute(claimed, rule, object).await,
            Ok(Claim::Duplicate(existing)) => {
                let mut outcome = outcome_of(&existing);
                outcome.duplicate = true;
                outcome
            }
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

    /// Retry an `ERROR` or `FAILED` execution by hand (`executions retry`): a new attempt on the
    /// same record, with the rule as it is now (the user usually fixed it first).
    pub async fn retry(&self, execution_id: &str) -> Result<RuleOutcome, RouterError> {
        let claimed = self
            .executions
            .claim_retry(execution_id, self.settings.claim_lease)
            .await?;
        let rule_set = self.rules.rule_set().await?;
        let Some(rule) = rule_set
            .rules()
            .iter()
            .find(|r| r.rule.id == claimed.rule_id)
        else {
            let rule = claimed.rule_id.clone();
            let mut record = claimed;
            record.status = ExecutionStatus::Error;
            record.retryable = false;
            record.message = Some(format!("rule `{rule}` no longer exists"));
            self.executions
                .update(&record, ExecutionStatus::Claimed)
                .await?;
            return Err(RouterError::RuleGone {
                execution: execution_id.to_string(),
                rule,
            });
        };
        let object = object_of(&claimed);
        Ok(self.execute(claimed, rule, &object).await)
    }

    /// Steps 2 and 3 for an execution this process has claimed; always records the result.
    async fn execute(
        &self,
        mut record: Execution,
        rule: &CompiledRule,
        object: &ObjectCreated,
    ) -> RuleOutcome {
        record.workflow = rule.rule.workflow.clone();
        record.secret_id = rule.rule.secret_id.clone();
        record.plugin = None;
        let result = self.questions_for(rule, object).await;
        let now = now_unix();
        match result {
            Err(failure) => {
                record.status = ExecutionStatus::Error;
                record.message = Some(failure.message);
                record.retryable = failure.retryable;
            }
            Ok(Questions::Skip {
                questions,
                reason,
                plugin,
            }) => {
                record.questions = questions;
                record.plugin = plugin;
                record.status = ExecutionStatus::Skipped;
                record.message = Some(reason);
                record.finished_at = Some(now);
            }
            Ok(Questions::Values { questions, plugin }) => {
                record.questions = questions;
                if let Some(chosen) = plugin.as_ref().and_then(|p| p.workflow.as_ref()) {
                    record.workflow = chosen.clone();
                }
                record.plugin = plugin;
                match self.submit(rule, &record.workflow, &record.questions).await {
                    Ok(job_id) => {
                        record.status = ExecutionStatus::Submitted;
                        record.job_id = Some(job_id);
                        record.submitted_at = Some(now_unix());
                        record.message = None;
                        record.retryable = false;
                    }
                    Err(failure) => {
                        record.status = ExecutionStatus::Error;
                        record.message = Some(failure.message);
                        record.retryable = failure.retryable;
                    }
                }
            }
        }
        record.lease_until = None;
        if let Err(e) = self
            .executions
            .update(&record, ExecutionStatus::Claimed)
            .await
        {
            // The job may be submitted but its record is not: say so loudly; a redelivery
            // would find the claim and, after its lease, take it over.
            let error = error_chain(&e);
            tracing::error!(execution = %record.id, status = ?record.status,
                job_id = record.job_id.as_deref().unwrap_or(""), %error,
                "could not record the execution's outcome");
            let mut outcome = outcome_of(&record);
            outcome.message = Some(format!(
                "{} (and recording it failed: {error})",
                record.message.as_deref().unwrap_or("outcome")
            ));
            return outcome;
        }
        outcome_of(&record)
    }

    /// Template values, then the plugin's (which win on the same name), and what the plugin
    /// read and chose. An object deleted or overwritten since the event is skipped.
    async fn questions_for(
        &self,
        rule: &CompiledRule,
        object: &ObjectCreated,
    ) -> Result<Questions, Failure> {
        let mut questions = match self.renderer.render(rule, object).await {
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

    async fn submit(
        &self,
        rule: &CompiledRule,
        workflow: &str,
        questions: &BTreeMap<String, String>,
    ) -> Result<String, Failure> {
        let secret_id = rule.rule.secret_id.as_deref();
        let client = self.alteryx.client(secret_id).await.map_err(|e| Failure {
            retryable: e.is_retryable(),
            message: format!("credentials: {}", error_chain(&e)),
        })?;
        let request = rule.job_request(questions);
        match client.submit_job(workflow, &request).await {
            Ok(job) => Ok(job.id),
            Err(e) => {
                if matches!(e, AlteryxError::Unauthorized { .. }) {
                    // The secret may have been rotated: read it again next time.
                    self.alteryx.invalidate(secret_id).await;
                }
                Err(Failure {
                    retryable: e.is_retryable(),
                    message: error_chain(&e),
                })
            }
        }
    }

    fn new_execution(&self, rule: &CompiledRule, object: &ObjectCreated) -> Execution {
        let version = object.version_token().to_string();
        let now = now_unix();
        Execution {
            id: execution_id(&rule.rule.id, &object.bucket, &object.key, &version),
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
            lease_until: Some(now + self.settings.claim_lease.as_secs() as i64),
            expires_at: now + self.settings.execution_ttl.as_secs() as i64,
            source: object.source.clone(),
            plugin: None,
        }
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
        attempt: record.attempt,
        job_id: record.job_id.clone(),
        questions: record.questions.clone(),
        message: record.message.clone(),
        retryable: record.status == ExecutionStatus::Error && record.retryable,
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
