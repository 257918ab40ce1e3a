//! json-fields: an alteryx-router plugin that reads fields out of a JSON object.
//!
//! The object's head must be one JSON object (or, for NDJSON, its first line is). The rule's
//! config maps question names to JSON Pointers (RFC 6901):
//!
//! ```json
//! {"fields": {"Customer": "/customer/id", "Batch": "/batch"}, "required": ["Customer"]}
//! ```
//!
//! Each pointer that resolves becomes a question value (strings as they are, numbers and
//! booleans as JSON text, objects and arrays as compact JSON). A required field that does not
//! resolve skips the object with a reason; a head that is not JSON, or a bad config, is an error.
//!
//! The logic lives in [`fields`], plain Rust tested natively; the WebAssembly glue is the
//! `wasm` module at the bottom.

use serde_json::Value;

/// What the plugin decided for one object.
#[derive(Debug, PartialEq)]
pub enum Decision {
    Questions(Vec<(String, String)>),
    Skip(String),
}

/// The plugin's logic: `head` is the start of the object, `config` the rule's config (JSON).
pub fn fields(head: &[u8], config: &str) -> Result<Decision, String> {
    let config: Value = if config.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_str(config).map_err(|e| format!("config is not JSON: {e}"))?
    };
    let Some(wanted) = config.get("fields").and_then(Value::as_object) else {
        return Err("config.fields must map question names to JSON Pointers".into());
    };
    let required: Vec<&str> = match config.get("required") {
        None => Vec::new(),
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err("config.required must be a list of question names".into()),
    };

    let text = std::str::from_utf8(head).map_err(|e| format!("the object is not UTF-8: {e}"))?;
    let text = text.trim_start_matches('\u{feff}');
    let document: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        // NDJSON, or a head cut in the middle of a large document: try the first line.
        Err(whole) => match text.lines().next().map(serde_json::from_str::<Value>) {
            Some(Ok(v)) => v,
            _ => {
                return Err(format!(
                    "the object does not start with a JSON object: {whole}"
                ));
            }
        },
    };
    if !document.is_object() {
        return Err("the object is JSON but not a JSON object".into());
    }

    let mut values = Vec::new();
    let mut missing = Vec::new();
    for (question, pointer) in wanted {
        let Some(pointer) = pointer.as_str() else {
            return Err(format!(
                "config.fields.{question} must be a JSON Pointer string"
            ));
        };
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(format!(
                "config.fields.{question}: {pointer:?} is not a JSON Pointer (it starts with '/')"
            ));
        }
        match document.pointer(pointer) {
            Some(Value::Null) | None => missing.push(question.as_str()),
            Some(Value::String(s)) => values.push((question.clone(), s.clone())),
            Some(other) => values.push((question.clone(), other.to_string())),
        }
    }
    let missing_required: Vec<&str> = required
        .iter()
        .copied()
        .filter(|r| missing.contains(r))
        .collect();
    if !missing_required.is_empty() {
        return Ok(Decision::Skip(format!(
            "missing required field(s): {}",
            missing_required.join(", ")
        )));
    }
    Ok(Decision::Questions(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"fields": {"Customer": "/customer/id", "Batch": "/batch", "Lines": "/lines"},
                            "required": ["Customer"]}"#;

    #[test]
    fn reads_the_fields_it_is_asked_for() {
        let head = br#"{"customer": {"id": "C-042"}, "batch": 7, "lines": [1, 2]}"#;
        assert_eq!(
            fields(head, CONFIG),
            Ok(Decision::Questions(vec![
                ("Batch".into(), "7".into()),
                ("Customer".into(), "C-042".into()),
                ("Lines".into(), "[1,2]".into()),
            ]))
        );
    }

    #[test]
    fn ndjson_uses_the_first_line() {
        let head = b"{\"customer\": {\"id\": \"C-1\"}}\n{\"customer\": {\"id\": \"C-2\"}}\n{\"cust";
        assert!(
            matches!(fields(head, CONFIG), Ok(Decision::Questions(q)) if q == vec![("Customer".to_string(), "C-1".to_string())])
        );
    }

    #[test]
    fn a_missing_required_field_skips() {
        assert_eq!(
            fields(br#"{"batch": 1}"#, CONFIG),
            Ok(Decision::Skip("missing required field(s): Customer".into()))
        );
    }

    #[test]
    fn bad_input_and_bad_config_are_errors_that_say_what() {
        assert!(
            fields(b"Region,Amount\n", CONFIG)
                .unwrap_err()
                .contains("does not start with a JSON object")
        );
        assert!(
            fields(b"[1]", CONFIG)
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert!(
            fields(b"{}", "{")
                .unwrap_err()
                .contains("config is not JSON")
        );
        assert!(fields(b"{}", "{}").unwrap_err().contains("config.fields"));
        assert!(
            fields(b"{}", r#"{"fields": {"A": "a/b"}}"#)
                .unwrap_err()
                .contains("not a JSON Pointer")
        );
    }
}

/// The WebAssembly component: bindings generated from interface 0.1.0 of the router's WIT (`plugins/wit/0.1.0`).
mod wasm {
    wit_bindgen::generate!({
        path: "../../wit/0.1.0",
        world: "router-plugin",
    });

    use alteryx_router::plugin::host::{Level, log};
    use alteryx_router::plugin::types::QuestionValue;

    struct JsonFields;

    impl Guest for JsonFields {
        fn route(request: Request) -> Result<Outcome, String> {
            let decision = super::fields(&request.head, &request.config)?;
            Ok(match decision {
                super::Decision::Questions(values) => {
                    log(
                        Level::Info,
                        &format!("{}: {} field(s)", request.object.key, values.len()),
                    );
                    Outcome::Questions(
                        values
                            .into_iter()
                            .map(|(name, value)| QuestionValue { name, value })
                            .collect(),
                    )
                }
                super::Decision::Skip(reason) => Outcome::Skip(reason),
            })
        }
    }

    export!(JsonFields);
}
