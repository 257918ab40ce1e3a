//! A matched rule's question values, with what the event does not carry fetched only when a
//! template asks for it: the object's user metadata (`{meta.NAME}`, one HEAD per object
//! version however many rules read it) and a pre-signed GET URL (`{presigned_url}`, signed
//! locally with the function's credentials, no request). A rule whose templates use neither
//! costs no S3 call at all.
//!
//! Like a plugin's reads, the HEAD is pinned to the event's version (version id, else
//! `If-Match` on the ETag), so values never come from a later overwrite, and its answer is
//! classified by the same code: an object deleted or overwritten since the event is reported
//! as gone (the router records `SKIPPED`), access denied as an error no retry fixes, anything
//! else (timeout, 5xx, throttling) as retryable.
//! The stores behind it are in [`details`]: S3, and a local directory for `LOCAL_OBJECTS_DIR`.

pub mod details;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use details::{DirObjectDetails, S3ObjectDetails, decode_rfc2047};

use crate::event::ObjectCreated;
use crate::plugin::{ObjectVersion, ReadError};
use crate::rules::CompiledRule;
use crate::rules::questions::QuestionError;
use crate::template::Metadata;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where metadata and pre-signed URLs come from.
#[async_trait::async_trait]
pub trait ObjectDetails: Send + Sync {
    /// The user metadata of exactly `object` (lower-case names, without `x-amz-meta-`).
    async fn metadata(&self, object: &ObjectVersion) -> Result<Metadata, HeadError>;

    /// A URL that GETs `object` (its version, when it has a version id) for `expires_in`.
    async fn presign_get(
        &self,
        object: &ObjectVersion,
        expires_in: Duration,
    ) -> Result<String, PresignError>;
}

/// Why the object's metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// Deleted or overwritten since the event, or not readable by the function: told apart
    /// exactly as a plugin's reads tell them ([`crate::plugin::ReadError`]), so a gone object
    /// is `SKIPPED` with the same reason whichever of the two found out.
    #[error(transparent)]
    Object(#[from] ReadError),
    #[error("reading the metadata of {uri}")]
    Failed {
        uri: String,
        retryable: bool,
        #[source]
        source: BoxError,
    },
}

impl HeadError {
    pub fn is_gone(&self) -> bool {
        matches!(self, HeadError::Object(e) if e.is_gone())
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            HeadError::Object(e) => e.is_retryable(),
            HeadError::Failed { retryable, .. } => *retryable,
        }
    }
}

/// Why a URL could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("pre-signing a GET of {uri}")]
pub struct PresignError {
    pub uri: String,
    /// Credentials that could not be loaded may load on a later attempt.
    pub retryable: bool,
    #[source]
    pub source: BoxError,
}

/// Why a matched rule's question values could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderFailure {
    #[error(transparent)]
    Question(#[from] QuestionError),
    #[error("rule `{rule}`: {{meta.*}}")]
    Metadata {
        rule: String,
        #[source]
        source: HeadError,
    },
    #[error("rule `{rule}`: {{presigned_url}}")]
    Presign {
        rule: String,
        #[source]
        source: PresignError,
    },
    #[error(
        "rule `{rule}` uses {what}, but this router reads no objects (configure S3 access or LOCAL_OBJECTS_DIR)"
    )]
    NoObjectAccess { rule: String, what: &'static str },
}

impl RenderFailure {
    /// The object is gone (deleted or overwritten since the event): nothing to route, and why.
    pub fn skip_reason(&self) -> Option<String> {
        match self {
            RenderFailure::Metadata { source, .. } if source.is_gone() => Some(source.to_string()),
            _ => None,
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            RenderFailure::Metadata { source, .. } => source.is_retryable(),
            RenderFailure::Presign { source, .. } => source.retryable,
            RenderFailure::Question(_) | RenderFailure::NoObjectAccess { .. } => false,
        }
    }
}

/// The one object version whose metadata was read last.
type HeadKey = (String, String, String);

/// Renders matched rules' question values. Share it for the life of the process.
pub struct QuestionRenderer {
    details: Option<Arc<dyn ObjectDetails>>,
    /// The rules of one object are rendered one after another: keeping the last object's
    /// metadata makes it one HEAD per object version, however many rules read it.
    last_head: Mutex<Option<(HeadKey, Arc<Metadata>)>>,
}

impl Default for QuestionRenderer {
    fn default() -> Self {
        Self::new(None)
    }
}

impl QuestionRenderer {
    /// `None`: templates that need the object (metadata, URL) fail with a clear error.
    pub fn new(details: Option<Arc<dyn ObjectDetails>>) -> Self {
        Self {
            details,
            last_head: Mutex::new(None),
        }
    }

    /// The question values of `rule` (which matched) for `object`.
    pub async fn render(
        &self,
        rule: &CompiledRule,
        object: &ObjectCreated,
    ) -> Result<BTreeMap<String, String>, RenderFailure> {
        self.render_batch(rule, object, None).await
    }

    /// The question values of a batch rule's job (`object` closed `batch`), or of any rule.
    pub async fn render_batch(
        &self,
        rule: &CompiledRule,
        object: &ObjectCreated,
        batch: Option<&crate::plugin::BatchInput>,
    ) -> Result<BTreeMap<String, String>, RenderFailure> {
        let needs = rule.needs();
        if !needs.metadata && !needs.presigned_url {
            return Ok(rule.render_batch(object, None, None, batch)?);
        }
        // Captures first: a key that no longer fits an edited rule fails before any request.
        rule.capture_values(&object.key)?;
        let details = self
            .details
            .as_ref()
            .ok_or_else(|| RenderFailure::NoObjectAccess {
                rule: rule.rule.id.clone(),
                what: if needs.metadata {
                    "{meta.*}"
                } else {
                    "{presigned_url}"
                },
            })?;
        let version = ObjectVersion::of(object);
        let metadata = match needs.metadata {
            false => None,
            true => Some(
                self.metadata(details.as_ref(), object, &version)
                    .await
                    .map_err(|source| RenderFailure::Metadata {
                        rule: rule.rule.id.clone(),
                        source,
                    })?,
            ),
        };
        let url = match needs.presigned_url {
            false => None,
            true => Some(
                details
                    .presign_get(&version, rule.presign_expiry())
                    .await
                    .map_err(|source| RenderFailure::Presign {
                        rule: rule.rule.id.clone(),
                        source,
                    })?,
            ),
        };
        Ok(rule.render_batch(object, metadata.as_deref(), url.as_deref(), batch)?)
    }

    async fn metadata(
        &self,
        details: &dyn ObjectDetails,
        object: &ObjectCreated,
        version: &ObjectVersion,
    ) -> Result<Arc<Metadata>, HeadError> {
        let key = (
            object.bucket.clone(),
            object.key.clone(),
            object.version_token().to_string(),
        );
        if let Ok(last) = self.last_head.lock()
            && let Some((k, metadata)) = last.as_ref()
            && *k == key
        {
            return Ok(Arc::clone(metadata));
        }
        let metadata = Arc::new(details.metadata(version).await?);
        if let Ok(mut last) = self.last_head.lock() {
            *last = Some((key, Arc::clone(&metadata)));
        }
        Ok(metadata)
    }
}
