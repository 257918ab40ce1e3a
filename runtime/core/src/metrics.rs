//! CloudWatch metrics in the embedded metric format (EMF): JSON documents written to stdout,
//! one line each, that CloudWatch Logs turns into metrics in the `AlteryxRouter` namespace.
//! No `PutMetricData` call, no extra latency, no IAM permission: Lambda already ships stdout to
//! the function's log group (its logs go to stderr, so the two never mix).
//!
//! What is measured, once per invocation, aggregated per rule:
//!
//! | metric | from | unit | counts |
//! |---|---|---|---|
//! | `RulesMatched` | router | Count | (object, rule) pairs that matched |
//! | `JobsSubmitted` | router | Count | jobs this invocation queued at Alteryx |
//! | `Duplicates` | router | Count | deliveries of an execution that already ran or ended |
//! | `Errors` | router | Count | executions recorded as `ERROR` (retryable or not) |
//! | `Waiting` | router | Count | deliveries that found the execution in progress elsewhere (a live claim, or a job request still settling) or left it claimed — the event comes back — or put it in the waiting line (`WAITING`: its group's cap full, Alteryx unavailable) — the tracker submits it |
//! | `OutcomesUnknown` | router | Count | job requests sent whose answer was lost (`SUBMITTING`): the next attempt reconciles |
//! | `Uncertain` | router, tracker | Count | executions recorded `UNCERTAIN`: a person decides (`executions resolve`) |
//! | `ObjectsUnmatched` | router | Count | objects no rule matched (deployment only) |
//! | `JobsCompleted` | tracker | Count | jobs recorded `COMPLETED` |
//! | `JobsFailed` | tracker | Count | jobs recorded `FAILED` (including jobs Alteryx forgot) |
//! | `JobDurationSeconds` | tracker | Seconds | submission → end recorded, one value per job |
//! | `StaleClaims` | tracker | Count | claims whose invocation died, found by the pass's sweep (deployment only) |
//! | `TrackerErrors` | tracker | Count | executions a pass could not check or repair (deployment only) |
//! | `Dispatched` | tracker | Count | waiting executions a pass submitted (deployment only) |
//! | `JobPolls` | tracker | Count | single-job requests to Alteryx in a pass (deployment only) |
//! | `JobListCalls` | tracker | Count | job-list requests (pages) to Alteryx in a pass (deployment only) |
//! | `DynamoDBReads` | tracker | Count | DynamoDB read requests of a pass (deployment only) |
//! | `DynamoDBWrites` | tracker | Count | DynamoDB write requests of a pass (deployment only) |
//! | `BatchMembersJoined` | router | Count | objects that joined a batch (batch rules only; duplicates not) |
//! | `BatchesClosed` | router, tracker | Count | batches closed: by the member that completed them (or found them full, or complete after their closer died), or by the tracker's quiet, `max_files` and `on_timeout: run` closes (batch rules only) |
//! | `BatchesExpired` | tracker | Count | batches expired with a `batch_expired` notice (`on_timeout: notify`, or their rule gone or no longer batching) |
//!
//! Every router outcome counts in `RulesMatched` and in at most one of the others; a plugin's
//! `SKIPPED` only in `RulesMatched`. The tracker's sweep counts the stale claims it found and,
//! of the ones it repaired, those it had to leave `UNCERTAIN` (deployment only: the report
//! does not say which rule, and the deployment's `Uncertain` total adds both sources).
//! The batch metrics are per rule (a batch knows its rule, also when the rule is gone) and only
//! for the rules they concern: the router reports `BatchMembersJoined` and `BatchesClosed` (zero
//! included) for every rule with a `batch` block it touched, the tracker `BatchesClosed` and
//! `BatchesExpired` for every rule whose batches it closed or expired; rules that do not batch
//! get no batch series (none to pay for). `batches close` (the CLI) writes no metrics.
//!
//! Dimensions: `Deployment` (`METRICS_DEPLOYMENT`, the stack name in AWS) and `Rule`. Each
//! document declares two dimension sets, `[Deployment, Rule]` and `[Deployment]`, so CloudWatch
//! keeps the per-rule series and the deployment's totals from the same numbers. A document can
//! carry one value per dimension, so an invocation writes one document per rule it touched
//! (counts summed over its objects; the deployment-only metrics ride in the first, under a
//! directive of their own), never one per event or per metric. With `METRICS_BY_RULE=false`
//! there is no `Rule` dimension: one document per invocation with the totals. A tracker pass
//! with more than 100 durations for a rule adds a document per further 100 (EMF's limit per
//! metric). What that means for the bill is in `docs/deploy.md`.
//!
//! `METRICS=emf|off` turns this on or off: on by default inside Lambda, off elsewhere, so the
//! CLI's stdout (`--json`) never carries a metric document.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Map, Value, json};

use crate::executions::ExecutionStatus;
use crate::executions::batch::BatchState;
use crate::router::InvocationSummary;
use crate::tracker::TrackReport;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "AlteryxRouter";
/// EMF allows at most 100 values per metric in one document.
pub const MAX_VALUES: usize = 100;
/// CloudWatch dimension values are 1 to 1024 characters.
const MAX_DIMENSION_VALUE: usize = 1024;

/// Whether and how metrics are written (`METRICS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsMode {
    /// EMF documents on stdout.
    Emf,
    /// Nothing.
    Off,
}

/// The metrics settings (`METRICS`, `METRICS_DEPLOYMENT`, `METRICS_BY_RULE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    pub mode: MetricsMode,
    /// The `Deployment` dimension's value; default [`DEFAULT_DEPLOYMENT`].
    pub deployment: String,
    /// Whether metrics carry the `Rule` dimension (default true).
    pub by_rule: bool,
}

/// `METRICS_DEPLOYMENT` when unset.
pub const DEFAULT_DEPLOYMENT: &str = "alteryx-router";

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            mode: MetricsMode::Off,
            deployment: DEFAULT_DEPLOYMENT.into(),
            by_rule: true,
        }
    }
}

/// A metric: its name and unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
}

const fn count(name: &'static str) -> Metric {
    Metric {
        name,
        unit: "Count",
    }
}

pub const RULES_MATCHED: Metric = count("RulesMatched");
pub const JOBS_SUBMITTED: Metric = count("JobsSubmitted");
pub const DUPLICATES: Metric = count("Duplicates");
pub const ERRORS: Metric = count("Errors");
pub const WAITING: Metric = count("Waiting");
pub const OUTCOMES_UNKNOWN: Metric = count("OutcomesUnknown");
pub const UNCERTAIN: Metric = count("Uncertain");
pub const OBJECTS_UNMATCHED: Metric = count("ObjectsUnmatched");
pub const JOBS_COMPLETED: Metric = count("JobsCompleted");
pub const JOBS_FAILED: Metric = count("JobsFailed");
pub const JOB_DURATION_SECONDS: Metric = Metric {
    name: "JobDurationSeconds",
    unit: "Seconds",
};
pub const STALE_CLAIMS: Metric = count("StaleClaims");
pub const TRACKER_ERRORS: Metric = count("TrackerErrors");
pub const DISPATCHED: Metric = count("Dispatched");
pub const JOB_POLLS: Metric = count("JobPolls");
pub const JOB_LIST_CALLS: Metric = count("JobListCalls");
pub const DYNAMODB_READS: Metric = count("DynamoDBReads");
pub const DYNAMODB_WRITES: Metric = count("DynamoDBWrites");
pub const BATCH_MEMBERS_JOINED: Metric = count("BatchMembersJoined");
pub const BATCHES_CLOSED: Metric = count("BatchesClosed");
pub const BATCHES_EXPIRED: Metric = count("BatchesExpired");

/// Every metric, for the template's and the docs' tests.
pub const ALL: [Metric; 21] = [
    RULES_MATCHED,
    JOBS_SUBMITTED,
    DUPLICATES,
    ERRORS,
    WAITING,
    OUTCOMES_UNKNOWN,
    UNCERTAIN,
    OBJECTS_UNMATCHED,
    JOBS_COMPLETED,
    JOBS_FAILED,
    JOB_DURATION_SECONDS,
    STALE_CLAIMS,
    TRACKER_ERRORS,
    DISPATCHED,
    JOB_POLLS,
    JOB_LIST_CALLS,
    DYNAMODB_READS,
    DYNAMODB_WRITES,
    BATCH_MEMBERS_JOINED,
    BATCHES_CLOSED,
    BATCHES_EXPIRED,
];

/// The router's per-rule metrics: every rule an invocation touched reports each of them (zero
/// included), so a sum over time is a count and an alarm sees a value, not a gap.
const ROUTER_PER_RULE: [Metric; 7] = [
    RULES_MATCHED,
    JOBS_SUBMITTED,
    DUPLICATES,
    ERRORS,
    WAITING,
    OUTCOMES_UNKNOWN,
    UNCERTAIN,
];

/// The values of one group (a rule, or the deployment as a whole).
#[derive(Debug, Default, Clone, PartialEq)]
struct Group {
    counts: BTreeMap<&'static str, (Metric, u64)>,
    durations: Vec<f64>,
}

impl Group {
    fn add(&mut self, metric: Metric, n: u64) {
        self.counts.entry(metric.name).or_insert((metric, 0)).1 += n;
    }
}

/// Writes what an invocation did as EMF documents.
#[derive(Debug, Clone)]
pub struct Metrics {
    settings: MetricsSettings,
}

impl Metrics {
    pub fn new(settings: MetricsSettings) -> Self {
        Self { settings }
    }

    pub fn enabled(&self) -> bool {
        self.settings.mode == MetricsMode::Emf
    }

    /// The router's documents for one invocation, stamped `timestamp_ms`.
    pub fn router_documents(&self, summary: &InvocationSummary, timestamp_ms: i64) -> Vec<Value> {
        let mut groups: BTreeMap<Option<String>, Group> = BTreeMap::new();
        let mut unmatched = 0;
        for object in &summary.objects {
            if object.rules_matched == 0 {
                unmatched += 1;
            }
            for outcome in &object.outcomes {
                let group = groups.entry(self.group_of(&outcome.rule_id)).or_default();
                for metric in ROUTER_PER_RULE {
                    group.add(metric, 0);
                }
                group.add(RULES_MATCHED, 1);
                if let Some(metric) =
                    classify(outcome.duplicate, outcome.in_progress, outcome.status)
                {
                    group.add(metric, 1);
                }
                if let Some(batch) = &outcome.batch {
                    // A batch rule: both, zero included (see the module doc).
                    let joined = batch.joined.is_some() && !outcome.duplicate;
                    group.add(BATCH_MEMBERS_JOINED, u64::from(joined));
                    group.add(BATCHES_CLOSED, batch.closed.len() as u64);
                }
            }
        }
        let deployment = (!summary.objects.is_empty()).then(|| {
            let mut deployment = Group::default();
            deployment.add(OBJECTS_UNMATCHED, unmatched);
            deployment
        });
        self.documents(groups, deployment, timestamp_ms)
    }

    /// The tracker's documents for one pass, stamped `timestamp_ms`.
    pub fn tracker_documents(&self, report: &TrackReport, timestamp_ms: i64) -> Vec<Value> {
        let mut groups: BTreeMap<Option<String>, Group> = BTreeMap::new();
        for job in &report.finished {
            let group = groups.entry(self.group_of(&job.rule_id)).or_default();
            group.add(JOBS_COMPLETED, 0);
            group.add(JOBS_FAILED, 0);
            match job.status {
                ExecutionStatus::Completed => group.add(JOBS_COMPLETED, 1),
                _ => group.add(JOBS_FAILED, 1),
            }
            if let Some(seconds) = job.duration_seconds {
                group.durations.push(seconds as f64);
            }
        }
        for batch in &report.ended_batches {
            let group = groups.entry(self.group_of(&batch.rule_id)).or_default();
            group.add(BATCHES_CLOSED, 0);
            group.add(BATCHES_EXPIRED, 0);
            match batch.state {
                BatchState::Expired => group.add(BATCHES_EXPIRED, 1),
                BatchState::Closed | BatchState::Open => group.add(BATCHES_CLOSED, 1),
            }
        }
        let mut deployment = Group::default();
        deployment.add(STALE_CLAIMS, report.stale_claims as u64);
        deployment.add(UNCERTAIN, report.uncertain as u64);
        deployment.add(TRACKER_ERRORS, report.errors.len() as u64);
        deployment.add(DISPATCHED, report.dispatched as u64);
        deployment.add(JOB_POLLS, report.job_polls as u64);
        deployment.add(JOB_LIST_CALLS, report.list_calls as u64);
        deployment.add(DYNAMODB_READS, report.dynamodb_reads);
        deployment.add(DYNAMODB_WRITES, report.dynamodb_writes);
        self.documents(groups, Some(deployment), timestamp_ms)
    }

    /// Write the router's documents for `summary` to stdout (when enabled).
    pub fn record_invocation(&self, summary: &InvocationSummary) {
        if self.enabled() {
            write_lines(&self.router_documents(summary, now_ms()));
        }
    }

    /// Write the tracker's documents for `report` to stdout (when enabled).
    pub fn record_tracker_pass(&self, report: &TrackReport) {
        if self.enabled() {
            write_lines(&self.tracker_documents(report, now_ms()));
        }
    }

    fn group_of(&self, rule_id: &str) -> Option<String> {
        self.settings.by_rule.then(|| dimension_value(rule_id))
    }

    /// A document per group, the `deployment` group's metrics riding in the first one (under
    /// a directive of their own, with the `Deployment` dimension alone).
    fn documents(
        &self,
        groups: BTreeMap<Option<String>, Group>,
        deployment: Option<Group>,
        timestamp_ms: i64,
    ) -> Vec<Value> {
        let mut documents: Vec<Value> = groups
            .into_iter()
            .flat_map(|(rule, group)| self.group_documents(rule.as_deref(), group, timestamp_ms))
            .collect();
        let Some(deployment) = deployment else {
            return documents;
        };
        let Some(Value::Object(first)) = documents.first_mut() else {
            return self.group_documents(None, deployment, timestamp_ms);
        };
        let mut definitions = Vec::new();
        for (metric, n) in deployment.counts.values() {
            first.insert(metric.name.into(), json!(n));
            definitions.push(definition(*metric));
        }
        let by_rule = first.contains_key("Rule");
        if let Some(Value::Array(directives)) = first
            .get_mut("_aws")
            .and_then(|aws| aws.get_mut("CloudWatchMetrics"))
        {
            match directives.first_mut().and_then(|d| d.get_mut("Metrics")) {
                // Without the Rule dimension, the first directive already has these dimensions.
                Some(Value::Array(metrics)) if !by_rule => metrics.extend(definitions),
                _ => directives.push(directive(json!([["Deployment"]]), definitions)),
            }
        }
        documents
    }

    /// One document for `group` (more when it has over [`MAX_VALUES`] durations: the counts
    /// go in the first, the other durations in the next ones).
    fn group_documents(&self, rule: Option<&str>, group: Group, timestamp_ms: i64) -> Vec<Value> {
        let mut chunks: Vec<&[f64]> = group.durations.chunks(MAX_VALUES).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, durations)| {
                let mut members = Map::new();
                let mut definitions = Vec::new();
                if i == 0 {
                    for (metric, n) in group.counts.values() {
                        members.insert(metric.name.into(), json!(n));
                        definitions.push(definition(*metric));
                    }
                }
                if !durations.is_empty() {
                    members.insert(JOB_DURATION_SECONDS.name.into(), json!(durations));
                    definitions.push(definition(JOB_DURATION_SECONDS));
                }
                let dimensions = match rule {
                    Some(_) => json!([["Deployment", "Rule"], ["Deployment"]]),
                    None => json!([["Deployment"]]),
                };
                members.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [directive(dimensions, definitions)],
                    }),
                );
                members.insert(
                    "Deployment".into(),
                    json!(dimension_value(&self.settings.deployment)),
                );
                if let Some(rule) = rule {
                    members.insert("Rule".into(), json!(rule));
                }
                Value::Object(members)
            })
            .collect()
    }
}

fn definition(metric: Metric) -> Value {
    json!({"Name": metric.name, "Unit": metric.unit})
}

fn directive(dimensions: Value, definitions: Vec<Value>) -> Value {
    json!({"Namespace": NAMESPACE, "Dimensions": dimensions, "Metrics": definitions})
}

/// Which router metric (besides `RulesMatched`) an outcome counts for. A new status must be
/// placed here on purpose, so the match names every one.
fn classify(duplicate: bool, in_progress: bool, status: ExecutionStatus) -> Option<Metric> {
    if duplicate {
        return Some(DUPLICATES);
    }
    if in_progress {
        // Another invocation holds it, or its last job request is still settling: the event
        // comes back and is counted again then.
        return Some(WAITING);
    }
    match status {
        ExecutionStatus::Submitted => Some(JOBS_SUBMITTED),
        ExecutionStatus::Error => Some(ERRORS),
        // Left claimed (released before its job request): it runs on a redelivery.
        ExecutionStatus::Claimed => Some(WAITING),
        // The job request went out and its answer was lost: reconciled by the next attempt.
        ExecutionStatus::Submitting => Some(OUTCOMES_UNKNOWN),
        ExecutionStatus::Uncertain => Some(UNCERTAIN),
        // Put in the waiting line (cap full, Alteryx unavailable): the tracker submits it.
        ExecutionStatus::Waiting => Some(WAITING),
        // A member joined a batch: only matched; the batch's job counts when it is submitted.
        // A plugin's skip, or ended states a fresh delivery does not produce: only matched.
        ExecutionStatus::Batched
        | ExecutionStatus::Skipped
        | ExecutionStatus::Completed
        | ExecutionStatus::Failed
        | ExecutionStatus::Cancelled => None,
    }
}

/// A dimension value CloudWatch accepts: 1 to 1024 characters, not blank.
fn dimension_value(text: &str) -> String {
    let text: String = text.chars().take(MAX_DIMENSION_VALUE).collect();
    if text.trim().is_empty() {
        "-".into()
    } else {
        text
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Each document as one line on stdout, flushed before the invocation answers (Lambda may
/// freeze the sandbox right after). A failed write loses metrics, never the invocation.
fn write_lines(documents: &[Value]) {
    let mut out = std::io::stdout().lock();
    let result = documents
        .iter()
        .try_for_each(|d| writeln!(out, "{d}"))
        .and_then(|()| out.flush());
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not write metrics to stdout");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap as Map;

    use super::*;
    use crate::router::{ObjectSummary, RuleOutcome};
    use crate::tracker::FinishedJob;

    fn outcome(rule: &str, status: ExecutionStatus, duplicate: bool) -> RuleOutcome {
        RuleOutcome {
            rule_id: rule.into(),
            execution_id: format!("{rule}:x"),
            workflow: "wf".into(),
            status,
            duplicate,
            in_progress: false,
            attempt: 1,
            job_id: None,
            questions: Map::new(),
            message: None,
            retryable: false,
            wait_reason: None,
            batch: None,
        }
    }

    fn object(outcomes: Vec<RuleOutcome>) -> ObjectSummary {
        ObjectSummary {
            bucket: "b".into(),
            key: "k".into(),
            version: "v".into(),
            rules_matched: outcomes.len(),
            outcomes,
        }
    }

    fn metrics(by_rule: bool) -> Metrics {
        Metrics::new(MetricsSettings {
            mode: MetricsMode::Emf,
            deployment: "prod".into(),
            by_rule,
        })
    }

    /// The metrics of each directive of `doc`: (dimension sets, name → value).
    fn directives(doc: &Value) -> Vec<(Value, Map<String, Value>)> {
        doc["_aws"]["CloudWatchMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let values = d["Metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["Name"].as_str().unwrap())
                    .map(|n| (n.to_string(), doc[n].clone()))
                    .collect();
                (d["Dimensions"].clone(), values)
            })
            .collect()
    }

    /// The per-rule metrics of `rule`'s (first) document.
    fn values(documents: &[Value], rule: &str) -> Map<String, Value> {
        let doc = documents
            .iter()
            .find(|d| d["Rule"] == rule)
            .unwrap_or_else(|| panic!("no document for {rule:?} in {documents:#?}"));
        directives(doc).swap_remove(0).1
    }

    /// The deployment-only metrics: in exactly one document, under `[["Deployment"]]`.
    fn deployment_values(documents: &[Value]) -> Map<String, Value> {
        let found: Vec<Map<String, Value>> = documents
            .iter()
            .flat_map(directives)
            .filter(|(dims, _)| *dims == json!([["Deployment"]]))
            .map(|(_, values)| values)
            .collect();
        assert_eq!(found.len(), 1, "{documents:#?}");
        found.into_iter().next().unwrap()
    }

    #[test]
    fn an_invocation_is_one_document_per_rule_with_its_outcomes_summed() {
        let summary = InvocationSummary {
            objects: vec![
                object(vec![
                    outcome("sales", ExecutionStatus::Submitted, false),
                    outcome("audit", ExecutionStatus::Error, false),
                ]),
                object(vec![
                    outcome("sales", ExecutionStatus::Submitted, true),
                    outcome("audit", ExecutionStatus::Skipped, false),
                ]),
                object(vec![outcome("sales", ExecutionStatus::Submitted, false)]),
                object(Vec::new()),
            ],
            ..Default::default()
        };
        let docs = metrics(true).router_documents(&summary, 1_700_000_000_000);
        assert_eq!(docs.len(), 2, "one per rule: {docs:#?}");
        let sales = values(&docs, "sales");
        assert_eq!(
            sales,
            Map::from([
                ("RulesMatched".to_string(), json!(3)),
                ("JobsSubmitted".to_string(), json!(2)),
                ("Duplicates".to_string(), json!(1)),
                ("Errors".to_string(), json!(0)),
                ("Waiting".to_string(), json!(0)),
                ("OutcomesUnknown".to_string(), json!(0)),
                ("Uncertain".to_string(), json!(0)),
            ])
        );
        let audit = values(&docs, "audit");
        assert_eq!(
            (
                &audit["RulesMatched"],
                &audit["Errors"],
                &audit["JobsSubmitted"]
            ),
            (&json!(2), &json!(1), &json!(0))
        );
        assert_eq!(
            deployment_values(&docs),
            Map::from([("ObjectsUnmatched".to_string(), json!(1))])
        );
        let doc = &docs[1];
        assert_eq!(doc["Deployment"], "prod");
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Deployment", "Rule"], ["Deployment"]])
        );
    }

    #[test]
    fn without_the_rule_dimension_one_document_holds_the_totals() {
        let summary = InvocationSummary {
            objects: vec![object(vec![
                outcome("a", ExecutionStatus::Submitted, false),
                outcome("b", ExecutionStatus::Claimed, false),
            ])],
            ..Default::default()
        };
        let docs = metrics(false).router_documents(&summary, 0);
        assert_eq!(docs.len(), 1, "{docs:#?}");
        assert!(docs[0].get("Rule").is_none());
        let totals = deployment_values(&docs);
        assert_eq!(
            (&totals["RulesMatched"], &totals["Waiting"]),
            (&json!(2), &json!(1))
        );
        assert_eq!(totals["ObjectsUnmatched"], 0, "one directive holds all");
    }

    #[test]
    fn an_invocation_without_objects_writes_nothing_and_one_without_matches_one_document() {
        let docs = metrics(true).router_documents(&InvocationSummary::default(), 0);
        assert!(docs.is_empty(), "{docs:?}");
        let unmatched = InvocationSummary {
            objects: vec![object(Vec::new())],
            ..Default::default()
        };
        let docs = metrics(true).router_documents(&unmatched, 0);
        assert_eq!(docs.len(), 1, "{docs:?}");
        assert_eq!(deployment_values(&docs)["ObjectsUnmatched"], 1);
    }

    #[test]
    fn a_tracker_pass_counts_outcomes_and_splits_durations_at_100_values() {
        let mut report = TrackReport::default();
        for i in 0..150u64 {
            report.finished.push(FinishedJob {
                rule_id: "big".into(),
                execution_id: format!("big:{i}"),
                status: if i % 3 == 0 {
                    ExecutionStatus::Failed
                } else {
                    ExecutionStatus::Completed
                },
                duration_seconds: Some(60 + i),
            });
        }
        report.finished.push(FinishedJob {
            rule_id: "gone".into(),
            execution_id: "gone:1".into(),
            status: ExecutionStatus::Failed,
            duration_seconds: None,
        });
        report.errors.push("execution x: credentials".into());
        report.stale_claims = 3;
        report.uncertain = 1;
        report.dispatched = 2;
        report.job_polls = 7;
        report.list_calls = 4;
        report.dynamodb_reads = 9;
        report.dynamodb_writes = 5;
        let docs = metrics(true).tracker_documents(&report, 0);
        let big: Vec<&Value> = docs.iter().filter(|d| d["Rule"] == "big").collect();
        assert_eq!(big.len(), 2, "150 durations: two documents");
        assert_eq!(big[0]["JobsCompleted"], 100);
        assert_eq!(big[0]["JobsFailed"], 50);
        let first = big[0]["JobDurationSeconds"].as_array().unwrap().len();
        let second = big[1]["JobDurationSeconds"].as_array().unwrap().len();
        assert_eq!((first, second), (100, 50));
        assert!(big[1].get("JobsCompleted").is_none(), "counts once");
        let gone = values(&docs, "gone");
        assert_eq!(gone["JobsFailed"], 1);
        assert!(!gone.contains_key("JobDurationSeconds"));
        assert_eq!(docs.len(), 3, "{docs:#?}");
        assert_eq!(
            deployment_values(&docs),
            Map::from([
                ("StaleClaims".to_string(), json!(3)),
                ("TrackerErrors".to_string(), json!(1)),
                ("Uncertain".to_string(), json!(1)),
                ("Dispatched".to_string(), json!(2)),
                ("JobPolls".to_string(), json!(7)),
                ("JobListCalls".to_string(), json!(4)),
                ("DynamoDBReads".to_string(), json!(9)),
                ("DynamoDBWrites".to_string(), json!(5)),
            ])
        );
        // A pass with nothing finished still says how it went.
        let quiet = metrics(true).tracker_documents(&TrackReport::default(), 0);
        assert_eq!(quiet.len(), 1);
        assert_eq!(deployment_values(&quiet)["TrackerErrors"], 0);
        assert_eq!(deployment_values(&quiet)["StaleClaims"], 0);
    }

    #[test]
    fn every_status_has_a_place() {
        use ExecutionStatus::*;
        let placed: Vec<Option<&str>> = [
            Claimed, Submitting, Submitted, Completed, Failed, Skipped, Error, Uncertain,
        ]
        .into_iter()
        .map(|s| classify(false, false, s).map(|m| m.name))
        .collect();
        assert_eq!(
            placed,
            [
                Some("Waiting"),
                Some("OutcomesUnknown"),
                Some("JobsSubmitted"),
                None,
                None,
                None,
                Some("Errors"),
                Some("Uncertain"),
            ]
        );
        assert_eq!(
            classify(true, false, Error).map(|m| m.name),
            Some("Duplicates")
        );
        assert_eq!(
            classify(false, true, Submitting).map(|m| m.name),
            Some("Waiting"),
            "in progress elsewhere: the event comes back"
        );
    }

    #[test]
    fn deliveries_in_progress_unknown_outcomes_and_uncertain_ones_are_counted_apart() {
        let mut elsewhere = outcome("r", ExecutionStatus::Claimed, false);
        elsewhere.in_progress = true;
        let summary = InvocationSummary {
            objects: vec![object(vec![
                elsewhere,
                outcome("r", ExecutionStatus::Submitting, false),
                outcome("r", ExecutionStatus::Uncertain, false),
                outcome("r", ExecutionStatus::Submitted, false),
            ])],
            ..Default::default()
        };
        let docs = metrics(true).router_documents(&summary, 0);
        let r = values(&docs, "r");
        assert_eq!(
            (
                &r["RulesMatched"],
                &r["Waiting"],
                &r["OutcomesUnknown"],
                &r["Uncertain"],
                &r["JobsSubmitted"],
                &r["Errors"]
            ),
            (
                &json!(4),
                &json!(1),
                &json!(1),
                &json!(1),
                &json!(1),
                &json!(0)
            )
        );
    }

    #[test]
    fn dimension_values_are_never_blank_nor_too_long() {
        assert_eq!(dimension_value(" "), "-");
        assert_eq!(dimension_value(&"r".repeat(2000)).len(), 1024);
    }

    fn batch_outcome(
        rule: &str,
        status: ExecutionStatus,
        duplicate: bool,
        joined: Option<&str>,
        closed: &[&str],
    ) -> RuleOutcome {
        RuleOutcome {
            batch: Some(Box::new(crate::router::BatchActivity {
                joined: joined.map(str::to_string),
                closed: closed.iter().map(|c| c.to_string()).collect(),
            })),
            ..outcome(rule, status, duplicate)
        }
    }

    #[test]
    fn batch_rules_count_their_joins_and_closes_and_other_rules_get_no_batch_series() {
        use ExecutionStatus::*;
        let summary = InvocationSummary {
            objects: vec![
                object(vec![
                    batch_outcome("month-end", Batched, false, Some("b1"), &[]),
                    outcome("plain", Submitted, false),
                ]),
                // The completing member: its outcome is the batch's job, its join still counts.
                object(vec![batch_outcome(
                    "month-end",
                    Submitted,
                    false,
                    Some("b1"),
                    &["b1"],
                )]),
                // A duplicate that closed a complete batch whose closer died.
                object(vec![batch_outcome(
                    "month-end",
                    Batched,
                    true,
                    None,
                    &["b0"],
                )]),
                // A member that found a full batch, closed it, then joined the next one.
                object(vec![batch_outcome(
                    "tens",
                    Batched,
                    false,
                    Some("t2"),
                    &["t1"],
                )]),
                // A failed join: a batch rule, nothing joined or closed.
                object(vec![batch_outcome("quiet", Error, false, None, &[])]),
            ],
            ..Default::default()
        };
        let docs = metrics(true).router_documents(&summary, 0);
        let month_end = values(&docs, "month-end");
        assert_eq!(
            (
                &month_end["RulesMatched"],
                &month_end["JobsSubmitted"],
                &month_end["Duplicates"],
                &month_end["BatchMembersJoined"],
                &month_end["BatchesClosed"],
            ),
            (&json!(3), &json!(1), &json!(1), &json!(2), &json!(2))
        );
        let tens = values(&docs, "tens");
        assert_eq!(
            (&tens["BatchMembersJoined"], &tens["BatchesClosed"]),
            (&json!(1), &json!(1))
        );
        let quiet = values(&docs, "quiet");
        assert_eq!(
            (
                &quiet["BatchMembersJoined"],
                &quiet["BatchesClosed"],
                &quiet["Errors"]
            ),
            (&json!(0), &json!(0), &json!(1)),
            "a batch rule reports zeros"
        );
        let plain = values(&docs, "plain");
        assert!(
            !plain.contains_key("BatchMembersJoined") && !plain.contains_key("BatchesClosed"),
            "{plain:?}"
        );
        let doc = docs.iter().find(|d| d["Rule"] == "month-end").unwrap();
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Deployment", "Rule"], ["Deployment"]])
        );
        assert!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .contains(&json!({"Name": "BatchMembersJoined", "Unit": "Count"}))
        );
        // Without the Rule dimension: the deployment's totals.
        let totals = deployment_values(&metrics(false).router_documents(&summary, 0));
        assert_eq!(
            (&totals["BatchMembersJoined"], &totals["BatchesClosed"]),
            (&json!(3), &json!(3))
        );
    }

    #[test]
    fn a_tracker_pass_counts_the_batches_it_closed_and_expired_per_rule() {
        use crate::tracker::EndedBatch;
        let ended = |rule: &str, id: &str, state| EndedBatch {
            rule_id: rule.into(),
            batch_id: id.into(),
            state,
        };
        let mut report = TrackReport {
            ended_batches: vec![
                ended("drops", "d1", BatchState::Closed),
                ended("drops", "d2", BatchState::Closed),
                ended("expiring", "e1", BatchState::Expired),
                // Its rule is gone; the batch still names it.
                ended("deleted-rule", "x1", BatchState::Expired),
            ],
            ..Default::default()
        };
        report.finished.push(FinishedJob {
            rule_id: "sales".into(),
            execution_id: "sales:1".into(),
            status: ExecutionStatus::Completed,
            duration_seconds: Some(3),
        });
        let docs = metrics(true).tracker_documents(&report, 0);
        assert_eq!(docs.len(), 4, "{docs:#?}");
        let drops = values(&docs, "drops");
        assert_eq!(
            drops,
            Map::from([
                ("BatchesClosed".to_string(), json!(2)),
                ("BatchesExpired".to_string(), json!(0)),
            ])
        );
        let expiring = values(&docs, "expiring");
        assert_eq!(
            (&expiring["BatchesClosed"], &expiring["BatchesExpired"]),
            (&json!(0), &json!(1))
        );
        assert_eq!(values(&docs, "deleted-rule")["BatchesExpired"], 1);
        let sales = values(&docs, "sales");
        assert!(!sales.contains_key("BatchesClosed"), "{sales:?}");
        let totals = deployment_values(&metrics(false).tracker_documents(&report, 0));
        assert_eq!(
            (&totals["BatchesClosed"], &totals["BatchesExpired"]),
            (&json!(2), &json!(2))
        );
    }
}
