//! A rule's `batch` block: objects that match are collected into batches (one per value of
//! the `by` template at a time) and a batch starts one job when it closes — when every
//! `require` glob is matched by a member, when no member joined for `quiet_seconds`, or when
//! `max_files` joined; a batch still open after `max_wait_seconds` expires (`on_timeout`).
//!
//! This module owns the model, its validation and the pure decisions over a batch's state
//! (which batch an object joins, which `require` entries it satisfies, whether a batch is due
//! to close). Where batches live is [`crate::executions::batch`]; joining and closing them is
//! the router's (`router/batching.rs`), the timers the tracker's.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::CompiledRule;
use super::glob::PathGlob;
use super::questions::QuestionError;
use crate::event::ObjectCreated;
use crate::executions::batch::{Batch, CloseReason};
use crate::template::{Facts, Scope, Template};

/// The most members one batch may have (and the default of `max_files`): the member list is
/// kept on one item (DynamoDB's limit is 400 KB), and a quiet-only batch must not grow
/// without bound.
pub const MAX_BATCH_FILES: u32 = 1000;
/// How long a batch stays open unless the rule says otherwise: a day.
pub const DEFAULT_MAX_WAIT_SECONDS: u64 = 86_400;
/// The longest `max_wait_seconds`: 30 days (execution records live 90).
pub const MAX_WAIT_SECONDS: u64 = 30 * 86_400;
/// Most `require` entries of one rule (their indices are kept on the batch item).
pub const MAX_REQUIRE: usize = 100;

/// What a batch still open after `max_wait_seconds` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// It expires (`EXPIRED`, no job) and a notice goes out.
    #[default]
    Notify,
    /// It closes and starts its job with the members it has.
    Run,
}

impl OnTimeout {
    fn is_notify(&self) -> bool {
        *self == OnTimeout::Notify
    }
}

/// A rule's `batch` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// Template over the object's facts (`{key.dir}`, captures, `{event_time:%Y-%m}`; no
    /// metadata, URL or batch variables): objects with the same value share a batch.
    pub by: String,
    /// Globs over the member's `key.name` that must each be matched by a member; the batch
    /// closes when all are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<String>,
    /// Close when no member has joined for this long (1 – `max_wait_seconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_seconds: Option<u64>,
    /// Close when this many members have joined (1 – 1000; default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<u32>,
    /// A batch still open this long after its first member is handled by `on_timeout`
    /// (1 – 2592000; default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait_seconds: Option<u64>,
    /// `notify` (the batch expires, no job, a notice) or `run` (it closes and starts its job).
    #[serde(default, skip_serializing_if = "OnTimeout::is_notify")]
    pub on_timeout: OnTimeout,
}

/// A validated `batch` block.
#[derive(Debug, Clone)]
pub struct CompiledBatch {
    by: Template,
    require: Vec<PathGlob>,
    pub quiet_seconds: Option<u64>,
    pub max_files: u32,
    pub max_wait_seconds: u64,
    pub on_timeout: OnTimeout,
}

impl CompiledBatch {
    /// Validate `spec` for a rule whose key captures `captures`: `Err((field, message))`.
    pub(super) fn compile(spec: &BatchSpec, captures: &[String]) -> Result<Self, (String, String)> {
        let err = |field: &str, message: String| Err((format!("batch.{field}"), message));
        if spec.require.is_empty() && spec.quiet_seconds.is_none() && spec.max_files.is_none() {
            return err(
                "require",
                "a batch needs a way to close: set require (the files it waits for), quiet_seconds or max_files".into(),
            );
        }
        if spec.by.trim().is_empty() {
            return err(
                "by",
                "must be a template naming what members share, e.g. \"{key.dir}\"".into(),
            );
        }
        let scope = Scope {
            captures,
            batch: false,
        };
        let by = match Template::parse_in(&spec.by, &scope) {
            Ok(t) => t,
            Err(e) => return err("by", e.to_string()),
        };
        if by.metadata_names().next().is_some() || by.uses_presigned_url() {
            return err(
                "by",
                "may use the event's facts and the key's captures only (no {meta.*} or {presigned_url}: the batch is chosen before the object is read)".into(),
            );
        }
        if spec.require.len() > MAX_REQUIRE {
            return err(
                "require",
                format!("lists {} globs; at most {MAX_REQUIRE}", spec.require.len()),
            );
        }
        let mut require = Vec::with_capacity(spec.require.len());
        for (i, pattern) in spec.require.iter().enumerate() {
            let field = format!("require[{i}]");
            if pattern.is_empty() || pattern.contains('/') {
                return err(
                    &field,
                    format!(
                        "{pattern:?} must be a glob over the file name (key.name), without `/`"
                    ),
                );
            }
            if spec.require[..i].contains(pattern) {
                return err(&field, format!("`{pattern}` is listed twice"));
            }
            match super::path_glob(pattern) {
                Ok(glob) => require.push(glob),
                Err(e) => return err(&field, e.to_string()),
            }
        }
        let max_wait_seconds = spec.max_wait_seconds.unwrap_or(DEFAULT_MAX_WAIT_SECONDS);
        if !(1..=MAX_WAIT_SECONDS).contains(&max_wait_seconds) {
            return err(
                "max_wait_seconds",
                format!(
                    "must be between 1 and {MAX_WAIT_SECONDS} (30 days), not {max_wait_seconds}"
                ),
            );
        }
        if let Some(quiet) = spec.quiet_seconds
            && !(1..=max_wait_seconds).contains(&quiet)
        {
            return err(
                "quiet_seconds",
                format!("must be between 1 and max_wait_seconds ({max_wait_seconds}), not {quiet}"),
            );
        }
        let max_files = spec.max_files.unwrap_or(MAX_BATCH_FILES);
        if !(1..=MAX_BATCH_FILES).contains(&max_files) {
            return err(
                "max_files",
                format!("must be between 1 and {MAX_BATCH_FILES}, not {max_files}"),
            );
        }
        Ok(CompiledBatch {
            by,
            require,
            quiet_seconds: spec.quiet_seconds,
            max_files,
            max_wait_seconds,
            on_timeout: spec.on_timeout,
        })
    }

    /// The batch `object` joins: the `by` template's value (its group).
    pub fn key_of(
        &self,
        rule: &CompiledRule,
        object: &ObjectCreated,
    ) -> Result<String, QuestionError> {
        let captures = rule.capture_values(&object.key)?;
        let facts = Facts {
            captures: &captures,
            ..Facts::of(object)
        };
        self.by
            .render(&facts)
            .map_err(|source| QuestionError::Render {
                rule: rule.rule.id.clone(),
                question: "batch.by".into(),
                source,
            })
    }

    /// The indices of the `require` entries a member with this key satisfies.
    pub fn satisfied_by(&self, key: &str) -> Vec<u32> {
        let name = key.rsplit('/').next().unwrap_or(key);
        self.require
            .iter()
            .enumerate()
            .filter(|(_, glob)| glob.is_match(name))
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// How many `require` entries there are.
    pub fn required(&self) -> usize {
        self.require.len()
    }

    /// Whether an open `batch` is complete by its members alone (every `require` entry
    /// satisfied, or `max_files` members): the reason to close it now.
    pub fn complete(&self, batch: &Batch) -> Option<CloseReason> {
        if batch.member_count >= self.max_files {
            return Some(CloseReason::MaxFiles);
        }
        if !self.require.is_empty() && batch.satisfied.len() >= self.require.len() {
            return Some(CloseReason::Require);
        }
        None
    }

    /// Whether an open `batch` is due at `now` (Unix seconds): complete, quiet for
    /// `quiet_seconds`, or past `max_wait_seconds` (then `Timeout`, which `on_timeout` turns into
    /// a close or an expiry).
    pub fn due(&self, batch: &Batch, now: i64) -> Option<CloseReason> {
        if let Some(reason) = self.complete(batch) {
            return Some(reason);
        }
        if let Some(quiet) = self.quiet_seconds
            && batch.last_member_at + quiet as i64 <= now
        {
            return Some(CloseReason::Quiet);
        }
        if batch.opened_at + self.max_wait_seconds as i64 <= now {
            return Some(CloseReason::Timeout);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{CompiledRule, Rule};

    fn rule(yaml: &str) -> Result<CompiledRule, String> {
        let rule: Rule = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        CompiledRule::compile(rule).map_err(|e| e.to_string())
    }

    const MONTH_END: &str = "
id: month-end
key: 'closing/<period>/*.csv'
workflow: wf
batch:
  by: '{key.dir}'
  require: ['orders.csv', 'customers.csv', 'ledger*.csv']
  quiet_seconds: 300
questions:
  Files: '{batch.keys:,}'
  Period: '{period}'
";

    fn object(key: &str) -> ObjectCreated {
        ObjectCreated {
            bucket: "b".into(),
            key: key.into(),
            size: 1,
            etag: Some("e".into()),
            version_id: None,
            sequencer: None,
            event_time: "2026-11-30T23:00:00Z".into(),
            reason: None,
            source: "test".into(),
        }
    }

    #[test]
    fn a_batch_rule_knows_its_key_and_what_each_file_satisfies() {
        let r = rule(MONTH_END).unwrap();
        let b = r.batch().unwrap();
        assert_eq!(
            b.key_of(&r, &object("closing/2026-11/orders.csv")).unwrap(),
            "closing/2026-11"
        );
        assert_eq!(b.satisfied_by("closing/2026-11/orders.csv"), vec![0]);
        assert_eq!(b.satisfied_by("closing/2026-11/ledger-eu.csv"), vec![2]);
        assert!(b.satisfied_by("closing/2026-11/notes.csv").is_empty());
        assert_eq!(
            (b.max_files, b.max_wait_seconds, b.on_timeout),
            (MAX_BATCH_FILES, DEFAULT_MAX_WAIT_SECONDS, OnTimeout::Notify)
        );
    }

    #[test]
    fn batches_close_when_complete_quiet_or_full_and_time_out() {
        let r = rule(MONTH_END).unwrap();
        let b = r.batch().unwrap();
        let mut batch = Batch::opened("month-end:batch-1", "month-end", "g", 1000);
        batch.member_count = 2;
        batch.satisfied = vec![0, 2];
        batch.last_member_at = 1100;
        assert_eq!(b.due(&batch, 1399), None);
        assert_eq!(b.due(&batch, 1400), Some(CloseReason::Quiet));
        batch.satisfied = vec![0, 1, 2];
        assert_eq!(b.complete(&batch), Some(CloseReason::Require));
        batch.satisfied = vec![0];
        batch.last_member_at = 1000 + 86_400;
        assert_eq!(b.due(&batch, 1000 + 86_400), Some(CloseReason::Timeout));
        batch.member_count = 1000;
        assert_eq!(b.complete(&batch), Some(CloseReason::MaxFiles));
    }

    #[test]
    fn bad_batch_blocks_are_refused_naming_the_field() {
        for (block, want) in [
            (
                "{by: '{key.dir}'}",
                "batch.require`: a batch needs a way to close",
            ),
            ("{by: '', max_files: 3}", "batch.by`: must be a template"),
            (
                "{by: '{meta.x}', max_files: 3}",
                "batch.by`: may use the event's facts",
            ),
            (
                "{by: '{batch.id}', max_files: 3}",
                "batch variables are for rules",
            ),
            ("{by: '{nope}', max_files: 3}", "unknown variable `{nope}`"),
            (
                "{by: '{key.dir}', require: ['a/b.csv']}",
                "batch.require[0]`",
            ),
            (
                "{by: '{key.dir}', require: ['a.csv', 'a.csv']}",
                "listed twice",
            ),
            (
                "{by: '{key.dir}', max_files: 1001}",
                "batch.max_files`: must be between 1 and 1000",
            ),
            ("{by: '{key.dir}', max_files: 0}", "batch.max_files`"),
            (
                "{by: '{key.dir}', quiet_seconds: 0}",
                "batch.quiet_seconds`",
            ),
            (
                "{by: '{key.dir}', quiet_seconds: 100, max_wait_seconds: 50}",
                "max_wait_seconds (50)",
            ),
            (
                "{by: '{key.dir}', max_files: 2, max_wait_seconds: 99999999}",
                "batch.max_wait_seconds`",
            ),
            (
                "{by: '{key.dir}', max_files: 2, on_timeout: later}",
                "unknown variant `later`",
            ),
            (
                "{by: '{key.dir}', max_files: 2, bogus: 1}",
                "unknown field `bogus`",
            ),
        ] {
            let yaml = format!("{{id: r, key: '**', workflow: wf, batch: {block}}}");
            let e = rule(&yaml).unwrap_err();
            assert!(e.contains(want), "{block}: {e}");
        }
        // Batch variables in questions need a batch block.
        let e =
            rule("{id: r, key: '**', workflow: wf, questions: {F: '{batch.keys}'}}").unwrap_err();
        assert!(e.contains("questions.F"), "{e}");
        assert!(rule("{id: r, key: '**', workflow: wf, batch: {by: '{key.dir}', max_files: 2, on_timeout: run}, questions: {F: '{batch.uris}'}}").is_ok());
    }
}
