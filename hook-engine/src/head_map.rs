//! One header map as a guest sees it during a phase: the pseudo-headers, the
//! regular headers (loaded from the proxy's lent [`Fields`](crate::Fields) only
//! when the guest first reads them) and the log of the guest's writes.

use crate::edits::{HeaderEdit, HeaderEdits};
use crate::fields::with_lent;
use crate::headers::HeaderList;

/// Edits logged before the log is folded into a snapshot of the map (a guest
/// rewriting one header in a loop would otherwise grow it without bound).
const FOLD_AT: usize = 64;

#[derive(Debug)]
pub(crate) struct HeadMap {
    /// `:method`, `:path`, `:authority`, `:scheme` or `:status`, in order, valid
    /// once `pseudo_loaded` (until the guest touches one they are the lent ones).
    pseudo: HeaderList,
    pseudo_loaded: bool,
    /// The regular headers, valid once `loaded`.
    regular: HeaderList,
    /// Whether `regular` is the map. Until the first read it is not: the map is
    /// then the lent fields with `edits` replayed on them.
    loaded: bool,
    /// Bytes of the lent pseudo-headers and of the lent fields, once a size
    /// check needed them.
    lent_size: Option<(usize, usize)>,
    /// The guest's writes to the regular headers, in order.
    pub edits: HeaderEdits,
    /// Length of `edits` past which it is folded.
    fold_at: usize,
    /// Whether names starting with `:` are the map's pseudo-headers (header maps)
    /// or ordinary entries (trailers).
    has_pseudo: bool,
    /// Whether the guest wrote to the map at all / to a pseudo-header.
    pub touched: bool,
    pub pseudo_written: bool,
}

impl Default for HeadMap {
    fn default() -> Self {
        Self {
            pseudo: HeaderList::new(),
            pseudo_loaded: true,
            regular: HeaderList::new(),
            loaded: true,
            lent_size: None,
            edits: HeaderEdits::new(),
            fold_at: FOLD_AT,
            has_pseudo: false,
            touched: false,
            pseudo_written: false,
        }
    }
}

impl HeadMap {
    /// Starts the phase's map (cleared when the last phase ended): its
    /// pseudo-headers and regular headers are the ones lent to the guest call (see
    /// [`Lent`](crate::fields::Lent)).
    pub fn begin_lent(&mut self) {
        debug_assert!(self.is_clear());
        self.pseudo_loaded = false;
        self.loaded = false;
        self.has_pseudo = true;
    }

    /// Starts a map (cleared when the last phase ended) holding `regular`
    /// (trailers: small and rare, copied at once).
    pub fn begin_with(&mut self, regular: &HeaderList) {
        debug_assert!(self.is_clear());
        self.regular.extend_from(regular);
    }

    /// Whether the map is as [`HeadMap::clear`] leaves it (a map a phase never
    /// started or touched).
    pub fn is_clear(&self) -> bool {
        self.pseudo.is_empty()
            && self.pseudo_loaded
            && self.regular.is_empty()
            && self.loaded
            && self.edits.is_empty()
            && !self.touched
    }

    /// An empty map, keeping the buffers.
    pub fn clear(&mut self) {
        self.pseudo.clear();
        self.pseudo_loaded = true;
        self.regular.clear();
        self.loaded = true;
        self.lent_size = None;
        self.edits.clear();
        self.fold_at = FOLD_AT;
        self.has_pseudo = false;
        self.touched = false;
        self.pseudo_written = false;
    }

    /// Fills the regular headers from the lent fields and the edits so far.
    fn load(&mut self) {
        if self.loaded {
            return;
        }
        self.loaded = true;
        // (A log with a `Clear` loaded the map when it was written.)
        with_lent(|lent| {
            if let Some(lent) = lent {
                lent.fields.fill(&mut self.regular);
            }
        });
        self.edits.apply_to(&mut self.regular);
    }

    /// The pseudo-headers (copying in the lent ones).
    pub fn pseudo(&mut self) -> &mut HeaderList {
        if !self.pseudo_loaded {
            self.pseudo_loaded = true;
            with_lent(|lent| {
                for (name, value) in lent.map_or(&[][..], |l| l.pseudo) {
                    self.pseudo.push(name.as_bytes(), value);
                }
            });
        }
        &mut self.pseudo
    }

    /// The regular headers (loading them).
    pub fn regular(&mut self) -> &HeaderList {
        self.load();
        &self.regular
    }

    /// Moves the regular headers out (loading them), leaving an empty list.
    pub fn take_regular(&mut self) -> HeaderList {
        self.load();
        std::mem::take(&mut self.regular)
    }

    /// Every header, pseudo-headers first (loading the regular ones).
    pub fn pairs(&mut self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        self.load();
        self.pseudo();
        self.pseudo.iter().chain(self.regular.iter())
    }

    /// The values of `name` (lowercase), in order; the regular headers are loaded
    /// unless it is a pseudo-header.
    pub fn values<'a>(&'a mut self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let list: &HeaderList = if self.is_pseudo(name) {
            self.pseudo()
        } else {
            self.regular()
        };
        list.get_all(name)
    }

    /// The map's size in bytes, exactly (loading the regular headers).
    pub fn size(&mut self) -> usize {
        self.pseudo().size() + self.regular().size()
    }

    /// Bytes the headers named `name` hold (loading the regular ones).
    pub fn size_of(&mut self, name: &[u8]) -> usize {
        if self.is_pseudo(name) {
            self.pseudo().size_of(name)
        } else {
            self.regular().size_of(name)
        }
    }

    /// At least the map's size in bytes, without loading it: the lent head (its
    /// pseudo-headers and fields, measured once per phase) plus whatever the
    /// edits wrote.
    pub fn size_bound(&mut self) -> usize {
        if self.pseudo_loaded && self.loaded {
            return self.pseudo.size() + self.regular.size();
        }
        let (lent_pseudo, lent_fields) = *self.lent_size.get_or_insert_with(|| {
            with_lent(|lent| {
                lent.map_or((0, 0), |l| {
                    let pseudo = l.pseudo.iter().map(|(n, v)| n.len() + v.len()).sum();
                    (pseudo, l.fields.size())
                })
            })
        });
        let pseudo = if self.pseudo_loaded {
            self.pseudo.size()
        } else {
            lent_pseudo
        };
        let regular = if self.loaded {
            self.regular.size()
        } else {
            lent_fields + self.edits.written()
        };
        pseudo + regular
    }

    /// `proxy_add_header_map_value` (name checked and lowercase).
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        if self.write_pseudo(name) {
            self.pseudo().push(name, value);
            return;
        }
        self.edit(HeaderEdit::Add(name, value));
    }

    /// `proxy_replace_header_map_value`.
    pub fn replace(&mut self, name: &[u8], value: &[u8]) {
        if self.write_pseudo(name) {
            self.pseudo().replace(name, value);
            return;
        }
        self.edit(HeaderEdit::Replace(name, value));
    }

    /// `proxy_remove_header_map_value`.
    pub fn remove(&mut self, name: &[u8]) {
        if self.write_pseudo(name) {
            self.pseudo().remove_all(name);
            return;
        }
        self.edit(HeaderEdit::Remove(name));
    }

    /// `proxy_set_header_map_pairs`: the whole map replaced (names lowercase).
    pub fn set_all(&mut self, replacement: &HeaderList) {
        self.pseudo_written |= self.has_pseudo;
        self.pseudo.clear();
        self.pseudo_loaded = true;
        self.edit(HeaderEdit::Clear);
        for (name, value) in replacement.iter() {
            if self.is_pseudo(name) {
                self.pseudo.push(name, value);
            } else {
                self.edit(HeaderEdit::Add(name, value));
            }
        }
    }

    /// Marks the map written; true when `name` is a pseudo-header.
    fn write_pseudo(&mut self, name: &[u8]) -> bool {
        self.touched = true;
        let pseudo = self.is_pseudo(name);
        self.pseudo_written |= pseudo;
        pseudo
    }

    fn is_pseudo(&self, name: &[u8]) -> bool {
        self.has_pseudo && name.starts_with(b":")
    }

    fn edit(&mut self, edit: HeaderEdit<'_>) {
        self.touched = true;
        // After a clear nothing of the lent fields survives: the map is known.
        self.loaded |= edit == HeaderEdit::Clear;
        if self.loaded {
            edit.apply(&mut self.regular);
        }
        self.edits.push(edit);
        if self.edits.len() > self.fold_at {
            self.fold();
        }
    }

    /// Rewrites the edit log as "clear, then add the map's headers".
    fn fold(&mut self) {
        self.load();
        self.edits.clear();
        self.edits.push(HeaderEdit::Clear);
        for (name, value) in self.regular.iter() {
            self.edits.push(HeaderEdit::Add(name, value));
        }
        self.fold_at = FOLD_AT.max(2 * self.edits.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::lend_in_test as as_guest;

    fn list(pairs: &[(&str, &str)]) -> HeaderList {
        pairs.iter().copied().collect()
    }

    #[test]
    fn writes_wait_for_a_read_to_load_the_lent_fields() {
        let fields = list(&[("a", "1"), ("x", "old"), ("b", "2"), ("x", "dup")]);
        let mut map = HeadMap::default();
        map.begin_lent();
        as_guest(&fields, &[(":path", b"/")], || {
            map.replace(b"x", b"new");
            map.add(b"c", b"3");
            assert!(!map.loaded && !map.pseudo_loaded);
            assert_eq!(map.size_bound(), 6 + fields.size() + 4 + 2);
            assert_eq!(map.values(b":path").collect::<Vec<_>>(), [b"/"]);
            assert!(!map.loaded, "a pseudo-header is read without loading");
            assert_eq!(map.values(b"x").collect::<Vec<_>>(), [b"new"]);
            map.remove(b"a");
            assert_eq!(
                map.regular(),
                &list(&[("x", "new"), ("b", "2"), ("c", "3")])
            );
        });
        assert!(map.touched && !map.pseudo_written);
        let mut replayed = fields.clone();
        map.edits.apply_to(&mut replayed);
        assert_eq!(replayed, list(&[("x", "new"), ("b", "2"), ("c", "3")]));
    }

    #[test]
    fn pseudo_headers_are_copied_in_when_first_touched() {
        let fields = HeaderList::new();
        let mut map = HeadMap::default();
        map.begin_lent();
        as_guest(&fields, &[(":status", b"200")], || {
            assert_eq!(map.size_bound(), 10);
            map.replace(b":status", b"404");
            map.add(b"y", b"1");
            assert!(map.pseudo_loaded && map.pseudo_written);
        });
        // Past the lend, the map keeps what it copied.
        assert_eq!(map.pseudo().get(b":status"), Some(b"404".as_slice()));
        assert_eq!(map.size(), 12);
    }

    #[test]
    fn a_replaced_map_needs_no_lent_fields() {
        let mut map = HeadMap::default();
        map.begin_lent();
        map.set_all(&list(&[(":status", "404"), ("y", "1")]));
        assert_eq!(
            map.pairs().collect::<Vec<_>>(),
            [
                (b":status".as_slice(), b"404".as_slice()),
                (b"y".as_slice(), b"1".as_slice())
            ]
        );
        assert!(map.pseudo_written && map.edits.clears());
    }

    #[test]
    fn the_edit_log_stays_bounded_under_rewrites() {
        let fields = list(&[("a", "1")]);
        let mut map = HeadMap::default();
        map.begin_lent();
        as_guest(&fields, &[], || {
            for i in 0..10_000 {
                map.replace(b"x", format!("{i}").as_bytes());
            }
        });
        assert!(map.edits.len() <= FOLD_AT + 1, "{}", map.edits.len());
        let mut replayed = HeaderList::new();
        map.edits.apply_to(&mut replayed);
        assert_eq!(replayed, list(&[("a", "1"), ("x", "9999")]));
    }

    #[test]
    fn a_map_without_a_lend_is_what_was_written() {
        let mut map = HeadMap::default();
        map.begin_lent();
        map.add(b"k", b"v");
        assert_eq!(map.regular(), &list(&[("k", "v")]));
        map.clear();
        map.begin_with(&list(&[("grpc-status", "0")]));
        assert_eq!(map.size(), 12);
        assert!(!map.touched);
    }
}
