//! The object being routed, and a batch's members, read by byte ranges within the rule's
//! budget (one budget for all of them).

/// One ranged read, as the router records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// `None`: the object; `Some(i)`: member `i` of the batch.
    pub member: Option<u32>,
    pub offset: u64,
    pub length: u64,
}

enum Source {
    /// The router's `read-range` and `read-member-range` (a component running in the router).
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    Host,
    /// Bytes in memory ([`crate::testing`]): the object, and the batch's members.
    Local {
        object: Vec<u8>,
        members: Vec<Vec<u8>>,
    },
}

/// The object the router is routing, and on a batch rule the batch's members. Every read is
/// of the version the event announced (for a member, the version that joined the batch) and
/// counts against [`crate::Request::read_budget`]; a read past the budget, or one starting at
/// or past the end of what is read, or of a member that does not exist, ends the call (the
/// router records an error naming the values; in a native test run it panics with the same
/// message).
pub struct Object {
    source: Source,
    size: u64,
    /// The members' sizes, in join order (empty for a single object).
    member_sizes: Vec<u64>,
    budget: u64,
    used: u64,
    reads: Vec<Read>,
}

impl Object {
    pub(crate) fn from_host(size: u64, member_sizes: Vec<u64>, budget: u64) -> Self {
        Self {
            source: Source::Host,
            size,
            member_sizes,
            budget,
            used: 0,
            reads: Vec::new(),
        }
    }

    pub(crate) fn local(object: Vec<u8>, members: Vec<Vec<u8>>, budget: u64) -> Self {
        Self {
            size: object.len() as u64,
            member_sizes: members.iter().map(|m| m.len() as u64).collect(),
            source: Source::Local { object, members },
            budget,
            used: 0,
            reads: Vec::new(),
        }
    }

    /// The object's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// How many members the batch has (0 for a single object).
    pub fn member_count(&self) -> usize {
        self.member_sizes.len()
    }

    /// Member `member`'s size in bytes, if there is such a member.
    pub fn member_size(&self, member: u32) -> Option<u64> {
        self.member_sizes.get(member as usize).copied()
    }

    /// Bytes read so far (what counts against the budget).
    pub fn bytes_read(&self) -> u64 {
        self.used
    }

    /// Bytes that may still be read in this call.
    pub fn budget_left(&self) -> u64 {
        self.budget - self.used
    }

    /// Every read so far, in order.
    pub fn reads(&self) -> &[Read] {
        &self.reads
    }

    /// Bytes `offset .. offset + length`, fewer only where the object ends.
    pub fn read_at(&mut self, offset: u64, length: u64) -> Vec<u8> {
        self.read(None, offset, length)
    }

    /// Bytes `offset .. offset + length` of member `member` of the batch (its index in
    /// [`crate::Batch::members`]), fewer only where that member ends.
    pub fn read_member_at(&mut self, member: u32, offset: u64, length: u64) -> Vec<u8> {
        self.read(Some(member), offset, length)
    }

    fn read(&mut self, member: Option<u32>, offset: u64, length: u64) -> Vec<u8> {
        let bytes = match &self.source {
            // The router applies the rules below itself, ending the call with an error that
            // names the plugin, the rule and the values.
            #[cfg(target_arch = "wasm32")]
            Source::Host => match member {
                None => crate::bindings::alteryx_router::plugin::host::read_range(offset, length),
                Some(i) => crate::bindings::alteryx_router::plugin::host::read_member_range(
                    i, offset, length,
                ),
            },
            #[cfg(not(target_arch = "wasm32"))]
            Source::Host => unreachable!("the host object exists only inside the router"),
            Source::Local { object, members } => {
                let (bytes, what) = match member {
                    None => (object, "the object".to_string()),
                    Some(i) => match members.get(i as usize) {
                        Some(bytes) => (bytes, format!("batch member {i}")),
                        None => refuse(format!(
                            "asked to read batch member {i}, but the call has {} member(s) (indexes 0 to {} exclusive; none on a single object)",
                            members.len(),
                            members.len()
                        )),
                    },
                };
                if length == 0 {
                    return Vec::new();
                }
                let size = bytes.len() as u64;
                if offset >= size {
                    refuse(format!(
                        "asked to read {length} bytes at offset {offset} of {what}, at or past the end of the {size}-byte object"
                    ));
                }
                let length = length.min(size - offset);
                if self.used + length > self.budget {
                    refuse(format!(
                        "asked to read {length} bytes at offset {offset} of {what}, beyond its read budget: {} of {} bytes already read (plugin.read_budget_bytes)",
                        self.used, self.budget
                    ));
                }
                bytes[offset as usize..(offset + length) as usize].to_vec()
            }
        };
        if length > 0 {
            self.used += bytes.len() as u64;
            self.reads.push(Read {
                member,
                offset,
                length: bytes.len() as u64,
            });
        }
        bytes
    }

    /// The last `length` bytes (all of them for a smaller object), and where they start.
    pub fn read_tail(&mut self, length: u64) -> (u64, Vec<u8>) {
        let length = length.min(self.size);
        let offset = self.size - length;
        (offset, self.read_at(offset, length))
    }

    /// `std::io::Read + Seek` over the object, fetching `chunk` bytes at a time, for crates
    /// that parse from a reader. Each fetch is one ranged read (counted against the budget).
    pub fn reader(&mut self, chunk: u64) -> ObjectReader<'_> {
        let size = self.size;
        self.reader_of(None, size, chunk)
    }

    /// [`Object::reader`] over member `member` of the batch (ends the call if there is no
    /// such member).
    pub fn member_reader(&mut self, member: u32, chunk: u64) -> ObjectReader<'_> {
        let size = match self.member_size(member) {
            Some(size) => size,
            // Let the read say what is wrong, as the router would.
            None => return self.reader_of(Some(member), 1, chunk),
        };
        self.reader_of(Some(member), size, chunk)
    }

    fn reader_of(&mut self, member: Option<u32>, size: u64, chunk: u64) -> ObjectReader<'_> {
        ObjectReader {
            object: self,
            member,
            size,
            chunk: chunk.max(1),
            position: 0,
            window_start: 0,
            window: Vec::new(),
        }
    }
}

/// The router ends the call when a read is refused; natively, a panic does the same.
fn refuse(message: String) -> ! {
    panic!("read refused: {message}")
}

/// A buffered `Read + Seek` view of an [`Object`] or of one of the batch's members.
pub struct ObjectReader<'a> {
    object: &'a mut Object,
    member: Option<u32>,
    size: u64,
    chunk: u64,
    position: u64,
    window_start: u64,
    window: Vec<u8>,
}

impl std::io::Read for ObjectReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() || self.position >= self.size {
            return Ok(0);
        }
        let window_end = self.window_start + self.window.len() as u64;
        if !(self.window_start..window_end).contains(&self.position) {
            let want = self.chunk.max(buf.len() as u64);
            self.window = self.object.read(self.member, self.position, want);
            self.window_start = self.position;
        }
        let from = (self.position - self.window_start) as usize;
        let n = buf.len().min(self.window.len() - from);
        buf[..n].copy_from_slice(&self.window[from..from + n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for ObjectReader<'_> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            std::io::SeekFrom::Start(n) => Some(n),
            std::io::SeekFrom::End(d) => self.size.checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.position.checked_add_signed(d),
        };
        match target {
            Some(p) => {
                self.position = p;
                Ok(p)
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the object",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Seek as _, SeekFrom};

    #[test]
    fn reads_are_counted_and_clipped_at_the_end() {
        let mut o = Object::local((0u8..100).collect(), Vec::new(), 50);
        assert_eq!(o.read_at(95, 10), vec![95, 96, 97, 98, 99]);
        assert_eq!(o.read_tail(3), (97, vec![97, 98, 99]));
        assert_eq!(o.read_at(0, 0), Vec::<u8>::new());
        assert_eq!(o.bytes_read(), 8);
        assert_eq!(o.reads().len(), 2);
        assert_eq!(o.budget_left(), 42);
    }

    #[test]
    #[should_panic(expected = "beyond its read budget: 0 of 10 bytes")]
    fn a_read_past_the_budget_ends_the_call() {
        Object::local(vec![0; 100], Vec::new(), 10).read_at(0, 11);
    }

    #[test]
    #[should_panic(expected = "at or past the end of the 100-byte object")]
    fn a_read_past_the_end_ends_the_call() {
        Object::local(vec![0; 100], Vec::new(), 1000).read_at(100, 1);
    }

    #[test]
    fn the_reader_fetches_chunks_and_seeks() {
        let mut o = Object::local((0u8..=255).collect(), Vec::new(), 1000);
        let mut r = o.reader(16);
        r.seek(SeekFrom::End(-4)).unwrap();
        let mut tail = Vec::new();
        r.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, vec![252, 253, 254, 255]);
        r.seek(SeekFrom::Start(10)).unwrap();
        let mut two = [0u8; 2];
        r.read_exact(&mut two).unwrap();
        r.read_exact(&mut two).unwrap();
        assert_eq!(two, [12, 13]);
        assert!(r.seek(SeekFrom::Current(-100)).is_err());
        assert_eq!(o.reads().len(), 2, "one fetch per window: {:?}", o.reads());
        assert_eq!(o.bytes_read(), 4 + 16);
    }

    #[test]
    fn members_share_the_budget_and_are_recorded_by_index() {
        let mut o = Object::local(b"cc".to_vec(), vec![b"aaaa".to_vec(), b"cc".to_vec()], 5);
        assert_eq!(o.member_count(), 2);
        assert_eq!(o.read_member_at(0, 1, 10), b"aaa".to_vec());
        let mut line = String::new();
        o.member_reader(1, 8).read_to_string(&mut line).unwrap();
        assert_eq!(line, "cc");
        assert_eq!(
            o.reads(),
            &[
                Read {
                    member: Some(0),
                    offset: 1,
                    length: 3
                },
                Read {
                    member: Some(1),
                    offset: 0,
                    length: 2
                }
            ]
        );
        assert_eq!(o.budget_left(), 0);
    }

    #[test]
    #[should_panic(expected = "of batch member 1, beyond its read budget: 4 of 5 bytes")]
    fn a_member_read_past_the_shared_budget_ends_the_call() {
        let mut o = Object::local(Vec::new(), vec![vec![0; 4], vec![0; 4]], 5);
        o.read_member_at(0, 0, 4);
        o.read_member_at(1, 0, 2);
    }

    #[test]
    #[should_panic(expected = "asked to read batch member 2, but the call has 2 member(s)")]
    fn a_member_that_does_not_exist_ends_the_call() {
        Object::local(Vec::new(), vec![vec![0; 4], vec![0; 4]], 5).read_member_at(2, 0, 1);
    }
}
