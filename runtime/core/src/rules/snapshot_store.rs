//! Where the rules snapshot lives: one S3 object (`RULES_SNAPSHOT_URI=s3://bucket/key`).
//!
//! S3 replaces an object atomically, so a reader sees the old snapshot or the new one, never
//! half of either; a conditional GET (`If-None-Match` with the ETag the reader holds) makes the
//! router's periodic check a `304` with no body while nothing changed. Writers use conditional
//! PUTs (`If-Match` on the ETag they started from, `If-None-Match: *` for the first one), so
//! two writers racing (the stream function and `rules put`) cannot let an older scan
//! overwrite a newer one: the loser starts over ([`super::publish`]).

use aws_sdk_s3::primitives::ByteStream;

use super::RuleError;

/// An `s3://bucket/key` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotLocation {
    pub bucket: String,
    pub key: String,
}

impl SnapshotLocation {
    /// Parse `s3://bucket/key`; the message says what is wrong.
    pub fn parse(uri: &str) -> Result<Self, String> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| "expected s3://BUCKET/KEY".to_string())?;
        match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() && !key.ends_with('/') => {
                Ok(Self {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                })
            }
            _ => Err("expected s3://BUCKET/KEY with an object key (not a folder)".to_string()),
        }
    }
}

impl std::fmt::Display for SnapshotLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// What a read found.
#[derive(Debug)]
pub enum Fetched {
    /// The snapshot is still the one with the ETag the reader gave.
    NotModified,
    /// There is no snapshot yet.
    Missing,
    Found {
        bytes: Vec<u8>,
        etag: String,
    },
}

/// What a conditional write did.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Stored {
        etag: String,
    },
    /// Someone else wrote (or deleted) the snapshot since the writer read it.
    Conflict,
}

/// The condition of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// There must be no snapshot yet.
    Absent,
    /// The snapshot must still have this ETag.
    Etag(String),
}

/// The snapshot object and the client that reads and writes it.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    client: aws_sdk_s3::Client,
    location: SnapshotLocation,
}

impl SnapshotStore {
    pub fn new(client: aws_sdk_s3::Client, location: SnapshotLocation) -> Self {
        Self { client, location }
    }

    pub fn location(&self) -> &SnapshotLocation {
        &self.location
    }

    fn error(
        &self,
        action: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> RuleError {
        RuleError::Snapshot {
            location: self.location.to_string(),
            action,
            source: Box::new(source),
        }
    }

    /// Read the snapshot, or only learn that it is unchanged since `etag`.
    pub async fn fetch(&self, if_none_match: Option<&str>) -> Result<Fetched, RuleError> {
        self.get(if_none_match, None).await
    }

    /// Read at most the first `bytes` bytes (the header, for writers).
    pub async fn fetch_head(&self, bytes: usize) -> Result<Fetched, RuleError> {
        self.get(None, Some(bytes)).await
    }

    async fn get(
        &self,
        if_none_match: Option<&str>,
        first_bytes: Option<usize>,
    ) -> Result<Fetched, RuleError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.location.bucket)
            .key(&self.location.key)
            .set_if_none_match(if_none_match.map(str::to_string))
            .set_range(first_bytes.map(|n| format!("bytes=0-{}", n.saturating_sub(1))))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if status == Some(304) {
                    return Ok(Fetched::NotModified);
                }
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) || status == Some(404) {
                    return Ok(Fetched::Missing);
                }
                return Err(self.error("GetObject", e));
            }
        };
        let etag = out.e_tag.clone().unwrap_or_default();
        // Into one buffer sized from the response: collecting into chunks and then joining
        // them would hold the snapshot twice at the peak.
        let mut bytes = Vec::with_capacity(out.content_length.unwrap_or(0).max(0) as usize);
        let mut body = out.body;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| self.error("GetObject (body)", e))?
        {
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::Found { bytes, etag })
    }

    /// Write `bytes` if the snapshot is still as `expect` says.
    pub async fn put(&self, bytes: Vec<u8>, expect: &Expect) -> Result<Written, RuleError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.location.bucket)
            .key(&self.location.key)
            .content_type("application/vnd.alteryx-router.rules-snapshot")
            .body(ByteStream::from(bytes));
        request = match expect {
            Expect::Absent => request.if_none_match("*"),
            Expect::Etag(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(out) => Ok(Written::Stored {
                etag: out.e_tag.unwrap_or_default(),
            }),
            Err(e) => {
                // 412: the condition failed; 409: a concurrent conditional write won; 404:
                // the object we expected is gone.
                let status = e.raw_response().map(|r| r.status().as_u16());
                if matches!(status, Some(412 | 409 | 404)) {
                    Ok(Written::Conflict)
                } else {
                    Err(self.error("PutObject", e))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_or_say_why_not() {
        assert_eq!(
            SnapshotLocation::parse("s3://b/rules/snapshot.bin").unwrap(),
            SnapshotLocation {
                bucket: "b".into(),
                key: "rules/snapshot.bin".into()
            }
        );
        for bad in ["b/k", "s3://b", "s3://b/", "s3:///k", "s3://b/dir/"] {
            assert!(SnapshotLocation::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            SnapshotLocation::parse("s3://b/k").unwrap().to_string(),
            "s3://b/k"
        );
    }
}
