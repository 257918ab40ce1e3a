//! Reading a long YAML list of rules one item at a time.
//!
//! `serde_yaml` loads a whole document's events before it deserializes any of it: for a file of
//! 100,000 rules that is about 2.5 KiB of events per rule held at once, most of the CLI's peak
//! memory. A rules file is nearly always a block sequence at column 0 (`- id: …` or
//! `- {id: …}`), whose items can be cut apart by their `-` at the start of a line: in block
//! style every line of an item but its first is indented (or blank, or a comment). Each item is
//! then read on its own and its events dropped before the next one.
//!
//! This is only a fast path. Anything it is not sure of (a document marker, a top-level line
//! that is neither an item nor a comment, a tab where the indentation is) makes [`split`]
//! answer `None`, and the caller reads the whole document as before; so does any item that
//! does not read on its own (an alias to another item's anchor, a syntax error), so error
//! messages keep their line and column in the file.

/// The items of `text` if it is a block sequence at column 0, each with its `- `, in order.
pub fn split(text: &str) -> Option<Vec<&str>> {
    let mut items = Vec::new();
    let mut start: Option<usize> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        let is_item = content == "-" || content.starts_with("- ");
        if is_item {
            if let Some(s) = start {
                items.push(&text[s..offset]);
            }
            start = Some(offset);
        } else {
            let blank_or_comment = content.trim().is_empty() || content.starts_with('#');
            let indented = content.starts_with(' ');
            // `---`, `...`, `%YAML`, a key at column 0, a tab as indentation: not ours.
            if !(blank_or_comment || (indented && start.is_some())) {
                return None;
            }
        }
        offset += line.len();
    }
    if let Some(s) = start {
        items.push(&text[s..]);
    }
    // One item gains nothing; zero items is not a list (the caller decides what it is).
    (items.len() > 1).then_some(items)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn block_and_flow_items_are_cut_at_their_dash() {
        let text =
            "# rules\n- id: a\n  key: 'a/**'\n\n  # note\n- {id: b, key: 'b/**'}\n-\n  id: c\n";
        let items = split(text).expect("a block sequence");
        assert_eq!(
            items,
            vec![
                "- id: a\n  key: 'a/**'\n\n  # note\n",
                "- {id: b, key: 'b/**'}\n",
                "-\n  id: c\n"
            ]
        );
    }

    #[test]
    fn anything_else_is_left_to_the_whole_document_reader() {
        for text in [
            "id: a\nkey: b\n",              // a single rule
            "---\n- id: a\n- id: b\n",      // a document marker
            "- id: a\n- id: b\n...\n",      // an end marker
            "- id: a\nkey: x\n- id: b\n",   // a key at column 0
            "- id: a\n\tkey: x\n- id: b\n", // a tab as indentation
            "[{id: a}, {id: b}]\n",         // flow style
            "- id: a\n",                    // one item: nothing to gain
            "  - id: a\n  - id: b\n",       // an indented sequence
            "-id: a\n- id: b\n",            // `-id` is a scalar, not an item
        ] {
            assert_eq!(split(text), None, "{text:?}");
        }
    }

    #[test]
    fn windows_line_ends_are_items_too() {
        let items = split("- id: a\r\n  key: x\r\n- id: b\r\n").expect("a block sequence");
        assert_eq!(items, vec!["- id: a\r\n  key: x\r\n", "- id: b\r\n"]);
    }
}
