//! Question value templates over an object's facts: `"s3://{bucket}/{key}"`, `"{key.name}"`.
//!
//! Templates are parsed once, when a rule is saved or loaded, so an unknown variable is an
//! error at save time (naming the variable and where it is), never when an event arrives.
//! `{{` and `}}` stand for literal braces. Rendering walks the pre-parsed segments.

use crate::event::ObjectCreated;

/// Every variable a template may use.
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
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    EventTime,
    EventDate,
    S3Uri,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "bucket" => Var::Bucket,
            "key" => Var::Key,
            "key.name" => Var::KeyName,
            "key.stem" => Var::KeyStem,
            "key.ext" => Var::KeyExt,
            "key.dir" => Var::KeyDir,
            "size" => Var::Size,
            "etag" => Var::Etag,
            "version_id" => Var::VersionId,
            "event_time" => Var::EventTime,
            "event_date" => Var::EventDate,
            "s3_uri" => Var::S3Uri,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Var(Var),
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
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
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
                    let name = rest[..end].trim();
                    if name.is_empty() {
                        return Err(TemplateError::Empty { position: i });
                    }
                    let var = Var::parse(name).ok_or_else(|| TemplateError::UnknownVariable {
                        name: name.to_string(),
                        position: i,
                        known: VARIABLES.join(", "),
                    })?;
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

    pub fn render(&self, obj: &ObjectCreated) -> String {
        let mut out = String::with_capacity(self.source.len() + obj.key.len());
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Var(v) => push_var(&mut out, *v, obj),
            }
        }
        out
    }
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

fn push_var(out: &mut String, var: Var, obj: &ObjectCreated) {
    use std::fmt::Write as _;
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
        Var::EventTime => out.push_str(&obj.event_time),
        Var::EventDate => out.push_str(obj.event_time.get(..10).unwrap_or(&obj.event_time)),
        Var::S3Uri => {
            out.push_str("s3://");
            out.push_str(&obj.bucket);
            out.push('/');
            out.push_str(&obj.key);
        }
    }
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
        Template::parse(t).unwrap().render(&object(key))
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
        assert_eq!(VARIABLES.len(), 12);
        for v in VARIABLES {
            assert!(Template::parse(&format!("{{{v}}}")).is_ok(), "{v}");
        }
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
    }
}
