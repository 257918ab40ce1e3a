//! A matched rule's question values for one object, and the save-time checks behind them.
//!
//! Rendering is done only for a rule that matched: its key's captures are read from the key
//! then (the matcher never sees them), and its templates are rendered over the event's facts,
//! the captures and — when a template asks — the object's user metadata and a pre-signed URL,
//! which [`crate::render::QuestionRenderer`] fetches. `rules test` shows the same values with
//! what only routing can know clearly marked ([`CompiledRule::preview_questions`]).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{CompiledRule, Rule};
use crate::event::ObjectCreated;
use crate::template::{Facts, Metadata, RenderError, Template, VARIABLES};

/// How long a `{presigned_url}` stays valid unless the rule says otherwise.
pub const DEFAULT_PRESIGN_EXPIRY_SECONDS: u64 = 3600;
/// SigV4's limit for a pre-signed URL: 7 days.
pub const MAX_PRESIGN_EXPIRY_SECONDS: u64 = 7 * 24 * 3600;

/// Why a matched rule's question values could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum QuestionError {
    #[error(
        "rule `{rule}`: the key {key:?} does not match the rule's key glob `{pattern}`, so its captures cannot be read (was the rule's key edited since the object arrived?)"
    )]
    Captures {
        rule: String,
        key: String,
        pattern: String,
    },
    #[error("rule `{rule}`: the key glob's captures cannot be read")]
    CaptureRegex {
        rule: String,
        #[source]
        source: super::captures::CaptureError,
    },
    #[error("rule `{rule}`, question `{question}`")]
    Render {
        rule: String,
        question: String,
        #[source]
        source: RenderError,
    },
}

/// What rendering a rule's questions needs beyond the event and the key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// A template reads `{meta.NAME}`: one HEAD of the object.
    pub metadata: bool,
    /// A template reads `{presigned_url}`.
    pub presigned_url: bool,
}

impl CompiledRule {
    /// What this rule's templates read beyond the event.
    pub fn needs(&self) -> Needs {
        let templates = || self.questions.iter().map(|(_, t)| t);
        Needs {
            metadata: templates().any(|t| t.metadata_names().next().is_some()),
            presigned_url: templates().any(Template::uses_presigned_url),
        }
    }

    /// How long this rule's pre-signed URLs stay valid.
    pub fn presign_expiry(&self) -> Duration {
        Duration::from_secs(
            self.rule
                .presign_expiry_seconds
                .unwrap_or(DEFAULT_PRESIGN_EXPIRY_SECONDS),
        )
    }

    /// The names of the key's captures, in order.
    pub fn capture_names(&self) -> &[String] {
        self.key_pattern.names()
    }

    /// The key's capture values for `key` (none for a key glob without captures).
    pub fn capture_values(&self, key: &str) -> Result<Vec<String>, QuestionError> {
        match self.key_pattern.values(key) {
            Ok(Some(values)) => Ok(values),
            Ok(None) => Err(QuestionError::Captures {
                rule: self.rule.id.clone(),
                key: key.to_string(),
                pattern: self.rule.key.clone(),
            }),
            Err(source) => Err(QuestionError::CaptureRegex {
                rule: self.rule.id.clone(),
                source,
            }),
        }
    }

    /// The question values from the event's facts and the key's captures. A rule that reads
    /// metadata or a pre-signed URL needs [`render_with`](Self::render_with) (the router's
    /// [`crate::render::QuestionRenderer`] fetches them).
    pub fn render_questions(
        &self,
        obj: &ObjectCreated,
    ) -> Result<BTreeMap<String, String>, QuestionError> {
        self.render_with(obj, None, None)
    }

    /// The question values, given what the templates read beyond the event.
    pub fn render_with(
        &self,
        obj: &ObjectCreated,
        metadata: Option<&Metadata>,
        presigned_url: Option<&str>,
    ) -> Result<BTreeMap<String, String>, QuestionError> {
        self.render_batch(obj, metadata, presigned_url, None)
    }

    /// The question values of a batch rule's job: `obj` is the member that closed `batch`.
    pub fn render_batch(
        &self,
        obj: &ObjectCreated,
        metadata: Option<&Metadata>,
        presigned_url: Option<&str>,
        batch: Option<&crate::plugin::BatchInput>,
    ) -> Result<BTreeMap<String, String>, QuestionError> {
        let captures = self.capture_values(&obj.key)?;
        let facts = Facts {
            object: obj,
            captures: &captures,
            metadata,
            presigned_url,
            batch,
        };
        self.questions
            .iter()
            .map(|(name, template)| {
                template
                    .render(&facts)
                    .map(|value| (name.clone(), value))
                    .map_err(|source| QuestionError::Render {
                        rule: self.rule.id.clone(),
                        question: name.clone(),
                        source,
                    })
            })
            .collect()
    }

    /// The values as `rules test` shows them: `{meta.NAME}` from `metadata` where given, every
    /// value only routing can know marked `‹…›` (the pre-signed URL is never signed here),
    /// and a value that cannot be rendered shown as its error.
    pub fn preview_questions(
        &self,
        obj: &ObjectCreated,
        metadata: &Metadata,
    ) -> BTreeMap<String, String> {
        let mut shown = metadata.clone();
        for (_, template) in &self.questions {
            for name in template.metadata_names() {
                shown.entry(name.to_string()).or_insert_with(|| {
                    format!("‹meta.{name}: read from the object (HEAD) when routed›")
                });
            }
        }
        let url = format!(
            "‹pre-signed GET of s3://{}/{}{}, valid {} s; signed when routed›",
            obj.bucket,
            obj.key,
            obj.version_id
                .as_deref()
                .filter(|v| !v.is_empty() && *v != "null")
                .map(|v| format!(" (version {v})"))
                .unwrap_or_default(),
            self.presign_expiry().as_secs()
        );
        let captures = match self.capture_values(&obj.key) {
            Ok(values) => values,
            Err(e) => {
                return self
                    .questions
                    .iter()
                    .map(|(name, _)| (name.clone(), format!("‹error: {e}›")))
                    .collect();
            }
        };
        // A batch rule's values are rendered when its batch closes; shown here as if this
        // object alone closed it.
        let batch_preview = self.batch.as_ref().map(|b| crate::plugin::BatchInput {
            id: "‹batch id›".into(),
            group: b
                .key_of(self, obj)
                .unwrap_or_else(|e| format!("‹error: {e}›")),
            members: vec![obj.clone()],
        });
        let facts = Facts {
            object: obj,
            captures: &captures,
            metadata: Some(&shown),
            presigned_url: Some(&url),
            batch: batch_preview.as_ref(),
        };
        self.questions
            .iter()
            .map(|(name, template)| {
                let value = template
                    .render(&facts)
                    .unwrap_or_else(|e| format!("‹error: {}›", crate::error_chain(&e)));
                let value = if template.uses_batch() {
                    format!("‹when the batch closes; with this object alone: {value}›")
                } else {
                    value
                };
                (name.clone(), value)
            })
            .collect()
    }
}

/// A capture may not shadow a built-in variable: `{key}` must keep meaning the key.
pub(super) fn check_capture_names(names: &[String]) -> Result<(), String> {
    match names
        .iter()
        .find(|n| VARIABLES.contains(&n.as_str()) || n.as_str() == "meta")
    {
        Some(name) => Err(format!(
            "capture `<{name}>` has the name of a built-in variable; give it another name"
        )),
        None => Ok(()),
    }
}

/// Only `key` captures; elsewhere `<name>` would be taken for a capture that does nothing.
pub(super) fn no_capture(pattern: &str) -> Result<(), String> {
    match super::captures::first_capture(pattern) {
        Some(name) => Err(format!(
            "`<{name}>` looks like a capture, but only `key` captures; write `\\<` for a literal `<`"
        )),
        None => Ok(()),
    }
}

/// The expiry must be one SigV4 accepts, and only on a rule that uses `{presigned_url}`.
pub(super) fn check_presign_expiry(
    rule: &Rule,
    questions: &[(String, Template)],
) -> Result<(), String> {
    let Some(seconds) = rule.presign_expiry_seconds else {
        return Ok(());
    };
    if !(1..=MAX_PRESIGN_EXPIRY_SECONDS).contains(&seconds) {
        return Err(format!(
            "{seconds} is out of range: 1 – {MAX_PRESIGN_EXPIRY_SECONDS} seconds (7 days, S3's limit for a pre-signed URL)"
        ));
    }
    if !questions.iter().any(|(_, t)| t.uses_presigned_url()) {
        return Err("is set, but no question uses `{presigned_url}`".into());
    }
    Ok(())
}
