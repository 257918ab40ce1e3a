//! The compiled rules snapshot: a whole rule set in one object, loaded without decoding it.
//!
//! Written whenever the rules change (`rules put`/`rules delete`, the rules-table stream
//! function, `rules snapshot`) and read by the router at cold start in one request instead of
//! scanning the table. Loading it costs a few milliseconds at 100,000 rules because nothing is
//! decoded up front: the rule index is stored ready to use, and a rule's JSON is read and
//! validated only when an object first makes it a candidate ([`LazyRules`]).
//!
//! Layout (integers little-endian; positions are in evaluation order):
//!
//! ```text
//! magic "ARSNAP\0\x01" | u32 n, header JSON (SnapshotInfo)
//! u32 rule count R | (R+1) × u32 record offsets | u32 n, records
//!     (a record: u16 id length, id, the rule as JSON)
//! R × u32 positions sorted by id
//! u32 F | F × (u64 anchor hash, u32 position), sorted   (the index, see `index`)
//! u32 A | A × u32 positions checked for every object
//! ```
//!
//! Every offset is checked before use; a snapshot that does not read is an error (the store
//! then scans the table), a record that does not read is logged and left out.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::decoded::Decoded;
use super::index::KeyIndex;
use super::{CompiledRule, Rule, RuleSet};

const MAGIC: &[u8; 8] = b"ARSNAP\0\x01";
/// Bumped when the layout or the anchor hashes change; other formats are refused.
pub const FORMAT: u32 = 1;

/// What a snapshot says about itself (`rules snapshot` shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub format: u32,
    /// When it was built (RFC 3339).
    pub built_at: String,
    /// The DynamoDB table it was built from.
    pub table: String,
    /// Valid rules in it.
    pub rules: usize,
    /// Items that failed validation: left out of the rules, kept here for `rules list` and so
    /// that each problem is notified once.
    #[serde(default)]
    pub invalid: Vec<InvalidItem>,
    /// What wrote it (`alteryx-router <version>`).
    pub builder: String,
}

/// A table item that is not a valid rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidItem {
    /// The item's `id` (or a placeholder when it has none).
    pub id: String,
    /// The field at fault.
    pub field: String,
    pub message: String,
    /// Hex digest of the item as stored: a new edit of the item is a new problem.
    pub fingerprint: String,
    /// Whether a notification about this very problem was published.
    #[serde(default)]
    pub notified: bool,
}

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a rules snapshot (wrong magic bytes)")]
    NotASnapshot,
    #[error("snapshot format {found}, this build reads format {FORMAT}")]
    Format { found: u32 },
    #[error("snapshot truncated or corrupt: {what}")]
    Corrupt { what: &'static str },
    #[error("snapshot header")]
    Header(#[source] serde_json::Error),
    #[error("rule `{id}` cannot be encoded")]
    Encode {
        id: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Encode a rule set (its rules, in order, and its index) with `info`.
pub fn encode(set: &RuleSet, info: &SnapshotInfo) -> Result<Vec<u8>, SnapshotError> {
    let rules = set.rules();
    let header = serde_json::to_vec(info).map_err(SnapshotError::Header)?;
    let mut records = Vec::with_capacity(rules.len() * 160);
    let mut offsets = Vec::with_capacity(rules.len() + 1);
    for r in rules {
        offsets.push(records.len() as u32);
        let id = r.rule.id.as_bytes();
        records.extend_from_slice(&(id.len().min(u16::MAX as usize) as u16).to_le_bytes());
        records.extend_from_slice(&id[..id.len().min(u16::MAX as usize)]);
        serde_json::to_writer(&mut records, &r.rule).map_err(|source| SnapshotError::Encode {
            id: r.rule.id.clone(),
            source,
        })?;
    }
    offsets.push(records.len() as u32);
    let mut by_id: Vec<u32> = (0..rules.len() as u32).collect();
    by_id.sort_by(|&a, &b| rules[a as usize].rule.id.cmp(&rules[b as usize].rule.id));
    let (filed, always) = set.index().filed();

    let mut out = Vec::with_capacity(64 + header.len() + records.len() + rules.len() * 24);
    out.extend_from_slice(MAGIC);
    put_u32(&mut out, header.len());
    out.extend_from_slice(&header);
    put_u32(&mut out, rules.len());
    for o in offsets {
        out.extend_from_slice(&o.to_le_bytes());
    }
    put_u32(&mut out, records.len());
    out.extend_from_slice(&records);
    for p in by_id {
        out.extend_from_slice(&p.to_le_bytes());
    }
    put_u32(&mut out, filed.len());
    for (hash, position) in filed {
        out.extend_from_slice(&hash.to_le_bytes());
        out.extend_from_slice(&position.to_le_bytes());
    }
    put_u32(&mut out, always.len());
    for p in always {
        out.extend_from_slice(&p.to_le_bytes());
    }
    Ok(out)
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

/// A bounds-checked reader over the snapshot bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SnapshotError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(SnapshotError::Corrupt { what })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, SnapshotError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, SnapshotError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The header of a snapshot from its first bytes; `None` when they end before the header does.
pub fn read_info(bytes: &[u8]) -> Result<Option<SnapshotInfo>, SnapshotError> {
    if !bytes.starts_with(MAGIC) {
        return Err(SnapshotError::NotASnapshot);
    }
    let Some(len) = u32_at(bytes, MAGIC.len()) else {
        return Ok(None);
    };
    let start = MAGIC.len() + 4;
    match bytes.get(start..start + len as usize) {
        Some(header) => serde_json::from_slice(header)
            .map(Some)
            .map_err(SnapshotError::Header),
        None => Ok(None),
    }
}

/// Read a snapshot: its header and a rule set that decodes rules on first use, keeping at
/// most [`DEFAULT_DECODED_MAX`](super::DEFAULT_DECODED_MAX) of them decoded.
pub fn decode(bytes: Vec<u8>) -> Result<(SnapshotInfo, RuleSet), SnapshotError> {
    decode_keeping(bytes, super::DEFAULT_DECODED_MAX)
}

/// [`decode`], keeping at most `decoded_max` rules decoded (`RULES_DECODED_MAX`).
pub fn decode_keeping(
    bytes: Vec<u8>,
    decoded_max: usize,
) -> Result<(SnapshotInfo, RuleSet), SnapshotError> {
    let mut r = Reader {
        bytes: &bytes,
        at: 0,
    };
    if r.take(MAGIC.len(), "magic").ok() != Some(&MAGIC[..]) {
        // A different format version has the same first bytes but another last one.
        if bytes.starts_with(&MAGIC[..7]) && bytes.len() >= 8 {
            return Err(SnapshotError::Format {
                found: u32::from(bytes[7]),
            });
        }
        return Err(SnapshotError::NotASnapshot);
    }
    let header_len = r.u32("header length")? as usize;
    let info: SnapshotInfo =
        serde_json::from_slice(r.take(header_len, "header")?).map_err(SnapshotError::Header)?;
    if info.format != FORMAT {
        return Err(SnapshotError::Format { found: info.format });
    }
    let count = r.u32("rule count")? as usize;
    let offsets_at = r.at;
    r.take(
        count
            .checked_add(1)
            .and_then(|n| n.checked_mul(4))
            .ok_or(SnapshotError::Corrupt {
                what: "record offsets",
            })?,
        "record offsets",
    )?;
    let records_len = r.u32("records length")? as usize;
    let records_at = r.at;
    r.take(records_len, "records")?;
    if u32_at(&bytes, offsets_at + count * 4) != Some(records_len as u32) {
        return Err(SnapshotError::Corrupt {
            what: "record offsets",
        });
    }
    let by_id_at = r.at;
    r.take(count * 4, "id table")?;
    let filed = r.u32("index length")? as usize;
    let mut pairs = Vec::with_capacity(filed.min(count));
    let mut previous = (0u64, 0u32);
    for _ in 0..filed {
        let pair = (r.u64("index")?, r.u32("index")?);
        if pair < previous || pair.1 as usize >= count {
            return Err(SnapshotError::Corrupt { what: "index" });
        }
        previous = pair;
        pairs.push(pair);
    }
    let always_len = r.u32("always list length")? as usize;
    let mut always = Vec::with_capacity(always_len.min(count));
    for _ in 0..always_len {
        let p = r.u32("always list")?;
        if p as usize >= count {
            return Err(SnapshotError::Corrupt {
                what: "always list",
            });
        }
        always.push(p);
    }
    if r.at != bytes.len() {
        return Err(SnapshotError::Corrupt {
            what: "trailing bytes",
        });
    }
    let index = KeyIndex::from_sorted(&pairs, always);
    drop(pairs);
    let lazy = LazyRules {
        decoded: Decoded::new(decoded_max),
        all: OnceLock::new(),
        bytes: bytes.into_boxed_slice(),
        count,
        offsets_at,
        records_at,
        by_id_at,
    };
    Ok((info, RuleSet::from_snapshot(lazy, index)))
}

/// Rules held as their snapshot records, each decoded and validated once, when first needed.
pub(crate) struct LazyRules {
    bytes: Box<[u8]>,
    count: usize,
    offsets_at: usize,
    records_at: usize,
    by_id_at: usize,
    decoded: Decoded,
    all: OnceLock<Vec<CompiledRule>>,
}

impl std::fmt::Debug for LazyRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyRules")
            .field("rules", &self.count)
            .field("bytes", &self.bytes.len())
            .field("decoded", &self.decoded)
            .finish()
    }
}

impl LazyRules {
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The id and JSON of the record at `position`.
    fn record(&self, position: usize) -> Option<(&str, &[u8])> {
        let start = u32_at(&self.bytes, self.offsets_at + position * 4)? as usize;
        let end = u32_at(&self.bytes, self.offsets_at + (position + 1) * 4)? as usize;
        let record = self
            .bytes
            .get(self.records_at + start..self.records_at + end)?;
        let (len, rest) = record.split_at_checked(2)?;
        let (id, json) =
            rest.split_at_checked(usize::from(u16::from_le_bytes([len[0], len[1]])))?;
        Some((std::str::from_utf8(id).ok()?, json))
    }

    fn decode(&self, position: usize) -> Option<CompiledRule> {
        let Some((id, json)) = self.record(position) else {
            tracing::warn!(position, "rules snapshot: record unreadable; rule left out");
            return None;
        };
        let compiled = serde_json::from_slice::<Rule>(json)
            .map_err(|e| e.to_string())
            .and_then(|rule| CompiledRule::compile(rule).map_err(|e| e.to_string()));
        match compiled {
            Ok(rule) => Some(rule),
            Err(error) => {
                tracing::warn!(rule = %id, %error, "rules snapshot: rule does not read in this version; left out");
                None
            }
        }
    }

    /// The rule at `position`, decoded when it is not kept decoded (see [`Decoded`]).
    pub(crate) fn get(&self, position: usize) -> Option<Arc<CompiledRule>> {
        if position >= self.count {
            return None;
        }
        self.decoded
            .get_or_decode(position as u32, || self.decode(position))
    }

    /// How many rules are kept decoded, and how many decodes there were.
    pub(crate) fn decoded_counts(&self) -> (usize, u64) {
        self.decoded.counts()
    }

    /// Every readable rule, in order (decoded once, on first call).
    pub(crate) fn all(&self) -> &[CompiledRule] {
        self.all
            .get_or_init(|| (0..self.count).filter_map(|i| self.decode(i)).collect())
    }

    /// The position of the rule with this id (binary search of the id table).
    pub(crate) fn position_of(&self, id: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let position = u32_at(&self.bytes, self.by_id_at + mid * 4)? as usize;
            let (found, _) = self.record(position)?;
            match found.cmp(id) {
                std::cmp::Ordering::Equal => return Some(position),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ObjectCreated;
    use crate::rules::parse_rules_document;

    fn info(rules: usize) -> SnapshotInfo {
        SnapshotInfo {
            format: FORMAT,
            built_at: "2026-11-25T00:00:00Z".into(),
            table: "rules".into(),
            rules,
            invalid: vec![InvalidItem {
                id: "typo".into(),
                field: "prority".into(),
                message: "unknown field".into(),
                fingerprint: "ab".into(),
                notified: true,
            }],
            builder: "test".into(),
        }
    }

    fn obj(bucket: &str, key: &str) -> ObjectCreated {
        ObjectCreated {
            bucket: bucket.into(),
            key: key.into(),
            size: 10,
            etag: None,
            version_id: None,
            sequencer: Some("1".into()),
            event_time: "2026-11-24T00:00:00Z".into(),
            reason: None,
            source: "test".into(),
        }
    }

    fn sample() -> RuleSet {
        let yaml = "- {id: b-csv, priority: 2, key: 'in/**/*.csv', workflow: w1, questions: {P: '{s3_uri}'}}\n\
                    - {id: a-all, priority: 1, key: '**', bucket: acme, workflow: w2}\n\
                    - {id: c-off, enabled: false, key: '**', workflow: w3}\n\
                    - {id: d-any, priority: 9, key: '**/x/*', workflow: w4, final: true}\n\
                    - {id: jp, priority: 3, key: '受信/*.csv', workflow: w5, plugin: {name: p, config: {a: [1, 2]}}}";
        RuleSet::new(parse_rules_document(yaml, "t").unwrap()).unwrap()
    }

    #[test]
    fn a_snapshot_reads_back_as_the_same_rules_and_matches_the_same() {
        let set = sample();
        let bytes = encode(&set, &info(set.len())).unwrap();
        let (read_info, loaded) = decode(bytes).unwrap();
        assert_eq!(read_info, info(5));
        assert_eq!(loaded.len(), 5);
        let objects = [
            obj("acme", "in/2026/a.csv"),
            obj("other", "in/x/a.csv"),
            obj("acme", "受信/a.csv"),
            obj("z", "nothing"),
        ];
        for o in &objects {
            let ids = |s: &RuleSet| {
                s.matching(o)
                    .iter()
                    .map(|r| r.rule.id.clone())
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(&loaded), ids(&set), "{}", o.key);
            assert_eq!(loaded.explain(o), set.explain(o), "{}", o.key);
        }
        assert_eq!(loaded.get("jp").unwrap().rule, set.get("jp").unwrap().rule);
        assert!(loaded.get("nope").is_none());
        let all: Vec<&Rule> = loaded.rules().iter().map(|r| &r.rule).collect();
        let want: Vec<&Rule> = set.rules().iter().map(|r| &r.rule).collect();
        assert_eq!(all, want);
    }

    #[test]
    fn a_set_keeping_one_rule_decoded_matches_the_same_while_it_drops_and_decodes_again() {
        let set = sample();
        let bytes = encode(&set, &info(set.len())).unwrap();
        let (_, loaded) = decode_keeping(bytes, 1).unwrap();
        let objects = [
            obj("acme", "in/2026/a.csv"),
            obj("acme", "in/2026/x/a.csv"),
            obj("other", "in/x/a.csv"),
            obj("acme", "受信/a.csv"),
        ];
        for round in 0..3 {
            for o in &objects {
                let ids = |s: &RuleSet| {
                    s.matching(o)
                        .iter()
                        .map(|r| r.rule.id.clone())
                        .collect::<Vec<_>>()
                };
                assert_eq!(ids(&loaded), ids(&set), "round {round}: {}", o.key);
                assert_eq!(loaded.explain(o), set.explain(o), "{}", o.key);
            }
        }
        let (kept, decodes) = loaded.decoded_counts().unwrap();
        assert_eq!(kept, 1);
        assert!(
            decodes > 10,
            "{decodes} decodes: rules were dropped and decoded again"
        );
        // A rule held by a caller stays whole after the set dropped it.
        let held = loaded.get("jp").unwrap();
        loaded.get("b-csv").unwrap();
        assert_eq!(held.rule, set.get("jp").unwrap().rule);
    }

    #[test]
    fn damaged_snapshots_are_errors_never_panics() {
        let set = sample();
        let bytes = encode(&set, &info(set.len())).unwrap();
        assert!(matches!(
            decode(b"hello".to_vec()),
            Err(SnapshotError::NotASnapshot)
        ));
        let mut other = bytes.clone();
        other[7] = 2;
        assert!(matches!(
            decode(other),
            Err(SnapshotError::Format { found: 2 })
        ));
        for cut in [9, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(bytes[..cut].to_vec()).is_err(), "cut at {cut}");
        }
        // Flip bytes everywhere: each result is an error or a set that still answers.
        for at in (8..bytes.len()).step_by(7) {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x5a;
            if let Ok((_, s)) = decode(damaged) {
                let _ = s.matching(&obj("acme", "in/2026/a.csv"));
                let _ = s.rules().len();
                let _ = s.get("b-csv");
            }
        }
    }

    #[test]
    fn an_empty_set_round_trips() {
        let set = RuleSet::empty();
        let (_, loaded) = decode(encode(&set, &info(0)).unwrap()).unwrap();
        assert!(loaded.is_empty());
        assert!(loaded.matching(&obj("a", "b")).is_empty());
    }
}
