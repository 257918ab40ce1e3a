//! Time formats in templates: `{event_time:%Y/%m/%d}`, `{event_date:%Y%m%d}`.
//!
//! The format is `strftime`'s (as the `time` crate reads it: `%Y %m %d %H %M %S %j %a %b %F
//! %T %z %s %%` and the rest of the usual set, with `%-d` / `%_d` / `%0d` padding). Times are
//! rendered in UTC: S3 stamps its events in UTC, and a fixed offset would be wrong half the
//! year wherever clocks change, so `%z` is always `+0000`. `%Z` (a zone name) is refused for the
//! same reason. A format is checked when the rule is saved: it must parse, hold at least one
//! conversion (a format of plain text is surely a mistake) and format a sample time.

use ::time::format_description::OwnedFormatItem;
use ::time::format_description::well_known::Rfc3339;
use ::time::{OffsetDateTime, UtcOffset};

/// A parsed `strftime` format.
#[derive(Debug, Clone)]
pub struct TimeFormat {
    source: String,
    items: OwnedFormatItem,
}

impl TimeFormat {
    /// Parse and check a format; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<TimeFormat, String> {
        if text.is_empty() {
            return Err(
                "the format is empty (leave out the `:` for the time as S3 gave it)".into(),
            );
        }
        if !text.replace("%%", "").contains('%') {
            return Err("the format has no %-conversion (e.g. %Y-%m-%d)".into());
        }
        let items = ::time::format_description::parse_strftime_owned(text)
            .map_err(|e| format!("not a strftime format: {e}"))?;
        let format = TimeFormat {
            source: text.to_string(),
            items,
        };
        let sample = OffsetDateTime::from_unix_timestamp(1_795_000_000)
            .map_err(|e| format!("internal: sample time: {e}"))?;
        format
            .format(sample)
            .map_err(|e| format!("cannot format a time: {e}"))?;
        Ok(format)
    }

    /// The format as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// `time` rendered in UTC.
    pub fn format(&self, time: OffsetDateTime) -> Result<String, ::time::error::Format> {
        time.to_offset(UtcOffset::UTC).format(&self.items)
    }
}

/// An RFC 3339 event time (`2026-11-24T09:15:02Z`, `2026-11-24T09:15:02.123Z`, offsets too).
pub fn parse_event_time(text: &str) -> Result<OffsetDateTime, ::time::error::Parse> {
    OffsetDateTime::parse(text.trim(), &Rfc3339)
}
