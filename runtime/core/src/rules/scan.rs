//! Reading the whole rules table: a parallel scan, and each item read as a rule on its own.
//!
//! A plain scan of 100,000 rules is 25 pages of 1 MB fetched one after the other. Here the
//! table is split into scan segments sized from its statistics (`DescribeTable`: about 1 MB,
//! or 4,000 items, per segment, at most [`MAX_SEGMENTS`]), all read at once, so the number of
//! sequential round trips stays at two (the description, then one page per segment) as the
//! table grows. DynamoDB refreshes those statistics about every six hours; until then a new
//! table's segments just read more than one page each.
//!
//! Throttling (`ProvisionedThroughputExceeded`, `ThrottlingException`, `RequestLimitExceeded`)
//! and transient errors are retried by the SDK with exponential backoff and jitter, up to
//! [`SCAN_ATTEMPTS`] attempts per request, more than the SDK's default three because a rules
//! load is worth waiting a little for: the alternative is serving stale rules or failing.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::try_join_all;

use super::{Rule, RuleError};

/// An item as DynamoDB returns it.
pub type Item = HashMap<String, AttributeValue>;

/// Upper bound on parallel scan segments (and so on concurrent connections at a cold start).
pub const MAX_SEGMENTS: u32 = 32;
/// Attempts per DynamoDB request before a throttle or transient error is given up on.
pub const SCAN_ATTEMPTS: u32 = 6;
const ITEMS_PER_SEGMENT: u64 = 4_000;
const BYTES_PER_SEGMENT: u64 = 1 << 20;

/// The retry policy of rules reads and writes: exponential backoff with jitter from 50 ms, at
/// most 2 s between attempts.
pub(crate) fn retry_config() -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::default().retry_config(
        RetryConfig::standard()
            .with_max_attempts(SCAN_ATTEMPTS)
            .with_initial_backoff(Duration::from_millis(50))
            .with_max_backoff(Duration::from_secs(2)),
    )
}

pub(crate) fn store_error(
    table: &str,
    action: &'static str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> RuleError {
    RuleError::Store {
        table: table.to_string(),
        action,
        source: Box::new(source),
    }
}

/// How many segments to scan `table` in: from its size and item count, 1 when unknown.
async fn segments_for(client: &aws_sdk_dynamodb::Client, table: &str) -> u32 {
    match client
        .describe_table()
        .table_name(table)
        .customize()
        .config_override(retry_config())
        .send()
        .await
    {
        Ok(out) => {
            let (bytes, items) = out
                .table
                .map(|t| (t.table_size_bytes.unwrap_or(0), t.item_count.unwrap_or(0)))
                .unwrap_or((0, 0));
            segment_count(bytes, items)
        }
        Err(e) => {
            // The scan itself still works; only its parallelism is unknown.
            tracing::warn!(table, error = %crate::error_chain(&e),
                "DescribeTable failed; scanning the rules table in one segment");
            1
        }
    }
}

fn segment_count(bytes: i64, items: i64) -> u32 {
    let by_size = (bytes.max(0) as u64).div_ceil(BYTES_PER_SEGMENT);
    let by_items = (items.max(0) as u64).div_ceil(ITEMS_PER_SEGMENT);
    by_size.max(by_items).clamp(1, u64::from(MAX_SEGMENTS)) as u32
}

/// Every item of `table`, in no particular order.
///
/// `segments`: how many parallel segments (from the table's statistics when `None`);
/// `page_size`: items per page (DynamoDB's 1 MB pages when `None`).
pub async fn scan_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    segments: Option<u32>,
    page_size: Option<i32>,
) -> Result<Vec<Item>, RuleError> {
    let segments = match segments {
        Some(n) => n.clamp(1, MAX_SEGMENTS),
        None => segments_for(client, table).await,
    };
    let parts = try_join_all(
        (0..segments).map(|segment| scan_segment(client, table, segment, segments, page_size)),
    )
    .await?;
    Ok(parts.into_iter().flatten().collect())
}

async fn scan_segment(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    segment: u32,
    segments: u32,
    page_size: Option<i32>,
) -> Result<Vec<Item>, RuleError> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let mut request = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_limit(page_size)
            .set_exclusive_start_key(start.take());
        if segments > 1 {
            request = request
                .segment(segment as i32)
                .total_segments(segments as i32);
        }
        let page = request
            .customize()
            .config_override(retry_config())
            .send()
            .await
            .map_err(|e| store_error(table, "Scan", e))?;
        items.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(items),
        }
    }
}

/// The item's `id` as `rules list` names it.
pub fn item_id(item: &Item) -> String {
    match item.get("id") {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => "(item without a string `id`)".to_string(),
    }
}

/// Read one item as a rule, fully validated (what `rules put` would accept).
pub fn read_item(item: Item) -> (String, Result<Rule, RuleError>) {
    let id = item_id(&item);
    let parsed = match serde_dynamo::from_item::<_, Rule>(item.clone()) {
        Ok(rule) => super::CompiledRule::compile(rule).map(|c| c.rule),
        Err(e) => Err(item_error(&id, &item, e.to_string())),
    };
    (id, parsed)
}

/// A digest of an item as stored, to tell one edit of an item from the next.
pub fn fingerprint(item: &Item) -> String {
    use sha2::Digest;
    let value: serde_json::Value = serde_dynamo::from_item(item.clone()).unwrap_or_default();
    // serde_json's maps are sorted by key, so equal items give equal text.
    let digest = sha2::Sha256::digest(value.to_string().as_bytes());
    hex::encode(&digest[..12])
}

/// Say which attribute of an item does not fit the rule model. serde names it for unknown
/// and missing fields; for a wrong type (serde_dynamo says only "Expected num") the culprit is
/// the attribute whose removal makes the item read, or read as missing that very field.
pub(crate) fn item_error(id: &str, item: &Item, message: String) -> RuleError {
    let invalid = |field: &str, message: String| RuleError::Invalid {
        rule: id.to_string(),
        field: field.to_string(),
        message,
    };
    if let Some(field) = field_named_in(&message).map(str::to_string) {
        return invalid(&field, message);
    }
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    for name in names {
        let mut trial = item.clone();
        trial.remove(name);
        let culprit = match serde_dynamo::from_item::<_, Rule>(trial) {
            Ok(_) => true,
            Err(e) => field_named_in(&e.to_string()) == Some(name.as_str()),
        };
        if culprit {
            return invalid(name, format!("wrong type ({message})"));
        }
    }
    invalid("(item)", message)
}

/// The attribute a serde error is about, when its message names one (``unknown field `x` ``,
/// ``missing field `x` ``).
fn field_named_in(message: &str) -> Option<&str> {
    ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_the_table_size() {
        assert_eq!(segment_count(0, 0), 1);
        assert_eq!(segment_count(500_000, 2_000), 1);
        assert_eq!(segment_count(25 << 20, 100_000), 25);
        assert_eq!(segment_count(0, 100_000), 25);
        assert_eq!(segment_count(1 << 34, 0), MAX_SEGMENTS);
        assert_eq!(segment_count(-1, -1), 1);
    }

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(
            field_named_in("unknown field `prority`, expected one of `id`"),
            Some("prority")
        );
        assert_eq!(field_named_in("missing field `workflow`"), Some("workflow"));
        assert_eq!(
            field_named_in("invalid type: string \"x\", expected i64"),
            None
        );
    }

    #[test]
    fn a_wrongly_typed_attribute_is_found() {
        let s = |v: &str| AttributeValue::S(v.into());
        let item: Item = [
            ("id".to_string(), s("r")),
            ("key".to_string(), s("**")),
            ("workflow".to_string(), s("w")),
            ("final".to_string(), s("yes")),
        ]
        .into();
        let message = serde_dynamo::from_item::<_, Rule>(item.clone())
            .unwrap_err()
            .to_string();
        match item_error("r", &item, message) {
            RuleError::Invalid {
                rule,
                field,
                message,
            } => {
                assert_eq!((rule.as_str(), field.as_str()), ("r", "final"));
                assert!(message.starts_with("wrong type"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let (id, read) = read_item(item.clone());
        assert_eq!(id, "r");
        assert!(read.is_err());
        let mut edited = item.clone();
        edited.insert("final".into(), AttributeValue::Bool(true));
        assert_ne!(fingerprint(&item), fingerprint(&edited));
        assert_eq!(fingerprint(&item), fingerprint(&item.clone()));
    }
}
