//! Reading rules files into a strictly validated rule set, parsing and validating at once.
//!
//! At 100,000 rules a file costs about as much to parse (serde_yaml) as to validate and
//! compile, so the two run on two threads: one reads the files and parses rule after rule
//! ([`super::parse_rules_into`]), the other validates and compiles each as it arrives. The
//! rules cross in small batches over a channel that holds only a few of them, so no more than
//! a few thousand parsed rules wait at once: the peak memory stays what reading on one thread
//! costs (a version that parsed the whole file first on every core peaked 10–25 % higher).
//!
//! The outcome is exactly [`RuleSet::new`] over [`super::parse_rules_document`] of every file:
//! a file that does not parse is that error (whatever rules before it were), then the first
//! invalid rule in file order, then the checks across rules. [`strict`] keeps every rule
//! compiled (the router), [`validate`] only the rules (`rules validate`), [`checked`] what its
//! caller makes of each (`rules test`: a verdict, and the few matching rules whole).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::{Cap, CompiledRule, Parsed, Rule, RuleError, RuleSet, parse_rules_into};

/// Rules per message: enough that the channel costs nothing next to the parsing.
const BATCH: usize = 256;
/// Messages the channel holds: the parser runs at most this far ahead.
const BATCHES_AHEAD: usize = 4;

enum Message {
    /// The next file begins (a restart goes back to here).
    File,
    /// About this many rules follow: the compiled rules are allocated once, not grown by
    /// doubling (which at 100,000 rules held 1.5 times their size for a moment).
    Expect(usize),
    Rules(Vec<Rule>),
    /// Forget this file's rules so far: it is being read again as a whole.
    Restart,
}

/// Parse and validate every rules file (each `*.yaml`/`*.yml`/`*.json` of a directory, in
/// name order), as [`RuleSet::new`] would: every rule valid, ids unique.
pub fn strict(paths: &[PathBuf]) -> Result<RuleSet, RuleError> {
    RuleSet::from_valid(parse_and_compile(paths, |rule| rule)?)
}

/// Check every rule of these files exactly as [`strict`] does, keeping only the rules, in
/// evaluation order: what `rules validate` needs, without holding the compiled globs and
/// templates of every rule at once (166 instead of 305 MiB at 100,000 rules).
pub fn validate(paths: &[PathBuf]) -> Result<Vec<Rule>, RuleError> {
    let mut rules = parse_and_compile(paths, |compiled| compiled.rule)?;
    // The checks across rules, in the order `RuleSet::from_valid` makes them, so the same
    // error comes first.
    super::matcher::check_groups(&rules)?;
    rules.sort_unstable_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
    let mut ids = std::collections::HashSet::with_capacity(rules.len());
    if let Some(duplicate) = rules.iter().find(|r| !ids.insert(r.id.as_str())) {
        return Err(RuleError::Duplicate {
            id: duplicate.id.clone(),
        });
    }
    Ok(rules)
}

/// A rule checked by [`checked`]: what the checks across rules need of it, and what the
/// caller kept.
#[derive(Debug)]
pub struct Kept<T> {
    pub id: String,
    pub priority: i64,
    cap: Option<Cap>,
    pub value: T,
}

/// Check every rule of these files exactly as [`strict`] does (the same error comes first),
/// keeping of each only what `keep` makes of it once it is validated and compiled, in
/// evaluation order: for a command that needs a little of every rule and all of a few
/// (`rules test` keeps each rule's verdict for one object and only the matches whole).
pub fn checked<T>(
    paths: &[PathBuf],
    keep: impl Fn(CompiledRule) -> T,
) -> Result<Vec<Kept<T>>, RuleError> {
    let mut kept = parse_and_compile(paths, |compiled| Kept {
        id: compiled.rule.id.clone(),
        priority: compiled.rule.priority,
        cap: compiled.rule.cap(),
        value: keep(compiled),
    })?;
    // The checks across rules as `RuleSet::from_valid` makes them: groups in file order,
    // then ids in evaluation order.
    super::matcher::check_caps(kept.iter().map(|k| (k.id.as_str(), k.cap.clone())))?;
    kept.sort_unstable_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
    let mut ids = std::collections::HashSet::with_capacity(kept.len());
    if let Some(duplicate) = kept.iter().find(|k| !ids.insert(k.id.as_str())) {
        return Err(RuleError::Duplicate {
            id: duplicate.id.clone(),
        });
    }
    Ok(kept)
}

/// Parse on a second thread while validating and compiling here; `keep` says what of each
/// compiled rule is kept.
fn parse_and_compile<T>(
    paths: &[PathBuf],
    keep: impl Fn(CompiledRule) -> T,
) -> Result<Vec<T>, RuleError> {
    std::thread::scope(|scope| {
        let (sender, receiver) = sync_channel(BATCHES_AHEAD);
        let parser = scope.spawn(move || parse_files(paths, &sender));
        let compiled = compile(receiver, keep);
        // A file that does not read is the answer, whatever the rules before it.
        match parser.join() {
            Ok(parsed) => parsed?,
            Err(panic) => std::panic::resume_unwind(panic),
        }
        compiled
    })
}

fn read(path: &Path) -> Result<String, RuleError> {
    std::fs::read_to_string(path).map_err(|e| RuleError::Parse {
        source_name: path.display().to_string(),
        detail: e.to_string(),
    })
}

fn parse_files(paths: &[PathBuf], sender: &SyncSender<Message>) -> Result<(), RuleError> {
    // A closed channel means the validating side is gone (it only stops at the end), so a
    // failed send is simply ignored.
    let mut batch = Vec::with_capacity(BATCH);
    for path in paths {
        for (file, _) in super::FileRuleSource::new(path.clone()).files()? {
            let text = read(&file)?;
            let _ = sender.send(Message::File);
            parse_rules_into(
                &text,
                &file.display().to_string(),
                &mut |parsed| match parsed {
                    Parsed::Expect(n) => {
                        let _ = sender.send(Message::Expect(n));
                    }
                    Parsed::Rule(rule) => {
                        batch.push(rule);
                        if batch.len() == BATCH {
                            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                            let _ = sender.send(Message::Rules(full));
                        }
                    }
                    Parsed::Restart => {
                        batch.clear();
                        let _ = sender.send(Message::Restart);
                    }
                },
            )?;
            if !batch.is_empty() {
                let _ = sender.send(Message::Rules(std::mem::take(&mut batch)));
            }
        }
    }
    Ok(())
}

/// Validate and compile the rules as they arrive; after the first invalid one only count
/// (unless a restart takes it back).
fn compile<T>(
    receiver: Receiver<Message>,
    keep: impl Fn(CompiledRule) -> T,
) -> Result<Vec<T>, RuleError> {
    let mut compiled = Vec::new();
    let mut file_start = 0;
    // The first invalid rule: its position among all rules received, and why.
    let mut invalid: Option<(usize, RuleError)> = None;
    let mut received = 0;
    for message in receiver {
        match message {
            Message::File => file_start = received,
            Message::Expect(n) => compiled.reserve(n),
            Message::Restart => {
                received = file_start;
                compiled.truncate(file_start);
                if invalid.as_ref().is_some_and(|(at, _)| *at >= file_start) {
                    invalid = None;
                }
            }
            Message::Rules(rules) => {
                for rule in rules {
                    if invalid.is_none() {
                        match CompiledRule::compile(rule) {
                            Ok(c) => compiled.push(keep(c)),
                            Err(e) => invalid = Some((received, e)),
                        }
                    }
                    received += 1;
                }
            }
        }
    }
    match invalid {
        Some((_, e)) => Err(e),
        None => Ok(compiled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::parse_rules_document;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn ids(set: &RuleSet) -> Vec<String> {
        set.rules().iter().map(|r| r.rule.id.clone()).collect()
    }

    /// What reading on one thread gives: every file parsed, then `RuleSet::new`.
    fn one_thread(paths: &[PathBuf]) -> Result<RuleSet, RuleError> {
        let mut rules = Vec::new();
        for p in paths {
            rules.extend(super::super::FileRuleSource::new(p.clone()).read_rules()?);
        }
        RuleSet::new(rules)
    }

    fn many(n: usize, from: usize) -> String {
        (from..from + n)
            .map(|i| {
                let priority = i % 7;
                format!("- id: r{i:05}\n  priority: {priority}\n  key: 'in/p{i}/**/*.csv'\n  workflow: w\n")
            })
            .collect()
    }

    #[test]
    fn the_same_set_or_the_same_error_as_reading_on_one_thread() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let big = write(d, "a.yaml", &many(1000, 0));
        let flow = write(
            d,
            "b.yaml",
            "- {id: f1, key: 'x/*', workflow: w}\n- {id: f2, key: 'y/*', workflow: w}\n",
        );
        // An alias makes the list read as a whole document (a restart after item one).
        let alias = write(
            d,
            "c.yaml",
            "- &base {id: c1, key: 'c/*', workflow: w}\n- {id: c2, key: 'd/*', workflow: w}\n- *base\n",
        );
        let dup = write(d, "d.yaml", &many(3, 10));
        let invalid_late = write(
            d,
            "e.yaml",
            &format!(
                "{}- {{id: bad, key: 'a/[', workflow: w}}\n",
                many(600, 2000)
            ),
        );
        let unparsable = write(
            d,
            "f.yaml",
            "- {id: x, key: 'a', workflow: w}\n- {id: y, key: 'b', workflow: w, prority: 1}\n",
        );
        let json = write(
            d,
            "g.json",
            r#"[{"id": "j1", "key": "j/*", "workflow": "w"}]"#,
        );
        let caps = write(
            d,
            "h.yaml",
            "- {id: g1, key: 'g/*', workflow: w, concurrency_group: g, max_concurrent_jobs: 2}\n\
             - {id: g2, key: 'h/*', workflow: w, concurrency_group: g, max_concurrent_jobs: 3}\n",
        );
        let cases: Vec<Vec<PathBuf>> = vec![
            vec![big.clone(), caps.clone()],
            vec![big.clone(), flow.clone(), json.clone()],
            vec![big.clone(), alias.clone()],
            vec![big.clone(), dup.clone()],
            vec![invalid_late.clone(), big.clone()],
            vec![invalid_late.clone(), unparsable.clone()],
            vec![big.clone(), unparsable.clone()],
            vec![d.to_path_buf()],
        ];
        for paths in cases {
            let want = one_thread(&paths);
            let got = strict(&paths);
            let checked_rules = validate(&paths);
            let kept = checked(&paths, |c| c.rule);
            match (want, got, checked_rules, kept) {
                (Ok(w), Ok(g), Ok(c), Ok(k)) => {
                    assert_eq!(ids(&w), ids(&g), "{paths:?}");
                    let want: Vec<&Rule> = w.rules().iter().map(|r| &r.rule).collect();
                    assert_eq!(want, c.iter().collect::<Vec<_>>(), "{paths:?}");
                    assert_eq!(want, k.iter().map(|k| &k.value).collect::<Vec<_>>());
                    assert!(k.iter().all(|k| k.id == k.value.id));
                }
                (Err(w), Err(g), Err(c), Err(k)) => {
                    assert_eq!(w.to_string(), g.to_string(), "{paths:?}");
                    assert_eq!(w.to_string(), c.to_string(), "{paths:?}");
                    assert_eq!(w.to_string(), k.to_string(), "{paths:?}");
                }
                (w, g, c, k) => {
                    panic!("{paths:?}: one thread {w:?}, two {g:?}, validate {c:?}, checked {k:?}")
                }
            }
        }
        // The alias file is read as a whole: its third rule is a copy of the first.
        assert_eq!(
            parse_rules_document(&std::fs::read_to_string(&alias).unwrap(), "c")
                .unwrap()
                .len(),
            3
        );
        let err = strict(&[alias]).unwrap_err();
        assert!(
            matches!(&err, RuleError::Duplicate { id } if id == "c1"),
            "{err}"
        );
        // The late invalid rule is named, not a rule after it.
        let err = strict(&[invalid_late]).unwrap_err();
        assert!(
            matches!(&err, RuleError::Invalid { rule, .. } if rule == "bad"),
            "{err}"
        );
    }
}
