//! The guest's allocator: free lists of power-of-two blocks for small sizes, the
//! system allocator (dlmalloc) for the rest.
//!
//! A hook allocates a few small buffers per request (every value the host hands
//! over is one, by the ABI) and frees them before the request ends. dlmalloc spends
//! a few hundred instructions on each such pair; popping and pushing a free list
//! costs a few dozen. Blocks freed here stay on their list for the next request
//! rather than going back to dlmalloc, so the memory a hook holds is its peak use
//! (rounded up to powers of two), which is what the host's memory cap bounds.
//!
//! Installed as the global allocator by the `allocator` feature (on by default);
//! a hook crate that brings its own turns the default features off.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

/// Block sizes 16, 32, ... 2048 bytes: one free list each.
const CLASSES: usize = 8;
const SMALLEST: usize = 16;
const LARGEST: usize = SMALLEST << (CLASSES - 1);

/// The allocator; see the module docs.
pub struct SizeClasses {
    /// The first free block of each class; each free block starts with a pointer
    /// to the next.
    free: UnsafeCell<[*mut u8; CLASSES]>,
}

// SAFETY: wasm32 guests run on one thread (proxy-wasm hosts never call an
// instance from two threads at once), so the lists are never shared.
unsafe impl Sync for SizeClasses {}

impl SizeClasses {
    pub const fn new() -> Self {
        Self {
            free: UnsafeCell::new([std::ptr::null_mut(); CLASSES]),
        }
    }
}

impl Default for SizeClasses {
    fn default() -> Self {
        Self::new()
    }
}

/// The class of blocks that holds `layout` (a block of class `c` is `16 << c`
/// bytes and aligned to its size), or `None` for the system allocator.
fn class_of(layout: &Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(SMALLEST);
    if size > LARGEST {
        return None;
    }
    let rounded = size.next_power_of_two();
    Some((rounded.trailing_zeros() - SMALLEST.trailing_zeros()) as usize)
}

/// The layout of a block of `class`.
fn block(class: usize) -> Layout {
    let size = SMALLEST << class;
    // A power of two, non-zero: always a valid layout.
    Layout::from_size_align(size, size).unwrap_or_else(|_| Layout::new::<u8>())
}

unsafe impl GlobalAlloc for SizeClasses {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let class = match class_of(&layout) {
            Some(class) => class,
            None => return System.alloc(layout),
        };
        let free = &mut *self.free.get();
        let head = free[class];
        if head.is_null() {
            return System.alloc(block(class));
        }
        // A free block holds the next one's address (blocks are aligned to at
        // least 16 bytes, so the read is aligned).
        free[class] = *(head as *mut *mut u8);
        head
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let class = match class_of(&layout) {
            Some(class) => class,
            None => return System.dealloc(ptr, layout),
        };
        let free = &mut *self.free.get();
        *(ptr as *mut *mut u8) = free[class];
        free[class] = ptr;
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (class_of(&layout), class_of(&new_layout)) {
            // Large to large: dlmalloc may grow in place.
            (None, None) => System.realloc(ptr, layout, new_size),
            // Same block: nothing moves.
            (Some(old), Some(new)) if old == new => ptr,
            _ => {
                let moved = self.alloc(new_layout);
                if !moved.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_alignments_map_to_blocks_that_hold_them() {
        for (size, align, class) in [
            (1, 1, Some(0)),
            (16, 1, Some(0)),
            (17, 1, Some(1)),
            (8, 64, Some(2)),
            (2048, 8, Some(7)),
            (2049, 1, None),
            (1, 4096, None),
        ] {
            let layout = Layout::from_size_align(size, align).expect("layout");
            assert_eq!(class_of(&layout), class, "{size} {align}");
            if let Some(class) = class {
                let block = block(class);
                assert!(block.size() >= size && block.align() >= align);
            }
        }
    }

    #[test]
    fn freed_blocks_are_reused_and_contents_survive_realloc() {
        let heap = SizeClasses::new();
        let small = Layout::from_size_align(24, 8).expect("layout");
        // SAFETY: every pointer comes from `heap` with the layout it is freed with.
        unsafe {
            let a = heap.alloc(small);
            let b = heap.alloc(small);
            assert!(!a.is_null() && !b.is_null() && a != b);
            heap.dealloc(a, small);
            assert_eq!(heap.alloc(small), a, "last freed, first reused");
            for at in 0..24 {
                *a.add(at) = at as u8;
            }
            // Grows through the classes and into the system allocator.
            let mut p = a;
            let mut layout = small;
            for new_size in [30, 100, 5000, 9000, 20] {
                p = heap.realloc(p, layout, new_size);
                layout = Layout::from_size_align(new_size, 8).expect("layout");
                for at in 0..20 {
                    assert_eq!(*p.add(at), at as u8, "{new_size}");
                }
            }
            heap.dealloc(p, layout);
            heap.dealloc(b, small);
        }
    }
}
