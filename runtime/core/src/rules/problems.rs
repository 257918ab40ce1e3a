//! Telling people about rules that do not validate.
//!
//! An item edited by hand in the DynamoDB console can fail validation; the router then skips
//! it and the uploads it should route go nowhere. The rules-stream function
//! ([`super::publish`]) finds such items when it rebuilds the snapshot and publishes one
//! notification per problem (per item content: a new edit is a new problem) to the failure
//! topic: which rule, which field, what is wrong and how to fix it.

use serde::Serialize;

use super::snapshot::InvalidItem;
use super::{BoxError, RuleError};

/// What a notification about an invalid rule says (the message's JSON attribute `notice`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleProblem {
    pub kind: &'static str,
    pub table: String,
    pub rule: String,
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl RuleProblem {
    pub fn new(table: &str, item: &InvalidItem) -> Self {
        Self {
            kind: "invalid_rule",
            table: table.to_string(),
            rule: item.id.clone(),
            field: item.field.clone(),
            problem: item.message.clone(),
            fix: fix_for(&item.field, &item.message),
        }
    }

    /// The notification's subject (SNS allows 100 characters).
    pub fn subject(&self) -> String {
        let subject = format!(
            "alteryx-router: rule {} is invalid (field {}) and is skipped",
            self.rule, self.field
        );
        subject.chars().take(100).collect()
    }

    /// The notification's text, for a person.
    pub fn body(&self) -> String {
        format!(
            "The rule `{rule}` in the DynamoDB table {table} does not validate, so the router skips \
             it: the uploads it should route are not routed until it is fixed.\n\n\
             Field:   {field}\nProblem: {problem}\nFix:     {fix}\n\n\
             Check a fix before saving it: put the rule in a file and run \
             `alteryx-router rules validate FILE`, then `alteryx-router rules put FILE`.\n\
             `alteryx-router rules list --invalid` lists every rule that does not validate.\n",
            rule = self.rule,
            table = self.table,
            field = self.field,
            problem = self.problem,
            fix = self.fix,
        )
    }
}

/// A hint for the usual mistakes, from the field and the validation message.
pub fn fix_for(field: &str, message: &str) -> String {
    let base = field.split(['.', '[']).next().unwrap_or(field);
    if message.contains("unknown field") {
        return format!(
            "remove the attribute `{field}` or rename it to one of the rule's fields (docs/rules.md); a misspelt name is the usual cause"
        );
    }
    if message.contains("missing field") {
        return format!("add the attribute `{field}`; every rule needs `id`, `key` and `workflow`");
    }
    if message.starts_with("wrong type") {
        return format!(
            "store `{field}` with the type docs/rules.md gives it (numbers as Number, `enabled`/`final` as Boolean, lists as List, `questions` as Map)"
        );
    }
    match base {
        "key" | "bucket" | "exclude" => format!(
            "correct the glob in `{field}`: `*` within a segment, `**` across segments, `[...]` classes and `{{a,b}}` alternatives must be closed; escape a literal `[` or `{{` as `\\[`"
        ),
        "questions" => format!(
            "correct the template in `{field}`: variables are {{bucket}}, {{key}}, {{key.name}}, {{key.stem}}, {{key.ext}}, {{key.dir}}, {{size}}, {{etag}}, {{version_id}}, {{event_time}}, {{event_date}}, {{s3_uri}}; write a literal brace as {{{{ or }}}}"
        ),
        "id" => "use an id of letters, digits, `.`, `_` and `-` only (copy the item under a new id and delete the old one)".to_string(),
        "workflow" => "set `workflow` to the Alteryx appId (v1) or workflow id (v3)".to_string(),
        "min_size" => "make `min_size` at most `max_size`".to_string(),
        "plugin" => format!("correct `{field}` as plugins/README.md describes"),
        _ => format!("correct `{field}` as docs/rules.md describes"),
    }
}

/// Where rule problems are published.
#[async_trait::async_trait]
pub trait ProblemNotifier: Send + Sync {
    async fn notify(&self, problem: &RuleProblem) -> Result<(), RuleError>;
}

/// Publishes to an SNS topic (the failure topic, `FAILURE_TOPIC_ARN`).
pub struct SnsProblemNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsProblemNotifier {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: String) -> Self {
        Self { client, topic_arn }
    }
}

#[async_trait::async_trait]
impl ProblemNotifier for SnsProblemNotifier {
    async fn notify(&self, problem: &RuleProblem) -> Result<(), RuleError> {
        let notice = serde_json::to_string(problem).map_err(|e| RuleError::Notify {
            topic: self.topic_arn.clone(),
            source: Box::new(e),
        })?;
        let attribute = aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(notice)
            .build()
            .map_err(|e| RuleError::Notify {
                topic: self.topic_arn.clone(),
                source: Box::new(e),
            })?;
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(problem.subject())
            .message(problem.body())
            .message_attributes("notice", attribute)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| RuleError::Notify {
                topic: self.topic_arn.clone(),
                source: Box::new(e) as BoxError,
            })
    }
}

/// Logs problems only (no topic configured).
pub struct LogProblemNotifier;

#[async_trait::async_trait]
impl ProblemNotifier for LogProblemNotifier {
    async fn notify(&self, problem: &RuleProblem) -> Result<(), RuleError> {
        tracing::warn!(rule = %problem.rule, field = %problem.field, problem = %problem.problem,
            fix = %problem.fix, "invalid rule skipped (no FAILURE_TOPIC_ARN set to notify)");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(field: &str, message: &str) -> RuleProblem {
        RuleProblem::new(
            "rules",
            &InvalidItem {
                id: "sales-csv".into(),
                field: field.into(),
                message: message.into(),
                fingerprint: "f".into(),
                notified: false,
            },
        )
    }

    #[test]
    fn each_kind_of_problem_gets_a_fix_naming_the_field() {
        let cases = [
            (
                "prority",
                "unknown field `prority`, expected one of ...",
                "rename",
            ),
            (
                "workflow",
                "missing field `workflow`",
                "add the attribute `workflow`",
            ),
            ("priority", "wrong type (invalid type: string)", "Number"),
            (
                "key",
                "unclosed character class; missing ']'",
                "glob in `key`",
            ),
            (
                "exclude[1]",
                "unclosed alternate group",
                "glob in `exclude[1]`",
            ),
            ("questions.Path", "unknown variable `{bukket}`", "{bucket}"),
            ("id", "must be non-empty", "letters, digits"),
            (
                "min_size",
                "5 is larger than max_size 1",
                "at most `max_size`",
            ),
            (
                "plugin.name",
                "must be a file name stem",
                "plugins/README.md",
            ),
            ("job_priority", "`urgent` is not low", "`job_priority`"),
        ];
        for (field, message, hint) in cases {
            let p = problem(field, message);
            assert!(p.fix.contains(hint), "{field}: {}", p.fix);
            assert!(
                p.body().contains(&format!("Field:   {field}")),
                "{}",
                p.body()
            );
            assert!(p.subject().contains("sales-csv") && p.subject().len() <= 100);
        }
    }
}
