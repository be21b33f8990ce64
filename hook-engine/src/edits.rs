//! A guest's writes to a header map, in the order it made them: what the proxy
//! replays on its own head, so the engine never needs the map itself for a guest
//! that only writes.

use std::fmt;

use crate::headers::HeaderList;

/// One write to a header map's regular headers (names lowercase, checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderEdit<'a> {
    /// Appended, after any values of the name.
    Add(&'a [u8], &'a [u8]),
    /// The name's first value replaced and its others removed; appended when absent.
    Replace(&'a [u8], &'a [u8]),
    /// Every value of the name removed.
    Remove(&'a [u8]),
    /// Every header removed (the guest replaced the whole map; its new headers follow
    /// as additions).
    Clear,
}

impl HeaderEdit<'_> {
    /// Applies the edit to `list`.
    pub fn apply(self, list: &mut HeaderList) {
        match self {
            HeaderEdit::Add(name, value) => list.push(name, value),
            HeaderEdit::Replace(name, value) => list.replace(name, value),
            HeaderEdit::Remove(name) => list.remove_all(name),
            HeaderEdit::Clear => list.clear(),
        }
    }
}

/// The operation of an edit, as the tag of its entry in the log's list.
const ADD: u8 = 0;
const REPLACE: u8 = 1;
const REMOVE: u8 = 2;
const CLEAR: u8 = 3;

/// The edits of one map in one phase.
#[derive(Clone, Default)]
pub struct HeaderEdits {
    /// The name and value of each edit (empty where the edit has none), tagged with
    /// its operation: one list, so a log costs no more buffers than a map.
    fields: HeaderList,
    /// Bytes of names and values added or replaced since the last [`HeaderEdit::Clear`].
    written: usize,
}

impl HeaderEdits {
    pub const fn new() -> Self {
        Self {
            fields: HeaderList::new(),
            written: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn clear(&mut self) {
        self.fields.clear();
        self.written = 0;
    }

    /// Records `edit` after the others.
    pub fn push(&mut self, edit: HeaderEdit<'_>) {
        let (tag, name, value): (u8, &[u8], &[u8]) = match edit {
            HeaderEdit::Add(name, value) => (ADD, name, value),
            HeaderEdit::Replace(name, value) => (REPLACE, name, value),
            HeaderEdit::Remove(name) => (REMOVE, name, b""),
            HeaderEdit::Clear => {
                self.written = 0;
                (CLEAR, b"", b"")
            }
        };
        if matches!(tag, ADD | REPLACE) {
            self.written += name.len() + value.len();
        }
        self.fields.push_tagged(tag, name, value);
    }

    /// The edits in order.
    pub fn iter(&self) -> impl Iterator<Item = HeaderEdit<'_>> + '_ {
        self.fields
            .iter()
            .enumerate()
            .map(|(at, (name, value))| match self.fields.tag(at) {
                Some(ADD) => HeaderEdit::Add(name, value),
                Some(REPLACE) => HeaderEdit::Replace(name, value),
                Some(REMOVE) => HeaderEdit::Remove(name),
                _ => HeaderEdit::Clear,
            })
    }

    /// Whether the log starts over from an empty map.
    pub fn clears(&self) -> bool {
        self.iter().any(|edit| edit == HeaderEdit::Clear)
    }

    /// Bytes the edits may have added to the map since it was last cleared: an upper
    /// bound of its growth (removals and replaced values not subtracted).
    pub fn written(&self) -> usize {
        self.written
    }

    /// Replays the edits on `list`.
    pub fn apply_to(&self, list: &mut HeaderList) {
        for edit in self.iter() {
            edit.apply(list);
        }
    }

    /// Whether the edits amount to appending their fields in order to a map whose
    /// names are `present`: only additions, and replacements of names neither in the
    /// map nor written before in the log.
    pub fn only_append(&self, present: impl Fn(&[u8]) -> bool) -> bool {
        self.iter().enumerate().all(|(at, edit)| match edit {
            HeaderEdit::Add(..) => true,
            HeaderEdit::Replace(name, _) => {
                !present(name) && self.fields.position_of(name, 0) == Some(at)
            }
            HeaderEdit::Remove(_) | HeaderEdit::Clear => false,
        })
    }

    /// The fields of the edits, in order: what to append when
    /// [`HeaderEdits::only_append`] holds.
    pub fn into_fields(self) -> HeaderList {
        self.fields
    }
}

impl PartialEq for HeaderEdits {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for HeaderEdits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> HeaderList {
        pairs.iter().copied().collect()
    }

    #[test]
    fn replaying_edits_gives_the_guests_map() {
        let mut edits = HeaderEdits::new();
        edits.push(HeaderEdit::Replace(b"a", b"new"));
        edits.push(HeaderEdit::Add(b"c", b"3"));
        edits.push(HeaderEdit::Remove(b"b"));
        edits.push(HeaderEdit::Replace(b"d", b"4"));
        let mut map = list(&[("a", "1"), ("b", "2"), ("a", "x")]);
        edits.apply_to(&mut map);
        assert_eq!(map, list(&[("a", "new"), ("c", "3"), ("d", "4")]));
        assert_eq!(edits.written(), 4 + 2 + 2);
        edits.push(HeaderEdit::Clear);
        edits.push(HeaderEdit::Add(b"e", b"5"));
        edits.apply_to(&mut map);
        assert_eq!(map, list(&[("e", "5")]));
        assert_eq!((edits.written(), edits.clears(), edits.len()), (2, true, 6));
        assert_eq!(
            format!("{edits:?}").matches("Replace").count(),
            2,
            "{edits:?}"
        );
    }

    #[test]
    fn appending_is_recognised_only_when_nothing_is_overwritten() {
        let absent = |_: &[u8]| false;
        let mut edits = HeaderEdits::new();
        assert!(edits.only_append(absent));
        edits.push(HeaderEdit::Replace(b"x-a", b"1"));
        edits.push(HeaderEdit::Add(b"x-b", b"2"));
        assert!(edits.only_append(absent));
        // The map has the name: replacing it is not an append.
        assert!(!edits.only_append(|name| name == b"x-a"));
        // A second replace of a name the log wrote overwrites the first.
        let mut twice = edits.clone();
        twice.push(HeaderEdit::Replace(b"x-a", b"3"));
        assert!(!twice.only_append(absent));
        let mut removed = edits.clone();
        removed.push(HeaderEdit::Remove(b"x-z"));
        assert!(!removed.only_append(absent));
        let mut added = edits.clone();
        added.clear();
        added.push(HeaderEdit::Add(b"x-a", b"1"));
        added.push(HeaderEdit::Add(b"x-b", b"2"));
        assert_ne!(added, edits, "the same fields with other operations");
        assert_eq!(edits.into_fields(), list(&[("x-a", "1"), ("x-b", "2")]));
    }
}
