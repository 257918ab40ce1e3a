//! What a plugin reads: byte ranges of exactly the object version the event announced.
//!
//! Every read is pinned: by the S3 version id on versioned buckets, else by `If-Match` on the
//! event's ETag, so an object overwritten between the event and the read is never handed to a
//! plugin in its new form. What can go wrong is said precisely, because the router records
//! each case differently ([`ReadError`]): an object deleted or overwritten since the event
//! ends `SKIPPED`; access denied is an `ERROR` no retry fixes; anything else (a timeout, a
//! 5xx, throttling) is a retryable `ERROR`.
//!
//! Readers: S3 ranged `GetObject` (the Lambda), a directory laid out as `<bucket>/<key>`
//! (`LOCAL_OBJECTS_DIR`), and one local file (`plugin run`, `rules test --object`).

use std::path::PathBuf;
use std::time::Duration;

use crate::event::ObjectCreated;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The one version of one object that a plugin call may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub bucket: String,
    pub key: String,
    /// The size the event gave; reads are checked against it.
    pub size: u64,
    /// The S3 version id (`null`, S3's name for the unversioned copy, is no pin: a new upload
    /// replaces it under the same id).
    pub version_id: Option<String>,
    pub etag: Option<String>,
}

impl ObjectVersion {
    pub fn of(object: &ObjectCreated) -> Self {
        Self {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            size: object.size,
            version_id: object
                .version_id
                .clone()
                .filter(|v| !v.is_empty() && v != "null"),
            etag: object.etag.clone().filter(|e| !e.is_empty()),
        }
    }

    fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// Bytes read, and the object's content type when the store said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeRead {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
}

/// Why a read of the event's object failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{uri} was deleted before routing")]
    Deleted { uri: String },
    #[error("{uri} was overwritten since the event ({detail})")]
    Overwritten { uri: String, detail: String },
    #[error(
        "access denied reading {uri} (bucket `{bucket}`, key `{key}`): the function may not read it"
    )]
    AccessDenied {
        uri: String,
        bucket: String,
        key: String,
        #[source]
        source: BoxError,
    },
    #[error("reading {uri}, bytes {offset}..{end}")]
    Io {
        uri: String,
        offset: u64,
        end: u64,
        #[source]
        source: BoxError,
    },
}

impl ReadError {
    /// Only a transient failure (timeout, 5xx, throttling, a dropped connection) may get
    /// better on a retry.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ReadError::Io { .. })
    }

    /// The object the event announced is no longer there to read: nothing to route.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            ReadError::Deleted { .. } | ReadError::Overwritten { .. }
        )
    }
}

/// Reads byte ranges of an object version.
#[async_trait::async_trait]
pub trait ObjectReader: Send + Sync {
    /// Bytes `offset .. offset + length` of exactly `object`. Callers never ask for an empty
    /// range or one that starts at or past `object.size`; a reader may return fewer bytes only
    /// where the object really ends (the caller then knows it is not the event's object).
    async fn read_range(
        &self,
        object: &ObjectVersion,
        offset: u64,
        length: u64,
    ) -> Result<RangeRead, ReadError>;
}

/// The first `max_bytes` of the object: an empty object, or `max_bytes` 0, is zero bytes
/// without a request (S3 answers a ranged GET on an empty object with 416).
pub async fn read_head(
    reader: &dyn ObjectReader,
    object: &ObjectVersion,
    max_bytes: u64,
) -> Result<RangeRead, ReadError> {
    let length = max_bytes.min(object.size);
    if length == 0 {
        return Ok(RangeRead::default());
    }
    let read = reader.read_range(object, 0, length).await?;
    check_length(object, 0, length, read)
}

/// A read shorter than asked means the object is shorter than the event said.
pub(crate) fn check_length(
    object: &ObjectVersion,
    offset: u64,
    length: u64,
    read: RangeRead,
) -> Result<RangeRead, ReadError> {
    if (read.bytes.len() as u64) < length {
        return Err(ReadError::Overwritten {
            uri: object.uri(),
            detail: format!(
                "asked for {length} bytes at offset {offset} of the event's {} bytes, got {}",
                object.size,
                read.bytes.len()
            ),
        });
    }
    Ok(read)
}

/// How long one ranged GET may take before it counts as a (retryable) failure.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// S3 `GetObject` with `Range`, pinned by `versionId` or `If-Match`.
pub struct S3ObjectReader {
    client: aws_sdk_s3::Client,
}

impl S3ObjectReader {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl ObjectReader for S3ObjectReader {
    async fn read_range(
        &self,
        object: &ObjectVersion,
        offset: u64,
        length: u64,
    ) -> Result<RangeRead, ReadError> {
        use aws_sdk_s3::error::ProvideErrorMetadata;
        let end = offset + length;
        let io = |source: BoxError| ReadError::Io {
            uri: object.uri(),
            offset,
            end,
            source,
        };
        let mut request = self
            .client
            .get_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .range(format!("bytes={offset}-{}", end - 1));
        if let Some(version) = &object.version_id {
            request = request.version_id(version);
        } else if let Some(etag) = &object.etag {
            request = request.if_match(quoted(etag));
        }
        let fetch = async {
            let out = request.send().await?;
            let content_range = out.content_range.clone();
            let content_type = out.content_type.clone();
            let body = out.body.collect().await.map_err(|e| io(Box::new(e)))?;
            Ok::<_, ReadOrSdk>((content_range, content_type, body.into_bytes()))
        };
        let (content_range, content_type, bytes) =
            match tokio::time::timeout(READ_TIMEOUT, fetch).await {
                Err(_) => {
                    return Err(io(
                        format!("no answer within {} s", READ_TIMEOUT.as_secs()).into()
                    ));
                }
                Ok(Ok(read)) => read,
                Ok(Err(ReadOrSdk::Read(e))) => return Err(e),
                Ok(Err(ReadOrSdk::Sdk(e))) => {
                    let status = e.raw_response().map(|r| r.status().as_u16());
                    let detail = || aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                    return Err(pinned_failure(object, status, e.code(), detail)
                        .unwrap_or_else(|| io(detail().into())));
                }
            };
        // Without a pin (no version id, no ETag) the total size is the only check left.
        if let Some(total) = content_range
            .as_deref()
            .and_then(|r| r.rsplit_once('/'))
            .and_then(|(_, total)| total.parse::<u64>().ok())
            && total != object.size
        {
            return Err(ReadError::Overwritten {
                uri: object.uri(),
                detail: format!("it is {total} bytes, the event said {}", object.size),
            });
        }
        let mut bytes = bytes.to_vec();
        bytes.truncate(length as usize);
        Ok(RangeRead {
            bytes,
            content_type,
        })
    }
}

enum ReadOrSdk {
    Read(ReadError),
    Sdk(
        Box<
            aws_sdk_s3::error::SdkError<
                aws_sdk_s3::operation::get_object::GetObjectError,
                aws_smithy_runtime_api::http::Response,
            >,
        >,
    ),
}

impl
    From<
        aws_sdk_s3::error::SdkError<
            aws_sdk_s3::operation::get_object::GetObjectError,
            aws_smithy_runtime_api::http::Response,
        >,
    > for ReadOrSdk
{
    fn from(
        e: aws_sdk_s3::error::SdkError<
            aws_sdk_s3::operation::get_object::GetObjectError,
            aws_smithy_runtime_api::http::Response,
        >,
    ) -> Self {
        ReadOrSdk::Sdk(Box::new(e))
    }
}

impl From<ReadError> for ReadOrSdk {
    fn from(e: ReadError) -> Self {
        ReadOrSdk::Read(e)
    }
}

/// What S3's answer to a request pinned to the event's version (version id, else `If-Match`)
/// says about the object, when it says it is gone or may not be read; `None` for any other
/// failure, which the caller reports as its own. Shared by a plugin's ranged reads and the
/// templates' metadata HEAD (`crate::render`), so both tell a gone object the same way.
pub(crate) fn pinned_failure(
    object: &ObjectVersion,
    status: Option<u16>,
    code: Option<&str>,
    detail: impl FnOnce() -> String,
) -> Option<ReadError> {
    Some(match (status, code) {
        (_, Some("NoSuchKey" | "NoSuchVersion")) | (Some(404), _) => {
            ReadError::Deleted { uri: object.uri() }
        }
        (_, Some("PreconditionFailed")) | (Some(412), _) => ReadError::Overwritten {
            uri: object.uri(),
            detail: format!(
                "its ETag is no longer {}",
                object.etag.as_deref().unwrap_or("the event's")
            ),
        },
        (_, Some("InvalidRange")) | (Some(416), _) => ReadError::Overwritten {
            uri: object.uri(),
            detail: format!("it no longer has the event's {} bytes", object.size),
        },
        // A HEAD's answer has no body, hence no code: its 403 is the same refusal.
        (_, Some("AccessDenied")) | (Some(403), None) => ReadError::AccessDenied {
            uri: object.uri(),
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            source: detail().into(),
        },
        _ => return None,
    })
}

/// S3 compares `If-Match` with the quoted ETag; events carry it bare.
pub(crate) fn quoted(etag: &str) -> String {
    if etag.starts_with('"') {
        etag.to_string()
    } else {
        format!("\"{etag}\"")
    }
}

/// `<root>/<bucket>/<key>` on the local disk (`LOCAL_OBJECTS_DIR`: demo, tests). Local files
/// have no versions: a file shorter than the event said is reported as overwritten, nothing
/// more is checked.
pub struct DirObjectReader {
    root: PathBuf,
}

impl DirObjectReader {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }
}

#[async_trait::async_trait]
impl ObjectReader for DirObjectReader {
    async fn read_range(
        &self,
        object: &ObjectVersion,
        offset: u64,
        length: u64,
    ) -> Result<RangeRead, ReadError> {
        if object.key.split('/').any(|s| s == "..") || object.bucket.contains('/') {
            return Err(ReadError::AccessDenied {
                uri: object.uri(),
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                source: "refusing a path outside the objects directory".into(),
            });
        }
        let path = self.root.join(&object.bucket).join(&object.key);
        read_file_range(&path, object, offset, length).await
    }
}

/// One local file, whatever object it is asked for (`plugin run`, `rules test --object`).
pub struct FileObjectReader {
    path: PathBuf,
}

impl FileObjectReader {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

#[async_trait::async_trait]
impl ObjectReader for FileObjectReader {
    async fn read_range(
        &self,
        object: &ObjectVersion,
        offset: u64,
        length: u64,
    ) -> Result<RangeRead, ReadError> {
        read_file_range(&self.path, object, offset, length).await
    }
}

async fn read_file_range(
    path: &std::path::Path,
    object: &ObjectVersion,
    offset: u64,
    length: u64,
) -> Result<RangeRead, ReadError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let io = |e: std::io::Error| ReadError::Io {
        uri: path.display().to_string(),
        offset,
        end: offset + length,
        source: Box::new(e),
    };
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ReadError::Deleted {
                uri: format!("{} ({})", object.uri(), path.display()),
            });
        }
        Err(e) => return Err(io(e)),
    };
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(io)?;
    let mut bytes = Vec::with_capacity(length.min(1 << 20) as usize);
    file.take(length)
        .read_to_end(&mut bytes)
        .await
        .map_err(io)?;
    Ok(RangeRead {
        bytes,
        content_type: None,
    })
}
