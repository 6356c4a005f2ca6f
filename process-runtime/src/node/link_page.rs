//! The page a direct link's two ends share: how many of the link's messages the
//! receiver has taken, so that the sender knows the room left in the receiver's
//! mailbox without a frame per message taken.
//!
//! The receiver counts each message it takes (or drops) here, a store to memory. The
//! sender reads the count only when its window seems full. A sender that must wait for
//! room says so on the page first, then looks at the count again: a receiver that
//! takes a message takes that flag back after counting, and only when it was set writes
//! a frame on the link to wake the sender. Both orders are sequentially consistent, so
//! one of the two sees the other: a sender never sleeps through the message that made
//! room. One wake-up per time the sender said it waits: they never fill its socket.
//!
//! The sender also counts the messages it writes, so that a receiver about to wait on
//! its sockets can first watch the count for a few microseconds (see `spin.rs`).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering::{Acquire, Release, SeqCst};
use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::sys::{self, SharedMapping};

/// The bytes of the page that are used: the receiver's count of takes, and on a cache
/// line of its own the sender's words: its flag (written only around a wait) and its
/// count of messages written.
const LEN: usize = 128;
const TAKEN_AT: usize = 0;
const WAITING_AT: usize = 64;
const SENT_AT: usize = 72;

/// One end's mapping of a link's page.
#[derive(Debug)]
pub(crate) struct LinkPage {
    mapping: SharedMapping,
}

impl LinkPage {
    /// A fresh page (all zero: nothing taken, nobody waiting), with the descriptor for
    /// the receiver.
    pub(crate) fn create() -> io::Result<(Self, OwnedFd)> {
        let (mapping, fd) = SharedMapping::create(LEN)?;
        Ok((Self { mapping }, fd))
    }

    /// Maps the page behind the descriptor the sender made, if it is as long as a page
    /// must be (a shorter file would fault where the mapping goes past it).
    pub(crate) fn open(fd: &OwnedFd) -> io::Result<Self> {
        let len = sys::shared_len(fd.as_fd())?;
        if len < LEN {
            return Err(io::Error::other(format!(
                "a direct link's page has {len} bytes, not {LEN}"
            )));
        }
        Ok(Self {
            mapping: SharedMapping::open(fd, LEN)?,
        })
    }

    /// The atomic word of type `T` at byte `at` of the page.
    ///
    /// # Safety
    /// `T` is an atomic integer (no invalid bit patterns), and `at` is a multiple of its
    /// size with `at + size_of::<T>() <= LEN`.
    unsafe fn word<T>(&self, at: usize) -> &T {
        // SAFETY: inside the mapping, which is page-aligned, `LEN` bytes long and valid
        // while `self` lives; aligned and of a valid type, as the caller promises.
        unsafe { self.mapping.as_ptr().add(at).cast::<T>().as_ref() }
    }

    fn taken_word(&self) -> &AtomicU64 {
        // SAFETY: an AtomicU64 at 0, inside LEN.
        unsafe { self.word(TAKEN_AT) }
    }

    fn waiting_word(&self) -> &AtomicU32 {
        // SAFETY: an AtomicU32 at a multiple of 4, inside LEN.
        unsafe { self.word(WAITING_AT) }
    }

    fn sent_word(&self) -> &AtomicU64 {
        // SAFETY: an AtomicU64 at a multiple of 8, inside LEN.
        unsafe { self.word(SENT_AT) }
    }

    /// The sender wrote one more message on the link. Only a hint for a receiver that
    /// watches the page before it waits on its sockets (see `direct::wait_with_parent`):
    /// the socket, not this count, says what there is to read.
    pub(crate) fn sent_one(&self) {
        self.sent_word().fetch_add(1, Release);
    }

    /// How many messages the sender has written on the link, as far as it said.
    pub(crate) fn sent(&self) -> u64 {
        self.sent_word().load(Acquire)
    }

    /// How many of the link's messages the receiver has taken or dropped, in all.
    pub(crate) fn taken(&self) -> u64 {
        self.taken_word().load(SeqCst)
    }

    /// The receiver took (or dropped) one more message; returns whether the sender
    /// waited for room, and so must be woken (it says so again if it waits more).
    pub(crate) fn took_one(&self) -> bool {
        self.taken_word().fetch_add(1, SeqCst);
        self.waiting_word().load(SeqCst) != 0 && self.waiting_word().swap(0, SeqCst) != 0
    }

    /// The sender waits for room from now on (`true`), or no longer.
    pub(crate) fn set_waiting(&self, on: bool) {
        self.waiting_word().store(u32::from(on), SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_end_sees_what_the_other_counts() {
        let (sender, fd) = LinkPage::create().unwrap();
        let receiver = LinkPage::open(&fd).unwrap();
        sender.sent_one();
        sender.sent_one();
        assert_eq!(receiver.sent(), 2);
        assert_eq!(sender.taken(), 0);
        // Nobody waits: no wake-up is owed.
        assert!(!receiver.took_one());
        assert_eq!(sender.taken(), 1);
        // A waiting sender is owed one wake-up, once.
        sender.set_waiting(true);
        assert!(receiver.took_one());
        assert!(!receiver.took_one());
        assert_eq!(sender.taken(), 3);
        assert_eq!(receiver.sent(), 2, "the counts are apart");
    }
}
