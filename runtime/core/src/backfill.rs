//! Backfill: objects already in S3, routed as if their "Object Created" event had just come.
//!
//! The listing ([`S3Objects`]) turns each current object into the same [`ObjectCreated`] facts
//! an event gives — size, ETag (without S3's quotes), version id, and `LastModified` as the
//! event time — so [`crate::executions::execution_id_of`] gives it the id its event would have
//! had ([`ObjectCreated::version_token`]: version id, else ETag). Each object then goes through
//! the router's own path ([`Router::route_rules`]: rules, claims, plugins, templates, intent,
//! submit, reconciliation); there is no second pipeline. An object its event already routed is
//! a duplicate, a second backfill submits nothing new, and a backfill that was stopped or
//! killed is finished by running it again.
//!
//! Versioned buckets are listed with `ListObjectVersions` (only each key's latest version,
//! delete markers left out) because their events carry version ids; unversioned ones with
//! `ListObjectsV2`. `GetBucketVersioning` decides which.

use futures::{Stream, StreamExt};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::event::{ObjectCreated, normalize_etag};
use crate::executions::ExecutionStatus;
use crate::router::{Planned, Router, RouterError, RuleOutcome};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `s3://BUCKET/PREFIX` (the prefix may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Prefix {
    pub bucket: String,
    pub prefix: String,
}

impl std::str::FromStr for S3Prefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let rest = s.strip_prefix("s3://").ok_or_else(|| {
            format!("`{s}` is not an S3 location; expected s3://BUCKET or s3://BUCKET/PREFIX")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!(
                "`{s}` names no bucket; expected s3://BUCKET/PREFIX"
            ));
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl std::fmt::Display for S3Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("{action} s3://{bucket}")]
    S3 {
        action: &'static str,
        bucket: String,
        #[source]
        source: BoxError,
    },
    #[error("object s3://{bucket}/{key}: {detail}")]
    Object {
        bucket: String,
        key: String,
        detail: String,
    },
}

/// Lists and reads the facts of objects in S3.
#[derive(Clone)]
pub struct S3Objects {
    s3: aws_sdk_s3::Client,
}

/// What [`S3Objects::current`] found under an execution's key.
#[derive(Debug)]
pub enum Current {
    /// The object (or version) is there: its facts now.
    Found(ObjectCreated),
    /// No such key, or no such version.
    Gone,
}

impl S3Objects {
    pub fn new(s3: aws_sdk_s3::Client) -> Self {
        Self { s3 }
    }

    /// Whether the bucket keeps versions (versioning enabled or suspended).
    pub async fn versioned(&self, bucket: &str) -> Result<bool, BackfillError> {
        let out = self
            .s3
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| s3_error("GetBucketVersioning on", bucket, e))?;
        Ok(out.status.is_some())
    }

    /// Every current object under `location`, page by page (`ListObjectVersions` on a
    /// versioned bucket, `ListObjectsV2` otherwise), as the facts its event would carry.
    /// Folder placeholders (keys ending in `/`) are left out, as events of them are ignored.
    pub fn list(
        &self,
        location: &S3Prefix,
        versioned: bool,
    ) -> impl Stream<Item = Result<Vec<ObjectCreated>, BackfillError>> + Send + 'static {
        let s3 = self.s3.clone();
        let location = location.clone();
        futures::stream::try_unfold(Some(Page::First), move |page| {
            let s3 = s3.clone();
            let location = location.clone();
            async move {
                let Some(page) = page else {
                    return Ok(None);
                };
                let (objects, next) = if versioned {
                    list_versions(&s3, &location, page).await?
                } else {
                    list_current(&s3, &location, page).await?
                };
                Ok(Some((objects, next)))
            }
        })
    }

    /// The object's facts now: `version_id` pins a version on a versioned bucket; otherwise
    /// the key's current object.
    pub async fn current(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Current, BackfillError> {
        use aws_sdk_s3::error::ProvideErrorMetadata;
        let version_id = version_id.filter(|v| !v.is_empty() && *v != "null");
        let out = match self
            .s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if status == Some(404)
                    || matches!(e.code(), Some("NoSuchKey" | "NoSuchVersion" | "NotFound"))
                {
                    return Ok(Current::Gone);
                }
                // A HEAD of a delete marker's version answers 405.
                if status == Some(405) {
                    return Ok(Current::Gone);
                }
                return Err(BackfillError::Object {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    detail: format!(
                        "HeadObject failed: {}",
                        aws_sdk_s3::error::DisplayErrorContext(e)
                    ),
                });
            }
        };
        if out.delete_marker == Some(true) {
            return Ok(Current::Gone);
        }
        Ok(Current::Found(ObjectCreated {
            bucket: bucket.to_string(),
            key: key.to_string(),
            size: out.content_length.unwrap_or_default().max(0) as u64,
            etag: out.e_tag.as_deref().and_then(normalize_etag),
            version_id: out.version_id.filter(|v| v != "null"),
            sequencer: None,
            event_time: out
                .last_modified
                .map(|t| rfc3339(t.secs()))
                .unwrap_or_default(),
            reason: None,
            source: "rerun".into(),
        }))
    }
}

enum Page {
    First,
    Token(String),
    Markers { key: String, version: String },
}

fn s3_error<E>(
    action: &'static str,
    bucket: &str,
    e: aws_sdk_s3::error::SdkError<E>,
) -> BackfillError
where
    E: std::error::Error + Send + Sync + 'static,
{
    BackfillError::S3 {
        action,
        bucket: bucket.to_string(),
        source: aws_sdk_s3::error::DisplayErrorContext(e).to_string().into(),
    }
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The facts of one listed object, as its event would give them.
fn listed(
    location: &S3Prefix,
    key: String,
    size: Option<i64>,
    etag: Option<&str>,
    version_id: Option<String>,
    modified: Option<&aws_sdk_s3::primitives::DateTime>,
) -> Option<ObjectCreated> {
    if key.ends_with('/') {
        return None;
    }
    Some(ObjectCreated {
        bucket: location.bucket.clone(),
        key,
        size: size.unwrap_or_default().max(0) as u64,
        etag: etag.and_then(normalize_etag),
        version_id: version_id.filter(|v| !v.is_empty() && v != "null"),
        sequencer: None,
        event_time: modified.map(|t| rfc3339(t.secs())).unwrap_or_default(),
        reason: Some("Backfill".into()),
        source: "backfill".into(),
    })
}

type Listed = (Vec<ObjectCreated>, Option<Page>);

async fn list_current(
    s3: &aws_sdk_s3::Client,
    location: &S3Prefix,
    page: Page,
) -> Result<Listed, BackfillError> {
    let mut request = s3
        .list_objects_v2()
        .bucket(&location.bucket)
        .prefix(&location.prefix);
    if let Page::Token(token) = page {
        request = request.continuation_token(token);
    }
    let out = request
        .send()
        .await
        .map_err(|e| s3_error("ListObjectsV2 on", &location.bucket, e))?;
    let objects = out
        .contents
        .unwrap_or_default()
        .into_iter()
        .filter_map(|o| {
            listed(
                location,
                o.key?,
                o.size,
                o.e_tag.as_deref(),
                None,
                o.last_modified.as_ref(),
            )
        })
        .collect();
    let next = match (out.is_truncated, out.next_continuation_token) {
        (Some(true), Some(token)) => Some(Page::Token(token)),
        _ => None,
    };
    Ok((objects, next))
}

async fn list_versions(
    s3: &aws_sdk_s3::Client,
    location: &S3Prefix,
    page: Page,
) -> Result<Listed, BackfillError> {
    let mut request = s3
        .list_object_versions()
        .bucket(&location.bucket)
        .prefix(&location.prefix);
    if let Page::Markers { key, version } = page {
        request = request.key_marker(key).version_id_marker(version);
    }
    let out = request
        .send()
        .await
        .map_err(|e| s3_error("ListObjectVersions on", &location.bucket, e))?;
    // A key whose latest version is a delete marker has no current object: its older
    // versions are not latest, so they are left out too.
    let objects = out
        .versions
        .unwrap_or_default()
        .into_iter()
        .filter(|v| v.is_latest == Some(true))
        .filter_map(|v| {
            listed(
                location,
                v.key?,
                v.size,
                v.e_tag.as_deref(),
                v.version_id,
                v.last_modified.as_ref(),
            )
        })
        .collect();
    let next = match (
        out.is_truncated,
        out.next_key_marker,
        out.next_version_id_marker,
    ) {
        (Some(true), Some(key), version) => Some(Page::Markers {
            key,
            version: version.unwrap_or_default(),
        }),
        _ => None,
    };
    Ok((objects, next))
}

/// What to backfill.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// Only this rule (the others are not even matched).
    pub rule: Option<String>,
    /// Only objects last modified at or after this Unix time.
    pub since: Option<i64>,
    /// Only objects last modified before this Unix time.
    pub until: Option<i64>,
    /// At most this many objects (after the time filters) are routed.
    pub max: Option<usize>,
    /// Objects routed at once.
    pub concurrency: usize,
    /// Say what would run; claim, write and submit nothing.
    pub dry_run: bool,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        Self {
            rule: None,
            since: None,
            until: None,
            max: None,
            concurrency: 4,
            dry_run: false,
        }
    }
}

/// Counts so far (also the progress a caller shows).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BackfillCounts {
    /// Objects listed under the prefix (before the time filters).
    pub listed: usize,
    /// Objects routed (within the time filters and `max`).
    pub routed: usize,
    /// Rule executions matched.
    pub matched: usize,
    pub submitted: usize,
    /// Executions that had run already (from their event or an earlier backfill).
    pub duplicates: usize,
    /// Executions another invocation is working on: run the backfill again later.
    pub in_progress: usize,
    pub skipped: usize,
    /// Failed executions (recorded as `ERROR`) and objects that could not be routed.
    pub errors: usize,
    /// Job requests whose outcome is not recorded yet (reconciled by the next attempt).
    pub unknown: usize,
    pub uncertain: usize,
    /// Dry run: executions that would run.
    pub would_run: usize,
}

impl BackfillCounts {
    /// Whether running the same backfill again may still do something (it is not finished).
    pub fn unfinished(&self) -> bool {
        self.in_progress + self.errors + self.unknown > 0
    }
}

/// One rule for one object: what happened (or, in a dry run, would happen).
#[derive(Debug, Clone, Serialize)]
pub struct BackfillItem {
    pub bucket: String,
    pub key: String,
    pub event_time: String,
    #[serde(flatten)]
    pub detail: ItemDetail,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ItemDetail {
    Routed(RuleOutcome),
    Planned(Planned),
    /// The object could not be routed at all (the rules or the store failed).
    Failed {
        error: String,
    },
}

/// The end of a backfill.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillReport {
    pub location: String,
    pub versioned: bool,
    pub dry_run: bool,
    /// Stopped before the listing ended (Ctrl-C): running the same command finishes the rest.
    pub interrupted: bool,
    /// The listing failed part-way (the objects before were routed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listing_error: Option<String>,
    #[serde(flatten)]
    pub counts: BackfillCounts,
    pub items: Vec<BackfillItem>,
}

/// Seconds of `event_time` (RFC 3339), for the time filters.
fn modified(object: &ObjectCreated) -> Option<i64> {
    OffsetDateTime::parse(&object.event_time, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Route every current object under `location` (see the module doc). `progress` is called
/// after each object with the counts so far; the backfill stops taking new objects once
/// `stop` completes (those started finish), and says so in the report.
pub async fn backfill(
    router: &Router,
    objects: &S3Objects,
    location: &S3Prefix,
    options: &BackfillOptions,
    mut progress: impl FnMut(&BackfillCounts),
    stop: impl std::future::Future<Output = ()>,
) -> Result<BackfillReport, BackfillError> {
    let versioned = objects.versioned(&location.bucket).await?;
    // Fail before listing when the rule does not exist.
    if let Some(rule) = &options.rule {
        match router.rules().rule_set().await {
            Ok(set) if set.get(rule).is_none() => {
                return Err(BackfillError::Object {
                    bucket: location.bucket.clone(),
                    key: location.prefix.clone(),
                    detail: format!("no rule `{rule}` (see `rules list`)"),
                });
            }
            _ => {}
        }
    }
    let counts = std::sync::Mutex::new(BackfillCounts::default());
    let listing_error = std::sync::Mutex::new(None::<String>);
    let bump = |f: &dyn Fn(&mut BackfillCounts)| {
        if let Ok(mut c) = counts.lock() {
            f(&mut c);
        }
    };
    let (since, until) = (options.since, options.until);
    let stopped = std::sync::atomic::AtomicBool::new(false);
    let stop = async {
        stop.await;
        stopped.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let candidates = objects
        .list(location, versioned)
        .map(|page| match page {
            Ok(page) => futures::stream::iter(page).boxed(),
            Err(e) => {
                if let Ok(mut slot) = listing_error.lock() {
                    *slot = Some(crate::error_chain(&e));
                }
                futures::stream::empty().boxed()
            }
        })
        .flatten()
        .inspect(|_| bump(&|c| c.listed += 1))
        .filter(move |object| {
            let t = modified(object);
            let keep = since.is_none_or(|s| t.is_some_and(|t| t >= s))
                && until.is_none_or(|u| t.is_some_and(|t| t < u));
            std::future::ready(keep)
        })
        .take(options.max.unwrap_or(usize::MAX))
        .take_until(stop);
    let mut routed = std::pin::pin!(
        candidates
            .map(|object| async move {
                let items = route_one(router, &object, options).await;
                (object, items)
            })
            .buffer_unordered(options.concurrency.max(1))
    );
    let mut items = Vec::new();
    while let Some((object, result)) = routed.next().await {
        bump(&|c| {
            c.routed += 1;
            match &result {
                Ok(details) => {
                    for d in details {
                        c.matched += 1;
                        count(c, d);
                    }
                }
                Err(_) => c.errors += 1,
            }
        });
        let details = result.unwrap_or_else(|e| vec![ItemDetail::Failed { error: e }]);
        items.extend(details.into_iter().map(|detail| BackfillItem {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            event_time: object.event_time.clone(),
            detail,
        }));
        if let Ok(c) = counts.lock() {
            progress(&c);
        }
    }
    let counts = counts.lock().map(|c| c.clone()).unwrap_or_default();
    let listing_error = listing_error.lock().map(|e| e.clone()).unwrap_or_default();
    let interrupted = stopped.load(std::sync::atomic::Ordering::SeqCst);
    Ok(BackfillReport {
        location: location.to_string(),
        versioned,
        dry_run: options.dry_run,
        interrupted,
        listing_error,
        counts,
        items,
    })
}

fn count(c: &mut BackfillCounts, d: &ItemDetail) {
    match d {
        ItemDetail::Failed { .. } => c.errors += 1,
        ItemDetail::Planned(p) => match p.would {
            crate::router::Would::Run => c.would_run += 1,
            crate::router::Would::Duplicate => c.duplicates += 1,
            crate::router::Would::InProgress => c.in_progress += 1,
            crate::router::Would::Skip => c.skipped += 1,
            crate::router::Would::Fail => c.errors += 1,
        },
        ItemDetail::Routed(o) => match (o.duplicate, o.in_progress, o.status) {
            (true, _, _) => c.duplicates += 1,
            (_, true, _) => c.in_progress += 1,
            (_, _, ExecutionStatus::Submitted) => c.submitted += 1,
            (_, _, ExecutionStatus::Skipped) => c.skipped += 1,
            (_, _, ExecutionStatus::Uncertain) => c.uncertain += 1,
            (_, _, ExecutionStatus::Submitting) => c.unknown += 1,
            _ => c.errors += 1,
        },
    }
}

/// One object through the router (or its dry run), with its own deadline.
async fn route_one(
    router: &Router,
    object: &ObjectCreated,
    options: &BackfillOptions,
) -> Result<Vec<ItemDetail>, String> {
    let only = options.rule.as_deref();
    let result: Result<Vec<ItemDetail>, RouterError> = if options.dry_run {
        router
            .plan(object, only)
            .await
            .map(|p| p.into_iter().map(ItemDetail::Planned).collect())
    } else {
        router
            .route_rules(object, only, router.default_deadline())
            .await
            .map(|s| s.outcomes.into_iter().map(ItemDetail::Routed).collect())
    };
    result.map_err(|e| {
        tracing::error!(bucket = %object.bucket, key = %object.key, error = %crate::error_chain(&e),
            "backfill could not route the object");
        crate::error_chain(&e)
    })
}

/// Why `executions rerun` did not run an execution.
#[derive(Debug, thiserror::Error)]
pub enum RerunError {
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error(transparent)]
    S3(#[from] BackfillError),
    /// The version the execution ran is no longer in S3.
    #[error(
        "execution {execution}: s3://{bucket}/{key} {what}, so it cannot be rerun; nothing was changed"
    )]
    ObjectGone {
        execution: String,
        bucket: String,
        key: String,
        /// `was deleted`, `version V is gone`, `was overwritten (ETag …, now …)`.
        what: String,
    },
}

impl From<crate::executions::ExecutionError> for RerunError {
    fn from(e: crate::executions::ExecutionError) -> Self {
        RerunError::Router(e.into())
    }
}

/// `executions rerun ID`: read the object's facts again, check that it is still the version
/// the execution ran (its version id, else its ETag), then [`Router::rerun`].
pub async fn rerun(
    router: &Router,
    objects: &S3Objects,
    execution_id: &str,
) -> Result<RuleOutcome, RerunError> {
    let record = router
        .executions()
        .get(execution_id)
        .await?
        .ok_or_else(|| crate::executions::ExecutionError::NotFound(execution_id.to_string()))?;
    let gone = |what: String| RerunError::ObjectGone {
        execution: record.id.clone(),
        bucket: record.bucket.clone(),
        key: record.key.clone(),
        what,
    };
    let version_id = record
        .version_id
        .as_deref()
        .filter(|v| !v.is_empty() && *v != "null");
    let mut current = match objects
        .current(&record.bucket, &record.key, version_id)
        .await?
    {
        Current::Found(current) => current,
        Current::Gone => {
            return Err(gone(match version_id {
                Some(v) => format!("no longer has version {v}"),
                None => "was deleted".into(),
            }));
        }
    };
    if version_id.is_none()
        && let Some(etag) = &record.etag
        && current.etag.as_deref() != Some(etag.as_str())
    {
        return Err(gone(format!(
            "was overwritten since (ETag {etag}, now {}); the new content is its own execution: `backfill s3://{}/{}` routes it",
            current.etag.as_deref().unwrap_or("none"),
            record.bucket,
            record.key
        )));
    }
    // The time the object was announced stays what the execution rendered first.
    current.event_time = record.event_time.clone();
    Ok(router.rerun(execution_id, &current).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_say_what_is_wrong() {
        let l: S3Prefix = "s3://acme/incoming/2026/".parse().unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("acme", "incoming/2026/")
        );
        let l: S3Prefix = "s3://acme".parse().unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("acme", ""));
        assert!("acme/x".parse::<S3Prefix>().unwrap_err().contains("s3://"));
        assert!(
            "s3:///x"
                .parse::<S3Prefix>()
                .unwrap_err()
                .contains("no bucket")
        );
    }
}
