//! Where and as whom a rule's job runs: `worker_tag` and `credential_id`, checked when the rule
//! is saved, and the [`JobRequest`] a matched rule submits.
//!
//! Both are fields of API v3's job request (`workerTag`, `credentialId`); v1's request has
//! neither (docs/alteryx-api.md). Which API a rule's secret points at is only known when the
//! secret is read, so a rule asking for them on v1 is refused at submit, by the client, as a
//! non-retryable error naming the rule, the field and the API version — never sent, never
//! silently dropped.

use std::collections::BTreeMap;

use super::{CompiledRule, Rule};
use crate::alteryx::{JobRequest, QuestionValue};

/// The longest worker tag or credential id a rule may give.
pub const MAX_JOB_FIELD_LEN: usize = 256;

impl CompiledRule {
    /// The job this rule submits with these question values.
    pub fn job_request(&self, questions: &BTreeMap<String, String>) -> JobRequest {
        JobRequest {
            questions: questions
                .iter()
                .map(|(name, value)| QuestionValue {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            priority: self.rule.job_priority,
            worker_tag: self.rule.worker_tag.clone(),
            credential_id: self.rule.credential_id.clone(),
            rule_id: Some(self.rule.id.clone()),
        }
    }
}

/// A worker tag or credential id, when given, is a real value: not blank, no surrounding or
/// control characters (a credential id no spaces at all), of a sane length.
pub(super) fn check_job_fields(rule: &Rule) -> Result<(), (&'static str, String)> {
    for (field, value) in [
        ("worker_tag", &rule.worker_tag),
        ("credential_id", &rule.credential_id),
    ] {
        let Some(value) = value else { continue };
        if value.trim().is_empty() {
            return Err((
                field,
                "is empty; leave the field out to let the server decide".into(),
            ));
        }
        if value.trim() != value {
            return Err((field, format!("{value:?} has surrounding spaces")));
        }
        if value.chars().any(char::is_control) {
            return Err((field, format!("{value:?} contains control characters")));
        }
        if field == "credential_id" && value.chars().any(char::is_whitespace) {
            return Err((
                field,
                format!(
                    "{value:?} contains spaces; an id is one word (GET v3/credentials lists them)"
                ),
            ));
        }
        if value.len() > MAX_JOB_FIELD_LEN {
            return Err((
                field,
                format!("is {} bytes long; at most {MAX_JOB_FIELD_LEN}", value.len()),
            ));
        }
    }
    Ok(())
}

/// The name prefix the deployed functions may read secrets under unless
/// `ALTERYX_SECRET_PREFIX` says otherwise (template parameter `AlteryxSecretPrefix`).
pub const DEFAULT_SECRET_PREFIX: &str = "alteryx/";

/// A warning when the rule names a secret the deployed functions may not read: its name (an
/// ARN's part after `:secret:`) does not start with `prefix`. The default secret is granted on
/// its own and needs no check.
pub fn secret_warning(rule: &Rule, prefix: &str) -> Option<String> {
    let secret_id = rule.secret_id.as_deref()?;
    let name = secret_id
        .split_once(":secret:")
        .map_or(secret_id, |(_, name)| name);
    if name.starts_with(prefix) {
        return None;
    }
    Some(format!(
        "rule `{}`: secret_id `{secret_id}` is outside the secret prefix `{prefix}`: the deployed functions may read only secrets named `{prefix}*` (template parameter AlteryxSecretPrefix, ALTERYX_SECRET_PREFIX here), so its jobs would fail with AccessDenied",
        rule.id
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(secret_id: Option<&str>) -> Rule {
        let mut rule: Rule =
            serde_yaml::from_str("{id: sales, key: a, workflow: w}").expect("a rule");
        rule.secret_id = secret_id.map(str::to_string);
        rule
    }

    #[test]
    fn secrets_outside_the_prefix_are_named() {
        assert_eq!(secret_warning(&rule(None), "alteryx/"), None);
        assert_eq!(secret_warning(&rule(Some("alteryx/eu")), "alteryx/"), None);
        assert_eq!(
            secret_warning(
                &rule(Some(
                    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:alteryx/eu-AbC123"
                )),
                "alteryx/"
            ),
            None
        );
        let w = secret_warning(&rule(Some("team-b/alteryx")), "alteryx/").expect("a warning");
        assert!(
            w.starts_with(
                "rule `sales`: secret_id `team-b/alteryx` is outside the secret prefix `alteryx/`"
            ),
            "{w}"
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod-x";
        assert!(secret_warning(&rule(Some(arn)), "alteryx/").is_some());
        assert_eq!(secret_warning(&rule(Some("team-b/x")), "team-b/"), None);
    }
}
