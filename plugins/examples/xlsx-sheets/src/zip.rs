//! Just enough of ZIP (APPNOTE 6.3) to find one member and inflate it, reading from the end:
//! the end-of-central-directory record (ZIP64 too), the central directory, then the one
//! member's local header and data. Nothing else of the archive is read.

use alteryx_router_plugin::Object;

const EOCD: u32 = 0x0605_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_EOCD: u32 = 0x0606_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;
/// The end record is 22 bytes plus a comment of up to 65535.
const MAX_EOCD_SEARCH: u64 = 22 + 65535;
/// First look at this much of the end: the record without a comment, and usually the whole
/// central directory of a workbook.
const FIRST_TAIL: u64 = 4096;

pub struct Directory {
    entries: Vec<Entry>,
}

pub struct Entry {
    pub name: String,
    method: u16,
    compressed: u64,
    uncompressed: u64,
    local_header: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn truncated(what: &str) -> String {
    format!("not a valid ZIP archive: {what} is cut short")
}

impl Directory {
    pub fn read(object: &mut Object) -> Result<Self, String> {
        let size = object.size();
        let (mut tail_start, mut tail) = object.read_tail(FIRST_TAIL);
        let mut eocd = find_eocd(&tail);
        if eocd.is_none() && tail_start > 0 {
            // A comment after the record: look at the rest of the 64 KiB it may span.
            let start = size.saturating_sub(MAX_EOCD_SEARCH);
            let mut more = object.read_at(start, tail_start - start);
            more.extend_from_slice(&tail);
            (tail_start, tail) = (start, more);
            eocd = find_eocd(&tail);
        }
        let at = eocd.ok_or_else(|| {
            "not a ZIP archive (an .xlsx is one): no end-of-central-directory record at its end (an old .xls, or a password-protected workbook, is not a ZIP)".to_string()
        })?;
        let record = &tail[at..];
        let mut entries = u64::from(u16_at(record, 10).ok_or_else(|| truncated("the end record"))?);
        let mut cd_size = u64::from(u32_at(record, 12).ok_or_else(|| truncated("the end record"))?);
        let mut cd_offset =
            u64::from(u32_at(record, 16).ok_or_else(|| truncated("the end record"))?);
        if entries == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
            // ZIP64: a locator just before the record points at the 64-bit end record.
            let locator = at
                .checked_sub(20)
                .and_then(|l| (u32_at(&tail, l) == Some(ZIP64_LOCATOR)).then_some(l))
                .ok_or_else(|| truncated("the ZIP64 locator"))?;
            let zip64_at =
                u64_at(&tail, locator + 8).ok_or_else(|| truncated("the ZIP64 locator"))?;
            let record = slice_or_read(object, &tail, tail_start, zip64_at, 56)?;
            if u32_at(&record, 0) != Some(ZIP64_EOCD) {
                return Err(truncated("the ZIP64 end record"));
            }
            entries = u64_at(&record, 32).ok_or_else(|| truncated("the ZIP64 end record"))?;
            cd_size = u64_at(&record, 40).ok_or_else(|| truncated("the ZIP64 end record"))?;
            cd_offset = u64_at(&record, 48).ok_or_else(|| truncated("the ZIP64 end record"))?;
        }
        if cd_offset.checked_add(cd_size).is_none_or(|end| end > size) {
            return Err(format!(
                "not a valid ZIP archive: its directory ({cd_size} bytes at {cd_offset}) lies outside the {size}-byte file"
            ));
        }
        let cd = slice_or_read(object, &tail, tail_start, cd_offset, cd_size)?;
        let mut list = Vec::with_capacity(entries.min(65536) as usize);
        let mut at = 0usize;
        while list.len() < entries as usize {
            let entry = parse_central(&cd, at).ok_or_else(|| truncated("the central directory"))?;
            at = entry.1;
            list.push(entry.0);
        }
        Ok(Self { entries: list })
    }

    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

/// The end record's position in `tail`, searching backwards.
fn find_eocd(tail: &[u8]) -> Option<usize> {
    (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(tail, i) == Some(EOCD))
}

/// Bytes `offset .. offset + length` from what was read already, else read them.
fn slice_or_read(
    object: &mut Object,
    tail: &[u8],
    tail_start: u64,
    offset: u64,
    length: u64,
) -> Result<Vec<u8>, String> {
    if offset >= tail_start && offset + length <= tail_start + tail.len() as u64 {
        let from = (offset - tail_start) as usize;
        return Ok(tail[from..from + length as usize].to_vec());
    }
    let bytes = object.read_at(offset, length);
    if (bytes.len() as u64) < length {
        return Err(truncated("the archive"));
    }
    Ok(bytes)
}

/// One central directory header at `at`: the entry and where the next one starts.
fn parse_central(cd: &[u8], at: usize) -> Option<(Entry, usize)> {
    if u32_at(cd, at)? != CENTRAL {
        return None;
    }
    let method = u16_at(cd, at + 10)?;
    let mut compressed = u64::from(u32_at(cd, at + 20)?);
    let mut uncompressed = u64::from(u32_at(cd, at + 24)?);
    let name_len = usize::from(u16_at(cd, at + 28)?);
    let extra_len = usize::from(u16_at(cd, at + 30)?);
    let comment_len = usize::from(u16_at(cd, at + 32)?);
    let mut local_header = u64::from(u32_at(cd, at + 42)?);
    let name = String::from_utf8_lossy(cd.get(at + 46..at + 46 + name_len)?).into_owned();
    // ZIP64 extended information (id 1): the 64-bit values of the fields set to all ones.
    let extra = cd.get(at + 46 + name_len..at + 46 + name_len + extra_len)?;
    let mut e = 0;
    while e + 4 <= extra.len() {
        let (id, len) = (u16_at(extra, e)?, usize::from(u16_at(extra, e + 2)?));
        if id == 1 {
            let mut field = e + 4;
            for value in [&mut uncompressed, &mut compressed, &mut local_header] {
                if *value == 0xFFFF_FFFF {
                    *value = u64_at(extra, field)?;
                    field += 8;
                }
            }
        }
        e += 4 + len;
    }
    let next = at + 46 + name_len + extra_len + comment_len;
    Some((
        Entry {
            name,
            method,
            compressed,
            uncompressed,
            local_header,
        },
        next,
    ))
}

impl Entry {
    /// The member's bytes, inflated, refusing more than `limit` of them.
    pub fn extract(&self, object: &mut Object, limit: usize) -> Result<Vec<u8>, String> {
        if self.uncompressed > limit as u64 {
            return Err(format!(
                "{} is {} bytes uncompressed (more than {limit}): not what this plugin reads",
                self.name, self.uncompressed
            ));
        }
        // One read for the local header and the data, with room for a local extra field
        // unlike the central one; a second read only when that was not enough.
        let guess = 30 + self.name.len() as u64 + 256 + self.compressed;
        let mut bytes = object.read_at(self.local_header, guess);
        if u32_at(&bytes, 0) != Some(LOCAL) {
            return Err(truncated(&format!("the local header of {}", self.name)));
        }
        let name_len = u64::from(u16_at(&bytes, 26).ok_or_else(|| truncated("a local header"))?);
        let extra_len = u64::from(u16_at(&bytes, 28).ok_or_else(|| truncated("a local header"))?);
        let data_start = 30 + name_len + extra_len;
        let data_end = data_start + self.compressed;
        if data_end > bytes.len() as u64 {
            let more = object.read_at(
                self.local_header + bytes.len() as u64,
                data_end - bytes.len() as u64,
            );
            bytes.extend_from_slice(&more);
        }
        let data = bytes
            .get(data_start as usize..data_end as usize)
            .ok_or_else(|| truncated(&self.name))?;
        match self.method {
            0 => Ok(data.to_vec()),
            8 => miniz_oxide::inflate::decompress_to_vec_with_limit(data, limit)
                .map_err(|e| format!("{} does not inflate: {e:?}", self.name)),
            m => Err(format!(
                "{} is compressed with ZIP method {m}, which this plugin does not read (Excel uses 8, deflate)",
                self.name
            )),
        }
    }
}
