//! Path captures in a rule's key glob: `incoming/<region>/<date>/*.csv` names two parts of the
//! key, so templates can use `{region}` and `{date}` without a plugin.
//!
//! Syntax, and why: a capture is `<name>` (`name`: a letter or `_`, then letters, digits, `_`).
//! Braces were out of the question: `{a,b}` is glob alternation, and `{region}` is already a
//! valid glob (an alternation of one literal). `<` and `>` mean nothing to a glob, so a capture
//! cannot be read as anything else; a literal `<` in a key is written `\<`, and a `<` that does
//! not open a well-formed capture is an error rather than a silent literal. A capture may not
//! sit inside `[...]` or `{...}`, nor touch a `*` or another capture (where one would end is a
//! guess, and `<a>*` would read as `**` to the matcher).
//!
//! Captures never change what a rule matches: the matcher is handed [`KeyPattern::glob`], the
//! key with each capture written `*`, so a capture matches exactly what `*` matches there —
//! anything within one path segment. Values are read only for a rule that matched, when its
//! question values are rendered ([`KeyPattern::values`]), by a regex that `globset` itself
//! derives from the same glob with each capture's `*` turned into a named group — so the two
//! cannot disagree about what matches (the matcher's own globs, [`super::glob`], are a
//! byte-exact port of `globset`'s). The regex is written when the rule is compiled and built
//! only when a matched rule's captures are first read: loading many rules compiles no regex.

use std::sync::{Arc, OnceLock};

use regex_automata::meta::Regex;

/// The most captures one key glob may have.
pub const MAX_CAPTURES: usize = 16;

/// The first of the private-use characters that stand for the captures while `globset` turns
/// the glob into a regex (one per capture, so each can be found again in the regex).
const SENTINEL: u32 = 0xE000;

/// A rule's key glob with its captures taken out.
#[derive(Debug, Clone)]
pub struct KeyPattern {
    /// What the matcher sees: captures written `*`.
    glob: String,
    names: Vec<String>,
    /// Only for a glob with captures: group `c{i}` is capture `i`.
    regex: Option<CaptureRegex>,
}

/// The captures' regex: its source, and the regex built from it on first use (shared by the
/// clones of a rule).
#[derive(Debug, Clone)]
struct CaptureRegex {
    source: String,
    built: Arc<OnceLock<Result<Regex, CaptureError>>>,
}

impl CaptureRegex {
    fn get(&self) -> Result<&Regex, CaptureError> {
        self.built
            .get_or_init(|| build_regex(&self.source))
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Why a key glob's captures cannot be used; `position` is a byte offset into the glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "`<` at position {position} does not open a capture `<name>` (name: a letter or _, then letters, digits, _); write `\\<` for a literal `<`"
    )]
    Malformed { position: usize },
    #[error("capture `<{name}>` is used twice")]
    Duplicate { name: String },
    #[error(
        "capture `<{name}>` at position {position} is inside `{inside}`; captures stand on their own"
    )]
    Nested {
        name: String,
        position: usize,
        inside: &'static str,
    },
    #[error(
        "capture `<{name}>` at position {position} touches {neighbour}: where one ends would be a guess; put a literal between them"
    )]
    Adjacent {
        name: String,
        position: usize,
        neighbour: &'static str,
    },
    #[error("{count} captures; at most {MAX_CAPTURES}")]
    TooMany { count: usize },
    #[error("the key glob may not contain the characters U+E000..U+E0FF")]
    ReservedCharacter,
    #[error("{0}")]
    Glob(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Previous {
    Star,
    Capture,
    Other,
}

impl KeyPattern {
    /// Read `<name>` captures out of a key glob. The glob itself is checked by `compile`.
    pub fn parse(pattern: &str) -> Result<KeyPattern, CaptureError> {
        if pattern
            .chars()
            .any(|c| (SENTINEL..SENTINEL + 0x100).contains(&(c as u32)))
        {
            return Err(CaptureError::ReservedCharacter);
        }
        let mut glob = String::with_capacity(pattern.len());
        let mut marked = String::with_capacity(pattern.len());
        let mut names: Vec<String> = Vec::new();
        let mut previous = Previous::Other;
        let mut braces = 0usize;
        let mut chars = pattern.char_indices().peekable();
        let push = |glob: &mut String, marked: &mut String, c: char| {
            glob.push(c);
            marked.push(c);
        };
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    push(&mut glob, &mut marked, c);
                    if let Some((_, escaped)) = chars.next() {
                        push(&mut glob, &mut marked, escaped);
                    }
                    previous = Previous::Other;
                }
                '[' => {
                    // A class runs to the first `]` that is not its first member (`[]a]`,
                    // `[!]a]`), as in globset; it is copied as it is.
                    push(&mut glob, &mut marked, c);
                    let mut first = true;
                    for (_, d) in chars.by_ref() {
                        push(&mut glob, &mut marked, d);
                        if first && matches!(d, '!' | '^') {
                            continue;
                        }
                        if d == ']' && !first {
                            break;
                        }
                        first = false;
                    }
                    previous = Previous::Other;
                }
                '{' => {
                    braces += 1;
                    push(&mut glob, &mut marked, c);
                    previous = Previous::Other;
                }
                '}' => {
                    braces = braces.saturating_sub(1);
                    push(&mut glob, &mut marked, c);
                    previous = Previous::Other;
                }
                '*' => {
                    push(&mut glob, &mut marked, c);
                    previous = Previous::Star;
                }
                '<' => {
                    let rest = &pattern[i + 1..];
                    let end = rest
                        .find('>')
                        .ok_or(CaptureError::Malformed { position: i })?;
                    let name = &rest[..end];
                    if !is_name(name) {
                        return Err(CaptureError::Malformed { position: i });
                    }
                    if braces > 0 {
                        return Err(CaptureError::Nested {
                            name: name.into(),
                            position: i,
                            inside: "{...}",
                        });
                    }
                    let next = rest[end + 1..].chars().next();
                    let neighbour = match (previous, next) {
                        (Previous::Star, _) | (_, Some('*')) => Some("`*`"),
                        (Previous::Capture, _) | (_, Some('<')) => Some("another capture"),
                        _ => None,
                    };
                    if let Some(neighbour) = neighbour {
                        return Err(CaptureError::Adjacent {
                            name: name.into(),
                            position: i,
                            neighbour,
                        });
                    }
                    if names.iter().any(|n| n == name) {
                        return Err(CaptureError::Duplicate { name: name.into() });
                    }
                    if names.len() == MAX_CAPTURES {
                        return Err(CaptureError::TooMany {
                            count: MAX_CAPTURES + 1,
                        });
                    }
                    glob.push('*');
                    marked.push(sentinel(names.len()));
                    names.push(name.to_string());
                    // Skip the name and the closing `>`.
                    for _ in 0..name.chars().count() + 1 {
                        chars.next();
                    }
                    previous = Previous::Capture;
                }
                c => {
                    push(&mut glob, &mut marked, c);
                    previous = Previous::Other;
                }
            }
        }
        let regex = if names.is_empty() {
            None
        } else {
            Some(CaptureRegex {
                source: capture_regex(&marked, names.len())?,
                built: Arc::default(),
            })
        };
        Ok(KeyPattern { glob, names, regex })
    }

    /// The glob the matcher uses: the key with every capture written `*`.
    pub fn glob(&self) -> &str {
        &self.glob
    }

    /// The captures' names, in the order they appear.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The captures' values for `key`, in [`names`](Self::names) order; `None` when the glob
    /// does not match the key (for a matched rule that cannot happen; for a retry of an old
    /// execution under an edited rule it can). A glob without captures gives `Some([])`. The
    /// error is the regex failing to build, which a glob that parsed should never do.
    pub fn values(&self, key: &str) -> Result<Option<Vec<String>>, CaptureError> {
        let Some(regex) = &self.regex else {
            return Ok(Some(Vec::new()));
        };
        let regex = regex.get()?;
        let mut caps = regex.create_captures();
        regex.captures(key.as_bytes(), &mut caps);
        if !caps.is_match() {
            return Ok(None);
        }
        let mut values = Vec::with_capacity(self.names.len());
        for i in 0..self.names.len() {
            let Some(span) = caps.get_group_by_name(&format!("c{i}")) else {
                return Ok(None);
            };
            values.push(String::from_utf8_lossy(&key.as_bytes()[span.range()]).into_owned());
        }
        Ok(Some(values))
    }
}

/// Whether `text` names a capture (`<name>`) somewhere outside an escape — for the globs that
/// may not capture (`bucket`, `exclude`).
pub fn first_capture(pattern: &str) -> Option<String> {
    let mut chars = pattern.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '<' => {
                let rest = &pattern[i + 1..];
                if let Some(end) = rest.find('>')
                    && is_name(&rest[..end])
                {
                    return Some(rest[..end].to_string());
                }
            }
            _ => {}
        }
    }
    None
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn sentinel(i: usize) -> char {
    char::from_u32(SENTINEL + i as u32).unwrap_or('\u{E000}')
}

/// globset's regex for the glob with sentinels where the captures are, each sentinel (which
/// globset writes as escaped UTF-8 bytes, `\xee\x80\x80`) replaced by the group `*` would be.
/// Only the source: writing it is parsing the glob, cheap; [`build_regex`] compiles it.
fn capture_regex(marked: &str, count: usize) -> Result<String, CaptureError> {
    // The options the rules' globs use (`super::glob` ports globset's parser with the same).
    let glob = globset::GlobBuilder::new(marked)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| CaptureError::Glob(e.kind().to_string()))?;
    let mut regex = glob.regex().to_string();
    for i in 0..count {
        let mut buf = [0u8; 4];
        let escaped: String = sentinel(i)
            .encode_utf8(&mut buf)
            .bytes()
            .map(|b| format!("\\x{b:02x}"))
            .collect();
        if regex.matches(&escaped).count() != 1 {
            return Err(CaptureError::Glob(format!(
                "internal: capture {i} was not found in the glob's regex"
            )));
        }
        regex = regex.replace(&escaped, &format!("(?P<c{i}>[^/]*)"));
    }
    Ok(regex)
}

fn build_regex(regex: &str) -> Result<Regex, CaptureError> {
    let syntax = regex_automata::util::syntax::Config::new()
        .utf8(false)
        .dot_matches_new_line(true);
    let config = Regex::config().utf8_empty(false);
    Regex::builder()
        .syntax(syntax)
        .configure(config)
        .build(regex)
        .map_err(|e| CaptureError::Glob(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pattern: &str, key: &str) -> Option<Vec<String>> {
        KeyPattern::parse(pattern).unwrap().values(key).unwrap()
    }

    #[test]
    fn captures_read_segments_and_parts_of_them() {
        let p = KeyPattern::parse("incoming/<region>/<date>/*.csv").unwrap();
        assert_eq!(p.glob(), "incoming/*/*/*.csv");
        assert_eq!(p.names(), ["region", "date"]);
        assert_eq!(
            p.values("incoming/eu-west/2026-11-24/sales.csv").unwrap(),
            Some(vec!["eu-west".to_string(), "2026-11-24".to_string()])
        );
        assert_eq!(p.values("incoming/eu/x/y/sales.csv").unwrap(), None);
        assert_eq!(
            values("in/sales-<region>_<year>.csv", "in/sales-eu_2026.csv"),
            Some(vec!["eu".into(), "2026".into()])
        );
        assert_eq!(
            values("**/<name>.csv", "a/b/c/report.csv"),
            Some(vec!["report".into()])
        );
        assert_eq!(
            values("<top>/**", "team/x/y.bin"),
            Some(vec!["team".into()])
        );
        assert_eq!(
            KeyPattern::parse("受信/<地域>.csv").unwrap_err(),
            CaptureError::Malformed { position: 7 },
            "names are ASCII"
        );
        assert_eq!(
            values("受信/<region>/*.csv", "受信/東京/売上.csv"),
            Some(vec!["東京".into()])
        );
        // Empty is a value like any other, as `*` matches nothing too.
        assert_eq!(values("in/<a>.csv", "in/.csv"), Some(vec![String::new()]));
        assert_eq!(
            KeyPattern::parse("in/*.csv").unwrap().values("x").unwrap(),
            Some(vec![])
        );
    }

    #[test]
    fn a_capture_matches_what_star_matches_and_nothing_else() {
        let globs = [
            "incoming/<region>/<date>/*.csv",
            "in/sales-<region>_<year>.{csv,txt}",
            "**/<name>.csv",
            "<top>/**/x?.[ab]",
            "a/\\*<lit>/b",
            "a/[<]<x>/b",
        ];
        let keys = [
            "incoming/eu/2026/a.csv",
            "incoming/eu/2026/a/b.csv",
            "incoming//2026/a.csv",
            "in/sales-eu_2026.csv",
            "in/sales-eu_2026.txt",
            "in/sales-eu_2026.tsv",
            "in/sub/sales-eu_2026.csv",
            "x/y/z.csv",
            "z.csv",
            "top/q/r/x1.a",
            "top/x1.b",
            "a/*v/b",
            "a/<w/b",
            "a/<w/c/b",
        ];
        for g in globs {
            let p = KeyPattern::parse(g).unwrap();
            let matcher = super::super::path_glob(p.glob()).unwrap();
            for k in keys {
                assert_eq!(
                    matcher.is_match(k),
                    p.values(k).unwrap().is_some(),
                    "glob {g} ({}) and key {k}",
                    p.glob()
                );
            }
        }
    }

    #[test]
    fn misuse_is_refused_with_the_position() {
        let err = |p: &str| KeyPattern::parse(p).unwrap_err();
        assert_eq!(
            err("in/<reg-ion>/x"),
            CaptureError::Malformed { position: 3 }
        );
        assert_eq!(err("in/<region/x"), CaptureError::Malformed { position: 3 });
        assert_eq!(err("in/<>/x"), CaptureError::Malformed { position: 3 });
        assert_eq!(err("in/<1a>/x"), CaptureError::Malformed { position: 3 });
        assert_eq!(
            err("in/<a>/<a>"),
            CaptureError::Duplicate { name: "a".into() }
        );
        assert!(matches!(
            err("in/{<a>,b}"),
            CaptureError::Nested { position: 4, .. }
        ));
        for p in ["in/*<a>", "in/<a>*", "in/<a><b>", "in/**<a>"] {
            assert!(
                matches!(err(p), CaptureError::Adjacent { .. }),
                "{p}: {:?}",
                err(p)
            );
        }
        let many: String = (0..17).map(|i| format!("<c{i}>-")).collect();
        assert_eq!(err(&many), CaptureError::TooMany { count: 17 });
        assert_eq!(err("in/\u{E001}"), CaptureError::ReservedCharacter);
        let message = err("in/<reg-ion>/x").to_string();
        assert!(
            message.contains("write `\\<` for a literal `<`"),
            "{message}"
        );
        // Escaped and bracketed `<` are literals, not captures.
        let p = KeyPattern::parse("in/\\<b>/[<]x").unwrap();
        assert!(p.names().is_empty());
        assert_eq!(p.glob(), "in/\\<b>/[<]x");
        let p = KeyPattern::parse("in/[]<]/x").unwrap();
        assert!(p.names().is_empty());
    }

    #[test]
    fn captures_are_found_for_the_globs_that_may_not_have_them() {
        assert_eq!(first_capture("acme-<env>"), Some("env".into()));
        assert_eq!(first_capture("**/_tmp/**"), None);
        assert_eq!(first_capture("a\\<b>"), None);
        assert_eq!(first_capture("a<b-c>"), None);
    }
}
