//! The child's end of the messages: what `cx.tell` and `cx.listen` go through.
//!
//! In a child that has no children of its own, nothing reads the socket in the
//! background: the thread of a section reads it when the section listens
//! (`cx.listen`, `node::receive`), or when it tells and the parent's mailbox is full.
//! Once it starts children, its event loop watches the socket too, and reads it
//! whenever no section does (the reading side's lock decides who reads; a section
//! gives the socket back to the loop when it lets go of the lock), so that what comes
//! down for the processes below it is handed on at once. The child's
//! mailbox is therefore the socket itself plus the messages read past while looking for
//! another type; the parent keeps the two together within the mailbox's size. Each
//! message from the parent comes in a slot of the mailbox, which the parent chose; when
//! the child takes it, in whatever order selective receive takes them, it marks that
//! slot in the shared page's taken bitmap, then counts the take
//! (`beacon::MailCounters::child_took`). The parent frees exactly the marked slots, and
//! sends the next attempt only the messages whose slots are not marked (see
//! `parent/mailbox.rs`).
//!
//! Room in the parent's mailbox works the other way round: the parent grants it in the
//! shared page, the child counts what it sent. A side that waits for room sets its
//! "waits" flag and checks once more; the other side, after taking a message, swaps the
//! flag back and sends a room notice only if it was set. Both use sequentially
//! consistent operations, so one of the two always sees the other (no lost wake-up),
//! and a conversation that never fills a mailbox sends no notice at all.

//!
//! **The tells ring.** A message told to the parent is not written to the socket but
//! committed to the tells area of the shared page (the ring of `pool/ring.rs`): a copy,
//! no system call. The parent is told with a one-byte ready frame only when it waits
//! for a message (it raises the ring's waiting flag first), so a stream of messages to
//! a parent that is busy taking them costs no system call at all, and one to a parent
//! that waits costs one, as a socket write would. A message committed is in memory the
//! parent holds, so it outlives a child that dies at once after telling it.
//!
//! A message that does not fit (larger than a quarter of the ring, or no room now)
//! goes on the socket instead, as do the node's messages and control frames. Nothing
//! may overtake what was sent before it (a child announces a grandchild with a control
//! frame, then tells its pid: the parent must know the pid by then), so the child
//! commits to the ring only while the parent has read every frame with content it
//! sent on the socket (`MailCounters::socket_frames_read`), and the parent drains the
//! ring before it handles each: what is in the ring is always older than any such
//! frame the socket still holds. Room notices and ready frames say nothing to order,
//! and are not counted.

//!
//! The port is the process's one link to its parent, for the pair's messages and for
//! the node's alike, so it lives in a static ([`port`]) that `node::send` and
//! `node::receive` reach too, and the [`Context`](crate::Context) holds a
//! [`PairPort`] that points to it. Its reading side and its writing side have a lock
//! each: a thread that waits in a read never keeps another from writing (the node's
//! router forwards messages up through here while a section listens).

use std::cell::Cell;
use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use crate::beacon::{MailCounters, Taken};
use crate::node::mailbox::Entry;
use crate::node::{self, Credit};
use crate::pool::ring::{Pushed, RingWriter};
use crate::sys;
use crate::wire::channel::{write_frame, Conn, Frame, FrameReader, ReadError};
use crate::wire::descriptors;
use crate::wire::protocol::{self, kind, Kind, MAX_FRAME, NO_SLOT, TO_CHILD, TO_PARENT};
use crate::{transfer, Pid, ProcessError, RecvError, SendError};
use process_core::__Port;

/// The child's port to its parent.
pub(crate) struct ChildPort {
    read: Mutex<ReadSide>,
    write: Mutex<WriteSide>,
    /// Messages sent to the parent so far (under the writing side's lock).
    sent: AtomicU64,
    /// The parent closed its end.
    ended: AtomicBool,
    mail: &'static MailCounters,
    taken: Taken<'static>,
    /// The event loop's key for the socket, once the loop watches it.
    loop_key: OnceLock<usize>,
}

/// The reading side, locked; gives the socket back to the event loop when dropped
/// (where the loop watches it).
struct ReadGuard<'a> {
    guard: MutexGuard<'a, ReadSide>,
    port: &'a ChildPort,
}

impl Deref for ReadGuard<'_> {
    type Target = ReadSide;
    fn deref(&self) -> &ReadSide {
        &self.guard
    }
}

impl DerefMut for ReadGuard<'_> {
    fn deref_mut(&mut self) -> &mut ReadSide {
        &mut self.guard
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        if let Some(&key) = self.port.loop_key.get() {
            if !self.port.ended.load(SeqCst) {
                crate::parent::reactor::rearm(
                    sys::stream_fd(self.guard.reader.get_ref().stream()),
                    key,
                );
            }
        }
    }
}

/// What only the thread that writes may touch.
struct WriteSide {
    conn: Conn,
    /// The tells ring; `None` where the page has none (tests of the port alone).
    ring: Option<RingWriter>,
    /// Frames with content sent on the socket: messages of the pair that did not go
    /// to the ring, the node's messages and control frames.
    socket_frames: u64,
    /// The parent's grant as last read from the page. Grants only grow, so a message
    /// within this one needs no look at the page: the parent writes the grant each
    /// time it takes a message, and a look per message would pull that cache line
    /// across on every one.
    granted: u64,
    /// `MailCounters::socket_frames_read` as last read: once it has caught up with
    /// `socket_frames`, it stays so until the next frame on the socket.
    socket_frames_seen: u64,
}

impl WriteSide {
    /// Whether the parent has read every frame with content sent on the socket, so
    /// that a message may go to the ring (see the module's doc).
    fn socket_caught_up(&mut self, mail: &MailCounters) -> bool {
        if self.socket_frames_seen != self.socket_frames {
            self.socket_frames_seen = mail.socket_frames_read.load(SeqCst);
        }
        self.socket_frames_seen == self.socket_frames
    }

    /// Counts a frame with content about to go on the socket (see the module's doc).
    fn count_socket_frame(&mut self) {
        self.socket_frames += 1;
        // Said first: a parent that waits on the ring learns to wait on the socket.
        if let Some(ring) = &self.ring {
            ring.sent_on_socket(self.socket_frames);
        }
    }
}

/// What only the thread that reads may touch.
struct ReadSide {
    reader: FrameReader<Conn>,
    /// Messages read from the socket and not taken yet, oldest first.
    queue: VecDeque<Queued>,
    /// The socket's read timeout as last set, to set it only when it changes.
    read_timeout: Option<Duration>,
}

/// A message of the pair (`h.tell`) read and not taken yet. The node's messages go to
/// the node's mailbox as they are read (see `node/mailbox.rs`).
struct Queued {
    tag: u64,
    slot: u32,
    frame: Frame,
}

static PORT: OnceLock<ChildPort> = OnceLock::new();

/// This child's port, once its lifecycle is about to run; `None` in the root.
pub(crate) fn port() -> Option<&'static ChildPort> {
    PORT.get()
}

/// Installs this child's port; returns the [`PairPort`] its context talks through.
pub(crate) fn install(
    reader: FrameReader<Conn>,
    writer: Conn,
    mail: &'static MailCounters,
    taken: Taken<'static>,
    socket_frames: u64,
) -> PairPort {
    let port = ChildPort {
        read: Mutex::new(ReadSide {
            reader,
            queue: VecDeque::new(),
            read_timeout: None,
        }),
        write: Mutex::new(WriteSide {
            conn: writer,
            ring: crate::beacon::child_tells().map(RingWriter::new),
            socket_frames,
            granted: 0,
            socket_frames_seen: 0,
        }),
        sent: AtomicU64::new(0),
        ended: AtomicBool::new(false),
        mail,
        taken,
        loop_key: OnceLock::new(),
    };
    if PORT.set(port).is_err() {
        unreachable!("a child installs its port once");
    }
    PairPort {
        spare: Cell::new(Vec::new()),
    }
}

/// The [`Context`](crate::Context)'s way to the port: the pair's messages.
pub(crate) struct PairPort {
    /// The last message's frame, once sent: the next one is encoded into it, so that a
    /// stream of messages allocates nothing for its frames.
    spare: Cell<Vec<u8>>,
}

/// Frames up to this size are kept for the next message; larger ones are freed.
const SPARE_MAX: usize = 64 * 1024;

impl ChildPort {
    fn lock_read(&self) -> ReadGuard<'_> {
        ReadGuard {
            guard: self.read.lock().unwrap_or_else(PoisonError::into_inner),
            port: self,
        }
    }

    fn try_lock_read(&self) -> Option<ReadGuard<'_>> {
        let guard = match self.read.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(ReadGuard { guard, port: self })
    }

    /// Has the event loop watch the socket from now on (once this process has children
    /// of its own): what comes from the parent for them is handed on even while no
    /// section reads.
    pub(crate) fn watch_from_loop(&'static self) {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let conn = self.lock_write().conn.clone();
            if let Some(key) = crate::parent::reactor::watch_port(sys::stream_fd(conn.stream())) {
                let _ = self.loop_key.set(key);
            }
        });
        // The direct links from siblings are read by threads from now on.
        node::direct::read_in_background();
        // Whatever arrived before the loop watched it.
        crate::parent::reactor::kick_port();
    }

    /// The socket is readable, says the event loop: reads what has arrived, unless a
    /// section reads already (it gives the socket back to the loop when it is done).
    /// Returns `false` once the parent has closed its end: the loop stops watching.
    pub(crate) fn read_from_loop(&self) -> bool {
        let Some(mut rs) = self.try_lock_read() else {
            return true;
        };
        loop {
            match self.read_one(&mut rs, Some(Instant::now())) {
                Ok(true) if !self.ended.load(SeqCst) => {}
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!("reading the parent's socket: {e}");
                    self.ended.store(true, SeqCst);
                    break;
                }
            }
        }
        let open = !self.ended.load(SeqCst);
        if !open {
            // A receiver waiting on the node's mailbox learns that nothing more comes.
            node::mailbox::ended();
        }
        open
    }

    /// Whether the parent has closed its end: nothing more comes from it.
    pub(crate) fn parent_gone(&self) -> bool {
        self.ended.load(SeqCst)
    }

    fn lock_write(&self) -> MutexGuard<'_, WriteSide> {
        self.write.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads one frame, waiting until `deadline` at most. `Ok(false)` when the time ran
    /// out first.
    fn read_one(&self, rs: &mut ReadSide, deadline: Option<Instant>) -> Result<bool, RecvError> {
        let timeout = match deadline {
            None => None,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // Only what has arrived: a zero read timeout would mean "for ever".
                    if !rs.reader.has_buffered()
                        && !sys::poll_readable(rs.reader.get_ref().stream(), Duration::ZERO)
                            .map_err(|e| RecvError::Protocol(format!("polling the socket: {e}")))?
                    {
                        return Ok(false);
                    }
                    Some(Duration::from_millis(1))
                } else {
                    Some(left)
                }
            }
        };
        // Set the timeout only when it must change: a loop that listens with the same
        // limit pays no system call for it. A timeout left from before may overshoot
        // the deadline by a millisecond or 1/64 of the wait, whichever is more; a
        // shorter one only costs an extra wake-up, and the caller checks the deadline.
        let stale = match (rs.read_timeout, timeout) {
            (Some(old), Some(new)) => {
                old > new + (new / 64).max(Duration::from_millis(1)) || old < new / 2
            }
            (old, new) => old != new,
        };
        if stale {
            rs.reader
                .get_ref()
                .set_read_timeout(timeout)
                .map_err(|e| RecvError::Protocol(format!("setting the socket's timeout: {e}")))?;
            rs.read_timeout = timeout;
        }
        let frame = match rs.reader.read_frame(MAX_FRAME) {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(false),
            Err(ReadError::Closed { .. }) => {
                self.ended.store(true, SeqCst);
                // Whoever read it, the receives waiting on the node's mailbox learn it.
                node::mailbox::ended();
                return Ok(true);
            }
            Err(ReadError::TooLarge { len, max }) => {
                return Err(RecvError::Protocol(format!(
                    "a message frame announced {len} bytes, more than the maximum of {max} bytes"
                )))
            }
            Err(ReadError::Io(e)) => {
                return Err(RecvError::Protocol(format!("reading a message frame: {e}")))
            }
            Err(ReadError::Descriptors(why)) => return Err(RecvError::Protocol(why)),
        };
        let (tag, from) = match protocol::kind_of(frame.payload(), &TO_CHILD) {
            Ok(Kind::Message(tag)) => (tag, None),
            Ok(Kind::Routed(tag)) => (tag, Some(())),
            Ok(Kind::Room) => return Ok(true),
            Ok(Kind::Other | Kind::Control(_) | Kind::Ready) => {
                return Err(RecvError::Protocol(
                    "the parent sent a frame that is not a message".into(),
                ))
            }
            Err(e) => return Err(RecvError::Protocol(e.to_string())),
        };
        let slot = protocol::slot_of(frame.payload());
        // A notice or reply of the node comes in no slot.
        let control = from.is_some() && slot == NO_SLOT;
        if !control && u64::from(slot) >= self.taken.slots() {
            return Err(RecvError::Protocol(format!(
                "the parent sent a message in slot {slot}, beyond the shared page's {} slots",
                self.taken.slots()
            )));
        }
        match from {
            None => rs.queue.push_back(Queued { tag, slot, frame }),
            Some(()) => {
                let (route, body) = protocol::route_of(frame.payload(), &TO_CHILD)
                    .map_err(|e| RecvError::Protocol(e.to_string()))?;
                if route.to == node::self_pid() {
                    if control && tag == node::control::ctl_tag() {
                        // A request of the root's (an exit signal for a child of this
                        // process): carried out at once.
                        node::control::from_root(&frame.payload()[body..]);
                        return Ok(true);
                    }
                    let credit = if control {
                        Credit::None
                    } else {
                        Credit::Slot(slot)
                    };
                    // The slot is freed when the message is taken (or dropped, for a
                    // `Down` of a monitor taken back).
                    node::mailbox::file(Entry::new(route.from, tag, frame, body, credit));
                } else {
                    // For a process below this one: the slot stays taken until the
                    // message is handed on, so that a child that does not read holds
                    // back its senders, not this process's memory.
                    let credit = if control {
                        Credit::None
                    } else {
                        Credit::Slot(slot)
                    };
                    node::route::from_parent(route, frame, credit, control);
                }
            }
        }
        Ok(true)
    }

    /// Marks the message in `slot` as taken, counts it, and tells a parent that waits
    /// for room. The mark comes first: a parent that sees the count sees the mark.
    pub(crate) fn took_one(&self, slot: u32) {
        if slot == NO_SLOT {
            return;
        }
        self.taken.mark(slot);
        self.mail.child_took.fetch_add(1, SeqCst);
        if self.mail.parent_waits.swap(0, SeqCst) != 0 {
            // A parent that is gone needs no notice.
            let writer = self.lock_write();
            let _ = write_frame(&writer.conn, &protocol::room_frame(kind::TO_PARENT_ROOM));
        }
    }

    /// Writes a control frame of the node to the parent: counted against no grant.
    /// Returns whether it was written.
    pub(crate) fn send_control(&self, frame: &[u8]) -> bool {
        let mut writer = self.lock_write();
        writer.count_socket_frame();
        write_frame(&writer.conn, frame).is_ok()
    }

    fn has_room(&self) -> bool {
        self.sent.load(SeqCst) < self.mail.parent_grants.load(SeqCst)
    }

    /// [`has_room`](Self::has_room) for the thread that holds the writing side: the
    /// page is read only when the grant last read from it is used up.
    fn has_room_locked(&self, writer: &mut WriteSide) -> bool {
        let sent = self.sent.load(SeqCst);
        if sent < writer.granted {
            return true;
        }
        writer.granted = self.mail.parent_grants.load(SeqCst);
        sent < writer.granted
    }

    /// Sends a sealed frame to the parent, with the descriptors it carries, counted
    /// against the room it granted; waits for room when `wait`. A frame not sent is
    /// handed back with the error (its descriptors are closed).
    pub(crate) fn send_frame(
        &self,
        frame: Vec<u8>,
        fds: &[OwnedFd],
        wait: bool,
    ) -> Result<(), (SendError, Vec<u8>)> {
        self.send_frame_keeping(frame, fds, wait).map(drop)
    }

    /// As [`send_frame`](Self::send_frame), handing the frame back once it is sent,
    /// for the next message to be encoded into.
    fn send_frame_keeping(
        &self,
        frame: Vec<u8>,
        fds: &[OwnedFd],
        wait: bool,
    ) -> Result<Vec<u8>, (SendError, Vec<u8>)> {
        loop {
            if self.ended.load(SeqCst) {
                return Err((SendError::Ended, frame));
            }
            {
                let mut writer = self.lock_write();
                if self.has_room_locked(&mut writer) {
                    if self.write_message(&mut writer, &frame, fds).is_err() {
                        return Err((SendError::Ended, frame));
                    }
                    self.sent.fetch_add(1, SeqCst);
                    return Ok(frame);
                }
            }
            if !wait {
                return Err((SendError::Full, frame));
            }
            // A parent taking a stream of messages grants room every few hundred
            // nanoseconds: watched for, it costs neither side a system call.
            if crate::spin::watch(crate::spin::BUDGET, || {
                self.has_room() || self.ended.load(SeqCst)
            }) {
                continue;
            }
            self.mail.child_waits.store(1, SeqCst);
            if self.has_room() {
                continue;
            }
            // Wait for a room notice; messages that arrive meanwhile are queued. A
            // thread that reads already will see the notice, and the page says the rest.
            match self.try_lock_read() {
                Some(mut rs) => {
                    if self
                        .read_one(&mut rs, Some(Instant::now() + Duration::from_secs(1)))
                        .is_err()
                    {
                        return Err((SendError::Ended, frame));
                    }
                }
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }

    /// Sends one frame within the grant: a message of the pair to the tells ring when
    /// it may go there (see the module's doc), anything else, and anything that carries
    /// descriptors, on the socket.
    fn write_message(
        &self,
        writer: &mut WriteSide,
        frame: &[u8],
        fds: &[OwnedFd],
    ) -> Result<(), ProcessError> {
        let pair = frame.get(4) == Some(&TO_PARENT.message);
        // Descriptors travel only on the socket.
        let ring_may = fds.is_empty() && writer.socket_caught_up(self.mail);
        if pair && ring_may {
            if let Some(ring) = writer.ring.as_mut() {
                if let Pushed::Committed { wake } = ring.push(&frame[4..]) {
                    if wake {
                        // The parent may be gone; the message is in its page anyway.
                        let _ =
                            write_frame(&writer.conn, &protocol::room_frame(kind::TO_PARENT_READY));
                    }
                    return Ok(());
                }
            }
        }
        writer.count_socket_frame();
        descriptors::write_frame_with(&writer.conn, frame, fds)?;
        Ok(())
    }

    /// Takes the oldest message of the node tagged `tag`, waiting until `deadline`;
    /// hands its sender and body to `take`. The messages of the node are filed in the
    /// node's mailbox by whoever reads: the event loop, once this process has children
    /// of its own (it reads the socket whenever no section does, and files what its
    /// children send too), or else the caller, here.
    pub(crate) fn receive_node(
        &self,
        tag: u64,
        deadline: Option<Instant>,
        take: &mut dyn FnMut(Pid, &[u8]),
    ) -> Result<(), RecvError> {
        loop {
            if let Some(entry) = node::mailbox::take(tag) {
                entry.deliver(take);
                return Ok(());
            }
            let ended = self.ended.load(SeqCst);
            if self.loop_key.get().is_some() || ended {
                if ended && !node::local::has_children() {
                    return Err(RecvError::Ended);
                }
                if !node::mailbox::wait(tag, deadline) {
                    return Err(RecvError::Timeout);
                }
                continue;
            }
            let read = {
                let mut rs = self.lock_read();
                if node::direct::has_inbound() && !rs.reader.has_buffered() {
                    // Direct links from siblings are read by this thread too.
                    let parent = rs.reader.get_ref().stream();
                    match node::direct::wait_with_parent(parent, deadline) {
                        node::direct::Waited::Parent => {
                            self.read_one(&mut rs, Some(Instant::now()))?
                        }
                        node::direct::Waited::Filed => true,
                        node::direct::Waited::Timeout => false,
                    }
                } else {
                    self.read_one(&mut rs, deadline)?
                }
            };
            if !read && deadline.is_some_and(|d| Instant::now() >= d) {
                // A last look before giving up.
                if let Some(entry) = node::mailbox::take(tag) {
                    entry.deliver(take);
                    return Ok(());
                }
                return Err(RecvError::Timeout);
            }
        }
    }
}

impl __Port for PairPort {
    fn frame_prefix(&self, tag: u64) -> Vec<u8> {
        // The message is encoded next, on this thread: its `Transfer`s are collected
        // until `send`.
        transfer::begin_collect();
        protocol::message_prefix_in(&TO_PARENT, tag, self.spare.take())
    }

    fn abandon(&mut self) {
        // The descriptors the failed encoding collected are closed.
        drop(transfer::end_collect());
    }

    fn send(
        &mut self,
        frame: Vec<u8>,
        type_name: &'static str,
        wait: bool,
    ) -> Result<(), SendError> {
        let fds = transfer::end_collect();
        let frame = protocol::seal(frame, type_name)?;
        let port = port().ok_or(SendError::Ended)?;
        let frame = port
            .send_frame_keeping(frame, &fds, wait)
            .map_err(|(e, _)| e)?;
        if frame.capacity() <= SPARE_MAX {
            self.spare.set(frame);
        }
        Ok(())
    }

    fn recv(
        &mut self,
        tag: u64,
        deadline: Option<Instant>,
        take: &mut dyn FnMut(&[u8]),
    ) -> Result<(), RecvError> {
        let port = port().ok_or(RecvError::Ended)?;
        let mut rs = port.lock_read();
        let mut looked = 0;
        loop {
            if let Some(i) = rs.queue.iter().skip(looked).position(|q| q.tag == tag) {
                let mut q = rs.queue.remove(looked + i).expect("found above");
                drop(rs);
                port.took_one(q.slot);
                let fds = q.frame.take_fds();
                transfer::with_received(fds, || take(&q.frame.payload()[TO_CHILD.body..]));
                return Ok(());
            }
            looked = rs.queue.len();
            if port.ended.load(SeqCst) {
                return Err(RecvError::Ended);
            }
            // A read may time out before the deadline (the socket's timeout is only
            // reset when it must change): only the deadline ends the wait.
            if !port.read_one(&mut rs, deadline)? && deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RecvError::Timeout);
            }
        }
    }
}
