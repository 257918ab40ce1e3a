//! Shared output helpers for the CLI: tables for people, JSON for programs.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use alteryx_router_core::router::{InvocationSummary, RuleOutcome};

/// Print `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A table with the project's look.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    t
}

/// `Name=value` lines, one per question.
pub fn questions_cell(questions: &std::collections::BTreeMap<String, String>) -> String {
    questions
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn outcome_status(o: &RuleOutcome) -> String {
    let status = o.status.to_string();
    if o.duplicate {
        format!("duplicate ({status})")
    } else if o.in_progress {
        format!("in progress ({status})")
    } else {
        status
    }
}

/// The invocation summary as a table.
pub fn print_summary(summary: &InvocationSummary) {
    let mut t = table(&["object", "rule", "status", "job", "questions / message"]);
    for object in &summary.objects {
        let name = format!("s3://{}/{}", object.bucket, object.key);
        if object.outcomes.is_empty() {
            t.add_row(vec![
                name.clone(),
                "-".into(),
                "no rule matched".into(),
                String::new(),
                String::new(),
            ]);
        }
        for o in &object.outcomes {
            let detail = match (&o.message, o.questions.is_empty()) {
                (Some(m), true) => m.clone(),
                (Some(m), false) => format!("{}\n{m}", questions_cell(&o.questions)),
                (None, _) => questions_cell(&o.questions),
            };
            t.add_row(vec![
                name.clone(),
                o.rule_id.clone(),
                outcome_status(o),
                o.job_id.clone().unwrap_or_default(),
                detail,
            ]);
        }
    }
    println!("{t}");
    for reason in &summary.skipped {
        println!("ignored: {reason}");
    }
    for reason in &summary.rejected {
        println!("rejected: {reason}");
    }
    for id in &summary.failed_messages {
        println!("SQS message {id} failed and will be redelivered");
    }
}
