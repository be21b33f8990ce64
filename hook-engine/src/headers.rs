//! Header maps as the engine keeps them: every name and value of a map in one byte
//! buffer, each entry a pair of spans into it.
//!
//! A map is filled from the proxy's head by copying bytes (no allocation per header
//! once the buffers have grown), handed to the guest by copying again, and edited in
//! place: a replaced value is appended and its entry pointed at it. What replaced or
//! removed values leave behind is reclaimed by compacting once it outweighs what is
//! live, so no sequence of guest calls grows a map past a small multiple of its size.

use std::cell::RefCell;
use std::fmt;

/// An ordered list of headers (names and values as bytes; the engine keeps names
/// lowercase). Repeated names are separate entries, as on the wire.
#[derive(Clone, Default)]
pub struct HeaderList {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// Bytes of the live entries' names and values.
    size: usize,
}

/// Where one header's name and value lie in the buffer.
#[derive(Clone, Copy, Debug)]
struct Entry {
    name: u32,
    name_len: u32,
    value: u32,
    value_len: u32,
}

impl Entry {
    /// The name and value in `bytes`, the buffer of the entry's list.
    fn pair(self, bytes: &[u8]) -> (&[u8], &[u8]) {
        let name = &bytes[self.name as usize..(self.name + self.name_len) as usize];
        let value = &bytes[self.value as usize..(self.value + self.value_len) as usize];
        (name, value)
    }

    /// Bytes of its name and value.
    fn size(&self) -> usize {
        (self.name_len + self.value_len) as usize
    }
}

/// Garbage a map tolerates before compacting, beyond as much as it holds.
const SLACK: usize = 4 << 10;

/// What an empty list grows to on its first header.
const INITIAL_BYTES: usize = 256;
const INITIAL_ENTRIES: usize = 8;

impl HeaderList {
    pub const fn new() -> Self {
        Self {
            bytes: Vec::new(),
            entries: Vec::new(),
            size: 0,
        }
    }

    /// Empties the list, keeping its buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
        self.size = 0;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total bytes of the names and values.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Appends a header as given.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.make_room(name.len() + value.len());
        let name_at = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.push_entry(name_at, name.len(), value);
    }

    /// Appends a header with its name lowercased (names parsed from the wire keep
    /// their case; the engine's are lowercase).
    pub fn push_lowercase(&mut self, name: &[u8], value: &[u8]) {
        self.make_room(name.len() + value.len());
        let name_at = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.bytes[name_at..].make_ascii_lowercase();
        self.push_entry(name_at, name.len(), value);
    }

    /// Appends a header whose entry carries a one-byte `tag`, kept in the buffer
    /// just before its name (an edit log's operation, see [`HeaderList::tag`]).
    pub(crate) fn push_tagged(&mut self, tag: u8, name: &[u8], value: &[u8]) {
        self.make_room(1 + name.len() + value.len());
        self.bytes.push(tag);
        let name_at = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.push_entry(name_at, name.len(), value);
    }

    /// The tag of the `index`th header, when it was pushed with
    /// [`HeaderList::push_tagged`] (otherwise a byte of whatever precedes it).
    pub(crate) fn tag(&self, index: usize) -> Option<u8> {
        let at = self.entries.get(index)?.name as usize;
        at.checked_sub(1).map(|at| self.bytes[at])
    }

    /// Gives an empty list buffers at once: a dropped list's (see [`SPARE`]), or
    /// a typical head's size, rather than the small steps a vector takes from
    /// nothing.
    fn make_room(&mut self, bytes: usize) {
        if self.bytes.capacity() == 0 {
            if let Some((spare_bytes, spare_entries)) = take_spare() {
                self.bytes = spare_bytes;
                self.entries = spare_entries;
            }
            self.bytes.reserve(bytes.max(INITIAL_BYTES));
            self.entries.reserve(INITIAL_ENTRIES);
        }
    }

    fn push_entry(&mut self, name_at: usize, name_len: usize, value: &[u8]) {
        let value_at = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.entries.push(Entry {
            name: name_at as u32,
            name_len: name_len as u32,
            value: value_at as u32,
            value_len: value.len() as u32,
        });
        self.size += name_len + value.len();
    }

    /// Appends every header of `other`, in order.
    pub fn extend_from(&mut self, other: &HeaderList) {
        if other.is_empty() {
            return;
        }
        self.make_room(other.bytes.len());
        let base = self.bytes.len() as u32;
        self.bytes.extend_from_slice(&other.bytes);
        self.entries.extend(other.entries.iter().map(|e| Entry {
            name: e.name + base,
            value: e.value + base,
            ..*e
        }));
        self.size += other.size;
    }

    /// The `index`th header.
    pub fn get_index(&self, index: usize) -> Option<(&[u8], &[u8])> {
        self.entries.get(index).map(|e| self.pair(e))
    }

    fn pair(&self, e: &Entry) -> (&[u8], &[u8]) {
        e.pair(&self.bytes)
    }

    /// Whether `e` is named exactly `name` (lengths compared first, and only the
    /// name sliced).
    fn is_named(&self, e: &Entry, name: &[u8]) -> bool {
        e.name_len as usize == name.len()
            && self
                .bytes
                .get(e.name as usize..e.name as usize + name.len())
                == Some(name)
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            list: self,
            entries: self.entries.iter(),
        }
    }

    /// The values of `name` (compared ignoring ASCII case), in order.
    pub fn get_all<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The first value of `name` (compared ignoring ASCII case).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The position of the first header with exactly this name, from `from` on.
    pub fn position_of(&self, name: &[u8], from: usize) -> Option<usize> {
        let rest = self.entries.get(from..)?;
        rest.iter()
            .position(|e| self.is_named(e, name))
            .map(|at| from + at)
    }

    /// Bytes the headers with exactly this name hold, names included.
    pub fn size_of(&self, name: &[u8]) -> usize {
        self.entries
            .iter()
            .filter(|e| self.is_named(e, name))
            .map(Entry::size)
            .sum()
    }

    /// Points the `index`th header at a new value (the old one stays in the buffer
    /// until the next compaction). Out of range: nothing happens.
    pub fn set_value(&mut self, index: usize, value: &[u8]) {
        let Some(old) = self.entries.get(index).map(|e| e.value_len as usize) else {
            return;
        };
        let at = self.bytes.len();
        self.bytes.extend_from_slice(value);
        let entry = &mut self.entries[index];
        entry.value = at as u32;
        entry.value_len = value.len() as u32;
        self.size = self.size - old + value.len();
        self.compact_if_wasteful();
    }

    /// proxy-wasm's replace: the first header named `name` takes the value and the
    /// others of the name go; an absent name is appended.
    pub fn replace(&mut self, name: &[u8], value: &[u8]) {
        let Some(first) = self.position_of(name, 0) else {
            self.push(name, value);
            return;
        };
        self.set_value(first, value);
        if self.position_of(name, first + 1).is_some() {
            let mut index = 0;
            self.retain(|n, _| {
                index += 1;
                index <= first + 1 || n != name
            });
        }
    }

    /// Removes every header of `name` (compared ignoring ASCII case).
    pub fn remove_all(&mut self, name: &[u8]) {
        self.retain(|n, _| !n.eq_ignore_ascii_case(name));
    }

    /// Keeps the headers `keep` accepts, in order.
    fn retain(&mut self, mut keep: impl FnMut(&[u8], &[u8]) -> bool) {
        let bytes = &self.bytes;
        let mut size = self.size;
        self.entries.retain(|e| {
            let (name, value) = e.pair(bytes);
            if keep(name, value) {
                return true;
            }
            size -= name.len() + value.len();
            false
        });
        self.size = size;
        self.compact_if_wasteful();
    }

    /// Rewrites the buffer with only the live bytes when dead ones dominate.
    fn compact_if_wasteful(&mut self) {
        if self.bytes.len() <= 2 * self.size + SLACK {
            return;
        }
        let mut compact = HeaderList::default();
        compact.bytes.reserve(self.size);
        compact.entries.reserve(self.entries.len());
        for (name, value) in self.iter() {
            compact.push(name, value);
        }
        *self = compact;
    }
}

thread_local! {
    /// Buffers of lists dropped on this thread, for the next lists to grow from
    /// nothing: a hook's edits leave the engine in a new list per phase and are
    /// dropped once the proxy wrote them, so without this each phase would cost
    /// allocations and frees.
    static SPARE: RefCell<Vec<(Vec<u8>, Vec<Entry>)>> = const { RefCell::new(Vec::new()) };
}

/// Lists' buffers [`SPARE`] keeps per thread, and the largest byte buffer it
/// keeps (bigger ones go back to the allocator).
const SPARE_LISTS: usize = 16;
const SPARE_MAX_BYTES: usize = 16 << 10;

fn take_spare() -> Option<(Vec<u8>, Vec<Entry>)> {
    SPARE
        .try_with(|spare| spare.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten()
}

impl Drop for HeaderList {
    fn drop(&mut self) {
        let capacity = self.bytes.capacity();
        if capacity == 0 || capacity > SPARE_MAX_BYTES {
            return;
        }
        let mut bytes = std::mem::take(&mut self.bytes);
        let mut entries = std::mem::take(&mut self.entries);
        bytes.clear();
        entries.clear();
        // During the thread's teardown the spares may be gone: the buffers are freed.
        let _ = SPARE.try_with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut() {
                if spare.len() < SPARE_LISTS {
                    spare.push((bytes, entries));
                }
            }
        });
    }
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(N, V)> for HeaderList {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> Self {
        let mut list = HeaderList::new();
        list.extend(pairs);
        list
    }
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>> Extend<(N, V)> for HeaderList {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, pairs: I) {
        for (name, value) in pairs {
            self.push(name.as_ref(), value.as_ref());
        }
    }
}

/// The headers of a [`HeaderList`], in order.
#[derive(Clone)]
pub struct Iter<'a> {
    list: &'a HeaderList,
    entries: std::slice::Iter<'a, Entry>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        self.entries.next().map(|e| self.list.pair(e))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a HeaderList {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl PartialEq for HeaderList {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for HeaderList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(name, value)| {
                (
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(value),
                )
            }))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_order_case_and_repeats() {
        let mut list: HeaderList = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        list.push_lowercase(b"X-Up", b"v");
        assert_eq!(list.get(b"A"), Some(b"1".as_slice()));
        assert_eq!(list.get_all(b"a").collect::<Vec<_>>(), [b"1", b"3"]);
        assert_eq!(
            list.get_index(3),
            Some((b"x-up".as_slice(), b"v".as_slice()))
        );
        assert_eq!(list.size(), 11);
        assert_eq!(list.position_of(b"a", 1), Some(2));
        assert_eq!(
            (
                list.size_of(b"a"),
                list.size_of(b"x-up"),
                list.size_of(b"z")
            ),
            (4, 5, 0)
        );
    }

    #[test]
    fn edits_keep_the_size_and_the_order() {
        let mut list: HeaderList = [("a", "1"), ("b", "2"), ("c", "3")].into_iter().collect();
        list.set_value(1, b"two");
        list.remove_all(b"a");
        list.retain(|n, _| n != b"c");
        assert_eq!(list, [("b", "two")].into_iter().collect());
        assert_eq!(list.size(), 4);
    }

    #[test]
    fn rewriting_a_value_over_and_over_stays_bounded() {
        let mut list: HeaderList = [("k", "v")].into_iter().collect();
        let big = vec![b'x'; 1000];
        for _ in 0..10_000 {
            list.set_value(0, &big);
        }
        assert!(list.bytes.len() <= 2 * list.size() + SLACK + big.len());
        assert_eq!(list.get(b"k"), Some(big.as_slice()));
    }

    #[test]
    fn dropped_lists_lend_their_buffers_to_new_ones() {
        let mut first = HeaderList::new();
        first.push(b"x-a", b"1");
        let buffer = first.bytes.as_ptr();
        drop(first);
        let mut second = HeaderList::new();
        second.push_tagged(7, b"x-b", b"2");
        assert_eq!(second.bytes.as_ptr(), buffer, "the dropped list's buffer");
        assert_eq!(second, [("x-b", "2")].into_iter().collect());
        assert_eq!(
            (second.tag(0), second.tag(1), second.size()),
            (Some(7), None, 4)
        );
    }

    #[test]
    fn appending_another_list_shifts_its_spans() {
        let mut list: HeaderList = [(":path", "/")].into_iter().collect();
        list.extend_from(&[("a", "1"), ("b", "2")].into_iter().collect());
        assert_eq!(
            list,
            [(":path", "/"), ("a", "1"), ("b", "2")]
                .into_iter()
                .collect()
        );
        assert_eq!(list.size(), 10);
    }
}
