//! The stores behind [`super::ObjectDetails`]: S3 (`HeadObject` pinned to the event's version,
//! pre-signed `GetObject` URLs), and a local directory (`LOCAL_OBJECTS_DIR`, laid out as
//! `<root>/<bucket>/<key>`), where files have no user metadata and the URL is a `file://` one.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;

use super::{HeadError, ObjectDetails, PresignError};
use crate::plugin::objects::{pinned_failure, quoted};
use crate::plugin::{ObjectVersion, READ_TIMEOUT, ReadError};
use crate::template::Metadata;

fn uri(object: &ObjectVersion) -> String {
    format!("s3://{}/{}", object.bucket, object.key)
}

/// S3 through the function's (or the CLI's) AWS configuration; `AWS_ENDPOINT_URL` applies to
/// the HEAD and to the host of the URLs it signs.
pub struct S3ObjectDetails {
    client: aws_sdk_s3::Client,
}

impl S3ObjectDetails {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl ObjectDetails for S3ObjectDetails {
    async fn metadata(&self, object: &ObjectVersion) -> Result<Metadata, HeadError> {
        let mut request = self
            .client
            .head_object()
            .bucket(&object.bucket)
            .key(&object.key);
        if let Some(version) = &object.version_id {
            request = request.version_id(version);
        } else if let Some(etag) = &object.etag {
            request = request.if_match(quoted(etag));
        }
        let out = match tokio::time::timeout(READ_TIMEOUT, request.send()).await {
            Err(_) => {
                return Err(HeadError::Failed {
                    uri: uri(object),
                    retryable: true,
                    source: format!("no answer within {} s", READ_TIMEOUT.as_secs()).into(),
                });
            }
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                // A HEAD answer has no body: the status is all there is.
                let status = e.raw_response().map(|r| r.status().as_u16());
                let detail = || aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                if let Some(gone_or_denied) = pinned_failure(object, status, None, detail) {
                    return Err(gone_or_denied.into());
                }
                return Err(HeadError::Failed {
                    uri: uri(object),
                    retryable: status != Some(400),
                    source: detail().into(),
                });
            }
        };
        // Without a pin (no version id, no ETag) the size is the only check left.
        if object.version_id.is_none()
            && object.etag.is_none()
            && let Some(length) = out.content_length()
            && u64::try_from(length).ok() != Some(object.size)
        {
            return Err(ReadError::Overwritten {
                uri: uri(object),
                detail: format!("it is {length} bytes, the event said {}", object.size),
            }
            .into());
        }
        Ok(out
            .metadata()
            .map(|m| {
                m.iter()
                    .map(|(name, value)| (name.to_ascii_lowercase(), decode_rfc2047(value)))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn presign_get(
        &self,
        object: &ObjectVersion,
        expires_in: Duration,
    ) -> Result<String, PresignError> {
        use aws_sdk_s3::presigning::PresigningConfig;
        let failed = |retryable: bool, source: BoxError| PresignError {
            uri: uri(object),
            retryable,
            source,
        };
        let config =
            PresigningConfig::expires_in(expires_in).map_err(|e| failed(false, e.into()))?;
        let mut request = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key);
        if let Some(version) = &object.version_id {
            request = request.version_id(version);
        }
        // Signing needs credentials only (no request); loading them can fail transiently.
        let signed = request.presigned(config).await.map_err(|e| {
            failed(
                true,
                aws_sdk_s3::error::DisplayErrorContext(e).to_string().into(),
            )
        })?;
        Ok(signed.uri().to_string())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `<root>/<bucket>/<key>` on the local disk (`LOCAL_OBJECTS_DIR`: demo, tests). Local files
/// carry no user metadata; their "pre-signed" URL is the file's `file://` URL.
pub struct DirObjectDetails {
    root: PathBuf,
}

impl DirObjectDetails {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, object: &ObjectVersion) -> Result<PathBuf, String> {
        if object.key.split('/').any(|s| s == "..") || object.bucket.contains('/') {
            return Err("refusing a path outside the objects directory".into());
        }
        Ok(self.root.join(&object.bucket).join(&object.key))
    }
}

#[async_trait::async_trait]
impl ObjectDetails for DirObjectDetails {
    async fn metadata(&self, object: &ObjectVersion) -> Result<Metadata, HeadError> {
        let path = self.path(object).map_err(|e| ReadError::AccessDenied {
            uri: uri(object),
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            source: e.into(),
        })?;
        match tokio::fs::metadata(&path).await {
            Ok(_) => Ok(Metadata::new()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ReadError::Deleted {
                uri: format!("{} ({})", uri(object), path.display()),
            }
            .into()),
            Err(e) => Err(HeadError::Failed {
                uri: uri(object),
                retryable: true,
                source: Box::new(e),
            }),
        }
    }

    async fn presign_get(
        &self,
        object: &ObjectVersion,
        _expires_in: Duration,
    ) -> Result<String, PresignError> {
        let failed = |source: BoxError| PresignError {
            uri: uri(object),
            retryable: false,
            source,
        };
        let path = self.path(object).map_err(|e| failed(e.into()))?;
        let absolute = std::path::absolute(&path).map_err(|e| failed(Box::new(e)))?;
        url::Url::from_file_path(&absolute)
            .map(|u| u.to_string())
            .map_err(|()| failed(format!("{} is not a file path", absolute.display()).into()))
    }
}

/// S3 returns metadata values with non-ASCII characters as RFC 2047 encoded words
/// (`=?UTF-8?B?5p2x5Lqs?=`); a template wants the text. Words in another charset, or that do
/// not decode, are kept as they are.
pub fn decode_rfc2047(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, candidate) = rest.split_at(start);
        match decode_word(candidate) {
            Some((text, used)) => {
                // Whitespace between two encoded words is not part of the text (RFC 2047 §6.2).
                if !(last_was_word && before.trim().is_empty()) {
                    out.push_str(before);
                }
                out.push_str(&text);
                rest = &candidate[used..];
                last_was_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &candidate[2..];
                last_was_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One `=?charset?B|Q?text?=` word at the start of `s`: its text and its length.
fn decode_word(s: &str) -> Option<(String, usize)> {
    let body = s.strip_prefix("=?")?;
    let (charset, body) = body.split_once('?')?;
    let (encoding, body) = body.split_once('?')?;
    let end = body.find("?=")?;
    let text = &body[..end];
    if !charset.eq_ignore_ascii_case("utf-8") || text.contains(' ') {
        return None;
    }
    let bytes = match encoding {
        "B" | "b" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?,
        "Q" | "q" => {
            let mut bytes = Vec::with_capacity(text.len());
            let mut iter = text.bytes();
            while let Some(b) = iter.next() {
                match b {
                    b'_' => bytes.push(b' '),
                    b'=' => {
                        let hex = [iter.next()?, iter.next()?];
                        bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
                    }
                    b => bytes.push(b),
                }
            }
            bytes
        }
        _ => return None,
    };
    let used = 2 + charset.len() + 1 + encoding.len() + 1 + end + 2;
    Some((String::from_utf8(bytes).ok()?, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_decode_and_everything_else_is_kept() {
        assert_eq!(decode_rfc2047("plain value"), "plain value");
        assert_eq!(decode_rfc2047("=?UTF-8?B?5p2x5Lqs?="), "東京");
        assert_eq!(
            decode_rfc2047("=?utf-8?Q?caf=C3=A9_au_lait?="),
            "café au lait"
        );
        assert_eq!(
            decode_rfc2047("=?UTF-8?B?5p2x?= =?UTF-8?B?5Lqs?= office"),
            "東京 office"
        );
        assert_eq!(decode_rfc2047("a =?UTF-8?B?5p2x5Lqs?= b"), "a 東京 b");
        for kept in [
            "=?ISO-8859-1?Q?a?=",
            "=?UTF-8?B?***?=",
            "x=?y",
            "=?UTF-8?X?a?=",
        ] {
            assert_eq!(decode_rfc2047(kept), kept);
        }
    }

    #[tokio::test]
    async fn local_objects_have_no_metadata_and_a_file_url() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/in")).unwrap();
        std::fs::write(dir.path().join("b/in/x y.csv"), "a,b\n").unwrap();
        let details = DirObjectDetails::new(dir.path().to_path_buf());
        let object = ObjectVersion {
            bucket: "b".into(),
            key: "in/x y.csv".into(),
            size: 4,
            version_id: None,
            etag: None,
        };
        assert!(details.metadata(&object).await.unwrap().is_empty());
        let url = details
            .presign_get(&object, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(
            url.starts_with("file:///") && url.ends_with("/b/in/x%20y.csv"),
            "{url}"
        );
        let gone = ObjectVersion {
            key: "in/none.csv".into(),
            ..object.clone()
        };
        assert!(details.metadata(&gone).await.unwrap_err().is_gone());
        let outside = ObjectVersion {
            key: "../x".into(),
            ..object
        };
        assert!(matches!(
            details.metadata(&outside).await.unwrap_err(),
            HeadError::Object(ReadError::AccessDenied { .. })
        ));
    }
}
