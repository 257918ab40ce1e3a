//! What the emulator serves and accepts: its workflows and their questions, outcomes and run
//! times, the API credentials, the token lifetime, the worker slots, and the worker tags and
//! credential ids the "server" knows. Built in code ([`EmulatorConfig::default`] is the demo's
//! server) or read from a workflows file (YAML or JSON, described in `docs/emulator.md`).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// The demo's built-in key; printed by `alteryx-router emulator`.
pub const DEMO_KEY: &str = "demo-key";
/// The demo's built-in secret (not a real credential: it only opens the local emulator).
pub const DEMO_SECRET: &str = "demo-secret";

/// What the emulator serves and accepts.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    pub workflows: Vec<EmulatedWorkflow>,
    /// Accepted (key, secret) pairs, for OAuth1 and OAuth2 alike.
    pub credentials: Vec<(String, String)>,
    pub token_ttl: Duration,
    /// How long a job runs, for workflows without a run time of their own.
    pub job_duration: Duration,
    /// Run time per workflow id (the workflows file's per-workflow `job_seconds`).
    pub job_durations: HashMap<String, Duration>,
    /// At most this many jobs Running at once; the others wait Queued. `None`: no limit, and a
    /// job is Queued for the first tenth of its run time, then Running.
    pub slots: Option<usize>,
    /// Worker tags the server knows; a job request naming another is refused (400).
    pub worker_tags: Vec<String>,
    /// Credential ids the server knows; a job request naming another is refused (400).
    pub credential_ids: Vec<String>,
    pub max_clock_skew: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        let q = |name: &str| EmulatedQuestion {
            name: name.to_string(),
            question_type: text_box(),
        };
        Self {
            workflows: vec![
                EmulatedWorkflow {
                    id: "5f3c0e5a2c1b0a0001d1e001".into(),
                    name: "Daily Sales Cleanup".into(),
                    questions: vec![
                        q("InputPath"),
                        q("FileName"),
                        q("Region"),
                        q("Columns"),
                        q("ColumnNames"),
                        q("ReportDate"),
                    ],
                    outcome: JobOutcome::Success,
                },
                EmulatedWorkflow {
                    id: "5f3c0e5a2c1b0a0001d1e002".into(),
                    name: "Invoice Intake".into(),
                    questions: vec![q("InputPath"), q("Vendor"), q("ReceivedOn")],
                    outcome: JobOutcome::Success,
                },
                EmulatedWorkflow {
                    id: "5f3c0e5a2c1b0a0001d1e003".into(),
                    name: "Partner Feed Validation".into(),
                    questions: vec![q("InputPath"), q("Partner")],
                    outcome: JobOutcome::Error,
                },
            ],
            credentials: vec![(DEMO_KEY.into(), DEMO_SECRET.into())],
            token_ttl: Duration::from_secs(3600),
            job_duration: Duration::from_secs(2),
            job_durations: HashMap::new(),
            slots: None,
            worker_tags: Vec::new(),
            credential_ids: Vec::new(),
            max_clock_skew: Duration::from_secs(300),
        }
    }
}

/// A workflow the emulator serves.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmulatedWorkflow {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub questions: Vec<EmulatedQuestion>,
    #[serde(default)]
    pub outcome: JobOutcome,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmulatedQuestion {
    pub name: String,
    #[serde(rename = "type", default = "text_box")]
    pub question_type: String,
}

fn text_box() -> String {
    "QuestionTextBox".into()
}

/// How an emulated workflow's jobs end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobOutcome {
    #[default]
    Success,
    /// Completed with disposition Warning (the job ran; Alteryx counts it as a success).
    Warning,
    Error,
    /// Stays Running forever (for "stuck job" tests); it holds its worker slot.
    Stuck,
}

impl JobOutcome {
    /// The disposition a finished job reports.
    pub(crate) fn disposition(self) -> &'static str {
        match self {
            JobOutcome::Success => "Success",
            JobOutcome::Warning => "Warning",
            JobOutcome::Error => "Error",
            JobOutcome::Stuck => "None",
        }
    }
}

/// One entry of the workflows file: a workflow plus its own run time.
#[derive(Deserialize)]
struct WorkflowEntry {
    #[serde(flatten)]
    workflow: EmulatedWorkflow,
    #[serde(default)]
    job_seconds: Option<f64>,
}

/// The workflows file as an object: workflows and settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullFile {
    workflows: Vec<WorkflowEntry>,
    #[serde(default)]
    token_ttl_seconds: Option<u64>,
    #[serde(default)]
    job_seconds: Option<f64>,
    #[serde(default)]
    slots: Option<usize>,
    #[serde(default)]
    worker_tags: Vec<String>,
    #[serde(default)]
    credential_ids: Vec<String>,
}

impl EmulatorConfig {
    /// Read workflows (and optionally settings) from a YAML or JSON file: a list of workflows,
    /// or an object with `workflows` and settings.
    pub fn from_yaml_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_yaml_str(&text)
            .with_context(|| format!("{}: not a workflows file", path.display()))
    }

    /// [`EmulatorConfig::from_yaml_file`] for text already read.
    pub fn from_yaml_str(text: &str) -> anyhow::Result<Self> {
        let value: serde_yaml::Value = serde_yaml::from_str(text)?;
        let mut config = EmulatorConfig::default();
        let entries = if value.is_sequence() {
            serde_yaml::from_value::<Vec<WorkflowEntry>>(value)?
        } else {
            let file: FullFile = serde_yaml::from_value(value)?;
            if let Some(t) = file.token_ttl_seconds {
                config.token_ttl = Duration::from_secs(t);
            }
            if let Some(j) = file.job_seconds {
                config.job_duration = seconds("job_seconds", j)?;
            }
            config.slots = file.slots;
            config.worker_tags = file.worker_tags;
            config.credential_ids = file.credential_ids;
            file.workflows
        };
        let mut seen = HashSet::new();
        config.workflows.clear();
        for entry in entries {
            let id = entry.workflow.id.clone();
            if !seen.insert(id.clone()) {
                bail!("workflow id {id:?} appears more than once");
            }
            if let Some(j) = entry.job_seconds {
                let what = format!("job_seconds of workflow {id:?}");
                config.job_durations.insert(id, seconds(&what, j)?);
            }
            config.workflows.push(entry.workflow);
        }
        Ok(config)
    }

    /// The run time of a workflow's jobs.
    pub fn run_time(&self, workflow_id: &str) -> Duration {
        self.job_durations
            .get(workflow_id)
            .copied()
            .unwrap_or(self.job_duration)
    }
}

/// A duration in seconds from a file or flag, refused when negative or not a number.
pub fn seconds(what: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("{what} must be a number of seconds >= 0, not {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_workflows_keeps_the_default_settings() {
        let c =
            EmulatorConfig::from_yaml_str("- {id: a, name: A}\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.workflows.len(), 1);
        assert_eq!(c.workflows[0].outcome, JobOutcome::Success);
        assert_eq!(c.workflows[0].questions.len(), 0);
        assert_eq!(c.job_duration, EmulatorConfig::default().job_duration);
    }

    #[test]
    fn the_full_form_reads_every_setting_and_per_workflow_run_times() {
        let c = EmulatorConfig::from_yaml_str(
            "job_seconds: 1.5\ntoken_ttl_seconds: 60\nslots: 2\nworker_tags: [gpu]\ncredential_ids: [c1]\n\
             workflows:\n  - {id: a, name: A, job_seconds: 4, outcome: Warning}\n  - {id: b, name: B}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.job_duration, Duration::from_millis(1500));
        assert_eq!(c.token_ttl, Duration::from_secs(60));
        assert_eq!(c.slots, Some(2));
        assert_eq!(c.worker_tags, vec!["gpu".to_string()]);
        assert_eq!(c.credential_ids, vec!["c1".to_string()]);
        assert_eq!(c.run_time("a"), Duration::from_secs(4));
        assert_eq!(c.run_time("b"), Duration::from_millis(1500));
        assert_eq!(c.workflows[0].outcome, JobOutcome::Warning);
    }

    #[test]
    fn the_example_file_parses() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../emulator/workflows.example.yaml");
        let c = EmulatorConfig::from_yaml_file(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(c.workflows.len(), 3);
        assert_eq!((c.slots, c.worker_tags.len()), (Some(2), 2));
        assert_eq!(
            c.run_time("6543210fedcba98765432100"),
            Duration::from_secs(10)
        );
        assert_eq!(
            c.run_time("6543210fedcba98765432101"),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, expected) in [
            (
                "- {id: a, name: A}\n- {id: a, name: B}\n",
                "appears more than once",
            ),
            ("workflows: []\njob_seconds: -1\n", "job_seconds must be"),
            (
                "workflows: [{id: a, name: A, job_seconds: -2}]\n",
                "job_seconds of workflow \"a\"",
            ),
            ("workflows: []\nslot: 2\n", "unknown field `slot`"),
            (
                "workflows: [{id: a, name: A, outcome: Maybe}]\n",
                "unknown variant `Maybe`",
            ),
        ] {
            let e = EmulatorConfig::from_yaml_str(text)
                .err()
                .map(|e| format!("{e:#}"));
            assert!(
                e.as_deref().is_some_and(|e| e.contains(expected)),
                "{text:?}: {e:?} should mention {expected:?}"
            );
        }
    }
}
