//! The proxy's header fields of a phase, read by the engine only when the guest
//! reads the header map.
//!
//! Most hooks only write headers: copying every field of the head into the engine
//! for them is wasted work. So a phase does not load the map: the proxy lends its
//! fields (as a [`Fields`]) for the length of the guest call, the guest's writes
//! are logged as [`HeaderEdits`](crate::HeaderEdits), and the map is filled from
//! the lent fields (and the edits so far replayed on it) the first time the guest
//! reads it.
//!
//! The lend is a pointer in a thread-local, set for one synchronous guest call
//! and cleared when it returns (or unwinds): host functions run on the calling
//! thread within that call, so they see the fields exactly while they are
//! borrowed, and no other code can reach them.

use std::cell::Cell;
use std::ptr::NonNull;

use crate::headers::HeaderList;
use crate::outcome::RequestContext;

/// A phase's regular header fields (no pseudo-headers), as the proxy holds them.
pub trait Fields {
    /// How many fields the guest is told the map holds, pseudo-headers aside.
    fn count(&self) -> usize;
    /// At least the bytes of their names and values. Header limits are checked
    /// against this bound plus the guest's writes; only a write that would pass
    /// the limit by the bound loads the map to count exactly, so a cheap bound
    /// (a raw head's length) serves.
    fn size(&self) -> usize;
    /// Appends every field, names lowercase, to `into`.
    fn fill(&self, into: &mut HeaderList);
}

impl Fields for HeaderList {
    fn count(&self) -> usize {
        self.len()
    }

    fn size(&self) -> usize {
        HeaderList::size(self)
    }

    fn fill(&self, into: &mut HeaderList) {
        into.extend_from(self);
    }
}

/// Fields of nothing: a phase whose map starts empty.
#[cfg(test)]
pub(crate) struct NoFields;

#[cfg(test)]
impl Fields for NoFields {
    fn count(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        0
    }

    fn fill(&self, _: &mut HeaderList) {}
}

/// What a phase lends its guest call: the proxy's fields and the phase's
/// pseudo-headers (copied into the map only when the guest touches them too),
/// and the request's context (read by properties in place).
pub(crate) struct Lent<'a> {
    pub fields: &'a dyn Fields,
    pub pseudo: &'a [(&'a str, &'a [u8])],
    pub context: &'a RequestContext,
}

type LentPointer = Option<NonNull<Lent<'static>>>;

thread_local! {
    static LENT: Cell<LentPointer> = const { Cell::new(None) };
}

/// Runs `call` with `lent` readable through [`with_lent`] on this thread.
pub(crate) fn lend<R>(lent: &Lent<'_>, call: impl FnOnce() -> R) -> R {
    /// Puts the previous lend back however `call` ends.
    struct Restore(LentPointer);
    impl Drop for Restore {
        fn drop(&mut self) {
            LENT.with(|lent| lent.set(self.0));
        }
    }
    // Only the lifetime parameter changes. The pointer is readable through
    // `with_lent` alone, which hands it out as a reference that cannot outlive its
    // closure (nor can anything reached through it), and it leaves the
    // thread-local (by `Restore`, also on unwinding) before `lent` goes out of
    // scope here.
    let pointer: NonNull<Lent<'static>> = NonNull::from(lent).cast();
    let _restore = Restore(LENT.with(|cell| cell.replace(Some(pointer))));
    call()
}

/// What is lent to this thread's guest call in progress, if anything.
pub(crate) fn with_lent<R>(read: impl for<'x> FnOnce(Option<&'x Lent<'x>>) -> R) -> R {
    let pointer = LENT.with(Cell::get);
    // SAFETY: a lent pointer is set only while `lend` borrows its referent (see
    // there); the reference does not escape `read`.
    read(pointer.map(|p| unsafe { p.as_ref() }))
}

/// Runs `call` as a guest call would run, with these fields and pseudo-headers
/// lent and no request context: for tests of what host functions do with a lend.
#[cfg(test)]
pub(crate) fn lend_in_test<R>(
    fields: &dyn Fields,
    pseudo: &[(&str, &[u8])],
    call: impl FnOnce() -> R,
) -> R {
    let context = RequestContext::default();
    lend(
        &Lent {
            fields,
            pseudo,
            context: &context,
        },
        call,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lent<'a>(
        fields: &'a dyn Fields,
        pseudo: &'a [(&'a str, &'a [u8])],
        context: &'a RequestContext,
    ) -> Lent<'a> {
        Lent {
            fields,
            pseudo,
            context,
        }
    }

    #[test]
    fn fields_are_readable_only_while_lent() {
        let list: HeaderList = [("a", "1"), ("b", "2")].into_iter().collect();
        let context = RequestContext::default();
        assert!(with_lent(|l| l.is_none()));
        let seen = lend(&lent(&list, &[(":path", b"/")], &context), || {
            let mut copy = HeaderList::new();
            with_lent(|l| l.map(|l| l.fields.fill(&mut copy)));
            // A nested lend shadows the outer one and gives it back.
            lend(&lent(&NoFields, &[], &context), || {
                with_lent(|l| assert_eq!(l.map(|l| l.fields.count()), Some(0)))
            });
            let pseudo = with_lent(|l| l.map(|l| l.pseudo.len()));
            (copy, with_lent(|l| l.map(|l| l.fields.count())), pseudo)
        });
        assert_eq!(seen, (list.clone(), Some(2), Some(1)));
        assert!(with_lent(|l| l.is_none()));
    }

    #[test]
    fn a_panicking_call_ends_the_lend() {
        let list = HeaderList::new();
        let context = RequestContext::default();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lend(&lent(&list, &[], &context), || panic!("guest call unwound"))
        }));
        assert!(result.is_err());
        assert!(with_lent(|l| l.is_none()));
    }
}
