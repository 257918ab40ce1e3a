//! Event decoding: every input the router accepts becomes [`ObjectCreated`] facts.
//!
//! OWNER: rules helper. `ObjectCreated` is a contract used by other modules.

use serde::{Deserialize, Serialize};

/// The facts about one created S3 object that rules, templates and plugins see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectCreated {
    pub bucket: String,
    /// The object key as written by the uploader (already URL-decoded for classic
    /// S3 notifications).
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub sequencer: Option<String>,
    /// RFC 3339 time of the event, as AWS gave it.
    pub event_time: String,
    /// Why S3 created it: `PutObject`, `CompleteMultipartUpload`, `CopyObject`, ...
    pub reason: Option<String>,
    /// Which input shape it came from (`eventbridge`, `s3`, `sqs`, `sns`, `cli`).
    pub source: String,
}

impl ObjectCreated {
    /// The token that tells this version of the object apart from others with the same key:
    /// the version id, else the sequencer, else the etag, else the event time.
    pub fn version_token(&self) -> &str {
        self.version_id
            .as_deref()
            .filter(|v| !v.is_empty() && *v != "null")
            .or(self.sequencer.as_deref().filter(|s| !s.is_empty()))
            .or(self.etag.as_deref().filter(|e| !e.is_empty()))
            .unwrap_or(&self.event_time)
    }
}
