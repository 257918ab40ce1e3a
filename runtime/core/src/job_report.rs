//! What a finished job left behind, as Alteryx reported it: its messages (error lines first) and
//! its outputs. The tracker keeps one [`JobReport`] on the execution
//! ([`Execution::job_report`](crate::executions::Execution::job_report)) when the job ends, so
//! `executions show` and the failure notice can say what went wrong without asking Alteryx
//! again (it may have purged the job by then).
//!
//! A workflow can log thousands of lines, and a DynamoDB item holds at most 400 KB: the report
//! keeps every error and warning before any information line, at most [`MAX_MESSAGES`] lines of
//! at most [`MAX_MESSAGE_CHARS`] characters each, and says how many it left out.

use serde::{Deserialize, Serialize};

use crate::alteryx::Job;

/// Lines kept per report.
pub const MAX_MESSAGES: usize = 50;
/// Characters kept per line (longer lines end with `…`).
pub const MAX_MESSAGE_CHARS: usize = 1000;
/// Outputs listed per report.
pub const MAX_OUTPUTS: usize = 50;

/// A finished job's messages and outputs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    /// The job these lines belong to (a retry's new job replaces the report when it ends).
    pub job_id: String,
    /// Alteryx's `status` and `disposition` when the tracker read them.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
    /// Errors, then warnings, then information lines, each group in Alteryx's order.
    #[serde(default)]
    pub messages: Vec<ReportedMessage>,
    /// Lines left out because of [`MAX_MESSAGES`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub messages_omitted: usize,
    #[serde(default)]
    pub outputs: Vec<ReportedOutput>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// How serious a message is. Alteryx's engine numbers them 1 (information), 2 (warning) and
/// 3 (error); a line without a number that starts with `Error` or `Warning` (the engine's own
/// prefixes) is taken at its word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageLevel {
    Error,
    Warning,
    Info,
}

/// One line of what Alteryx said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedMessage {
    pub level: MessageLevel,
    pub text: String,
    /// The workflow tool that said it (`-1` is the engine itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_id: Option<i64>,
}

/// One output the job produced (downloadable from Alteryx by its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedOutput {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub formats: Vec<String>,
}

impl MessageLevel {
    fn of(status: Option<i64>, text: &str) -> Self {
        match status {
            Some(s) if s >= 3 => MessageLevel::Error,
            Some(2) => MessageLevel::Warning,
            Some(_) => MessageLevel::Info,
            None if text.trim_start().starts_with("Error") => MessageLevel::Error,
            None if text.trim_start().starts_with("Warning") => MessageLevel::Warning,
            None => MessageLevel::Info,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MessageLevel::Error => "error",
            MessageLevel::Warning => "warning",
            MessageLevel::Info => "info",
        }
    }
}

impl JobReport {
    /// The report of `job` as Alteryx answered it, within the limits above.
    pub fn of(job: &Job) -> Self {
        let mut messages: Vec<ReportedMessage> = job
            .messages
            .iter()
            .filter(|m| !m.text.trim().is_empty())
            .map(|m| ReportedMessage {
                level: MessageLevel::of(m.status, &m.text),
                text: clip(m.text.trim(), MAX_MESSAGE_CHARS),
                tool_id: m.tool_id,
            })
            .collect();
        // Stable: within a level, Alteryx's order stays.
        messages.sort_by_key(|m| m.level);
        let messages_omitted = messages.len().saturating_sub(MAX_MESSAGES);
        messages.truncate(MAX_MESSAGES);
        JobReport {
            job_id: job.id.clone(),
            status: job.status.clone(),
            disposition: job.disposition.clone(),
            messages,
            messages_omitted,
            outputs: job
                .outputs
                .iter()
                .take(MAX_OUTPUTS)
                .map(|o| ReportedOutput {
                    id: o.id.clone(),
                    name: o.name.clone(),
                    formats: o.formats.clone(),
                })
                .collect(),
        }
    }

    /// The error lines; when there are none, the warnings; when there are none either, every
    /// line kept. What a person should read first.
    pub fn headline(&self) -> Vec<&ReportedMessage> {
        for level in [MessageLevel::Error, MessageLevel::Warning] {
            let lines: Vec<&ReportedMessage> =
                self.messages.iter().filter(|m| m.level == level).collect();
            if !lines.is_empty() {
                return lines;
            }
        }
        self.messages.iter().collect()
    }

    /// The [`headline`](Self::headline) as text, one line each, or how the job ended when
    /// Alteryx said nothing: what the execution's `message` keeps.
    pub fn summary(&self) -> String {
        let lines = self.headline();
        if lines.is_empty() {
            return format!(
                "job {} ended {} / {} without messages",
                self.job_id,
                self.status,
                self.disposition.as_deref().unwrap_or("no disposition")
            );
        }
        lines
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// At most `max` characters of `text`, ending with `…` when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alteryx::{JobMessage, JobOutput};

    fn job(messages: Vec<(Option<i64>, &str)>) -> Job {
        Job {
            id: "j1".into(),
            workflow_id: Some("wf".into()),
            create_date: None,
            status: "Completed".into(),
            disposition: Some("Error".into()),
            messages: messages
                .into_iter()
                .map(|(status, text)| JobMessage {
                    status,
                    text: text.into(),
                    tool_id: Some(1),
                })
                .collect(),
            outputs: vec![JobOutput {
                id: "o1".into(),
                name: Some("Output.csv".into()),
                formats: vec!["Raw".into()],
            }],
            priority: None,
        }
    }

    #[test]
    fn errors_come_first_then_warnings_then_information_each_in_alteryx_order() {
        let report = JobReport::of(&job(vec![
            (Some(1), "Input Data (1): 10 records were read"),
            (Some(3), "Error: Input Data (1): File not found"),
            (Some(2), "Warning: Select (2): Region is missing"),
            (Some(3), "Finished running in 1.0 seconds with 1 error"),
            (None, "Error: without a number"),
            (Some(1), "  "),
        ]));
        let texts: Vec<(&str, MessageLevel)> = report
            .messages
            .iter()
            .map(|m| (m.text.as_str(), m.level))
            .collect();
        assert_eq!(
            texts,
            [
                ("Error: Input Data (1): File not found", MessageLevel::Error),
                (
                    "Finished running in 1.0 seconds with 1 error",
                    MessageLevel::Error
                ),
                ("Error: without a number", MessageLevel::Error),
                (
                    "Warning: Select (2): Region is missing",
                    MessageLevel::Warning
                ),
                ("Input Data (1): 10 records were read", MessageLevel::Info),
            ]
        );
        assert_eq!(report.messages_omitted, 0);
        assert_eq!(report.outputs[0].name.as_deref(), Some("Output.csv"));
        assert_eq!(
            report.summary(),
            "Error: Input Data (1): File not found\nFinished running in 1.0 seconds with 1 error\nError: without a number"
        );
    }

    #[test]
    fn a_chatty_job_is_bounded_and_says_how_much_was_left_out() {
        let long = "x".repeat(5000);
        let mut lines: Vec<(Option<i64>, &str)> = vec![(Some(1), "info"); 200];
        lines.push((Some(3), long.as_str()));
        let report = JobReport::of(&job(lines));
        assert_eq!(report.messages.len(), MAX_MESSAGES);
        assert_eq!(report.messages_omitted, 201 - MAX_MESSAGES);
        assert_eq!(report.messages[0].level, MessageLevel::Error, "kept first");
        assert_eq!(report.messages[0].text.chars().count(), MAX_MESSAGE_CHARS);
        assert!(report.messages[0].text.ends_with('…'));
        let encoded = serde_json::to_string(&report).unwrap();
        assert!(encoded.len() < 20_000, "{} bytes", encoded.len());
    }

    #[test]
    fn without_errors_the_summary_falls_back_to_warnings_then_to_how_the_job_ended() {
        let warned = JobReport::of(&job(vec![(Some(1), "ok"), (Some(2), "Warning: w")]));
        assert_eq!(warned.summary(), "Warning: w");
        let silent = JobReport::of(&job(Vec::new()));
        assert_eq!(
            silent.summary(),
            "job j1 ended Completed / Error without messages"
        );
    }

    #[test]
    fn a_report_reads_back_from_its_json_and_old_records_have_none() {
        let report = JobReport::of(&job(vec![(Some(3), "Error: e")]));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["messages"][0]["level"], "error");
        assert!(json.get("messages_omitted").is_none());
        let back: JobReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }
}
