//! Where plugins come from: a directory, one file, or S3 (objects are read in [`super::objects`]).
//!
//! A plugin from S3 must match its rule's `sha256` pin unless the store was built without that
//! requirement (`PLUGIN_REQUIRE_PIN=false`, local development): a `.cwasm` is native code, and
//! the bucket is written by other hands than the function's.

use std::path::PathBuf;
use std::sync::Arc;

use super::PluginError;

/// A plugin file as fetched.
pub struct PluginBytes {
    pub bytes: Vec<u8>,
    /// A `.cwasm` (precompiled) file rather than a `.wasm` component.
    pub precompiled: bool,
    pub location: String,
    /// The rule must pin this file's sha256 for it to run (plugins from S3, by default).
    pub pin_required: bool,
}

#[async_trait::async_trait]
pub trait PluginStore: Send + Sync {
    async fn fetch(&self, name: &str) -> Result<PluginBytes, PluginError>;

    /// A cheap token that changes when the plugin's file changes (S3 ETag, file size and
    /// modification time), so a host that already loaded the plugin need not download and
    /// hash it again. `Ok(None)`: this store cannot tell, fetch to be sure.
    async fn version(&self, name: &str) -> Result<Option<String>, PluginError> {
        let _ = name;
        Ok(None)
    }

    fn describe(&self) -> String;
}

/// A local file's version token: which file, its length and modification time.
async fn file_version(path: &std::path::Path) -> std::io::Result<String> {
    let meta = tokio::fs::metadata(path).await?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{}:{}:{modified}", path.display(), meta.len()))
}

fn io_error(name: &str, path: &std::path::Path, e: std::io::Error) -> PluginError {
    PluginError::Io {
        plugin: name.to_string(),
        what: format!("reading {}", path.display()),
        source: Box::new(e),
    }
}

/// `<dir>/<name>.cwasm`, else `<dir>/<name>.wasm`.
pub struct DirPluginStore {
    dir: PathBuf,
}

impl DirPluginStore {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

#[async_trait::async_trait]
impl PluginStore for DirPluginStore {
    async fn fetch(&self, name: &str) -> Result<PluginBytes, PluginError> {
        for (ext, precompiled) in [("cwasm", true), ("wasm", false)] {
            let path = self.dir.join(format!("{name}.{ext}"));
            match tokio::fs::read(&path).await {
                Ok(bytes) => {
                    return Ok(PluginBytes {
                        bytes,
                        precompiled,
                        location: path.display().to_string(),
                        pin_required: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(name, &path, e)),
            }
        }
        Err(PluginError::NotFound {
            plugin: name.to_string(),
            location: self.describe(),
        })
    }

    async fn version(&self, name: &str) -> Result<Option<String>, PluginError> {
        for ext in ["cwasm", "wasm"] {
            let path = self.dir.join(format!("{name}.{ext}"));
            match file_version(&path).await {
                Ok(v) => return Ok(Some(v)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(name, &path, e)),
            }
        }
        Ok(None)
    }

    fn describe(&self) -> String {
        format!(
            "directory {} (looked for .cwasm then .wasm)",
            self.dir.display()
        )
    }
}

/// One plugin file, whatever name it is asked for (`plugin run path/to/plugin.wasm`): the file
/// given, never a sibling `.cwasm` that a directory store would prefer.
pub struct FilePluginStore {
    path: PathBuf,
}

impl FilePluginStore {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

#[async_trait::async_trait]
impl PluginStore for FilePluginStore {
    async fn fetch(&self, name: &str) -> Result<PluginBytes, PluginError> {
        let bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => PluginError::NotFound {
                    plugin: name.to_string(),
                    location: self.describe(),
                },
                _ => io_error(name, &self.path, e),
            })?;
        Ok(PluginBytes {
            precompiled: wasmtime::Engine::detect_precompiled(&bytes).is_some(),
            bytes,
            location: self.path.display().to_string(),
            pin_required: false,
        })
    }

    async fn version(&self, name: &str) -> Result<Option<String>, PluginError> {
        match file_version(&self.path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(name, &self.path, e)),
        }
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// `s3://bucket/prefix/<name>.cwasm`, else `.wasm`. Its plugins must be pinned by their
/// rule unless [`S3PluginStore::require_pin`] turned that off.
pub struct S3PluginStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    require_pin: bool,
}

impl S3PluginStore {
    pub fn new(client: aws_sdk_s3::Client, uri: &str) -> Result<Self, PluginError> {
        let rest = uri.strip_prefix("s3://").ok_or_else(|| PluginError::Load {
            plugin: "(store)".into(),
            message: format!("PLUGIN_S3_URI {uri:?} must look like s3://bucket/prefix/"),
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(PluginError::Load {
                plugin: "(store)".into(),
                message: format!("PLUGIN_S3_URI {uri:?} has no bucket"),
            });
        }
        let mut prefix = prefix.to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(Self {
            client,
            bucket: bucket.to_string(),
            prefix,
            require_pin: true,
        })
    }

    /// Whether a rule must pin (`sha256`) a plugin from this store for it to run (default
    /// true; `PLUGIN_REQUIRE_PIN=false` for local development).
    pub fn require_pin(mut self, required: bool) -> Self {
        self.require_pin = required;
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key `<name>.cwasm` is looked up under.
    pub fn cwasm_key(&self, name: &str) -> String {
        format!("{}{name}.cwasm", self.prefix)
    }
}

#[async_trait::async_trait]
impl PluginStore for S3PluginStore {
    async fn fetch(&self, name: &str) -> Result<PluginBytes, PluginError> {
        use aws_sdk_s3::operation::get_object::GetObjectError;
        for (ext, precompiled) in [("cwasm", true), ("wasm", false)] {
            let key = format!("{}{name}.{ext}", self.prefix);
            match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
            {
                Ok(out) => {
                    let bytes = out.body.collect().await.map_err(|e| PluginError::Io {
                        plugin: name.to_string(),
                        what: format!("reading s3://{}/{key}", self.bucket),
                        source: Box::new(e),
                    })?;
                    return Ok(PluginBytes {
                        bytes: bytes.into_bytes().to_vec(),
                        precompiled,
                        location: format!("s3://{}/{key}", self.bucket),
                        pin_required: self.require_pin,
                    });
                }
                Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                    continue;
                }
                Err(e) => {
                    return Err(PluginError::Io {
                        plugin: name.to_string(),
                        what: format!("fetching s3://{}/{key}", self.bucket),
                        source: aws_sdk_s3::error::DisplayErrorContext(e).to_string().into(),
                    });
                }
            }
        }
        Err(PluginError::NotFound {
            plugin: name.to_string(),
            location: self.describe(),
        })
    }

    /// `HeadObject`: the ETag of `<name>.cwasm`, else of `<name>.wasm`.
    async fn version(&self, name: &str) -> Result<Option<String>, PluginError> {
        for ext in ["cwasm", "wasm"] {
            let key = format!("{}{name}.{ext}", self.prefix);
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
            {
                Ok(out) => {
                    return Ok(out
                        .e_tag()
                        .map(|etag| format!("s3://{}/{key}:{etag}", self.bucket)));
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => continue,
                Err(e) => {
                    return Err(PluginError::Io {
                        plugin: name.to_string(),
                        what: format!("checking s3://{}/{key}", self.bucket),
                        source: aws_sdk_s3::error::DisplayErrorContext(e).to_string().into(),
                    });
                }
            }
        }
        Ok(None)
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// The first store that has the plugin.
pub struct ChainPluginStore(pub Vec<Arc<dyn PluginStore>>);

#[async_trait::async_trait]
impl PluginStore for ChainPluginStore {
    async fn fetch(&self, name: &str) -> Result<PluginBytes, PluginError> {
        for store in &self.0 {
            match store.fetch(name).await {
                Err(PluginError::NotFound { .. }) => continue,
                other => return other,
            }
        }
        Err(PluginError::NotFound {
            plugin: name.to_string(),
            location: self.describe(),
        })
    }

    async fn version(&self, name: &str) -> Result<Option<String>, PluginError> {
        for store in &self.0 {
            if let Some(v) = store.version(name).await? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    fn describe(&self) -> String {
        self.0
            .iter()
            .map(|s| s.describe())
            .collect::<Vec<_>>()
            .join(", then ")
    }
}
