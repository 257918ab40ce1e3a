//! Question value templates over an object's facts: `"s3://{bucket}/{key}"`, `"{key.name}"`,
//! `"{region}"` (a capture of the rule's key), `"{meta.customer}"` (S3 user metadata),
//! `"{presigned_url}"`, `"{event_time:%Y/%m/%d}"`; on a rule with a `batch` block also the
//! batch a job runs for: `"{batch.keys}"`, `"{batch.uris:,}"`, `"{batch.count}"`,
//! `"{batch.id}"`, `"{batch.group}"`.
//!
//! Templates are parsed once, when a rule is saved or loaded, so an unknown variable, a capture
//! the key does not have or a bad time format is an error at save time (naming the variable and
//! where it is), never when an event arrives. `{{` and `}}` stand for literal braces. Rendering
//! walks the pre-parsed segments over [`Facts`]; what the event does not carry (metadata, the
//! pre-signed URL) is fetched by [`crate::render`] only for templates that use it.

mod timefmt;

use std::collections::BTreeMap;

pub use self::timefmt::{TimeFormat, parse_event_time};
use crate::event::ObjectCreated;

/// Every built-in variable a template may use (besides `meta.NAME` and the rule's captures).
pub const VARIABLES: &[&str] = &[
    "bucket",
    "key",
    "key.name",
    "key.stem",
    "key.ext",
    "key.dir",
    "size",
    "etag",
    "version_id",
    "event_time",
    "event_date",
    "s3_uri",
    "presigned_url",
];

/// The variables of a batch rule's templates (the batch its job runs for).
pub const BATCH_VARIABLES: &[&str] = &[
    "batch.keys",
    "batch.uris",
    "batch.count",
    "batch.id",
    "batch.group",
];

/// What `{batch.keys}` and `{batch.uris}` put between members unless a separator is given
/// (escaped as a separator is written: a newline).
const DEFAULT_BATCH_SEPARATOR: &str = "\n";

/// S3 user metadata by lower-case name (without `x-amz-meta-`).
pub type Metadata = BTreeMap<String, String>;

#[derive(Debug, Clone)]
enum Var {
    Bucket,
    Key,
    KeyName,
    KeyStem,
    KeyExt,
    KeyDir,
    Size,
    Etag,
    VersionId,
    EventTime(Option<TimeFormat>),
    EventDate(Option<TimeFormat>),
    S3Uri,
    PresignedUrl,
    /// Lower-case metadata name.
    Meta(String),
    /// Index into the rule's captures.
    Capture(usize),
    /// The members' keys, joined by the separator.
    BatchKeys(String),
    /// The members' `s3://` URIs, joined by the separator.
    BatchUris(String),
    BatchCount,
    BatchId,
    BatchGroup,
}

impl Var {
    fn parse(name: &str, format: Option<TimeFormat>, scope: &Scope) -> Option<Var> {
        let var = match name {
            "event_time" => return Some(Var::EventTime(format)),
            "event_date" => return Some(Var::EventDate(format)),
            "bucket" => Var::Bucket,
            "key" => Var::Key,
            "key.name" => Var::KeyName,
            "key.stem" => Var::KeyStem,
            "key.ext" => Var::KeyExt,
            "key.dir" => Var::KeyDir,
            "size" => Var::Size,
            "etag" => Var::Etag,
            "version_id" => Var::VersionId,
            "s3_uri" => Var::S3Uri,
            "presigned_url" => Var::PresignedUrl,
            _ => match name.strip_prefix("meta.") {
                Some(meta) => Var::Meta(meta.to_ascii_lowercase()),
                None => Var::Capture(scope.captures.iter().position(|c| c == name)?),
            },
        };
        // Only times take a format; the caller reports it.
        format.is_none().then_some(var)
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Text(String),
    Var(Var),
}

/// What a template may refer to besides the built-in variables: the rule's key captures, and
/// the batch variables on a rule with a `batch` block.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub captures: &'a [String],
    pub batch: bool,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown variable `{{{name}}}` at position {position}; known: {known}")]
    UnknownVariable {
        name: String,
        position: usize,
        known: String,
    },
    #[error("`{{` at position {position} is never closed (write `{{{{` for a literal brace)")]
    Unclosed { position: usize },
    #[error("`}}` at position {position} has no opening `{{` (write `}}}}` for a literal brace)")]
    StrayClose { position: usize },
    #[error("empty `{{}}` at position {position}")]
    Empty { position: usize },
    #[error(
        "`{{{name}:…}}` at position {position}: only event_time and event_date take a format (and batch.keys and batch.uris a separator)"
    )]
    FormatNotAllowed { name: String, position: usize },
    #[error("`{{{name}:{format}}}` at position {position}: {detail}")]
    BadFormat {
        name: String,
        format: String,
        position: usize,
        detail: String,
    },
    #[error(
        "`{{meta.{name}}}` at position {position}: a metadata name is letters, digits, `-`, `_` and `.`"
    )]
    BadMetadataName { name: String, position: usize },
    #[error(
        "`{{{name}}}` at position {position}: batch variables are for rules with a `batch` block (and not for `batch.by`, which decides the batch)"
    )]
    BatchOnly { name: String, position: usize },
}

/// What a template is rendered from.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub object: &'a ObjectCreated,
    /// The rule's capture values, in the order of its key's captures.
    pub captures: &'a [String],
    /// The object's user metadata, when a template of the rule uses it.
    pub metadata: Option<&'a Metadata>,
    /// The pre-signed GET URL, when a template of the rule uses it.
    pub presigned_url: Option<&'a str>,
    /// The batch a batch rule's job runs for (`object` is the member that closed it).
    pub batch: Option<&'a crate::plugin::BatchInput>,
}

impl<'a> Facts<'a> {
    /// Only what the event carries.
    pub fn of(object: &'a ObjectCreated) -> Self {
        Facts {
            object,
            captures: &[],
            metadata: None,
            presigned_url: None,
            batch: None,
        }
    }
}

/// Why a template could not be rendered for an object.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(
        "the object has no user metadata `{name}` (header x-amz-meta-{name}); it has {present}"
    )]
    MissingMetadata { name: String, present: String },
    #[error("event time {value:?} is not an RFC 3339 time")]
    EventTime {
        value: String,
        #[source]
        source: ::time::error::Parse,
    },
    #[error("formatting the event time with {format:?}")]
    Format {
        format: String,
        #[source]
        source: ::time::error::Format,
    },
    #[error("`{{{variable}}}` has no value here")]
    Unavailable { variable: &'static str },
}

impl Template {
    /// A template that may use the built-in variables only.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Self::parse_in(text, &Scope::default())
    }

    /// A template of a rule whose key captures `scope.captures`.
    pub fn parse_in(text: &str, scope: &Scope) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, c)| c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|&(_, c)| c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => return Err(TemplateError::StrayClose { position: i }),
                '{' => {
                    let rest = &text[i + 1..];
                    let end = rest
                        .find('}')
                        .ok_or(TemplateError::Unclosed { position: i })?;
                    let var = parse_var(&rest[..end], i, scope)?;
                    if !literal.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Var(var));
                    // Skip the variable's characters and the closing brace.
                    let stop = i + 1 + end;
                    while chars.peek().is_some_and(|&(j, _)| j <= stop) {
                        chars.next();
                    }
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Text(literal));
        }
        Ok(Template {
            source: text.to_string(),
            segments,
        })
    }

    /// The template text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The metadata names (lower case) the template reads.
    pub fn metadata_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Var(Var::Meta(name)) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Whether the template uses a batch variable.
    pub fn uses_batch(&self) -> bool {
        self.segments.iter().any(|s| {
            matches!(
                s,
                Segment::Var(
                    Var::BatchKeys(_)
                        | Var::BatchUris(_)
                        | Var::BatchCount
                        | Var::BatchId
                        | Var::BatchGroup
                )
            )
        })
    }

    pub fn uses_presigned_url(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Var(Var::PresignedUrl)))
    }

    pub fn render(&self, facts: &Facts) -> Result<String, RenderError> {
        let obj = facts.object;
        let mut out = String::with_capacity(self.source.len() + obj.key.len());
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Var(v) => push_var(&mut out, v, facts)?,
            }
        }
        Ok(out)
    }
}

fn parse_var(inner: &str, position: usize, scope: &Scope) -> Result<Var, TemplateError> {
    let (name, format) = match inner.split_once(':') {
        Some((name, format)) => (name.trim(), Some(format)),
        None => (inner.trim(), None),
    };
    if name.is_empty() {
        return Err(TemplateError::Empty { position });
    }
    if let Some(meta) = name.strip_prefix("meta.")
        && (meta.is_empty()
            || !meta
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(TemplateError::BadMetadataName {
            name: meta.to_string(),
            position,
        });
    }
    if let Some(var) = batch_var(name, format, position, scope)? {
        return Ok(var);
    }
    let time_format = match format {
        None => None,
        Some(_) if !matches!(name, "event_time" | "event_date") => {
            return Err(TemplateError::FormatNotAllowed {
                name: name.to_string(),
                position,
            });
        }
        Some(format) => {
            Some(
                TimeFormat::parse(format).map_err(|detail| TemplateError::BadFormat {
                    name: name.to_string(),
                    format: format.to_string(),
                    position,
                    detail,
                })?,
            )
        }
    };
    Var::parse(name, time_format, scope).ok_or_else(|| TemplateError::UnknownVariable {
        name: name.to_string(),
        position,
        known: known_variables(scope),
    })
}

/// A batch variable (`None`: the name is not one). `batch.keys` and `batch.uris` take a
/// separator after `:` (`\\n`, `\\t` and `\\\\` stand for a newline, a tab and a backslash).
fn batch_var(
    name: &str,
    format: Option<&str>,
    position: usize,
    scope: &Scope,
) -> Result<Option<Var>, TemplateError> {
    if !BATCH_VARIABLES.contains(&name) {
        return Ok(None);
    }
    if !scope.batch {
        return Err(TemplateError::BatchOnly {
            name: name.to_string(),
            position,
        });
    }
    let separator = || unescape_separator(format.unwrap_or(DEFAULT_BATCH_SEPARATOR));
    let var = match name {
        "batch.keys" => Var::BatchKeys(separator()),
        "batch.uris" => Var::BatchUris(separator()),
        _ if format.is_some() => {
            return Err(TemplateError::FormatNotAllowed {
                name: name.to_string(),
                position,
            });
        }
        "batch.count" => Var::BatchCount,
        "batch.id" => Var::BatchId,
        _ => Var::BatchGroup,
    };
    Ok(Some(var))
}

fn unescape_separator(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('n')) => {
                out.push('\n');
                chars.next();
            }
            ('\\', Some('t')) => {
                out.push('\t');
                chars.next();
            }
            ('\\', Some('\\')) => {
                out.push('\\');
                chars.next();
            }
            (c, _) => out.push(c),
        }
    }
    out
}

fn known_variables(scope: &Scope) -> String {
    let mut known = format!("{}, meta.NAME", VARIABLES.join(", "));
    if scope.batch {
        known.push_str(", ");
        known.push_str(&BATCH_VARIABLES.join(", "));
    }
    if scope.captures.is_empty() {
        known.push_str(
            " (the rule's key has no captures; write `<name>` in `key` to capture a part of it)",
        );
    } else {
        known.push_str(", and the captures of the rule's key: ");
        known.push_str(&scope.captures.join(", "));
    }
    known
}

fn key_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

fn split_ext(name: &str) -> (&str, &str) {
    // A leading dot (".env") is a hidden file, not an extension.
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i + 1..]),
        _ => (name, ""),
    }
}

fn push_var(out: &mut String, var: &Var, facts: &Facts) -> Result<(), RenderError> {
    use std::fmt::Write as _;
    let obj = facts.object;
    match var {
        Var::Bucket => out.push_str(&obj.bucket),
        Var::Key => out.push_str(&obj.key),
        Var::KeyName => out.push_str(key_name(&obj.key)),
        Var::KeyStem => out.push_str(split_ext(key_name(&obj.key)).0),
        Var::KeyExt => out.push_str(split_ext(key_name(&obj.key)).1),
        Var::KeyDir => out.push_str(obj.key.rsplit_once('/').map_or("", |(d, _)| d)),
        Var::Size => {
            let _ = write!(out, "{}", obj.size);
        }
        Var::Etag => out.push_str(obj.etag.as_deref().unwrap_or("")),
        Var::VersionId => out.push_str(obj.version_id.as_deref().unwrap_or("")),
        Var::EventTime(None) => out.push_str(&obj.event_time),
        Var::EventDate(None) => {
            out.push_str(obj.event_time.get(..10).unwrap_or(&obj.event_time));
        }
        Var::EventTime(Some(format)) | Var::EventDate(Some(format)) => {
            let time =
                parse_event_time(&obj.event_time).map_err(|source| RenderError::EventTime {
                    value: obj.event_time.clone(),
                    source,
                })?;
            let text = format.format(time).map_err(|source| RenderError::Format {
                format: format.source().to_string(),
                source,
            })?;
            out.push_str(&text);
        }
        Var::S3Uri => {
            out.push_str("s3://");
            out.push_str(&obj.bucket);
            out.push('/');
            out.push_str(&obj.key);
        }
        Var::PresignedUrl => out.push_str(facts.presigned_url.ok_or(RenderError::Unavailable {
            variable: "presigned_url",
        })?),
        Var::Meta(name) => {
            let metadata = facts
                .metadata
                .ok_or(RenderError::Unavailable { variable: "meta.*" })?;
            let value = metadata
                .get(name)
                .ok_or_else(|| RenderError::MissingMetadata {
                    name: name.clone(),
                    present: if metadata.is_empty() {
                        "none".to_string()
                    } else {
                        metadata.keys().cloned().collect::<Vec<_>>().join(", ")
                    },
                })?;
            out.push_str(value);
        }
        Var::Capture(i) => {
            out.push_str(facts.captures.get(*i).ok_or(RenderError::Unavailable {
                variable: "a capture",
            })?)
        }
        Var::BatchKeys(sep) | Var::BatchUris(sep) => {
            let batch = facts.batch.ok_or(RenderError::Unavailable {
                variable: "batch.*",
            })?;
            let uris = matches!(var, Var::BatchUris(_));
            for (i, member) in batch.members.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                if uris {
                    let _ = write!(out, "s3://{}/", member.bucket);
                }
                out.push_str(&member.key);
            }
        }
        Var::BatchCount | Var::BatchId | Var::BatchGroup => {
            let batch = facts.batch.ok_or(RenderError::Unavailable {
                variable: "batch.*",
            })?;
            match var {
                Var::BatchCount => {
                    let _ = write!(out, "{}", batch.members.len());
                }
                Var::BatchId => out.push_str(&batch.id),
                _ => out.push_str(&batch.group),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str) -> ObjectCreated {
        ObjectCreated {
            bucket: "acme-landing".into(),
            key: key.into(),
            size: 48213,
            etag: Some("9b2cf535f27731c974343645a3985328".into()),
            version_id: None,
            sequencer: Some("0065F1".into()),
            event_time: "2026-11-24T09:15:02Z".into(),
            reason: Some("PutObject".into()),
            source: "eventbridge".into(),
        }
    }

    fn render(t: &str, key: &str) -> String {
        Template::parse(t)
            .unwrap()
            .render(&Facts::of(&object(key)))
            .unwrap()
    }

    #[test]
    fn every_variable_renders() {
        let key = "incoming/sales/2026/sales-eu.final.csv";
        assert_eq!(render("{bucket}", key), "acme-landing");
        assert_eq!(render("{key}", key), key);
        assert_eq!(render("{key.name}", key), "sales-eu.final.csv");
        assert_eq!(render("{key.stem}", key), "sales-eu.final");
        assert_eq!(render("{key.ext}", key), "csv");
        assert_eq!(render("{key.dir}", key), "incoming/sales/2026");
        assert_eq!(render("{size}", key), "48213");
        assert_eq!(render("{etag}", key), "9b2cf535f27731c974343645a3985328");
        assert_eq!(render("{version_id}", key), "");
        assert_eq!(render("{event_time}", key), "2026-11-24T09:15:02Z");
        assert_eq!(render("{event_date}", key), "2026-11-24");
        assert_eq!(render("{s3_uri}", key), format!("s3://acme-landing/{key}"));
        assert_eq!(VARIABLES.len(), 13);
        for v in VARIABLES {
            assert!(Template::parse(&format!("{{{v}}}")).is_ok(), "{v}");
        }
    }

    #[test]
    fn captures_metadata_and_the_presigned_url_come_from_the_facts() {
        let captures = ["region".to_string(), "date".to_string()];
        let scope = Scope {
            captures: &captures,
            batch: false,
        };
        let t = Template::parse_in(
            "{region}|{date}|{meta.Customer}|{meta.batch-id}|{presigned_url}",
            &scope,
        )
        .unwrap();
        assert_eq!(
            t.metadata_names().collect::<Vec<_>>(),
            ["customer", "batch-id"]
        );
        assert!(t.uses_presigned_url());
        let obj = object("in/eu/2026-11-24/a.csv");
        let values = ["eu".to_string(), "2026-11-24".to_string()];
        let metadata = Metadata::from([
            ("customer".to_string(), "ACME".to_string()),
            ("batch-id".to_string(), "b7".to_string()),
        ]);
        let facts = Facts {
            object: &obj,
            captures: &values,
            metadata: Some(&metadata),
            presigned_url: Some("https://signed"),
            batch: None,
        };
        assert_eq!(
            t.render(&facts).unwrap(),
            "eu|2026-11-24|ACME|b7|https://signed"
        );
        // Without them, the render says which value is missing instead of inventing one.
        let missing = Metadata::from([("other".to_string(), "x".to_string())]);
        let e = t
            .render(&Facts {
                metadata: Some(&missing),
                ..facts
            })
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the object has no user metadata `customer` (header x-amz-meta-customer); it has other"
        );
        let e = Template::parse("{presigned_url}")
            .unwrap()
            .render(&Facts::of(&obj))
            .unwrap_err();
        assert!(matches!(e, RenderError::Unavailable { .. }), "{e}");
        assert!(!Template::parse("{key}").unwrap().uses_presigned_url());
    }

    #[test]
    fn event_times_format_in_utc() {
        let mut obj = object("a.csv");
        obj.event_time = "2026-11-24T23:15:02.123+02:00".into();
        let t = |text: &str| Template::parse(text).unwrap().render(&Facts::of(&obj));
        assert_eq!(t("{event_time:%Y/%m/%d}").unwrap(), "2026/11/24");
        assert_eq!(t("{event_time:%H:%M:%S %z}").unwrap(), "21:15:02 +0000");
        assert_eq!(t("{event_date:%Y%m%d}").unwrap(), "20261124");
        assert_eq!(t("{event_time:%j %a %b %%}").unwrap(), "328 Tue Nov %");
        obj.event_time = "2026-12-31T23:30:00-01:00".into();
        let t = |text: &str| Template::parse(text).unwrap().render(&Facts::of(&obj));
        assert_eq!(t("{event_date:%F}").unwrap(), "2027-01-01", "the UTC date");
        // An event time that is not RFC 3339 fails the render, naming the value.
        obj.event_time = "yesterday".into();
        let e = Template::parse("{event_time:%Y}")
            .unwrap()
            .render(&Facts::of(&obj))
            .unwrap_err();
        assert!(e.to_string().contains("\"yesterday\""), "{e}");
        // Unformatted, it is passed on as the event gave it.
        assert_eq!(render("{event_time}", "a"), "2026-11-24T09:15:02Z");
    }

    #[test]
    fn keys_without_directory_or_extension() {
        assert_eq!(
            render("[{key.dir}][{key.stem}][{key.ext}]", "README"),
            "[][README][]"
        );
        assert_eq!(render("{key.stem}|{key.ext}", "dir/.env"), ".env|");
    }

    #[test]
    fn braces_escape_and_text_is_kept() {
        assert_eq!(
            render("{{literal}} {key.name} }}", "a/b.csv"),
            "{literal} b.csv }"
        );
        assert_eq!(render("受信 {key.name}", "売上.csv"), "受信 売上.csv");
    }

    #[test]
    fn errors_name_the_problem_and_position() {
        match Template::parse("s3://{bucket}/{kee}") {
            Err(TemplateError::UnknownVariable {
                name,
                position,
                known,
            }) => {
                assert_eq!(name, "kee");
                assert_eq!(position, 14);
                assert!(known.contains("key.name"));
                assert!(known.contains("has no captures"), "{known}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Template::parse("a{key").unwrap_err(),
            TemplateError::Unclosed { position: 1 }
        );
        assert_eq!(
            Template::parse("a}b").unwrap_err(),
            TemplateError::StrayClose { position: 1 }
        );
        assert_eq!(
            Template::parse("{ }").unwrap_err(),
            TemplateError::Empty { position: 0 }
        );
        let msg = Template::parse("{nope}").unwrap_err().to_string();
        assert!(msg.contains("`{nope}`"), "{msg}");
        // A capture the key does not have names the ones it has.
        let captures = ["region".to_string()];
        let e = Template::parse_in(
            "{regin}",
            &Scope {
                captures: &captures,
                batch: false,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("the captures of the rule's key: region"), "{e}");
        for (text, want) in [
            ("{key:%Y}", "only event_time and event_date take a format"),
            ("{event_time:%Q}", "`{event_time:%Q}` at position 0"),
            ("{event_time:}", "empty"),
            ("{event_time:today}", "no %-conversion"),
            ("{event_time:%Y%}", "`{event_time:%Y%}`"),
            ("{event_time:%Z}", "`{event_time:%Z}`"),
            ("{meta.}", "a metadata name is"),
            ("{meta.a b}", "a metadata name is"),
            ("{presigned_url:%Y}", "only event_time"),
        ] {
            let e = Template::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn batch_variables_list_the_members_with_a_chosen_separator() {
        let batch_scope = Scope {
            captures: &[],
            batch: true,
        };
        let members = vec![
            object("closing/2026-11/orders.csv"),
            object("closing/2026-11/ledger.csv"),
        ];
        let batch = crate::plugin::BatchInput {
            id: "month-end:batch-0011223344556677".into(),
            group: "closing/2026-11".into(),
            members,
        };
        let closing = object("closing/2026-11/ledger.csv");
        let facts = Facts {
            batch: Some(&batch),
            ..Facts::of(&closing)
        };
        let render = |text: &str| {
            Template::parse_in(text, &batch_scope)
                .unwrap()
                .render(&facts)
                .unwrap()
        };
        assert_eq!(
            render("{batch.keys}"),
            "closing/2026-11/orders.csv\nclosing/2026-11/ledger.csv"
        );
        assert_eq!(
            render("{batch.uris:, }"),
            "s3://acme-landing/closing/2026-11/orders.csv, s3://acme-landing/closing/2026-11/ledger.csv"
        );
        assert_eq!(
            render("{batch.keys:\\t}"),
            "closing/2026-11/orders.csv\tclosing/2026-11/ledger.csv"
        );
        assert_eq!(
            render("{batch.count} {batch.group} {batch.id} {key.name}"),
            "2 closing/2026-11 month-end:batch-0011223344556677 ledger.csv"
        );
        // Outside a batch rule (or in `batch.by`) they are refused when the rule is saved.
        let e = Template::parse("{batch.keys}").unwrap_err().to_string();
        assert!(
            e.contains("batch variables are for rules with a `batch` block"),
            "{e}"
        );
        let e = Template::parse_in("{batch.count:,}", &batch_scope)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("only event_time and event_date take a format"),
            "{e}"
        );
        // Without the batch at render time, the render says so.
        let t = Template::parse_in("{batch.id}", &batch_scope).unwrap();
        assert!(t.uses_batch());
        assert!(t.render(&Facts::of(&closing)).is_err());
    }
}
