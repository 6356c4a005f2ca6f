//! The node's messages filed in this process, with its notices (`Down`, `Exit`, the
//! root's answers), until `node::receive` takes them.
//!
//! Everything of the node for this process is filed here, whoever read it: the event
//! loop (from this process's children, and, in a child that has children of its own,
//! from its parent), or the thread that receives (a child with no children reads its
//! socket itself: see `child/port.rs`).
//!
//! Each message holds its [`Credit`]: the room it takes in its sender's grant, given
//! back when it is taken, so that a child that sends to a parent that does not receive
//! is held back by the bound of the parent's mailbox, not let grow it.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant;

use super::control;
use super::types::{Down, MonitorRef};
use super::Credit;
use crate::wire::channel::Frame;
use crate::Pid;

/// A message of the node, filed.
pub(crate) struct Entry {
    pub(crate) from: Pid,
    pub(crate) tag: u64,
    frame: Frame,
    /// Where the body starts in the frame's payload.
    body: usize,
    /// Given back when the entry is dropped (taken, or dropped with the mailbox).
    credit: Credit,
}

impl Entry {
    pub(crate) fn new(from: Pid, tag: u64, frame: Frame, body: usize, credit: Credit) -> Self {
        Self {
            from,
            tag,
            frame,
            body,
            credit,
        }
    }

    /// Whether the message came down from the parent in a slot of this process's
    /// mailbox (relayed, rather than a notice or a message on a direct link).
    pub(crate) fn relayed(&self) -> bool {
        matches!(self.credit, Credit::Slot(_))
    }

    /// The descriptors that came with the message, taken out of it.
    pub(crate) fn take_fds(&mut self) -> Vec<std::os::fd::OwnedFd> {
        self.frame.take_fds()
    }

    /// The message's postcard bytes.
    pub(crate) fn body(&self) -> &[u8] {
        &self.frame.payload()[self.body..]
    }

    /// Hands the message to `take`, with its descriptors ready for the `Transfer`s it
    /// holds; those not taken are closed.
    pub(crate) fn deliver(mut self, take: &mut dyn FnMut(Pid, &[u8])) {
        let fds = self.frame.take_fds();
        crate::transfer::with_received(fds, || take(self.from, self.body()));
    }
}

#[derive(Default)]
struct Mailbox {
    entries: VecDeque<Entry>,
    /// Threads waiting in [`wait`]: only then does filing wake anyone.
    waiters: u32,
    /// The wakers of `node::receive_async` futures waiting (see [`AsyncWait`]), by
    /// their ids.
    wakers: Vec<(u64, Waker)>,
}

static MAILBOX: Mutex<Mailbox> = Mutex::new(Mailbox {
    entries: VecDeque::new(),
    waiters: 0,
    wakers: Vec::new(),
});
static FILED: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, Mailbox> {
    MAILBOX.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The monitors of this process whose `Down` has not come yet.
static ACTIVE: Mutex<BTreeSet<MonitorRef>> = Mutex::new(BTreeSet::new());

fn active() -> MutexGuard<'static, BTreeSet<MonitorRef>> {
    ACTIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A monitor was made: its `Down` is wanted.
pub(crate) fn monitor_made(mref: MonitorRef) {
    active().insert(mref);
}

/// Whether a message of the node tagged `tag` with `body` is to be filed: anything but
/// a `Down` of a monitor not active (taken back, or whose `Down` came already). A
/// `Down` that is filed makes its monitor inactive: exactly one per monitor.
pub(crate) fn wanted(tag: u64, body: &[u8]) -> bool {
    if tag != control::down_tag() {
        return true;
    }
    match postcard::from_bytes::<Down>(body) {
        Ok(down) => active().remove(&down.monitor),
        Err(_) => true,
    }
}

/// Takes a monitor back: no `Down` of it is taken from now on, and one already filed
/// is removed. Returns whether its `Down` had not come yet.
pub(crate) fn demonitor(mref: MonitorRef) -> bool {
    let was_active = active().remove(&mref);
    let tag = control::down_tag();
    let of_it =
        |body: &[u8]| postcard::from_bytes::<Down>(body).is_ok_and(|down| down.monitor == mref);
    // Dropped outside the lock: a dropped message may give back its room.
    let dropped: VecDeque<Entry> = {
        let mut mailbox = lock();
        let (dropped, kept) = std::mem::take(&mut mailbox.entries)
            .into_iter()
            .partition(|e| e.tag == tag && of_it(e.body()));
        mailbox.entries = kept;
        dropped
    };
    drop(dropped);
    was_active
}

/// Files a message, waking the receivers that wait.
pub(crate) fn file(entry: Entry) {
    // A direct link's hello is not a message; what it counts, it counts here.
    let Some(entry) = super::direct::on_filing(entry) else {
        return;
    };
    if !wanted(entry.tag, entry.body()) {
        return;
    }
    let mut mailbox = lock();
    mailbox.entries.push_back(entry);
    wake_waiting(mailbox);
}

/// Nothing more can be filed (a child's parent has gone): the receivers that wait look
/// again, and find out.
pub(crate) fn ended() {
    wake_waiting(lock());
}

/// Wakes the threads and the futures that wait, once the lock is released (a waker may
/// run its executor's code).
fn wake_waiting(mailbox: MutexGuard<'_, Mailbox>) {
    let threads = mailbox.waiters > 0;
    let wakers: Vec<Waker> = mailbox.wakers.iter().map(|(_, w)| w.clone()).collect();
    drop(mailbox);
    if threads {
        FILED.notify_all();
    }
    for waker in wakers {
        waker.wake();
    }
}

/// How many `node::receive_async` futures are registered (for the tests).
#[cfg(feature = "fault-injection")]
pub(crate) fn async_waiters() -> usize {
    lock().wakers.len()
}

/// A `node::receive_async` future's place among the wakers of the mailbox; removed
/// when dropped. Registered under the mailbox's lock right after a look found nothing,
/// so that a message filed after the look wakes it (filing takes the same lock).
#[derive(Debug)]
pub(crate) struct AsyncWait {
    id: u64,
    registered: bool,
}

impl AsyncWait {
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            registered: false,
        }
    }

    /// Takes the oldest message tagged `tag`; when there is none, registers `waker` to
    /// be woken when one may have come.
    pub(crate) fn take_or_register(&mut self, tag: u64, waker: &Waker) -> Option<Entry> {
        let mut mailbox = lock();
        if let Some(entry) = take_from(&mut mailbox, tag) {
            drop(mailbox);
            self.clear();
            return Some(entry);
        }
        match mailbox.wakers.iter_mut().find(|(id, _)| *id == self.id) {
            Some((_, old)) => {
                if !old.will_wake(waker) {
                    old.clone_from(waker);
                }
            }
            None => mailbox.wakers.push((self.id, waker.clone())),
        }
        self.registered = true;
        None
    }

    /// Removes the registration, if there is one.
    pub(crate) fn clear(&mut self) {
        if !std::mem::take(&mut self.registered) {
            return;
        }
        let mut mailbox = lock();
        if let Some(i) = mailbox.wakers.iter().position(|(id, _)| *id == self.id) {
            mailbox.wakers.swap_remove(i);
        }
    }
}

impl Drop for AsyncWait {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Takes the oldest message tagged `tag`.
pub(crate) fn take(tag: u64) -> Option<Entry> {
    take_from(&mut lock(), tag)
}

fn take_from(mailbox: &mut Mailbox, tag: u64) -> Option<Entry> {
    let i = mailbox.entries.iter().position(|e| e.tag == tag)?;
    mailbox.entries.remove(i)
}

/// Waits until a message tagged `tag` is filed, or `deadline`; returns whether one is
/// there (it is not taken).
pub(crate) fn wait(tag: u64, deadline: Option<Instant>) -> bool {
    let mut mailbox = lock();
    loop {
        if mailbox.entries.iter().any(|e| e.tag == tag) {
            return true;
        }
        let left = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return false,
            },
        };
        mailbox.waiters += 1;
        mailbox = match left {
            None => FILED.wait(mailbox).unwrap_or_else(PoisonError::into_inner),
            Some(left) => {
                FILED
                    .wait_timeout(mailbox, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
        mailbox.waiters -= 1;
    }
}

/// Takes the oldest message tagged `tag`, waiting until `deadline`.
pub(crate) fn receive(tag: u64, deadline: Option<Instant>) -> Option<Entry> {
    loop {
        if let Some(entry) = take(tag) {
            return Some(entry);
        }
        if !wait(tag, deadline) {
            return None;
        }
    }
}
