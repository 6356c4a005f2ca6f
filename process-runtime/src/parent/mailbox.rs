//! The parent's end of the messages: `h.tell` and `h.listen`.
//!
//! **From the child.** The supervisor reads every frame the child sends; messages go to
//! the process's inbox, where they stay until taken, across attempts and after the
//! end. The child may send only what the parent granted: the room the inbox had when
//! the attempt started, plus one for each message taken since. The grant is written in
//! the shared page (a take costs no frame), and the parent keeps its own count, so a
//! child that sends beyond it is refused with a protocol error instead of growing the
//! parent's memory.
//!
//! **To the child.** The child's mailbox has `mailbox` slots. Each message told gets a
//! free one, chosen under the outbox's lock and written into its frame, and stays in
//! the outbox, in its slot, until the child has taken it. So the outbox is what the
//! child's mailbox holds: at most `mailbox` messages, whether they are still in the
//! socket or already read by the child. `tell` waits while every slot is occupied,
//! `try_tell` refuses.
//!
//! When the child takes a message, in whatever order selective receive takes them, it
//! sets that slot's bit in the shared page's taken bitmap, then adds one to its count
//! of takes (`beacon::MailCounters::child_took`, see `child/port.rs`). The count is only
//! the cheap sign that something changed: when it moved past the takes the outbox has
//! accounted for, the outbox looks at the occupied slots in the order they were told
//! until it has found that many marked ones, and frees each (clears its bit, forgets its
//! frame). Marks it finds ahead of their count are freed too, and counted as found. The
//! bookkeeping itself is in `slots.rs`.
//!
//! **Lives.** Messages an attempt took are gone with it. Those it had not taken are
//! sent again, in order, to the next attempt, before anything told after them: once an
//! attempt is gone, the outbox frees every slot marked in its page (counted or not: the
//! child may have died between the mark and the count), and sends the next attempt the
//! rest, in their slots, whose bits in its fresh page are clear. Messages the failed
//! attempt sent stay in the inbox.
//!
//! **Waiting for room** uses a flag in the shared page: the waiting side sets it and
//! checks once more; the taking side swaps it back and, if it was set, sends a room
//! notice (see `child/port.rs`). No frame is sent for room while nobody waits.
//!
//! **Without blocking.** `listen_async` is an [`AsyncListener`]: it looks at the inbox
//! as `listen` does, but never reads the socket itself and never writes to it on the
//! caller's thread (a write can wait on a child that does not read, or on a sender
//! that holds the outbox): it waits for the event loop to file messages, counted among
//! the inbox's waiters so that each one wakes it; a room notice it owes the child goes
//! out at once when the socket takes it without waiting, else from a short-lived
//! thread.
//!
//! The outbox has a lock of its own, held across the writes to the socket, so that
//! messages from several threads go out whole and in order, and so that a large message
//! to a child that is not reading blocks only its senders, never the supervisor (which
//! keeps reading, timing sections and reaping).

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::reading::{self, Borrowed};
use super::shared::{Inner, Shared};
use super::slots::Slots;
use super::tells;
use super::wakers::Registration;
use crate::beacon::Beacon;
use crate::sys;
use crate::wire::channel::{write_frame, Conn, Frame};
use crate::wire::descriptors;
use crate::wire::protocol::{self, kind, TO_PARENT};
use crate::wire::spare;
use crate::{transfer, ProcessError, RecvError, SendError};

/// The messages from the child and what is needed to let it send more; part of
/// [`Inner`].
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    /// Messages not taken yet, oldest first, with their tags.
    messages: VecDeque<(u64, Frame)>,
    /// The live attempt's socket, to send room notices and messages on.
    pub(crate) conn: Option<Conn>,
    /// Counts attempts, so that the outbox notices a new one.
    pub(crate) serial: u64,
    /// What the live attempt may have sent in all, and what it did send.
    granted: u64,
    received: u64,
    /// Counts room notices from the child, for the senders waiting for them.
    room_notices: u64,
    /// The mailbox's size, from the configuration.
    capacity: u32,
    /// Callers waiting for a message or for room: only then does a frame from the
    /// child wake anyone.
    waiters: u32,
    /// A caller of `listen` reads the socket itself (see `reading`).
    pub(crate) lent: bool,
}

/// The messages to the child that it has not taken yet, in their slots; behind
/// [`Shared::outbox`].
#[derive(Debug)]
pub(crate) struct Outbox {
    slots: Slots,
    /// The attempt the messages were last sent to, and its page.
    serial: u64,
    beacon: Option<Arc<Beacon>>,
    /// The takes of that attempt whose slots were freed.
    freed: u64,
}

impl Outbox {
    /// An empty outbox for a child's mailbox of `capacity`.
    pub(crate) fn new(capacity: u32) -> Self {
        Self {
            slots: Slots::new(capacity),
            serial: 0,
            beacon: None,
            freed: 0,
        }
    }

    /// Frees the slots of the messages the followed attempt has taken, when its count of
    /// takes says that there are some.
    fn trim(&mut self) {
        let Some(beacon) = &self.beacon else { return };
        // The count first: every take it counts is marked already.
        let took = beacon.mail().child_took.load(SeqCst);
        if took <= self.freed {
            return;
        }
        let taken = beacon.taken();
        self.freed += self
            .slots
            .trim(took - self.freed, |slot| taken.clear_if_marked(slot));
    }

    /// Follows the attempt `serial`. When it is a new one, what the old one did not
    /// take is its backlog: `true` says that every message is still to be sent.
    fn follow(&mut self, serial: u64, beacon: Option<&Arc<Beacon>>) -> bool {
        if serial == self.serial {
            return false;
        }
        // The followed attempt is gone (a new one starts only once the old one is
        // reaped), so its marks are final: all of them, counted or not.
        if let Some(old) = &self.beacon {
            let taken = old.taken();
            self.slots
                .trim(u64::MAX, |slot| taken.clear_if_marked(slot));
        }
        self.serial = serial;
        self.beacon = beacon.cloned();
        self.freed = 0;
        true
    }

    /// Sends the messages from the `from`th on; a failed write means the child is gone,
    /// and the messages stay for the next attempt.
    fn send_from(&self, conn: &Conn, from: usize) {
        for (frame, fds) in self.slots.frames(from) {
            if descriptors::write_frame_with(conn, frame, fds).is_err() {
                break;
            }
        }
    }
}

/// What a sender needs from [`Inner`], read under its lock.
struct Live {
    serial: u64,
    conn: Option<Conn>,
    beacon: Option<Arc<Beacon>>,
    over: bool,
    room_notices: u64,
}

impl Live {
    fn of(inner: &Inner) -> Self {
        Self {
            serial: inner.inbox.serial,
            conn: inner.inbox.conn.clone(),
            beacon: inner.beacon.clone(),
            over: over(inner),
            room_notices: inner.inbox.room_notices,
        }
    }
}

/// Nothing more can be sent or received once the outcome is decided: the deciding
/// child has finished.
fn over(inner: &Inner) -> bool {
    inner.decided || inner.finished()
}

fn lock_outbox(shared: &Shared) -> MutexGuard<'_, Outbox> {
    shared.outbox.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends a sealed message frame to the process's child, with the descriptors it
/// carries, waiting for room when `wait`. The frame's slot is written here, once the
/// outbox has one for it. The descriptors stay with the frame until the child takes
/// it (a new attempt is sent them again); they are closed with a frame not sent.
pub(crate) fn tell(
    shared: &Shared,
    frame: Vec<u8>,
    fds: Vec<OwnedFd>,
    wait: bool,
) -> Result<(), SendError> {
    tell_frame(shared, frame, fds, wait).map_err(|(e, ..)| e)
}

/// [`tell`], handing the frame and its descriptors back when it is not sent.
pub(crate) fn tell_frame(
    shared: &Shared,
    frame: Vec<u8>,
    fds: Vec<OwnedFd>,
    wait: bool,
) -> Result<(), (SendError, Vec<u8>, Vec<OwnedFd>)> {
    loop {
        let mut out = lock_outbox(shared);
        let live = Live::of(&shared.lock());
        if live.over {
            return Err((SendError::Ended, frame, fds));
        }
        let backlog = out.follow(live.serial, live.beacon.as_ref());
        out.trim();
        if !out.slots.is_full() {
            out.slots
                .push(frame, fds)
                .expect("a free slot: the mailbox is not full");
            if let Some(conn) = &live.conn {
                let from = if backlog { 0 } else { out.slots.len() - 1 };
                out.send_from(conn, from);
            }
            return Ok(());
        }
        if backlog {
            if let Some(conn) = &live.conn {
                out.send_from(conn, 0);
            }
        }
        if !wait {
            return Err((SendError::Full, frame, fds));
        }
        if let Some(beacon) = &live.beacon {
            beacon.mail().parent_waits.store(1, SeqCst);
            out.trim();
            if !out.slots.is_full() {
                continue;
            }
        }
        drop(out);
        // Until the child takes one (a room notice), a new attempt starts, or the end.
        // The time limit only guards against a notice lost with a dying attempt.
        let mut inner = shared.lock();
        inner.inbox.waiters += 1;
        let (mut inner, _) = shared.wait_until_with(
            inner,
            Some(Instant::now() + Duration::from_secs(1)),
            |inner| {
                inner.inbox.room_notices != live.room_notices
                    || inner.inbox.serial != live.serial
                    || over(inner)
            },
        );
        inner.inbox.waiters -= 1;
    }
}

/// Takes the oldest message tagged `tag`, waiting until `deadline`.
pub(crate) fn listen(
    shared: &Shared,
    tag: u64,
    deadline: Option<Instant>,
    take: &mut dyn FnMut(&[u8]),
) -> Result<(), RecvError> {
    let mut inner = shared.lock();
    // Whether to try reading the socket here rather than wait for the event loop.
    let mut borrow = true;
    loop {
        if let Some(frame) = take_filed(&mut inner, tag) {
            return deliver(shared, inner, frame, take);
        }
        if over(&inner) {
            return Err(RecvError::Ended);
        }
        // About to wait: a child that waits for room gets what there is, however
        // little, so that it can send what this receive is waiting for.
        if let Some(conn) = room_notice_due(&mut inner, 1) {
            drop(inner);
            send_room_notice(shared, &conn);
            inner = shared.lock();
            continue;
        }
        if borrow && !inner.inbox.lent {
            drop(inner);
            match reading::borrow(shared, tag, deadline) {
                Borrowed::Took(frame) => return deliver(shared, shared.lock(), frame, take),
                Borrowed::Timeout => return Err(RecvError::Timeout),
                Borrowed::Wait => {}
            }
            borrow = false;
            inner = shared.lock();
            continue;
        }
        let left = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Err(RecvError::Timeout),
            },
        };
        // The loop files what comes; what the child commits to its ring, it must be
        // told of.
        tells::before_waiting(shared, &inner);
        inner.inbox.waiters += 1;
        inner = match left {
            None => shared.wait(inner),
            Some(left) => shared.wait_timeout(inner, left),
        };
        inner.inbox.waiters -= 1;
        borrow = true;
    }
}

/// Removes the oldest filed message tagged `tag` from the inbox (it was counted when
/// it was filed).
pub(crate) fn take_filed(inner: &mut Inner, tag: u64) -> Option<Frame> {
    let i = inner.inbox.messages.iter().position(|(t, _)| *t == tag)?;
    inner.inbox.messages.remove(i).map(|(_, frame)| frame)
}

/// A caller of `listen_async`: it waits for the event loop to file what the child
/// sends, and is counted among the inbox's waiters from its first wait until it is
/// done or dropped.
#[derive(Debug)]
pub(crate) struct AsyncListener<'a> {
    shared: &'a Arc<Shared>,
    tag: u64,
    registration: Registration<'a>,
    /// Counted in `inbox.waiters`.
    counted: bool,
}

impl<'a> AsyncListener<'a> {
    /// A listener for messages tagged `tag`.
    pub(crate) fn new(shared: &'a Arc<Shared>, tag: u64) -> Self {
        Self {
            shared,
            tag,
            registration: Registration::new(&shared.wakers),
            counted: false,
        }
    }

    /// Takes the oldest message tagged `tag` and hands its body to `take`; or `Ended`
    /// when nothing more can come, `Timeout` when `deadline` has passed; or registers
    /// `waker` to be woken at the next change.
    pub(crate) fn poll(
        &mut self,
        waker: &Waker,
        deadline: Option<Instant>,
        take: &mut dyn FnMut(&[u8]),
    ) -> Poll<Result<(), RecvError>> {
        let shared = self.shared;
        let mut inner = shared.lock();
        if let Some(mut frame) = take_filed(&mut inner, self.tag) {
            let notice = grant_one(&mut inner);
            self.stop_waiting(inner);
            if let Some(conn) = notice {
                send_room_notice_later(shared, conn);
            }
            let fds = frame.take_fds();
            transfer::with_received(fds, || take(&frame.payload()[TO_PARENT.body..]));
            spare::give(frame.into_bytes());
            return Poll::Ready(Ok(()));
        }
        if over(&inner) {
            self.stop_waiting(inner);
            return Poll::Ready(Err(RecvError::Ended));
        }
        // About to wait: as in `listen`, a child that waits for room gets what there
        // is, so that it can send what this receive waits for.
        let notice = room_notice_due(&mut inner, 1);
        let outcome = if deadline.is_some_and(|d| Instant::now() >= d) {
            self.stop_waiting(inner);
            Poll::Ready(Err(RecvError::Timeout))
        } else {
            if !self.counted {
                inner.inbox.waiters += 1;
                self.counted = true;
            }
            // As in `listen`: the child's next commit to its ring must be announced.
            tells::before_waiting(shared, &inner);
            // Under the state's lock: a message filed after the look above wakes it.
            self.registration.set(waker);
            drop(inner);
            Poll::Pending
        };
        if let Some(conn) = notice {
            send_room_notice_later(shared, conn);
        }
        outcome
    }

    /// No longer a waiter: uncounted and deregistered.
    fn stop_waiting(&mut self, mut inner: MutexGuard<'_, Inner>) {
        if std::mem::take(&mut self.counted) {
            inner.inbox.waiters -= 1;
        }
        drop(inner);
        self.registration.clear();
    }
}

impl Drop for AsyncListener<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.stop_waiting(self.shared.lock());
        }
    }
}

/// Sends a room notice without waiting: at once when the outbox is free and the
/// socket has room for it, else from a thread of its own, since the write may wait for
/// the outbox's lock (held by a sender writing a large message) or for the child to
/// read, and the caller must not. A notice that cannot be sent at all is not lost for
/// long: a child waiting for room looks again every second.
fn send_room_notice_later(shared: &Arc<Shared>, conn: Conn) {
    if let Ok(out) = shared.outbox.try_lock() {
        let frame = protocol::room_frame(kind::TO_CHILD_ROOM);
        match sys::send_dontwait(conn.stream(), &frame) {
            Ok(n) if n == frame.len() => return,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok(0) => {}
            // Part of it went: the rest must follow before anything else. The child
            // is reading (it waits for this notice), and it is a few bytes.
            Ok(n) => {
                let _ = write_frame(&conn, &frame[n..]);
                return;
            }
            // The child is gone.
            Err(_) => return,
        }
        drop(out);
    }
    let shared = Arc::clone(shared);
    let name = shared.config.name.clone();
    let spawned = std::thread::Builder::new()
        .name("process-runtime-room".into())
        .stack_size(64 * 1024)
        .spawn(move || send_room_notice(&shared, &conn));
    if let Err(e) = spawned {
        tracing::warn!(process = %name, "cannot start a thread for a room notice: {e}");
    }
}

/// Hands a taken message's body to `take`, after granting the child room for one
/// more (and telling it, if it waits for that).
fn deliver(
    shared: &Shared,
    mut inner: MutexGuard<'_, Inner>,
    mut frame: Frame,
    take: &mut dyn FnMut(&[u8]),
) -> Result<(), RecvError> {
    let notice = grant_one(&mut inner);
    drop(inner);
    if let Some(conn) = notice {
        send_room_notice(shared, &conn);
    }
    let fds = frame.take_fds();
    transfer::with_received(fds, || take(&frame.payload()[TO_PARENT.body..]));
    // Its room serves the next message filed on this thread.
    spare::give(frame.into_bytes());
    Ok(())
}

/// Writes a notice or reply of the node to the live attempt, in no slot of its
/// mailbox; nothing happens when no attempt is live (a new attempt knows nothing of
/// what the last one asked).
pub(crate) fn write_control(shared: &Shared, frame: &[u8]) {
    let _out = lock_outbox(shared);
    let conn = shared.lock().inbox.conn.clone();
    if let Some(conn) = conn {
        let _ = write_frame(&conn, frame);
    }
}

/// A message of the node the child sent was handed on (or dropped): it no longer takes
/// room in this mailbox, so the child may send one more.
pub(crate) fn grant_forwarded(shared: &Shared) {
    let notice = grant_one(&mut shared.lock());
    if let Some(conn) = notice {
        send_room_notice(shared, &conn);
    }
}

/// Grants the live attempt room for one more message; returns its socket when it
/// waits for room and should be told now: once a quarter of the mailbox is free, or
/// when nothing is left to take. Telling it of every single free place would wake it
/// for each message taken, and a child streaming to a busy parent would send one
/// message per wake-up.
fn grant_one(inner: &mut Inner) -> Option<Conn> {
    let beacon = inner.beacon.as_ref()?;
    inner.inbox.granted += 1;
    beacon
        .mail()
        .parent_grants
        .store(inner.inbox.granted, SeqCst);
    let enough = if inner.inbox.messages.is_empty() {
        1
    } else {
        (u64::from(inner.inbox.capacity) / 4).max(1)
    };
    room_notice_due(inner, enough)
}

/// The live attempt's socket, when the child waits for room and has at least `enough`;
/// its flag is cleared, so that one notice is sent per wait.
fn room_notice_due(inner: &mut Inner, enough: u64) -> Option<Conn> {
    let beacon = inner.beacon.as_ref()?;
    let inbox = &inner.inbox;
    let room = inbox.granted.saturating_sub(inbox.received);
    let mail = beacon.mail();
    if room >= enough && mail.child_waits.load(SeqCst) != 0 && mail.child_waits.swap(0, SeqCst) != 0
    {
        inbox.conn.clone()
    } else {
        None
    }
}

fn send_room_notice(shared: &Shared, conn: &Conn) {
    let _out = lock_outbox(shared);
    let _ = write_frame(conn, &protocol::room_frame(kind::TO_CHILD_ROOM));
}

/// A new attempt, before it is spawned: it may send as many messages as the inbox
/// has room for.
pub(crate) fn grant_initial(inner: &mut Inner, beacon: &Beacon, capacity: u32) {
    let inbox = &mut inner.inbox;
    inbox.capacity = capacity;
    inbox.granted = u64::from(capacity).saturating_sub(inbox.messages.len() as u64);
    inbox.received = 0;
    beacon.mail().parent_grants.store(inbox.granted, SeqCst);
}

/// The attempt's start frame is written: messages and room notices may follow it on
/// `conn`. Messages the last attempt did not take are sent again first.
pub(crate) fn attach(inner: &mut Inner, conn: Conn) {
    inner.inbox.conn = Some(conn);
    inner.inbox.serial += 1;
}

/// The process has ended: the messages its child did not take are dropped, and with
/// them the descriptors they carried.
pub(crate) fn drop_untaken(shared: &Shared) {
    let mut out = lock_outbox(shared);
    out.slots = Slots::new(shared.config.mailbox);
}

/// The attempt ended: its socket is released (so that no descriptor outlives it).
pub(crate) fn detach(inner: &mut Inner) {
    inner.inbox.conn = None;
}

/// Sends the backlog of messages the last attempt did not take to the new one, on a
/// thread of its own (the supervisor must not block on a child that does not read).
/// Nothing happens when the outbox is empty, and senders that come first send it
/// themselves.
pub(crate) fn resend_backlog(shared: &Arc<Shared>) {
    if lock_outbox(shared).slots.is_empty() {
        return;
    }
    let name = shared.config.name.clone();
    let shared = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("process-runtime-backlog".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut out = lock_outbox(&shared);
            let live = Live::of(&shared.lock());
            if out.follow(live.serial, live.beacon.as_ref()) {
                if let Some(conn) = &live.conn {
                    out.send_from(conn, 0);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(process = %name, "cannot start the backlog thread: {e}");
    }
}

/// A message frame from the child, tagged `tag`. A child that sends more than it was
/// granted breaks the protocol.
pub(crate) fn on_message(inner: &mut Inner, tag: u64, frame: Frame) -> Result<(), ProcessError> {
    count_received(inner)?;
    inner.inbox.messages.push_back((tag, frame));
    Ok(())
}

/// Counts a message from the child against what it was granted.
pub(crate) fn count_received(inner: &mut Inner) -> Result<(), ProcessError> {
    let inbox = &mut inner.inbox;
    if inbox.received >= inbox.granted {
        return Err(ProcessError::Protocol(format!(
            "the child sent more messages than the parent's mailbox had room for ({})",
            inbox.granted
        )));
    }
    inbox.received += 1;
    Ok(())
}

/// Whether the child may send one more message.
pub(crate) fn within_grant(inner: &Inner) -> bool {
    inner.inbox.received < inner.inbox.granted
}

/// The child took messages while the parent waited for room.
pub(crate) fn on_room(inner: &mut Inner) {
    inner.inbox.room_notices += 1;
}

/// Whether anyone waits for what the child sends.
pub(crate) fn has_waiters(inner: &Inner) -> bool {
    inner.inbox.waiters > 0
}

/// How many callers wait for what the child sends (for the tests).
#[cfg(feature = "fault-injection")]
pub(crate) fn waiters(inner: &Inner) -> u32 {
    inner.inbox.waiters
}
