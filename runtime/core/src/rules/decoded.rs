//! The rules a snapshot set has decoded, at most a set number of them.
//!
//! A rule set read from a snapshot ([`super::snapshot`]) decodes a rule when an object first
//! makes it a candidate. Kept forever, those rules would grow a warm function's memory with
//! every distinct rule its events reach (2–3 KiB each: 100,000 rules would be some 250 MiB,
//! all of a 256 MB function). So at most `capacity` are kept (`RULES_DECODED_MAX`,
//! default [`DEFAULT_CAPACITY`]) and, when full, the clock (second chance) picks the one to
//! drop: a rule used since the hand last passed it is spared once. A dropped rule is decoded
//! again when next needed; a rule still in use elsewhere lives on in its `Arc`.
//!
//! Records that do not decode are remembered apart, never dropped, so each is logged once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use super::CompiledRule;

/// Rules kept decoded when nothing else is configured: some 25 MiB, and more than the rules
/// most deployments' events reach between two cold starts.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// A snapshot set's decoded rules, at most `capacity` of them (see the module doc).
pub(crate) struct Decoded {
    inner: Mutex<Clock>,
}

struct Clock {
    capacity: usize,
    /// Position → index in `slots`.
    at: HashMap<u32, usize>,
    slots: Vec<Slot>,
    hand: usize,
    unreadable: HashSet<u32>,
    /// Rules decoded so far, including ones decoded again after being dropped.
    decodes: u64,
}

struct Slot {
    position: u32,
    rule: Arc<CompiledRule>,
    used: bool,
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let clock = self.lock();
        f.debug_struct("Decoded")
            .field("capacity", &clock.capacity)
            .field("kept", &clock.slots.len())
            .field("decodes", &clock.decodes)
            .finish()
    }
}

impl Decoded {
    pub(crate) fn new(capacity: usize) -> Self {
        Decoded {
            inner: Mutex::new(Clock {
                capacity: capacity.max(1),
                at: HashMap::new(),
                slots: Vec::new(),
                hand: 0,
                unreadable: HashSet::new(),
                decodes: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clock> {
        // The clock's state is consistent between statements; a panic elsewhere leaves it usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The rule at `position`, decoded with `decode` when it is not kept (`None`: the record
    /// does not decode, remembered so `decode` is not called for it again).
    pub(crate) fn get_or_decode(
        &self,
        position: u32,
        decode: impl FnOnce() -> Option<CompiledRule>,
    ) -> Option<Arc<CompiledRule>> {
        {
            let mut clock = self.lock();
            if let Some(&i) = clock.at.get(&position) {
                let slot = &mut clock.slots[i];
                slot.used = true;
                return Some(Arc::clone(&slot.rule));
            }
            if clock.unreadable.contains(&position) {
                return None;
            }
        }
        // Decoding (JSON, validation) happens outside the lock; two threads racing for the
        // same rule both decode it and the first one kept wins.
        let decoded = decode();
        let mut clock = self.lock();
        clock.decodes += 1;
        match decoded {
            None => {
                clock.unreadable.insert(position);
                None
            }
            Some(rule) => Some(clock.keep(position, Arc::new(rule))),
        }
    }

    /// How many rules are kept and how many decodes there were (for tests and benchmarks).
    pub(crate) fn counts(&self) -> (usize, u64) {
        let clock = self.lock();
        (clock.slots.len(), clock.decodes)
    }
}

impl Clock {
    fn keep(&mut self, position: u32, rule: Arc<CompiledRule>) -> Arc<CompiledRule> {
        if let Some(&i) = self.at.get(&position) {
            return Arc::clone(&self.slots[i].rule);
        }
        let slot = Slot {
            position,
            rule: Arc::clone(&rule),
            used: false,
        };
        if self.slots.len() < self.capacity {
            self.at.insert(position, self.slots.len());
            self.slots.push(slot);
            return rule;
        }
        // Second chance: clear `used` marks until a slot without one comes round.
        while self.slots[self.hand].used {
            self.slots[self.hand].used = false;
            self.hand = (self.hand + 1) % self.slots.len();
        }
        let i = self.hand;
        self.at.remove(&self.slots[i].position);
        self.at.insert(position, i);
        self.slots[i] = slot;
        self.hand = (i + 1) % self.slots.len();
        rule
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::parse_rules_document;

    fn rule(i: u32) -> CompiledRule {
        let yaml = format!("{{id: r{i}, key: 'in/{i}/*', workflow: w}}");
        let rule = parse_rules_document(&yaml, "t").unwrap().remove(0);
        CompiledRule::compile(rule).unwrap()
    }

    #[test]
    fn at_most_capacity_rules_are_kept_and_a_used_one_gets_a_second_chance() {
        let d = Decoded::new(3);
        let get = |p: u32| {
            d.get_or_decode(p, || Some(rule(p)))
                .unwrap()
                .rule
                .id
                .clone()
        };
        for p in 0..3 {
            assert_eq!(get(p), format!("r{p}"));
        }
        assert_eq!(d.counts(), (3, 3));
        // Kept: no decode.
        get(0);
        assert_eq!(d.counts(), (3, 3));
        // Full: 0 was used since, so 1 goes (the hand passes 0 and clears its mark).
        get(3);
        assert_eq!(d.counts(), (3, 4));
        get(0);
        get(2);
        assert_eq!(d.counts(), (3, 4), "0 and 2 are still kept");
        get(1);
        assert_eq!(d.counts(), (3, 5), "1 was dropped and is decoded again");
        // Many distinct rules: still three kept.
        for p in 10..100 {
            get(p);
        }
        assert_eq!(d.counts().0, 3);
    }

    #[test]
    fn a_rule_in_use_outlives_its_eviction_and_unreadable_records_decode_once() {
        let d = Decoded::new(1);
        let held = d.get_or_decode(7, || Some(rule(7))).unwrap();
        d.get_or_decode(8, || Some(rule(8))).unwrap();
        assert_eq!(held.rule.id, "r7");
        let mut calls = 0;
        for _ in 0..3 {
            assert!(
                d.get_or_decode(9, || {
                    calls += 1;
                    None
                })
                .is_none()
            );
        }
        assert_eq!(calls, 1);
    }
}
