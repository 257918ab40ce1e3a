//! batch-manifest: an alteryx-router plugin for batch rules (interface 0.3.0). It reads the
//! first line of every member of the batch (a CSV header), answers which members' headers
//! have the columns the rule asks for, and skips the batch when a column every batch needs is
//! in no member's header. On a rule without a `batch` block it treats the object as a batch
//! of one.
//!
//! Config (all optional):
//! `{"columns": ["order_id"], "required": ["amount"], "delimiter": ",", "line_bytes": 4096,
//! "separator": "\n"}`: a member matches when its header has every one of `columns`
//! (compared without case, quotes or surrounding blanks); the batch is skipped when one of
//! `required` is in no member's header; `line_bytes` is what is read of each member to find
//! its first line (a longer first line is an error naming the member); `separator` goes
//! between keys in `Matching`.
//!
//! Question values: `Matching` (the keys of the matching members, in join order),
//! `MatchCount`, `MemberCount`, `Group` (the batch's `by` value; empty for a single object).

use alteryx_router_plugin::{Object, Outcome, Request, log};

#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    columns: Vec<String>,
    required: Vec<String>,
    delimiter: String,
    line_bytes: u64,
    separator: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            columns: Vec::new(),
            required: Vec::new(),
            delimiter: ",".into(),
            line_bytes: 4096,
            separator: "\n".into(),
        }
    }
}

/// Keys listed in a skip reason at most; more are counted.
const LISTED_KEYS: usize = 20;

pub fn route(request: &Request, object: &mut Object) -> Result<Outcome, String> {
    let config: Config = request.config()?;
    if config.delimiter.is_empty() {
        return Err("plugin.config: delimiter is empty".into());
    }
    // A batch's members, or the object alone: (key, header columns).
    let mut headers = Vec::new();
    match &request.batch {
        Some(batch) => {
            for (i, member) in batch.members.iter().enumerate() {
                let line = first_line(&member.key, member.size, config.line_bytes, |o, n| {
                    object.read_member_at(i as u32, o, n)
                })?;
                headers.push((member.key.clone(), columns(&line, &config.delimiter)));
            }
        }
        None => {
            let key = &request.object.key;
            let line = first_line(key, object.size(), config.line_bytes, |o, n| {
                object.read_at(o, n)
            })?;
            headers.push((key.clone(), columns(&line, &config.delimiter)));
        }
    }
    log::info(&format!(
        "{} member(s), {} bytes read",
        headers.len(),
        object.bytes_read()
    ));
    for wanted in &config.required {
        let wanted = normalise(wanted);
        if !headers.iter().any(|(_, cols)| cols.contains(&wanted)) {
            let keys: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
            let more = keys.len().saturating_sub(LISTED_KEYS);
            let mut listed = keys[..keys.len().min(LISTED_KEYS)].join(", ");
            if more > 0 {
                listed.push_str(&format!(" and {more} more"));
            }
            return Ok(Outcome::skip(format!(
                "no member's header has column `{wanted}` ({} member(s): {listed})",
                keys.len()
            )));
        }
    }
    let wanted: Vec<String> = config.columns.iter().map(|c| normalise(c)).collect();
    let matching: Vec<&str> = headers
        .iter()
        .filter(|(_, cols)| wanted.iter().all(|w| cols.contains(w)))
        .map(|(k, _)| k.as_str())
        .collect();
    Ok(Outcome::questions([
        ("Matching", matching.join(&config.separator)),
        ("MatchCount", matching.len().to_string()),
        ("MemberCount", headers.len().to_string()),
        (
            "Group",
            request
                .batch
                .as_ref()
                .map(|b| b.group.clone())
                .unwrap_or_default(),
        ),
    ]))
}

/// The first line of a file of `size` bytes, from one read of at most `line_bytes` bytes.
fn first_line(
    key: &str,
    size: u64,
    line_bytes: u64,
    mut read: impl FnMut(u64, u64) -> Vec<u8>,
) -> Result<String, String> {
    let length = size.min(line_bytes);
    let bytes = if length == 0 {
        Vec::new()
    } else {
        read(0, length)
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let line = match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => &bytes[..end],
        None if size > line_bytes => {
            return Err(format!(
                "the first line of `{key}` is longer than {line_bytes} bytes (plugin.config.line_bytes)"
            ));
        }
        None => bytes,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(String::from_utf8_lossy(line).into_owned())
}

fn columns(line: &str, delimiter: &str) -> Vec<String> {
    line.split(delimiter).map(normalise).collect()
}

/// A column name as compared: no surrounding blanks or double quotes, lower case.
fn normalise(name: &str) -> String {
    name.trim().trim_matches('"').trim().to_lowercase()
}

alteryx_router_plugin::export_plugin!(route);

#[cfg(test)]
mod tests {
    use super::*;
    use alteryx_router_plugin::testing::TestRun;

    fn month_end() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                "2026-10/orders.csv",
                b"order_id,customer_id,amount\n1,7,9.5\n".to_vec(),
            ),
            (
                "2026-10/ledger.csv",
                b"\xEF\xBB\xBF\"Account\" ; \"Amount\"\r\n".to_vec(),
            ),
            (
                "2026-10/customers.csv",
                b"customer_id,name\r\n7,Ada\n".to_vec(),
            ),
        ]
    }

    #[test]
    fn answers_the_members_whose_header_matches_in_join_order() {
        let ran = TestRun::batch("2026-10", month_end())
            .config(r#"{"columns": ["Customer_ID"], "separator": ";"}"#)
            .run(route);
        assert_eq!(
            ran.outcome,
            Ok(Outcome::questions([
                ("Matching", "2026-10/orders.csv;2026-10/customers.csv"),
                ("MatchCount", "2"),
                ("MemberCount", "3"),
                ("Group", "2026-10"),
            ]))
        );
        let members: Vec<Option<u32>> = ran.reads.iter().map(|r| r.member).collect();
        assert_eq!(members, [Some(0), Some(1), Some(2)]);
        assert_eq!(ran.bytes_read, 36 + 25 + 24);
    }

    #[test]
    fn skips_a_batch_missing_a_required_column() {
        let ran = TestRun::batch("2026-10", month_end())
            .config(r#"{"required": ["amount", "period"]}"#)
            .run(route);
        assert_eq!(
            ran.outcome,
            Ok(Outcome::skip(
                "no member's header has column `period` (3 member(s): 2026-10/orders.csv, 2026-10/ledger.csv, 2026-10/customers.csv)"
            ))
        );
    }

    #[test]
    fn the_delimiter_is_configurable() {
        let ran = TestRun::batch("g", month_end())
            .config(r#"{"columns": ["account", "amount"], "delimiter": ";"}"#)
            .run(route);
        assert_eq!(
            ran.outcome.unwrap(),
            Outcome::questions([
                ("Matching", "2026-10/ledger.csv"),
                ("MatchCount", "1"),
                ("MemberCount", "3"),
                ("Group", "g"),
            ])
        );
    }

    #[test]
    fn a_single_object_is_a_batch_of_one() {
        let ran = TestRun::new("orders.csv", b"order_id,amount\n1,2\n".to_vec())
            .config(r#"{"columns": ["amount"]}"#)
            .run(route);
        assert_eq!(
            ran.outcome.unwrap(),
            Outcome::questions([
                ("Matching", "orders.csv"),
                ("MatchCount", "1"),
                ("MemberCount", "1"),
                ("Group", ""),
            ])
        );
    }

    #[test]
    fn a_first_line_longer_than_line_bytes_is_an_error_naming_the_member() {
        let ran = TestRun::batch("g", month_end())
            .config(r#"{"line_bytes": 10}"#)
            .run(route);
        assert_eq!(
            ran.outcome,
            Err("the first line of `2026-10/orders.csv` is longer than 10 bytes (plugin.config.line_bytes)".into())
        );
    }

    #[test]
    fn the_members_share_one_budget() {
        let ran = TestRun::batch("g", month_end()).read_budget(60).run(route);
        let error = ran.outcome.unwrap_err();
        assert!(
            error.contains("of batch member 1, beyond its read budget: 36 of 60 bytes"),
            "{error}"
        );
    }

    #[test]
    fn an_empty_member_has_no_columns() {
        let ran = TestRun::batch("g", [("a.csv", b"x\n".to_vec()), ("b.csv", Vec::new())])
            .config(r#"{"columns": ["x"]}"#)
            .run(route);
        assert_eq!(
            ran.outcome.unwrap(),
            Outcome::questions([
                ("Matching", "a.csv"),
                ("MatchCount", "1"),
                ("MemberCount", "2"),
                ("Group", "g"),
            ])
        );
        assert_eq!(ran.reads.len(), 1, "an empty member is not read");
    }
}
