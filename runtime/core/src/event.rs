//! Event decoding: every input the router accepts becomes [`ObjectCreated`] facts.
//!
//! Accepted shapes:
//! - EventBridge `Object Created` from `aws.s3` (the primary source). Keys arrive **as
//!   written**: EventBridge does not URL-encode them (the evidence is in docs/rules.md,
//!   "Events").
//! - Classic S3 event notifications (`Records[]` with `eventSource: aws:s3`). Keys arrive
//!   **form-URL-encoded**: `+` is a space, `%2B` a literal plus, non-ASCII as UTF-8 escapes
//!   (AWS, "Event message structure": "The s3 key provides information about the bucket and
//!   object involved in the event. The object key name value is URL encoded.").
//! - The same notifications wrapped in SNS (`Records[].Sns.Message`) or delivered through SQS
//!   (`Records[].body`, itself an S3 notification, an SNS envelope or an EventBridge event).
//!   SQS messages are decoded one by one so the router can report partial batch failures.
//!
//! Every record of a `Records` batch is decoded on its own: a record that cannot be read (a
//! key that does not decode, a missing bucket) is reported by index and reason
//! ([`Decoded::Partial`]) while the others are routed.
//!
//! S3's own limits are checked here, so nothing downstream (execution ids, batch member lists,
//! templates, logs) sees a key or bucket name S3 could never have produced: a key is at most
//! [`MAX_KEY_BYTES`] bytes of UTF-8 (after URL-decoding, for notifications), a bucket name
//! 3 to 63 characters ([`BUCKET_NAME_CHARS`]). A value over the limit is malformed; the error
//! names the field, its length and the limit, and shows only the start of the value.
//!
//! Inputs are read as `serde_json::Value` rather than `aws_lambda_events` structs. Checked
//! against aws_lambda_events 1.2.1: its `S3EventRecord` requires `eventTime` (as a timestamp),
//! `userIdentity` and `requestParameters`, which replayed or hand-made notifications often lack
//! (and a `null` there is rejected too); one such record fails the whole `S3Event`, losing the
//! good records of the batch; it leaves keys URL-encoded (`url_decoded_key` is not filled by
//! deserialization); and it has no type for the S3 `detail` of EventBridge events. Reading
//! `Value`s lets each record be judged on its own, with an error that says which field is wrong.
//! Everything that is not object creation is `Skipped` with the reason.

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// the version id (S3's `null`, the unversioned copy, is none), else the ETag, else the
    /// sequencer, else the event time.
    ///
    /// It must be computable from an S3 listing as well as from an event (`backfill`), so the
    /// same object gets the same execution id on both paths: a listing has version ids and
    /// ETags but no sequencer. The consequence, documented in docs/executions.md: on an
    /// unversioned bucket, the same bytes uploaded again to the same key are the same object
    /// (`executions rerun` runs a file again on purpose).
    pub fn version_token(&self) -> &str {
        self.version_id
            .as_deref()
            .filter(|v| !v.is_empty() && *v != "null")
            .or(self.etag.as_deref().filter(|e| !e.is_empty()))
            .or(self.sequencer.as_deref().filter(|s| !s.is_empty()))
            .unwrap_or(&self.event_time)
    }
}

/// What an input turned out to be.
#[derive(Debug)]
pub enum Decoded {
    /// Created objects to route (possibly several from one `Records` batch).
    Objects(Vec<ObjectCreated>),
    /// A `Records` batch in which some records could not be read: the objects of the others,
    /// and each rejected record's index and reason (`record 2: ...`).
    Partial {
        objects: Vec<ObjectCreated>,
        rejected: Vec<String>,
    },
    /// An SQS batch: each message decoded on its own.
    Sqs(Vec<SqsMessage>),
    /// Not something to route, with the reason (logged by the router).
    Skipped(String),
}

/// One SQS message of a batch and what it decoded to.
#[derive(Debug)]
pub struct SqsMessage {
    pub message_id: String,
    pub result: Result<Decoded, EventError>,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("event is not valid JSON: {detail}")]
    Json { detail: String },
    #[error("malformed {input}: {detail}")]
    Malformed { input: &'static str, detail: String },
}

/// S3 object keys are at most 1024 bytes of UTF-8 ("Naming Amazon S3 objects").
pub const MAX_KEY_BYTES: usize = 1024;
/// S3 bucket names are 3 to 63 characters long ("Bucket naming rules").
pub const BUCKET_NAME_CHARS: std::ops::RangeInclusive<usize> = 3..=63;
/// How many characters of an over-long value an error message shows.
const SHOWN_CHARS: usize = 80;

/// `text` as a message shows it: quoted, and cut after [`SHOWN_CHARS`] characters with `…`.
fn shown(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((end, _)) => format!("{:?}…", &text[..end]),
        None => format!("{text:?}"),
    }
}

/// `n` with thousands separators (`1,300`).
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Whether `bucket` (read from `field`) is a length S3 allows.
fn check_bucket(field: &str, bucket: &str) -> Result<(), String> {
    let chars = bucket.chars().count();
    if BUCKET_NAME_CHARS.contains(&chars) {
        return Ok(());
    }
    Err(format!(
        "{field} is {} characters; S3 bucket names are {} to {} ({})",
        thousands(chars),
        BUCKET_NAME_CHARS.start(),
        BUCKET_NAME_CHARS.end(),
        shown(bucket)
    ))
}

/// Whether `key` (read from `field`; `decoded`: after URL-decoding) is a length S3 allows.
fn check_key(field: &str, key: &str, decoded: bool) -> Result<(), String> {
    if key.len() <= MAX_KEY_BYTES {
        return Ok(());
    }
    let after = if decoded { " after URL-decoding" } else { "" };
    Err(format!(
        "{field} is {} bytes{after}; S3 keys are at most {MAX_KEY_BYTES} ({})",
        thousands(key.len()),
        shown(key)
    ))
}

fn malformed(input: &'static str, detail: impl Into<String>) -> EventError {
    EventError::Malformed {
        input,
        detail: detail.into(),
    }
}

/// Decode event text; malformed JSON is an error naming line and column.
pub fn decode_str(text: &str) -> Result<Decoded, EventError> {
    let value: Value = serde_json::from_str(text).map_err(|e| EventError::Json {
        detail: e.to_string(),
    })?;
    decode(&value)
}

/// Decode one invocation payload.
pub fn decode(payload: &Value) -> Result<Decoded, EventError> {
    let Some(obj) = payload.as_object() else {
        return Ok(Decoded::Skipped(format!(
            "payload is a JSON {}, not an event object",
            json_kind(payload)
        )));
    };
    if obj.contains_key("detail-type") && obj.contains_key("source") {
        return decode_eventbridge(payload);
    }
    if let Some(records) = obj.get("Records") {
        return decode_records(records);
    }
    if obj.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Decoded::Skipped(
            "S3 test event (sent when notifications are configured)".into(),
        ));
    }
    if obj.get("Type").and_then(Value::as_str) == Some("Notification") {
        // An SNS envelope as delivered to SQS without raw message delivery.
        return decode_sns_message(obj.get("Message"));
    }
    Ok(Decoded::Skipped(format!(
        "unknown event shape (top-level fields: {})",
        obj.keys().take(8).cloned().collect::<Vec<_>>().join(", ")
    )))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_str)
}

/// A size given as a number (or, defensively, a numeric string).
fn size_at(v: &Value, path: &[&str]) -> Result<u64, String> {
    match path.iter().try_fold(v, |v, k| v.get(*k)) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| format!("{} is not a whole non-negative number", path.join("."))),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| format!("{} is not a number: {s:?}", path.join("."))),
        Some(other) => Err(format!(
            "{} is a {}, expected a number",
            path.join("."),
            json_kind(other)
        )),
    }
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}

/// An ETag as events carry it: without the double quotes S3's listings and HEAD answers put
/// around it, so an object's ETag is the same whichever path saw it (it is part of its
/// identity, [`ObjectCreated::version_token`]).
pub fn normalize_etag(etag: &str) -> Option<String> {
    let bare = etag.trim().trim_matches('"');
    (!bare.is_empty()).then(|| bare.to_string())
}

fn folder_placeholder(bucket: &str, key: &str) -> Option<Decoded> {
    key.ends_with('/').then(|| {
        Decoded::Skipped(format!(
            "s3://{bucket}/{key} is a folder placeholder (key ends with '/')"
        ))
    })
}

fn decode_eventbridge(event: &Value) -> Result<Decoded, EventError> {
    const SRC: &str = "EventBridge event";
    let source = str_at(event, &["source"]).unwrap_or_default();
    let detail_type = str_at(event, &["detail-type"]).unwrap_or_default();
    if source != "aws.s3" {
        return Ok(Decoded::Skipped(format!(
            "EventBridge event from {source:?} ({detail_type}), not aws.s3"
        )));
    }
    if detail_type != "Object Created" {
        return Ok(Decoded::Skipped(format!(
            "S3 EventBridge event {detail_type:?} is not \"Object Created\""
        )));
    }
    let detail = event
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or_else(|| malformed(SRC, "Object Created event has no `detail` object"))?;
    let bucket = str_at(detail, &["bucket", "name"])
        .ok_or_else(|| malformed(SRC, "detail.bucket.name is missing"))?;
    let key = str_at(detail, &["object", "key"])
        .ok_or_else(|| malformed(SRC, "detail.object.key is missing"))?;
    check_bucket("detail.bucket.name", bucket).map_err(|d| malformed(SRC, d))?;
    check_key("detail.object.key", key, false).map_err(|d| malformed(SRC, d))?;
    if let Some(skip) = folder_placeholder(bucket, key) {
        return Ok(skip);
    }
    let size = size_at(detail, &["object", "size"]).map_err(|d| malformed(SRC, d))?;
    Ok(Decoded::Objects(vec![ObjectCreated {
        bucket: bucket.to_string(),
        key: key.to_string(),
        size,
        etag: str_at(detail, &["object", "etag"]).and_then(normalize_etag),
        version_id: non_empty(str_at(detail, &["object", "version-id"])),
        sequencer: non_empty(str_at(detail, &["object", "sequencer"])),
        event_time: str_at(event, &["time"]).unwrap_or_default().to_string(),
        reason: non_empty(str_at(detail, &["reason"])),
        source: "eventbridge".into(),
    }]))
}

/// `Records[]`: S3 notifications, SNS deliveries or an SQS batch.
fn decode_records(records: &Value) -> Result<Decoded, EventError> {
    let Some(list) = records.as_array() else {
        return Err(malformed("Records event", "`Records` is not a list"));
    };
    let Some(first) = list.first() else {
        return Ok(Decoded::Skipped("empty Records list".into()));
    };
    let source = str_at(first, &["eventSource"])
        .or_else(|| str_at(first, &["EventSource"]))
        .unwrap_or_default();
    match source {
        "aws:sqs" => Ok(Decoded::Sqs(
            list.iter()
                .map(|record| SqsMessage {
                    message_id: str_at(record, &["messageId"])
                        .unwrap_or("(no messageId)")
                        .to_string(),
                    result: match str_at(record, &["body"]) {
                        Some(body) => decode_str(body).map(|d| tag(d, "sqs")),
                        None => Err(malformed("SQS message", "record has no `body`")),
                    },
                })
                .collect(),
        )),
        "aws:sns" => {
            let mut batch = Batch::default();
            for (i, record) in list.iter().enumerate() {
                match decode_sns_message(record.get("Sns").and_then(|s| s.get("Message"))) {
                    Ok(Decoded::Objects(o)) => batch.objects.extend(o),
                    Ok(Decoded::Partial { objects, rejected }) => {
                        batch.objects.extend(objects);
                        batch
                            .rejected
                            .extend(rejected.into_iter().map(|r| format!("record {i}: {r}")));
                    }
                    Ok(Decoded::Skipped(r)) => batch.skipped.push(r),
                    Ok(Decoded::Sqs(_)) => batch.skipped.push("SQS batch inside SNS".into()),
                    Err(e) => batch.reject(format!("record {i}: {e}"), e),
                }
            }
            batch.into_decoded(list.len())
        }
        _ => decode_s3_records(list),
    }
}

fn tag(decoded: Decoded, source: &str) -> Decoded {
    match decoded {
        Decoded::Objects(objects) => Decoded::Objects(
            objects
                .into_iter()
                .map(|mut o| {
                    o.source = format!("{source}/{}", o.source);
                    o
                })
                .collect(),
        ),
        Decoded::Partial { objects, rejected } => Decoded::Partial {
            objects: objects
                .into_iter()
                .map(|mut o| {
                    o.source = format!("{source}/{}", o.source);
                    o
                })
                .collect(),
            rejected,
        },
        other => other,
    }
}

/// What the records of one batch came to.
#[derive(Default)]
struct Batch {
    objects: Vec<ObjectCreated>,
    skipped: Vec<String>,
    rejected: Vec<String>,
    /// The error of the first rejected record.
    first_error: Option<EventError>,
}

impl Batch {
    fn reject(&mut self, reason: String, error: EventError) {
        self.rejected.push(reason);
        self.first_error.get_or_insert(error);
    }

    /// The batch's outcome; a batch of one record that cannot be read is a malformed event.
    fn into_decoded(self, records: usize) -> Result<Decoded, EventError> {
        for reason in &self.skipped {
            tracing::info!(%reason, "record skipped");
        }
        if records == 1
            && let Some(error) = self.first_error
        {
            return Err(error);
        }
        Ok(if !self.rejected.is_empty() {
            Decoded::Partial {
                objects: self.objects,
                rejected: self.rejected,
            }
        } else if self.objects.is_empty() {
            Decoded::Skipped(self.skipped.join("; "))
        } else {
            Decoded::Objects(self.objects)
        })
    }
}

fn decode_sns_message(message: Option<&Value>) -> Result<Decoded, EventError> {
    let text = message
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("SNS notification", "`Message` is missing or not a string"))?;
    decode_str(text).map(|d| tag(d, "sns"))
}

fn decode_s3_records(list: &[Value]) -> Result<Decoded, EventError> {
    const SRC: &str = "S3 notification";
    let mut batch = Batch::default();
    for (i, record) in list.iter().enumerate() {
        let source = str_at(record, &["eventSource"]).unwrap_or_default();
        let name = str_at(record, &["eventName"]).unwrap_or_default();
        if source != "aws:s3" {
            batch
                .skipped
                .push(format!("record {i}: event source {source:?} is not aws:s3"));
            continue;
        }
        if !name.starts_with("ObjectCreated:") {
            batch
                .skipped
                .push(format!("record {i}: {name:?} is not ObjectCreated:*"));
            continue;
        }
        match decode_s3_record(record, name) {
            Ok(Decoded::Objects(o)) => batch.objects.extend(o),
            Ok(Decoded::Skipped(reason)) => batch.skipped.push(reason),
            Ok(_) => {}
            Err(detail) => {
                let error = malformed(SRC, format!("record {i}: {detail}"));
                batch.reject(error.to_string(), error);
            }
        }
    }
    batch.into_decoded(list.len())
}

/// One `ObjectCreated:*` record of an S3 notification.
fn decode_s3_record(record: &Value, name: &str) -> Result<Decoded, String> {
    let bucket = str_at(record, &["s3", "bucket", "name"]).ok_or("s3.bucket.name is missing")?;
    let raw_key = str_at(record, &["s3", "object", "key"]).ok_or("s3.object.key is missing")?;
    check_bucket("s3.bucket.name", bucket)?;
    let key = decode_notification_key(raw_key)?;
    check_key("s3.object.key", &key, true)?;
    if let Some(skip) = folder_placeholder(bucket, &key) {
        return Ok(skip);
    }
    let size = size_at(record, &["s3", "object", "size"])?;
    Ok(Decoded::Objects(vec![ObjectCreated {
        bucket: bucket.to_string(),
        key,
        size,
        etag: str_at(record, &["s3", "object", "eTag"]).and_then(normalize_etag),
        version_id: non_empty(str_at(record, &["s3", "object", "versionId"])),
        sequencer: non_empty(str_at(record, &["s3", "object", "sequencer"])),
        event_time: str_at(record, &["eventTime"])
            .unwrap_or_default()
            .to_string(),
        reason: Some(name.trim_start_matches("ObjectCreated:").to_string()),
        source: "s3".into(),
    }]))
}

/// Undo the form-style URL encoding of keys in classic S3 notifications.
pub fn decode_notification_key(raw: &str) -> Result<String, String> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| format!("object key {} does not percent-decode to UTF-8", shown(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn notification_keys_are_form_decoded() {
        assert_eq!(decode_notification_key("a+b%2Bc.csv").unwrap(), "a b+c.csv");
        assert_eq!(
            decode_notification_key(
                "%E5%8F%97%E4%BF%A1/2026%E5%B9%B4/%E5%A3%B2%E4%B8%8A+%E3%83%87%E3%83%BC%E3%82%BF%2Bv2.csv"
            )
            .unwrap(),
            "受信/2026年/売上 データ+v2.csv"
        );
        assert_eq!(decode_notification_key("a%3Ab%25c").unwrap(), "a:b%c");
        assert!(decode_notification_key("bad%FF").is_err());
    }

    #[test]
    fn non_objects_and_unknown_shapes_are_skipped_not_errors() {
        for payload in [json!([1, 2]), json!("x"), json!({"hello": "world"})] {
            assert!(
                matches!(decode(&payload), Ok(Decoded::Skipped(_))),
                "{payload}"
            );
        }
    }

    #[test]
    fn version_token_prefers_version_then_etag_then_sequencer() {
        let mut o = ObjectCreated {
            bucket: "b".into(),
            key: "k".into(),
            size: 1,
            etag: Some("e".into()),
            version_id: Some("null".into()),
            sequencer: Some("s".into()),
            event_time: "t".into(),
            reason: None,
            source: "x".into(),
        };
        // A listing has no sequencer: the ETag must win over it so both paths agree.
        assert_eq!(o.version_token(), "e");
        o.version_id = Some("v".into());
        assert_eq!(o.version_token(), "v");
        o.version_id = None;
        o.etag = None;
        assert_eq!(o.version_token(), "s");
        o.sequencer = None;
        assert_eq!(o.version_token(), "t");
    }

    #[test]
    fn etags_lose_their_quotes() {
        assert_eq!(normalize_etag("\"abc-2\"").as_deref(), Some("abc-2"));
        assert_eq!(normalize_etag("abc").as_deref(), Some("abc"));
        assert_eq!(normalize_etag("\"\""), None);
    }

    fn eventbridge(bucket: &str, key: &str) -> Value {
        json!({"version": "0", "source": "aws.s3", "detail-type": "Object Created",
            "time": "2026-11-26T07:00:00Z",
            "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1}}})
    }

    fn notification(records: &[(&str, &str)]) -> Value {
        let records: Vec<Value> = records
            .iter()
            .map(|(bucket, key)| {
                json!({"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                    "eventTime": "2026-11-26T07:00:00.000Z",
                    "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1}}})
            })
            .collect();
        json!({ "Records": records })
    }

    fn error_of(payload: &Value) -> String {
        match decode(payload) {
            Err(e) => e.to_string(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn an_eventbridge_key_over_1024_bytes_is_malformed_and_shown_short() {
        let at_limit = "é".repeat(512); // 1024 bytes, 512 characters
        match decode(&eventbridge("acme-landing", &at_limit)) {
            Ok(Decoded::Objects(o)) => assert_eq!(o[0].key.len(), 1024),
            other => panic!("{other:?}"),
        }
        let over = format!("{at_limit}x"); // 1025 bytes
        let e = error_of(&eventbridge("acme-landing", &over));
        assert!(
            e.starts_with("malformed EventBridge event: detail.object.key is 1,025 bytes; S3 keys are at most 1024 (\"ééé"),
            "{e}"
        );
        let e = error_of(&eventbridge("acme-landing", &"k".repeat(1300)));
        assert!(
            e.contains("detail.object.key is 1,300 bytes; S3 keys are at most 1024"),
            "{e}"
        );
        assert!(e.ends_with("…)") && e.len() < 250, "the key is cut: {e}");
    }

    #[test]
    fn an_eventbridge_bucket_name_must_be_3_to_63_characters() {
        for ok in ["abc", &"b".repeat(63)] {
            assert!(
                matches!(decode(&eventbridge(ok, "k.csv")), Ok(Decoded::Objects(_))),
                "{ok}"
            );
        }
        let e = error_of(&eventbridge("ab", "k.csv"));
        assert_eq!(
            e,
            "malformed EventBridge event: detail.bucket.name is 2 characters; S3 bucket names are 3 to 63 (\"ab\")"
        );
        let e = error_of(&eventbridge(&"b".repeat(64), "k.csv"));
        assert!(e.contains("detail.bucket.name is 64 characters"), "{e}");
        let e = error_of(&eventbridge(&"b".repeat(5000), "k.csv"));
        assert!(
            e.contains("detail.bucket.name is 5,000 characters") && e.len() < 250,
            "{e}"
        );
    }

    #[test]
    fn a_notification_key_is_measured_after_url_decoding_and_only_its_record_is_refused() {
        // 512 x "é" escaped: 3,072 characters in the event, 1,024 bytes once decoded.
        let at_limit = "%C3%A9".repeat(512);
        let over = format!("{at_limit}%2B"); // 1,025 bytes decoded ("+")
        match decode(&notification(&[
            ("acme-landing", &at_limit),
            ("acme-landing", &over),
        ])) {
            Ok(Decoded::Partial { objects, rejected }) => {
                assert_eq!(objects.len(), 1);
                assert_eq!(objects[0].key, "é".repeat(512));
                assert_eq!(rejected.len(), 1, "{rejected:?}");
                assert!(
                    rejected[0].starts_with(
                        "malformed S3 notification: record 1: s3.object.key is 1,025 bytes after URL-decoding; S3 keys are at most 1024 (\"ééé"
                    ),
                    "{rejected:?}"
                );
                assert!(rejected[0].len() < 300, "{rejected:?}");
            }
            other => panic!("{other:?}"),
        }
        // A notification of one record over the limit is a malformed event.
        let e = error_of(&notification(&[("acme-landing", &over)]));
        assert!(e.contains("record 0: s3.object.key is 1,025 bytes"), "{e}");
    }

    #[test]
    fn a_notification_bucket_name_out_of_range_refuses_its_record() {
        let long = "b".repeat(64);
        match decode(&notification(&[
            ("acme-landing", "a.csv"),
            (&long, "b.csv"),
            ("ab", "c.csv"),
            (&"c".repeat(63), "d.csv"),
        ])) {
            Ok(Decoded::Partial { objects, rejected }) => {
                let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
                assert_eq!(keys, ["a.csv", "d.csv"]);
                assert_eq!(
                    rejected,
                    [
                        format!(
                            "malformed S3 notification: record 1: s3.bucket.name is 64 characters; S3 bucket names are 3 to 63 (\"{long}\")"
                        ),
                        "malformed S3 notification: record 2: s3.bucket.name is 2 characters; S3 bucket names are 3 to 63 (\"ab\")".to_string(),
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_undecodable_key_is_shown_short() {
        let raw = format!("{}%FF", "k".repeat(5000));
        let e = decode_notification_key(&raw).unwrap_err();
        assert!(
            e.len() < 200 && e.ends_with("does not percent-decode to UTF-8"),
            "{e}"
        );
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
