//! Building and publishing the rules snapshot from the table.
//!
//! [`SnapshotPublisher::publish`] scans the table (in parallel segments), validates every item
//! (invalid ones are left out of the rules and listed in the snapshot), encodes the snapshot
//! and writes it with a conditional PUT on the ETag it started from. If another writer got in
//! between, it starts over from a fresh scan: whichever write lands last comes from a scan
//! that began after every earlier write, so no edit can be overwritten by an older view of the
//! table. `rules put`/`rules delete` publish after they write; the rules-stream function
//! (`ROUTER_MODE=rules`, fed by the table's DynamoDB stream) publishes after console edits and
//! notifies each new invalid item once ([`super::problems`]).

use std::sync::Arc;

use serde::Serialize;

use super::problems::{ProblemNotifier, RuleProblem};
use super::scan::{self, Item};
use super::snapshot::{self, FORMAT, InvalidItem, SnapshotInfo};
use super::snapshot_store::{Expect, Fetched, SnapshotStore, Written};
use super::{RuleError, RuleSet};

/// How many times a publish starts over after losing a race before it gives up.
const ATTEMPTS: u32 = 5;
/// How much of the current snapshot a publisher reads to learn its header.
const HEAD_BYTES: usize = 256 * 1024;

/// What a publish did.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub location: String,
    pub etag: String,
    pub bytes: usize,
    pub rules: usize,
    pub invalid: Vec<InvalidItem>,
    /// Problems notified by this publish.
    pub notified: Vec<String>,
    pub attempts: u32,
}

/// Builds the snapshot of one table and writes it to one location.
pub struct SnapshotPublisher {
    client: aws_sdk_dynamodb::Client,
    table: String,
    store: SnapshotStore,
    notifier: Option<Arc<dyn ProblemNotifier>>,
}

impl SnapshotPublisher {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, store: SnapshotStore) -> Self {
        Self {
            client,
            table,
            store,
            notifier: None,
        }
    }

    /// Notify new invalid items (the stream function does; `rules put` does not, so that a
    /// problem is reported once, by one writer).
    pub fn with_notifier(mut self, notifier: Arc<dyn ProblemNotifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    pub fn store(&self) -> &SnapshotStore {
        &self.store
    }

    /// The current snapshot's ETag and header, when there is one that reads.
    async fn current(&self) -> Result<(Expect, Vec<InvalidItem>), RuleError> {
        let (bytes, etag) = match self.store.fetch_head(HEAD_BYTES).await? {
            Fetched::Found { bytes, etag } => (bytes, etag),
            Fetched::Missing | Fetched::NotModified => return Ok((Expect::Absent, Vec::new())),
        };
        let info = match snapshot::read_info(&bytes) {
            Ok(Some(info)) => Some(info),
            // The header is longer than the first bytes: read it all.
            Ok(None) => match self.store.fetch(None).await? {
                Fetched::Found { bytes, .. } => snapshot::read_info(&bytes).ok().flatten(),
                _ => None,
            },
            Err(_) => None,
        };
        Ok((
            Expect::Etag(etag),
            info.map(|i| i.invalid).unwrap_or_default(),
        ))
    }

    /// Scan, validate, encode and write the snapshot; notify new problems first when a notifier
    /// is set (a notification is never lost: a publish that fails after notifying notifies
    /// again when it is retried).
    pub async fn publish(&self) -> Result<Published, RuleError> {
        for attempt in 1..=ATTEMPTS {
            let (expect, previous) = self.current().await?;
            let items = scan::scan_table(&self.client, &self.table, None, None).await?;
            let (set, mut invalid) = validate(items, &previous);
            let mut notified = Vec::new();
            if let Some(notifier) = &self.notifier {
                for item in invalid.iter_mut().filter(|i| !i.notified) {
                    notifier
                        .notify(&RuleProblem::new(&self.table, item))
                        .await?;
                    item.notified = true;
                    notified.push(item.id.clone());
                }
            }
            let info = SnapshotInfo {
                format: FORMAT,
                built_at: now_rfc3339(),
                table: self.table.clone(),
                rules: set.len(),
                invalid,
                builder: concat!("alteryx-router ", env!("CARGO_PKG_VERSION")).to_string(),
            };
            let bytes = snapshot::encode(&set, &info).map_err(|e| RuleError::Snapshot {
                location: self.store.location().to_string(),
                action: "encode",
                source: Box::new(e),
            })?;
            let size = bytes.len();
            match self.store.put(bytes, &expect).await? {
                Written::Stored { etag } => {
                    tracing::info!(location = %self.store.location(), rules = info.rules,
                        invalid = info.invalid.len(), bytes = size, attempt, "rules snapshot published");
                    return Ok(Published {
                        location: self.store.location().to_string(),
                        etag,
                        bytes: size,
                        rules: info.rules,
                        invalid: info.invalid,
                        notified,
                        attempts: attempt,
                    });
                }
                Written::Conflict => {
                    tracing::info!(location = %self.store.location(), attempt,
                        "rules snapshot changed while this one was built; starting over");
                }
            }
        }
        Err(RuleError::Snapshot {
            location: self.store.location().to_string(),
            action: "publish",
            source: format!("another writer replaced the snapshot {ATTEMPTS} times in a row")
                .into(),
        })
    }

    /// The rules-stream function's handler: any event (DynamoDB stream records, a schedule)
    /// publishes a fresh snapshot; the answer says what changed and what was published.
    pub async fn handle_event(
        &self,
        payload: &serde_json::Value,
    ) -> Result<serde_json::Value, RuleError> {
        let changed = changed_ids(payload);
        let published = self.publish().await?;
        Ok(serde_json::json!({
            "changed": changed,
            "snapshot": published,
        }))
    }
}

/// Ids of the items a DynamoDB stream event changed (empty for other events).
pub fn changed_ids(payload: &serde_json::Value) -> Vec<String> {
    payload
        .get("Records")
        .and_then(serde_json::Value::as_array)
        .map(|records| {
            records
                .iter()
                .filter(|r| r.get("eventSource").and_then(|s| s.as_str()) == Some("aws:dynamodb"))
                .filter_map(|r| r.pointer("/dynamodb/Keys/id/S").and_then(|s| s.as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Valid items become the rule set; invalid ones are listed, keeping the `notified` mark of
/// the same problem in the previous snapshot.
pub fn validate(items: Vec<Item>, previous: &[InvalidItem]) -> (RuleSet, Vec<InvalidItem>) {
    let mut rules = Vec::with_capacity(items.len());
    let mut invalid = Vec::new();
    for item in items {
        let fingerprint = scan::fingerprint(&item);
        let (id, read) = scan::read_item(item);
        match read {
            Ok(rule) => rules.push(rule),
            Err(e) => invalid.push(invalid_item(id, &e, fingerprint, previous)),
        }
    }
    // Ids are the table's key, so they are unique; `lenient` only sorts and indexes here.
    let (set, errors) = RuleSet::lenient(rules);
    for e in errors {
        invalid.push(invalid_item(String::new(), &e, String::new(), previous));
    }
    invalid.sort_by(|a, b| a.id.cmp(&b.id));
    (set, invalid)
}

fn invalid_item(
    id: String,
    e: &RuleError,
    fingerprint: String,
    previous: &[InvalidItem],
) -> InvalidItem {
    let (id, field, message) = match e {
        RuleError::Invalid {
            rule,
            field,
            message,
        } => (rule.clone(), field.clone(), message.clone()),
        other => (id, "(item)".to_string(), other.to_string()),
    };
    let notified = previous
        .iter()
        .any(|p| p.id == id && p.fingerprint == fingerprint && p.notified);
    InvalidItem {
        id,
        field,
        message,
        fingerprint,
        notified,
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_records_name_the_changed_items() {
        let event = serde_json::json!({"Records": [
            {"eventSource": "aws:dynamodb", "eventName": "MODIFY", "dynamodb": {"Keys": {"id": {"S": "a"}}}},
            {"eventSource": "aws:dynamodb", "eventName": "REMOVE", "dynamodb": {"Keys": {"id": {"S": "b"}}}},
            {"eventSource": "aws:sqs"}
        ]});
        assert_eq!(changed_ids(&event), ["a", "b"]);
        assert!(changed_ids(&serde_json::json!({"source": "aws.events"})).is_empty());
    }
}
