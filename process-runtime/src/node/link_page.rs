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

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::sys::{self, SharedMapping};

/// The bytes of the page that are used: the count, and the sender's flag on a cache
/// line of its own (the receiver stores the count at every message; the flag is
/// written only around a wait).
const LEN: usize = 128;
const WAITING_AT: usize = 64;

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

    fn taken_word(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned, `LEN` bytes long and valid while `self`
        // lives; AtomicU64 has no invalid bit patterns.
        unsafe { self.mapping.as_ptr().cast::<AtomicU64>().as_ref() }
    }

    fn waiting_word(&self) -> &AtomicU32 {
        // SAFETY: bytes WAITING_AT..WAITING_AT + 4 of the mapping, aligned, valid while
        // `self` lives; AtomicU32 has no invalid bit patterns.
        unsafe {
            self.mapping
                .as_ptr()
                .add(WAITING_AT)
                .cast::<AtomicU32>()
                .as_ref()
        }
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
