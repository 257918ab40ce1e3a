//! The rule index: which rules an object could match, found with a few hash lookups.
//!
//! Each enabled rule is filed under one *anchor*, a literal that every object its rule matches
//! must have (see [`Anchors`]): its whole key (when the key glob is a plain string), a directory
//! prefix of the key, a whole path segment, the key's extension, or the bucket (when the bucket
//! glob is a plain name). Of a rule's anchors the one the fewest rules share is chosen, so
//! `incoming/*/partner-7/*.csv` is filed under the segment `partner-7` rather than the
//! `incoming/` every partner rule has, and a rule `key: "**"` for bucket `acme-eu` under its
//! bucket. Rules with no anchor at all (`**` in any bucket) are candidates for every object.
//!
//! An object yields the anchors it has (its key, each directory prefix, each segment, its
//! extension, its bucket): a dozen hash lookups for a typical key, however many rules there
//! are. Candidates are then checked with their whole globs, so the index only has to never
//! leave out a rule that could match; a hash collision costs one wasted check, never a wrong
//! answer. Anchors are kept as 64-bit FNV-1a hashes, stable across builds, because the rules
//! snapshot stores them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::glob::{Anchors, PathGlob, key_extension};

/// What kind of literal an anchor is; part of its hash so a segment `a` and a bucket `a` differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum AnchorKind {
    Exact = 1,
    DirPrefix = 2,
    Segment = 3,
    Extension = 4,
    Bucket = 5,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv_step(hash: u64, byte: u8) -> u64 {
    (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
}

/// FNV-1a's high bits are weak for short strings; the map uses all of them.
fn finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn anchor_hash(kind: AnchorKind, bytes: &[u8]) -> u64 {
    finish(
        bytes
            .iter()
            .fold(fnv_step(FNV_OFFSET, kind as u8), |h, &b| fnv_step(h, b)),
    )
}

/// Where a rule is filed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filing {
    /// Under this anchor hash.
    Anchor(u64),
    /// Checked for every object.
    Always,
}

/// One anchor a rule could be filed under, with a preference for ties (lower first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    hash: u64,
    kind: AnchorKind,
}

/// The anchors a rule could be filed under. `None` when a glob does not parse (the rule is
/// then invalid and never indexed).
pub(crate) fn candidates(key_glob: &str, bucket_glob: Option<&str>) -> Option<Vec<Candidate>> {
    let (_, key) = PathGlob::with_anchors(key_glob).ok()?;
    let bucket = match bucket_glob {
        Some(b) => PathGlob::with_anchors(b).ok()?.1.exact,
        None => None,
    };
    Some(candidates_of(&key, bucket.as_deref()))
}

fn candidates_of(key: &Anchors, bucket: Option<&str>) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut add = |kind: AnchorKind, text: &str| {
        out.push(Candidate {
            hash: anchor_hash(kind, text.as_bytes()),
            kind,
        })
    };
    if let Some(exact) = &key.exact {
        add(AnchorKind::Exact, exact);
    }
    if let Some(prefix) = &key.dir_prefix {
        add(AnchorKind::DirPrefix, prefix);
    }
    for segment in &key.segments {
        add(AnchorKind::Segment, segment);
    }
    if let Some(ext) = &key.extension {
        add(AnchorKind::Extension, ext);
    }
    if let Some(bucket) = bucket {
        add(AnchorKind::Bucket, bucket);
    }
    out
}

/// Choose each rule's filing: of its candidates, the anchor the fewest rules could share.
/// `None` entries (disabled or invalid rules) stay unfiled.
pub(crate) fn choose(rules: &[Option<Vec<Candidate>>]) -> Vec<Option<Filing>> {
    let total = rules.iter().flatten().map(Vec::len).sum();
    let mut shared: HashMap<u64, u32, Prehashed> =
        HashMap::with_capacity_and_hasher(total, Default::default());
    for c in rules.iter().flatten().flatten() {
        *shared.entry(c.hash).or_default() += 1;
    }
    rules
        .iter()
        .map(|r| {
            r.as_ref().map(|cands| {
                cands
                    .iter()
                    .min_by_key(|c| (shared.get(&c.hash).copied().unwrap_or(0), c.kind))
                    .map_or(Filing::Always, |c| Filing::Anchor(c.hash))
            })
        })
        .collect()
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
pub(crate) struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = fnv_step(self.0 ^ FNV_OFFSET, b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Prehashed = BuildHasherDefault<PrehashedHasher>;

/// Anchor hash → the rules filed under it (positions in evaluation order, ascending).
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    groups: HashMap<u64, (u32, u32), Prehashed>,
    postings: Vec<u32>,
    always: Vec<u32>,
}

impl KeyIndex {
    /// From (rule position, filing) pairs.
    pub(crate) fn from_filings(filings: impl IntoIterator<Item = (u32, Filing)>) -> Self {
        let mut filed = Vec::new();
        let mut always = Vec::new();
        for (rule, filing) in filings {
            match filing {
                Filing::Anchor(hash) => filed.push((hash, rule)),
                Filing::Always => always.push(rule),
            }
        }
        filed.sort_unstable();
        always.sort_unstable();
        Self::from_sorted(&filed, always)
    }

    /// From (anchor hash, rule position) pairs sorted by hash, then position.
    pub(crate) fn from_sorted(filed: &[(u64, u32)], always: Vec<u32>) -> Self {
        let mut groups: HashMap<u64, (u32, u32), Prehashed> = HashMap::default();
        let mut postings = Vec::with_capacity(filed.len());
        for chunk in filed.chunk_by(|a, b| a.0 == b.0) {
            groups.insert(chunk[0].0, (postings.len() as u32, chunk.len() as u32));
            postings.extend(chunk.iter().map(|&(_, rule)| rule));
        }
        KeyIndex {
            groups,
            postings,
            always,
        }
    }

    /// Every (anchor hash, rule position) pair, sorted, and the always-checked rules: what the
    /// snapshot stores.
    pub(crate) fn filed(&self) -> (Vec<(u64, u32)>, &[u32]) {
        let mut filed: Vec<(u64, u32)> = self
            .groups
            .iter()
            .flat_map(|(&hash, &(start, len))| {
                self.postings[start as usize..(start + len) as usize]
                    .iter()
                    .map(move |&rule| (hash, rule))
            })
            .collect();
        filed.sort_unstable();
        (filed, &self.always)
    }

    /// Positions of the rules `bucket`/`key` could match, ascending, each once.
    pub(crate) fn candidates(&self, bucket: &str, key: &str) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        let mut look = |hash: u64| {
            if let Some(&(start, len)) = self.groups.get(&hash) {
                out.extend_from_slice(&self.postings[start as usize..(start + len) as usize]);
            }
        };
        if !self.groups.is_empty() {
            let bytes = key.as_bytes();
            look(anchor_hash(AnchorKind::Exact, bytes));
            let mut running = fnv_step(FNV_OFFSET, AnchorKind::DirPrefix as u8);
            for &b in bytes {
                running = fnv_step(running, b);
                if b == b'/' {
                    look(finish(running));
                }
            }
            for segment in key.split('/').filter(|s| !s.is_empty()) {
                look(anchor_hash(AnchorKind::Segment, segment.as_bytes()));
            }
            if let Some(ext) = key_extension(key) {
                look(anchor_hash(AnchorKind::Extension, ext.as_bytes()));
            }
            look(anchor_hash(AnchorKind::Bucket, bucket.as_bytes()));
        }
        out.extend_from_slice(&self.always);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Rules filed under an anchor, and rules checked always.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.postings.len(), self.always.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(rules: &[(&str, Option<&str>)]) -> (KeyIndex, Vec<Option<Filing>>) {
        let cands: Vec<_> = rules.iter().map(|(k, b)| candidates(k, *b)).collect();
        let filings = choose(&cands);
        let index = KeyIndex::from_filings(
            filings
                .iter()
                .enumerate()
                .filter_map(|(i, f)| f.map(|f| (i as u32, f))),
        );
        (index, filings)
    }

    #[test]
    fn rules_are_filed_under_their_rarest_anchor() {
        let mut rules: Vec<(String, Option<&str>)> = (0..50)
            .map(|i| (format!("incoming/*/partner-{i}/*.csv"), None))
            .collect();
        rules.push(("**".into(), Some("acme-eu")));
        rules.push(("**".into(), None));
        rules.push(("**/*.json".into(), None));
        let borrowed: Vec<(&str, Option<&str>)> =
            rules.iter().map(|(k, b)| (k.as_str(), *b)).collect();
        let (index, filings) = index(&borrowed);
        assert_eq!(
            filings[7],
            Some(Filing::Anchor(anchor_hash(
                AnchorKind::Segment,
                b"partner-7"
            )))
        );
        assert_eq!(
            filings[50],
            Some(Filing::Anchor(anchor_hash(AnchorKind::Bucket, b"acme-eu")))
        );
        assert_eq!(filings[51], Some(Filing::Always));
        assert_eq!(index.counts(), (52, 1));
        assert_eq!(
            index.candidates("acme-us", "incoming/x/partner-7/a.csv"),
            [7, 51]
        );
        assert_eq!(index.candidates("acme-eu", "z/a.json"), [50, 51, 52]);
        let (filed, always) = index.filed();
        let rebuilt = KeyIndex::from_sorted(&filed, always.to_vec());
        assert_eq!(
            rebuilt.candidates("acme-eu", "incoming/x/partner-7/a.csv"),
            [7, 50, 51]
        );
    }

    #[test]
    fn hashes_are_stable() {
        // The snapshot stores these: changing the function needs a new snapshot format.
        assert_eq!(
            anchor_hash(AnchorKind::DirPrefix, b"incoming/"),
            0xd163_8ec2_e8aa_f8d8
        );
    }
}
