//! The matcher: which rules apply to an object, in which order.
//!
//! Rules are kept in evaluation order (priority, lower first, ties by id). An index
//! ([`super::index`]) files every enabled rule under one literal its matches must have (a
//! directory prefix, a path segment, an extension, a bucket name), so an object's candidates
//! come from a dozen hash lookups whatever the number of rules. Each candidate's key glob is
//! then matched ([`super::glob`]: `globset`'s syntax and meaning, no regex), then bucket,
//! excludes and size bounds; a matching `final` rule stops the evaluation.
//!
//! Building a set costs no glob compilation beyond parsing, and a set read from a rules
//! snapshot ([`super::snapshot`]) decodes a rule only when an object first makes it a
//! candidate: that is what keeps loading 100,000 rules in a small function cheap.

use serde::Serialize;

use super::index::{self, KeyIndex};
use super::snapshot::LazyRules;
use super::{Cap, CompiledRule, Rule, RuleError};
use crate::event::ObjectCreated;

/// A validated, ordered set of rules. Share it in an `Arc`.
#[derive(Debug)]
pub struct RuleSet {
    rules: Rules,
    index: KeyIndex,
}

#[derive(Debug)]
enum Rules {
    /// Every rule validated and compiled (files, scans, the CLI).
    Compiled(Vec<CompiledRule>),
    /// Rules decoded from a snapshot on first use (the Lambda).
    Snapshot(Box<LazyRules>),
}

/// A rule of a set: borrowed from a set that holds every rule compiled, or shared with the
/// decoded rules a snapshot set keeps (which may drop it meanwhile: it lives on here).
#[derive(Debug, Clone)]
pub enum RuleRef<'a> {
    Borrowed(&'a CompiledRule),
    Decoded(std::sync::Arc<CompiledRule>),
}

impl std::ops::Deref for RuleRef<'_> {
    type Target = CompiledRule;

    fn deref(&self) -> &CompiledRule {
        match self {
            RuleRef::Borrowed(rule) => rule,
            RuleRef::Decoded(rule) => rule,
        }
    }
}

/// Every rule of a `concurrency_group` must give the group the same `max_concurrent_jobs`.
/// (A set loaded leniently at run time is not refused for it: each rule's jobs then count
/// against the group with the rule's own cap, so the group's jobs stay under the largest.)
pub(crate) fn check_groups<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> Result<(), RuleError> {
    check_caps(rules.into_iter().map(|r| (r.id.as_str(), r.cap())))
}

/// [`check_groups`] over each rule's id and cap, in the order given.
pub(crate) fn check_caps<'a>(
    rules: impl IntoIterator<Item = (&'a str, Option<Cap>)>,
) -> Result<(), RuleError> {
    let mut caps: std::collections::HashMap<String, (&str, u32)> = Default::default();
    for (id, cap) in rules {
        let Some(cap) = cap else { continue };
        match caps.get(&cap.group) {
            Some((first, max)) if *max != cap.max_concurrent_jobs => {
                return Err(RuleError::Invalid {
                    rule: id.to_string(),
                    field: "max_concurrent_jobs".into(),
                    message: format!(
                        "{} differs from {max} on rule `{first}` of the same concurrency group `{}`; every rule of a group gives it the same cap",
                        cap.max_concurrent_jobs, cap.group
                    ),
                });
            }
            Some(_) => {}
            None => {
                caps.insert(cap.group, (id, cap.max_concurrent_jobs));
            }
        }
    }
    Ok(())
}

/// Why a rule did or did not match an object (for `rules test`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "detail", rename_all = "snake_case")]
pub enum MatchVerdict {
    Matched,
    Disabled,
    Bucket(String),
    Key(String),
    Excluded(String),
    TooSmall(u64),
    TooLarge(u64),
    /// It would match, but a higher-priority `final` rule matched first.
    AfterFinal(String),
}

impl RuleSet {
    /// Every rule must be valid and ids unique.
    pub fn new(rules: Vec<Rule>) -> Result<Self, RuleError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for rule in rules {
            compiled.push(CompiledRule::compile(rule)?);
        }
        Self::from_valid(compiled)
    }

    /// From rules each valid on its own: the checks across rules (a group's cap, unique ids)
    /// and the index.
    pub(crate) fn from_valid(compiled: Vec<CompiledRule>) -> Result<Self, RuleError> {
        check_groups(compiled.iter().map(|r| &r.rule))?;
        Self::from_compiled(compiled)
    }

    /// Invalid rules (and later duplicates of an id) are left out and returned, so one bad
    /// item in a table does not stop the other rules.
    pub fn lenient(rules: Vec<Rule>) -> (Self, Vec<RuleError>) {
        let mut errors = Vec::new();
        let mut compiled: Vec<CompiledRule> = Vec::with_capacity(rules.len());
        let mut seen = std::collections::HashSet::new();
        for rule in rules {
            if !seen.insert(rule.id.clone()) {
                errors.push(RuleError::Duplicate { id: rule.id });
                continue;
            }
            match CompiledRule::compile(rule) {
                Ok(c) => compiled.push(c),
                Err(e) => errors.push(e),
            }
        }
        match Self::from_compiled(compiled) {
            Ok(set) => (set, errors),
            // Unreachable in practice (ids deduplicated); stay total anyway.
            Err(e) => {
                errors.push(e);
                (Self::empty(), errors)
            }
        }
    }

    pub fn empty() -> Self {
        RuleSet {
            rules: Rules::Compiled(Vec::new()),
            index: KeyIndex::default(),
        }
    }

    fn from_compiled(mut rules: Vec<CompiledRule>) -> Result<Self, RuleError> {
        // Unstable: no buffer of half the rules beside them (35 MiB at 100,000), and only
        // duplicate ids compare equal, which are refused below whatever their order.
        rules.sort_unstable_by(|a, b| {
            (a.rule.priority, &a.rule.id).cmp(&(b.rule.priority, &b.rule.id))
        });
        let mut ids = std::collections::HashSet::with_capacity(rules.len());
        for r in &rules {
            if !ids.insert(r.rule.id.as_str()) {
                return Err(RuleError::Duplicate {
                    id: r.rule.id.clone(),
                });
            }
        }
        let candidates: Vec<_> = rules
            .iter()
            .map(|r| {
                r.rule
                    .enabled
                    // The glob the matcher sees: key captures (`<name>`) written `*`.
                    .then(|| index::candidates(r.key_pattern.glob(), r.rule.bucket.as_deref()))
                    .flatten()
            })
            .collect();
        let index = KeyIndex::from_filings(
            index::choose(&candidates)
                .into_iter()
                .enumerate()
                .filter_map(|(i, f)| f.map(|f| (i as u32, f))),
        );
        Ok(RuleSet {
            rules: Rules::Compiled(rules),
            index,
        })
    }

    /// A set whose rules are decoded from a snapshot when first needed.
    pub(crate) fn from_snapshot(rules: LazyRules, index: KeyIndex) -> Self {
        RuleSet {
            rules: Rules::Snapshot(Box::new(rules)),
            index,
        }
    }

    pub(crate) fn index(&self) -> &KeyIndex {
        &self.index
    }

    /// All rules in evaluation order. A set read from a snapshot decodes every rule the first
    /// time this is called; the router itself only uses [`RuleSet::matching`].
    pub fn rules(&self) -> &[CompiledRule] {
        match &self.rules {
            Rules::Compiled(rules) => rules,
            Rules::Snapshot(lazy) => lazy.all(),
        }
    }

    /// The rule with this id.
    pub fn get(&self, id: &str) -> Option<RuleRef<'_>> {
        match &self.rules {
            Rules::Compiled(rules) => rules
                .iter()
                .find(|r| r.rule.id == id)
                .map(RuleRef::Borrowed),
            Rules::Snapshot(lazy) => lazy
                .position_of(id)
                .and_then(|i| lazy.get(i))
                .map(RuleRef::Decoded),
        }
    }

    /// For a set read from a snapshot: how many rules are kept decoded now and how many
    /// decodes there were so far (`None` for a set compiled whole).
    pub fn decoded_counts(&self) -> Option<(usize, u64)> {
        match &self.rules {
            Rules::Compiled(_) => None,
            Rules::Snapshot(lazy) => Some(lazy.decoded_counts()),
        }
    }

    pub fn len(&self) -> usize {
        match &self.rules {
            Rules::Compiled(rules) => rules.len(),
            Rules::Snapshot(lazy) => lazy.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rule at a position in evaluation order (`None` for a snapshot record this build
    /// cannot read, which is logged once and then treated as absent).
    fn at(&self, position: usize) -> Option<RuleRef<'_>> {
        match &self.rules {
            Rules::Compiled(rules) => rules.get(position).map(RuleRef::Borrowed),
            Rules::Snapshot(lazy) => lazy.get(position).map(RuleRef::Decoded),
        }
    }

    /// Positions (ascending = evaluation order) of the enabled rules whose key glob matches.
    fn key_matches(&self, obj: &ObjectCreated) -> Vec<usize> {
        self.index
            .candidates(&obj.bucket, &obj.key)
            .into_iter()
            .map(|i| i as usize)
            .filter(|&i| {
                self.at(i)
                    .is_some_and(|r| r.rule.enabled && r.key_glob.is_match(&obj.key))
            })
            .collect()
    }

    /// The rules that apply to `obj`, in evaluation order, stopping after a `final` one.
    pub fn matching(&self, obj: &ObjectCreated) -> Vec<RuleRef<'_>> {
        let mut out = Vec::new();
        for i in self.index.candidates(&obj.bucket, &obj.key) {
            let Some(rule) = self.at(i as usize) else {
                continue;
            };
            if rule.rule.enabled
                && rule.key_glob.is_match(&obj.key)
                && secondary_verdict(&rule, obj).is_none()
            {
                let is_final = rule.rule.is_final;
                out.push(rule);
                if is_final {
                    break;
                }
            }
        }
        out
    }

    /// Every rule's verdict for `obj`, in evaluation order. The key verdicts come from the
    /// same index and globs as [`RuleSet::matching`], so the two always agree.
    pub fn explain(&self, obj: &ObjectCreated) -> Vec<(String, MatchVerdict)> {
        let key_matched = self.key_matches(obj);
        let mut final_rule: Option<String> = None;
        (0..self.len())
            .filter_map(|i| self.at(i).map(|r| (i, r)))
            .map(|(i, r)| {
                let alone = if !r.rule.enabled {
                    Some(MatchVerdict::Disabled)
                } else if key_matched.binary_search(&i).is_err() {
                    Some(MatchVerdict::Key(r.rule.key.clone()))
                } else {
                    secondary_verdict(&r, obj)
                };
                (r.rule.id.clone(), in_order(alone, &r.rule, &mut final_rule))
            })
            .collect()
    }
}

impl CompiledRule {
    /// This rule's verdict for `obj` on its own, `None` when it matches: whether it is
    /// [`MatchVerdict::Matched`] or [`MatchVerdict::AfterFinal`] depends on the rules before
    /// it ([`in_order`]). The same checks as [`RuleSet::explain`], without the index: for a
    /// caller that looks at rules one by one (`rules test` over a file).
    pub fn verdict_alone(&self, obj: &ObjectCreated) -> Option<MatchVerdict> {
        if !self.rule.enabled {
            Some(MatchVerdict::Disabled)
        } else if !self.key_glob.is_match(&obj.key) {
            Some(MatchVerdict::Key(self.rule.key.clone()))
        } else {
            secondary_verdict(self, obj)
        }
    }
}

/// A rule's verdict in evaluation order, from its verdict alone: a match after a `final` rule
/// that matched is [`MatchVerdict::AfterFinal`]. `final_rule` carries the first such rule
/// from one call to the next (start with `None`, call for every rule in order).
pub fn in_order(
    alone: Option<MatchVerdict>,
    rule: &Rule,
    final_rule: &mut Option<String>,
) -> MatchVerdict {
    match (alone, &*final_rule) {
        (Some(verdict), _) => verdict,
        (None, Some(f)) => MatchVerdict::AfterFinal(f.clone()),
        (None, None) => {
            if rule.is_final {
                *final_rule = Some(rule.id.clone());
            }
            MatchVerdict::Matched
        }
    }
}

/// Checks after the key glob matched: bucket, excludes, size bounds.
fn secondary_verdict(rule: &CompiledRule, obj: &ObjectCreated) -> Option<MatchVerdict> {
    if let Some(bucket) = &rule.bucket
        && !bucket.is_match(&obj.bucket)
    {
        return Some(MatchVerdict::Bucket(
            rule.rule.bucket.clone().unwrap_or_default(),
        ));
    }
    if let Some((pattern, _)) = rule.exclude.iter().find(|(_, m)| m.is_match(&obj.key)) {
        return Some(MatchVerdict::Excluded(pattern.clone()));
    }
    if let Some(min) = rule.rule.min_size
        && obj.size < min
    {
        return Some(MatchVerdict::TooSmall(min));
    }
    if let Some(max) = rule.rule.max_size
        && obj.size > max
    {
        return Some(MatchVerdict::TooLarge(max));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::parse_rules_document;

    fn set(yaml: &str) -> RuleSet {
        RuleSet::new(parse_rules_document(yaml, "test").unwrap()).unwrap()
    }

    fn obj(bucket: &str, key: &str, size: u64) -> ObjectCreated {
        ObjectCreated {
            bucket: bucket.into(),
            key: key.into(),
            size,
            etag: None,
            version_id: None,
            sequencer: Some("1".into()),
            event_time: "2026-11-24T00:00:00Z".into(),
            reason: None,
            source: "test".into(),
        }
    }

    fn ids(set: &RuleSet, o: &ObjectCreated) -> Vec<String> {
        set.matching(o).iter().map(|r| r.rule.id.clone()).collect()
    }

    #[test]
    fn single_star_stays_in_a_segment_double_star_crosses() {
        let s = set(
            "- {id: one, key: 'in/*.csv', workflow: w}\n- {id: deep, key: 'in/**/*.csv', workflow: w}",
        );
        assert_eq!(ids(&s, &obj("b", "in/a.csv", 1)), ["deep", "one"]);
        assert_eq!(ids(&s, &obj("b", "in/x/y/a.csv", 1)), ["deep"]);
        assert!(ids(&s, &obj("b", "other/in/a.csv", 1)).is_empty());
    }

    #[test]
    fn priority_then_id_order_and_final_stops() {
        let s = set("- {id: b-low, priority: 50, key: '**', workflow: w}\n\
             - {id: a-low, priority: 50, key: '**', workflow: w}\n\
             - {id: first, priority: 1, key: 'x/**', workflow: w, final: true}\n\
             - {id: zero, priority: 0, key: 'y/**', workflow: w}");
        assert_eq!(ids(&s, &obj("b", "x/1", 1)), ["first"]);
        assert_eq!(ids(&s, &obj("b", "y/1", 1)), ["zero", "a-low", "b-low"]);
        let explained = s.explain(&obj("b", "x/1", 1));
        assert_eq!(
            explained[0],
            ("zero".to_string(), MatchVerdict::Key("y/**".into()))
        );
        assert_eq!(explained[1], ("first".to_string(), MatchVerdict::Matched));
        assert_eq!(
            explained[2],
            (
                "a-low".to_string(),
                MatchVerdict::AfterFinal("first".into())
            )
        );
    }

    #[test]
    fn bucket_exclude_size_and_disabled() {
        let s = set(
            "- {id: r, bucket: 'acme-*', key: 'in/**', exclude: ['**/_tmp/**'], min_size: 10, max_size: 100, workflow: w}\n\
             - {id: off, enabled: false, key: '**', workflow: w}",
        );
        assert_eq!(ids(&s, &obj("acme-landing", "in/a.csv", 50)), ["r"]);
        assert!(ids(&s, &obj("other", "in/a.csv", 50)).is_empty());
        assert!(ids(&s, &obj("acme-landing", "in/_tmp/a.csv", 50)).is_empty());
        assert!(ids(&s, &obj("acme-landing", "in/a.csv", 9)).is_empty());
        assert!(ids(&s, &obj("acme-landing", "in/a.csv", 101)).is_empty());
        assert_eq!(ids(&s, &obj("acme-landing", "in/a.csv", 10)), ["r"]);
        assert_eq!(ids(&s, &obj("acme-landing", "in/a.csv", 100)), ["r"]);
        let verdict = |o: ObjectCreated, id: &str| {
            s.explain(&o)
                .into_iter()
                .find(|(r, _)| r == id)
                .map(|(_, v)| v)
                .unwrap()
        };
        assert_eq!(
            verdict(obj("acme-landing", "in/_tmp/a.csv", 5), "r"),
            MatchVerdict::Excluded("**/_tmp/**".into())
        );
        assert_eq!(
            verdict(obj("acme-landing", "in/_tmp/a.csv", 5), "off"),
            MatchVerdict::Disabled
        );
        assert_eq!(
            verdict(obj("zzz", "in/a", 50), "r"),
            MatchVerdict::Bucket("acme-*".into())
        );
        assert_eq!(
            verdict(obj("acme-x", "in/a", 5), "r"),
            MatchVerdict::TooSmall(10)
        );
    }

    #[test]
    fn bucket_glob_star_does_not_need_separator_awareness() {
        let s = set("- {id: r, bucket: '*-landing', key: '**', workflow: w}");
        assert_eq!(ids(&s, &obj("acme-landing", "k", 1)), ["r"]);
        assert!(ids(&s, &obj("acme-archive", "k", 1)).is_empty());
    }

    /// The directory a rule is filed under when that is its rarest anchor.
    fn literal_dir(pattern: &str) -> String {
        crate::rules::glob::PathGlob::with_anchors(pattern)
            .unwrap()
            .1
            .dir_prefix
            .unwrap_or_default()
    }

    #[test]
    fn literal_directories_partition_rules() {
        assert_eq!(literal_dir("incoming/sales/**/*.csv"), "incoming/sales/");
        assert_eq!(literal_dir("incoming/sales/a.csv"), "incoming/sales/");
        assert_eq!(literal_dir("in/team*/x"), "in/");
        assert_eq!(literal_dir("**/*.csv"), "");
        assert_eq!(literal_dir("a.csv"), "");
        assert_eq!(literal_dir("{a,b}/c"), "");
        // Rules in different partitions still combine in priority order.
        let s = set(
            "- {id: deep, priority: 2, key: 'in/x/**', workflow: w}\n- {id: any, priority: 1, key: '**/*.csv', workflow: w}\n- {id: top, priority: 3, key: 'in/*/*.csv', workflow: w}",
        );
        assert_eq!(ids(&s, &obj("b", "in/x/a.csv", 1)), ["any", "deep", "top"]);
        assert_eq!(ids(&s, &obj("b", "in/y/a.csv", 1)), ["any", "top"]);
        assert_eq!(ids(&s, &obj("b", "in/x/a.txt", 1)), ["deep"]);
    }

    #[test]
    fn captures_match_like_star_through_the_index_and_a_snapshot() {
        // The index files a rule under the literals of the glob with captures written `*`:
        // were it given the raw key, `<region>` would be a literal no key has.
        let s = set(
            "- {id: by-region, key: 'incoming/<region>/sales-<kind>.csv', workflow: w}\n\
             - {id: star, key: 'incoming/*/sales-*.csv', workflow: w}\n\
             - {id: top, key: '<team>/**', workflow: w}",
        );
        let hit = obj("b", "incoming/eu/sales-daily.csv", 1);
        assert_eq!(ids(&s, &hit), ["by-region", "star", "top"]);
        assert_eq!(
            ids(&s, &obj("b", "incoming/eu/x/sales-daily.csv", 1)),
            ["top"]
        );
        assert_eq!(ids(&s, &obj("b", "incoming/<region>/x.csv", 1)), ["top"]);
        let info = crate::rules::snapshot::SnapshotInfo {
            format: crate::rules::snapshot::FORMAT,
            built_at: "now".into(),
            table: "t".into(),
            rules: s.len(),
            invalid: Vec::new(),
            builder: "test".into(),
        };
        let bytes = crate::rules::snapshot::encode(&s, &info).unwrap();
        let (_, loaded) = crate::rules::snapshot::decode(bytes).unwrap();
        assert_eq!(ids(&loaded, &hit), ["by-region", "star", "top"]);
        let rule = loaded.matching(&hit).remove(0);
        assert_eq!(
            rule.capture_values(&hit.key).unwrap(),
            ["eu".to_string(), "daily".to_string()]
        );
    }

    #[test]
    fn glob_edge_cases_are_pinned() {
        let s = set("- {id: top-csv, key: '**/*.csv', workflow: w}\n\
             - {id: under-in, key: 'in/**', workflow: w}\n\
             - {id: one-char, key: 'in/day?.csv', workflow: w}\n\
             - {id: alt, key: 'in/{eu,us}/*.csv', workflow: w}\n\
             - {id: class, key: 'in/[0-9][0-9]/*', workflow: w}");
        // `**/` also matches zero directories.
        assert_eq!(ids(&s, &obj("b", "a.csv", 1)), ["top-csv"]);
        // `in/**` is everything below in/, not the key `in` itself.
        assert!(ids(&s, &obj("b", "in", 1)).is_empty());
        assert_eq!(ids(&s, &obj("b", "in/x", 1)), ["under-in"]);
        // `?` is one character and never `/`.
        assert_eq!(
            ids(&s, &obj("b", "in/day1.csv", 1)),
            ["one-char", "top-csv", "under-in"]
        );
        assert!(!ids(&s, &obj("b", "in/day/.csv", 1)).contains(&"one-char".to_string()));
        assert!(!ids(&s, &obj("b", "in/day12.csv", 1)).contains(&"one-char".to_string()));
        assert_eq!(
            ids(&s, &obj("b", "in/us/a.csv", 1)),
            ["alt", "top-csv", "under-in"]
        );
        assert!(!ids(&s, &obj("b", "in/uk/a.csv", 1)).contains(&"alt".to_string()));
        assert_eq!(ids(&s, &obj("b", "in/42/x", 1)), ["class", "under-in"]);
        // Matching is case-sensitive, like S3 keys.
        assert_eq!(ids(&s, &obj("b", "A.CSV", 1)), Vec::<String>::new());
    }

    #[test]
    fn a_final_rule_stops_only_when_it_matches() {
        let s = set(
            "- {id: stop, priority: 1, key: 'in/**', exclude: ['**/*.tmp'], max_size: 10, workflow: w, final: true}\n\
             - {id: off-final, priority: 0, enabled: false, key: '**', workflow: w, final: true}\n\
             - {id: after, priority: 2, key: '**', workflow: w}",
        );
        assert_eq!(ids(&s, &obj("b", "in/a.csv", 5)), ["stop"]);
        assert_eq!(
            ids(&s, &obj("b", "in/a.tmp", 5)),
            ["after"],
            "excluded final rule"
        );
        assert_eq!(
            ids(&s, &obj("b", "in/a.csv", 11)),
            ["after"],
            "final rule over max_size"
        );
        assert_eq!(
            ids(&s, &obj("b", "out/a.csv", 5)),
            ["after"],
            "disabled final rule"
        );
        assert!(
            RuleSet::new(Vec::new())
                .unwrap()
                .matching(&obj("b", "k", 1))
                .is_empty()
        );
    }

    #[test]
    fn explain_agrees_with_matching() {
        let s = set(
            "- {id: a, priority: 3, bucket: 'acme-*', key: 'in/**/*.csv', exclude: ['**/_tmp/**'], workflow: w}\n\
             - {id: b, priority: 1, key: 'in/*/*.csv', min_size: 10, workflow: w, final: true}\n\
             - {id: c, priority: 2, key: '**', max_size: 100, workflow: w}\n\
             - {id: d, priority: 2, enabled: false, key: 'in/**', workflow: w}\n\
             - {id: e, priority: 9, bucket: 'other', key: '*.csv', workflow: w}\n\
             - {id: f, priority: 0, key: 'in/x/?.csv', workflow: w}",
        );
        let buckets = ["acme-landing", "other", "x"];
        let keys = [
            "in/x/a.csv",
            "in/x/y/a.csv",
            "in/_tmp/a.csv",
            "in/x/_tmp/a.csv",
            "a.csv",
            "in/a.csv",
            "in/x/ab.csv",
            "out/z",
        ];
        let mut checked = 0;
        for bucket in buckets {
            for key in keys {
                for size in [0, 10, 101] {
                    let o = obj(bucket, key, size);
                    let explained: Vec<String> = s
                        .explain(&o)
                        .into_iter()
                        .filter(|(_, v)| *v == MatchVerdict::Matched)
                        .map(|(id, _)| id)
                        .collect();
                    assert_eq!(explained, ids(&s, &o), "{bucket} {key} {size}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 72);
        assert_eq!(
            s.explain(&obj("x", "in/x/a.csv", 5)),
            [
                ("f".to_string(), MatchVerdict::Matched),
                ("b".to_string(), MatchVerdict::TooSmall(10)),
                ("c".to_string(), MatchVerdict::Matched),
                ("d".to_string(), MatchVerdict::Disabled),
                ("a".to_string(), MatchVerdict::Bucket("acme-*".into())),
                ("e".to_string(), MatchVerdict::Key("*.csv".into())),
            ]
        );
        assert_eq!(
            s.explain(&obj("x", "z", 500))[2],
            ("c".to_string(), MatchVerdict::TooLarge(100))
        );
    }

    #[test]
    fn unicode_keys_match() {
        let s = set("- {id: jp, key: '受信/**/*.csv', workflow: w}");
        assert_eq!(
            ids(&s, &obj("b", "受信/2026年/売上 データ+v2.csv", 1)),
            ["jp"]
        );
    }

    #[test]
    fn duplicates_fail_strictly_and_are_dropped_leniently() {
        let rules = parse_rules_document(
            "- {id: a, key: '**', workflow: w}\n- {id: a, priority: 1, key: '**', workflow: w}\n- {id: bad, key: '[', workflow: w}",
            "t",
        )
        .unwrap();
        assert!(matches!(
            RuleSet::new(rules.clone()),
            Err(RuleError::Duplicate { .. } | RuleError::Invalid { .. })
        ));
        let (s, errors) = RuleSet::lenient(rules);
        assert_eq!(s.len(), 1);
        assert_eq!(errors.len(), 2);
    }
}
