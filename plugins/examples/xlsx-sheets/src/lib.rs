//! xlsx-sheets: an Excel workbook's sheet names, read from its ZIP directory and
//! `xl/workbook.xml` only (a few kilobytes of a workbook of any size).
//!
//! Question values: `Sheets` (the names joined by `config.separator`, default `,`),
//! `SheetCount`, `FirstSheet`. A workbook that lacks a sheet named in `config.required` is
//! skipped. Anything that is not a workbook (not a ZIP, no `xl/workbook.xml`) is an error
//! saying so.

mod zip;

use alteryx_router_plugin::{Object, Outcome, Request, log};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Sheets the workbook must have; without one of them it is skipped.
    required: Vec<String>,
    /// Between names in `Sheets` (default `,`).
    separator: Option<String>,
}

/// Decompressed `xl/workbook.xml` larger than this is not a workbook's sheet list.
const MAX_WORKBOOK_XML: usize = 8 << 20;

pub fn route(request: &Request, object: &mut Object) -> Result<Outcome, String> {
    let config: Config = request.config()?;
    let sheets = sheet_names(object)?;
    let missing: Vec<&str> = config
        .required
        .iter()
        .filter(|r| !sheets.contains(r))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Ok(Outcome::skip(format!(
            "the workbook lacks sheet(s): {} (it has: {})",
            missing.join(", "),
            sheets.join(", ")
        )));
    }
    log::info(&format!(
        "{}: {} sheet(s), {} bytes read of {}",
        request.object.key,
        sheets.len(),
        object.bytes_read(),
        object.size()
    ));
    let separator = config.separator.as_deref().unwrap_or(",");
    Ok(Outcome::questions([
        ("Sheets", sheets.join(separator)),
        ("SheetCount", sheets.len().to_string()),
        ("FirstSheet", sheets.first().cloned().unwrap_or_default()),
    ]))
}

alteryx_router_plugin::export_plugin!(route);

/// The sheet names, in workbook order.
pub fn sheet_names(object: &mut Object) -> Result<Vec<String>, String> {
    let directory = zip::Directory::read(object)?;
    let entry = directory.find("xl/workbook.xml").ok_or_else(|| {
        "not an Excel workbook: the archive has no xl/workbook.xml (an .xlsb or another ZIP?)"
            .to_string()
    })?;
    let xml = entry.extract(object, MAX_WORKBOOK_XML)?;
    parse_sheet_names(&xml)
}

/// `<sheet name="…">` elements of `xl/workbook.xml`, with or without a namespace prefix.
fn parse_sheet_names(xml: &[u8]) -> Result<Vec<String>, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut names = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == b"sheet" => {
                for attr in e.attributes() {
                    let attr = attr.map_err(|e| format!("xl/workbook.xml: {e}"))?;
                    if attr.key.local_name().as_ref() == b"name" {
                        let value = attr
                            .decode_and_unescape_value(reader.decoder())
                            .map_err(|e| format!("xl/workbook.xml: {e}"))?;
                        names.push(value.into_owned());
                    }
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(format!(
                    "xl/workbook.xml is not XML at byte {}: {e}",
                    reader.buffer_position()
                ));
            }
        }
        buf.clear();
    }
    if names.is_empty() {
        return Err("xl/workbook.xml names no sheets".into());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names_come_from_the_sheets_element_unescaped() {
        let xml = br#"<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="r"><sheets><sheet name="Sales &amp; Costs" sheetId="1" r:id="rId1"/><sheet name="&#x65E5;&#x672C;" sheetId="2" r:id="rId2"/></sheets></workbook>"#;
        assert_eq!(
            parse_sheet_names(xml).unwrap(),
            vec!["Sales & Costs".to_string(), "日本".to_string()]
        );
        let prefixed =
            br#"<x:workbook xmlns:x="x"><x:sheets><x:sheet name="A"/></x:sheets></x:workbook>"#;
        assert_eq!(parse_sheet_names(prefixed).unwrap(), vec!["A".to_string()]);
        assert!(
            parse_sheet_names(b"<workbook/>")
                .unwrap_err()
                .contains("no sheets")
        );
        assert!(
            parse_sheet_names(b"<a><b></a>")
                .unwrap_err()
                .contains("not XML")
        );
    }
}
