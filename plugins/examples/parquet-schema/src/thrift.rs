//! The part of Parquet's `FileMetaData` this plugin needs (the schema and the row count),
//! decoded from Thrift's compact protocol; every other field is skipped by type.
//!
//! Why by hand: the `parquet` crate would decode this too, but compiles for minutes and makes
//! a component of megabytes to read two fields; the compact protocol is a page of code.

use crate::Schema;

struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 64;

fn cut() -> String {
    "not a valid Parquet footer: its metadata is cut short".into()
}

impl Input<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or_else(cut)?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("not a valid Parquet footer: a number is too long".into())
    }

    fn zigzag(&mut self) -> Result<i64, String> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn binary(&mut self) -> Result<&[u8], String> {
        let len = self.varint()? as usize;
        let end = self.at.checked_add(len).ok_or_else(cut)?;
        let b = self.bytes.get(self.at..end).ok_or_else(cut)?;
        self.at = end;
        Ok(b)
    }

    /// A field header: `(id, type)`, or `None` at the struct's end.
    fn field(&mut self, last: &mut i16) -> Result<Option<(i16, u8)>, String> {
        let b = self.byte()?;
        let kind = b & 0x0f;
        if kind == 0 {
            return Ok(None);
        }
        let delta = (b >> 4) as i16;
        *last = if delta == 0 {
            self.zigzag()? as i16
        } else {
            *last + delta
        };
        Ok(Some((*last, kind)))
    }

    fn list_header(&mut self) -> Result<(usize, u8), String> {
        let b = self.byte()?;
        let size = match b >> 4 {
            15 => self.varint()? as usize,
            n => n as usize,
        };
        Ok((size, b & 0x0f))
    }

    /// Skip one value of `kind`.
    fn skip(&mut self, kind: u8) -> Result<(), String> {
        match kind {
            1 | 2 => Ok(()),
            3 => self.byte().map(drop),
            4..=6 => self.varint().map(drop),
            7 => {
                self.at = self.at.checked_add(8).ok_or_else(cut)?;
                Ok(())
            }
            8 => self.binary().map(drop),
            9 | 10 => {
                let (size, elem) = self.list_header()?;
                for _ in 0..size {
                    // Booleans in a list take a byte each.
                    if elem == 1 || elem == 2 {
                        self.byte()?;
                    } else {
                        self.nested(|i| i.skip(elem))?;
                    }
                }
                Ok(())
            }
            11 => {
                let size = self.varint()? as usize;
                if size > 0 {
                    let kinds = self.byte()?;
                    for _ in 0..size {
                        self.nested(|i| i.skip(kinds >> 4))?;
                        self.nested(|i| i.skip(kinds & 0x0f))?;
                    }
                }
                Ok(())
            }
            12 => self.nested(|i| {
                let mut last = 0;
                while let Some((_, kind)) = i.field(&mut last)? {
                    i.skip(kind)?;
                }
                Ok(())
            }),
            k => Err(format!(
                "not a valid Parquet footer: unknown Thrift type {k}"
            )),
        }
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, String>) -> Result<T, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("not a valid Parquet footer: nested too deeply".into());
        }
        let out = f(self);
        self.depth -= 1;
        out
    }
}

/// One `SchemaElement`: its name and how many children it has (none for a column).
struct Element {
    name: String,
    children: usize,
}

fn element(input: &mut Input) -> Result<Element, String> {
    let (mut name, mut children) = (None, 0usize);
    let mut last = 0;
    while let Some((id, kind)) = input.field(&mut last)? {
        match (id, kind) {
            (4, 8) => name = Some(String::from_utf8_lossy(input.binary()?).into_owned()),
            (5, 5) => children = usize::try_from(input.zigzag()?).unwrap_or(0),
            (_, kind) => input.skip(kind)?,
        }
    }
    Ok(Element {
        name: name.ok_or("not a valid Parquet footer: a schema element has no name")?,
        children,
    })
}

/// `FileMetaData`: field 2 is the schema (a flattened tree, root first), field 3 the rows.
pub fn file_schema(metadata: &[u8]) -> Result<Schema, String> {
    let mut input = Input {
        bytes: metadata,
        at: 0,
        depth: 0,
    };
    let (mut elements, mut rows) = (Vec::new(), 0i64);
    let mut last = 0;
    while let Some((id, kind)) = input.field(&mut last)? {
        match (id, kind) {
            (2, 9) => {
                let (size, elem) = input.list_header()?;
                if elem != 12 {
                    return Err(
                        "not a valid Parquet footer: the schema is not a list of structs".into(),
                    );
                }
                for _ in 0..size {
                    elements.push(input.nested(element)?);
                }
            }
            (3, 6) => rows = input.zigzag()?,
            (_, kind) => input.skip(kind)?,
        }
    }
    let root = elements
        .first()
        .ok_or("not a valid Parquet footer: the schema is empty")?;
    // The root's children are the top-level columns; skip each one's subtree.
    let mut columns = Vec::with_capacity(root.children);
    let mut at = 1;
    for _ in 0..root.children {
        let column = elements
            .get(at)
            .ok_or("not a valid Parquet footer: the schema has fewer elements than it says")?;
        columns.push(column.name.clone());
        let mut pending = column.children;
        at += 1;
        while pending > 0 {
            let child = elements
                .get(at)
                .ok_or("not a valid Parquet footer: the schema has fewer elements than it says")?;
            pending = pending - 1 + child.children;
            at += 1;
        }
    }
    Ok(Schema { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FileMetaData { version: 1, schema: [root(2 children), a, b(group, 1 child), b.x], num_rows: 7 }
    /// written by hand in the compact protocol.
    fn footer() -> Vec<u8> {
        let mut m = vec![0x15, 0x02]; // field 1 i32 = 1
        m.extend([0x19, 0x4c]); // field 2 list, 4 structs
        let elem = |name: &str, children: Option<i64>| {
            let mut e = vec![0x48, name.len() as u8]; // field 4 binary
            e.extend(name.as_bytes());
            if let Some(c) = children {
                e.extend([0x15, (c << 1) as u8]); // field 5 i32
            }
            e.push(0);
            e
        };
        m.extend(elem("schema", Some(2)));
        m.extend({
            let mut e = vec![0x15, 0x02]; // type i32 = 1
            e.extend([0x38, 1, b'a', 0]); // field 4 binary "a" (delta 3)
            e
        });
        m.extend(elem("b", Some(1)));
        m.extend(elem("x", None));
        m.extend([0x16, 14]); // field 3 i64 = 7
        m.extend([0x19, 0x1c, 0x00]); // field 4 list of 1 struct (empty row group)
        m.push(0);
        m
    }

    #[test]
    fn the_schema_and_rows_are_read_and_nested_columns_skipped() {
        assert_eq!(
            file_schema(&footer()).unwrap(),
            Schema {
                columns: vec!["a".into(), "b".into()],
                rows: 7
            }
        );
    }

    #[test]
    fn broken_footers_are_errors_not_panics() {
        let f = footer();
        for cut_at in 0..f.len() {
            let _ = file_schema(&f[..cut_at]);
        }
        assert!(
            file_schema(&[0x19, 0x4c])
                .unwrap_err()
                .contains("cut short")
        );
        assert!(
            file_schema(&[0x1d])
                .unwrap_err()
                .contains("unknown Thrift type 13")
        );
    }
}
