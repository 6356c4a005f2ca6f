//! Spare frame buffers, kept per thread: a message from the tells ring is copied into a
//! vector of its own when it is filed, and that vector is freed once the message is
//! taken and decoded. In a stream, that is one allocation and one free per message, of
//! a size (a 1 KiB body with its header) that the allocator serves on its slow path: a
//! fifth of the parent's time in a profile of a stream of 1 KiB messages. The thread
//! that takes a message gives its buffer back here, and the thread that files the next
//! one takes it again; a listener that borrows the reader is both.
//!
//! What is kept is bounded per thread: at most [`KEPT_BYTES`] in all, in buffers of at
//! most [`LARGEST`] bytes each, so a thread that once listened keeps at most a ring's
//! worth of memory.

use std::cell::RefCell;

/// Larger buffers are freed, not kept.
const LARGEST: usize = 4096;
/// The capacity all kept buffers of a thread may have together: the tells ring's size.
const KEPT_BYTES: usize = 128 * 1024;

#[derive(Default)]
struct Kept {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

thread_local! {
    static KEPT: RefCell<Kept> = RefCell::new(Kept::default());
}

/// An empty vector with room for at least `len` bytes: a kept one when this thread has
/// one large enough, else a new one.
pub(crate) fn take(len: usize) -> Vec<u8> {
    let kept = KEPT
        .try_with(|kept| {
            let mut kept = kept.borrow_mut();
            if kept.buffers.last().is_some_and(|b| b.capacity() >= len) {
                let buffer = kept.buffers.pop()?;
                kept.bytes -= buffer.capacity();
                Some(buffer)
            } else {
                None
            }
        })
        .ok()
        .flatten();
    kept.unwrap_or_else(|| Vec::with_capacity(len))
}

/// Keeps `buffer` for a later [`take`] on this thread, when it is small enough and the
/// thread keeps less than its bound; else frees it.
pub(crate) fn give(mut buffer: Vec<u8>) {
    let capacity = buffer.capacity();
    if capacity == 0 || capacity > LARGEST {
        return;
    }
    buffer.clear();
    // A thread being torn down frees it instead.
    let _ = KEPT.try_with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.bytes + capacity <= KEPT_BYTES {
            kept.bytes += capacity;
            kept.buffers.push(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_and_what_is_kept_is_bounded() {
        let buffer = take(1035);
        assert!(buffer.capacity() >= 1035 && buffer.is_empty());
        let address = buffer.as_ptr();
        let mut filled = buffer;
        filled.extend_from_slice(&[7; 1035]);
        give(filled);
        let again = take(1000);
        assert_eq!(again.as_ptr(), address, "the same buffer, emptied");
        assert!(again.is_empty());
        // Too small a kept buffer is not handed out for a larger need.
        give(again);
        assert!(take(4000).capacity() >= 4000);
        // Large buffers are not kept.
        give(Vec::with_capacity(LARGEST + 1));
        // The bound: no more than KEPT_BYTES in all.
        for _ in 0..2 * KEPT_BYTES / 1024 {
            give(Vec::with_capacity(1024));
        }
        let kept = KEPT.with(|kept| kept.borrow().bytes);
        assert!(kept <= KEPT_BYTES, "{kept} bytes kept");
        assert!(kept > KEPT_BYTES - 2048, "{kept} bytes kept");
    }
}
