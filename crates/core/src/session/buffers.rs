//! Relay buffers shared by the sessions of one proxy: a pipe takes a buffer
//! when its source has bytes and gives it back once everything is written,
//! so an idle session holds no buffer and a busy one does not pay an
//! allocation and a free of 16-32 KiB per command and direction.

use std::sync::{Mutex, MutexGuard};

/// Spare buffers kept per size at most (more are freed): 128 x (16 + 32)
/// KiB = 6 MiB held after a burst, at most.
pub(crate) const MAX_SPARE: usize = 128;

/// Empty buffers of a few fixed capacities, ready for reuse. One per proxy
/// (in the session [`Context`](crate::listener::Context)); the lock is held
/// for a push or a pop only.
#[derive(Debug)]
pub struct BufferPool {
    shelves: Vec<Shelf>,
    max_spare: usize,
}

#[derive(Debug)]
struct Shelf {
    size: usize,
    spare: Mutex<Vec<Vec<u8>>>,
}

impl Shelf {
    /// The spare list (a panic elsewhere cannot leave it half-changed: it
    /// is only pushed to and popped from, so a poisoned lock is still used).
    fn lock(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        self.spare.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BufferPool {
    /// A pool for buffers of exactly these capacities, keeping at most
    /// `max_spare` spare buffers of each.
    pub fn new(sizes: &[usize], max_spare: usize) -> Self {
        let shelves = sizes
            .iter()
            .map(|&size| Shelf {
                size,
                spare: Mutex::new(Vec::new()),
            })
            .collect();
        BufferPool { shelves, max_spare }
    }

    /// The pool of the relay's two buffer sizes (client → backend and
    /// backend → client), [`MAX_SPARE`] spare each.
    pub(crate) fn for_relays() -> Self {
        use crate::session::relay::{DOWN_BUF, UP_BUF};
        BufferPool::new(&[UP_BUF, DOWN_BUF], MAX_SPARE)
    }

    fn shelf(&self, size: usize) -> Option<&Shelf> {
        self.shelves.iter().find(|s| s.size == size)
    }

    /// An empty buffer with capacity `size`: a spare one, else a new one.
    pub fn take(&self, size: usize) -> Vec<u8> {
        let spare = self.shelf(size).and_then(|s| s.lock().pop());
        spare.unwrap_or_else(|| Vec::with_capacity(size))
    }

    /// Keep `buf` for reuse if it has one of the pool's capacities and the
    /// shelf has room; otherwise free it.
    pub fn give(&self, mut buf: Vec<u8>) {
        let Some(shelf) = self.shelf(buf.capacity()) else {
            return;
        };
        buf.clear();
        let mut spare = shelf.lock();
        if spare.len() < self.max_spare {
            spare.push(buf);
        }
    }

    /// Spare buffers of capacity `size`.
    #[cfg(test)]
    pub(crate) fn spare(&self, size: usize) -> usize {
        self.shelf(size).map_or(0, |s| s.lock().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_taken_again_without_a_new_allocation() {
        let pool = BufferPool::new(&[16, 32], 4);
        let mut b = pool.take(32);
        assert_eq!((b.len(), b.capacity()), (0, 32));
        b.extend_from_slice(b"abc");
        let at = b.as_ptr();
        pool.give(b);
        assert_eq!(pool.spare(32), 1);
        let again = pool.take(32);
        assert_eq!(again.as_ptr(), at, "the same memory comes back");
        assert!(again.is_empty(), "a reused buffer starts empty");
        assert_eq!(pool.spare(32), 0);
        // the other size is a shelf of its own
        assert_eq!(pool.take(16).capacity(), 16);
    }

    #[test]
    fn buffers_of_other_sizes_and_beyond_the_limit_are_freed() {
        let pool = BufferPool::new(&[16], 2);
        // grown past its size (a rewritten command): not kept
        let mut grown = pool.take(16);
        grown.extend_from_slice(&[0; 17]);
        pool.give(grown);
        assert_eq!(pool.spare(16), 0);
        pool.give(Vec::with_capacity(8));
        assert_eq!(pool.spare(8), 0);
        for _ in 0..3 {
            pool.give(Vec::with_capacity(16));
        }
        assert_eq!(pool.spare(16), 2, "at most max_spare are kept");
        // a size the pool does not shelve is still served
        assert_eq!(pool.take(64).capacity(), 64);
    }
}
