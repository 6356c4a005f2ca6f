//! Who reads a child's socket: the event loop, or a caller of `listen` who borrows it.
//!
//! A message that reaches the event loop's thread and is handed to a caller waiting in
//! `listen` costs a thread wake-up more than a plain socket read: in a round trip, a
//! third of the time. So a caller that finds nothing to take, and sees the socket idle,
//! borrows the reader: it waits on the socket itself and takes its message from what it
//! reads, as a `read` on a raw socket would. Messages of other types, and room notices,
//! it files as the loop would; anything else (the report, end-of-file, a broken frame)
//! is the supervisor's, and is left for the loop in [`Reading::pending`].
//!
//! The reader sits behind one mutex. The loop only ever tries it: when a caller holds
//! it, the loop leaves the socket alone and does not re-arm its interest, and the
//! caller re-arms it when it gives the reader back. Lock order: this mutex before the
//! [`Shared`](super::shared::Shared) state's.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::TryLockError;
use std::time::{Duration, Instant};

use super::attempt::Event;
use super::mailbox;
use super::reactor;
use super::shared::Shared;
use super::tells;
use crate::pool::ring::RingReader;
use crate::sys;
use crate::wire::channel::{Conn, Frame, FrameReader, ParentRead, ReadError};
use crate::wire::protocol::{self, Kind, MAX_FRAME};
use crate::ProcessError;

/// The current attempt's reader, and what a borrower read for the loop.
#[derive(Default)]
pub(crate) struct Reading {
    /// The reader of the live attempt's socket; `None` between attempts.
    pub(crate) reader: Option<FrameReader<ParentRead>>,
    /// The socket's read timeout as a borrower last set it.
    pub(crate) read_timeout: Option<Duration>,
    /// Events a borrower read that the supervisor must handle, oldest first.
    pub(crate) pending: VecDeque<Event>,
    /// Set by the loop when the attempt may be read by a borrower: it has completed
    /// its handshake and its start frame is out.
    pub(crate) lendable: bool,
    /// Set when a borrower handed events over, or the attempt ended while the reader
    /// was lent: the loop must look at this process again.
    pub(crate) kick: bool,
    /// The loop's key for this process, to re-arm its interest after a borrow.
    pub(crate) key: usize,
    /// The live attempt's tells ring (see [`tells`](super::tells)).
    pub(crate) ring: Option<RingReader>,
}

impl std::fmt::Debug for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reading")
            .field("attached", &self.reader.is_some())
            .field("pending", &self.pending.len())
            .field("lendable", &self.lendable)
            .finish_non_exhaustive()
    }
}

/// How a borrow of the reader ended.
pub(crate) enum Borrowed {
    /// The wanted message, read from the socket and counted as received.
    Took(Frame),
    /// The deadline passed first.
    Timeout,
    /// Wait for the event loop instead: the reader was not free or not lendable, or
    /// it was given back with something the supervisor must handle first.
    Wait,
}

/// Reads the live attempt's socket on the caller's thread until a message tagged `tag`
/// arrives, `deadline` passes, or something else than a message needs the event loop.
pub(crate) fn borrow(shared: &Shared, tag: u64, deadline: Option<Instant>) -> Borrowed {
    let mut reading = match shared.reading.try_lock() {
        Ok(reading) => reading,
        Err(TryLockError::WouldBlock) => return Borrowed::Wait,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
    };
    let Some(conn) = reading.reader.as_ref().map(|r| r.get_ref().conn.clone()) else {
        return Borrowed::Wait;
    };
    if !reading.lendable || shared.retire_reader.load(SeqCst) {
        return Borrowed::Wait;
    }
    // Counted until the re-arm below is done with the socket: the supervisor publishes
    // an end only once no caller holds a descriptor of the process.
    shared.borrowers.fetch_add(1, SeqCst);
    let filed = {
        let mut inner = shared.lock();
        inner.inbox.lent = true;
        // The loop may have filed messages between the caller's look at the inbox and
        // this lock: an older one of the wanted type must be taken before anything
        // read from here on, or messages would be taken out of order. With the reader
        // held, nothing more can be filed.
        mailbox::take_filed(&mut inner, tag)
    };
    // Then frames already read, without a system call and without touching the loop's
    // interest: a stream of messages arrives many to a read.
    let mut outcome = match filed {
        Some(frame) => Some(Borrowed::Took(frame)),
        // Then the ring, older than anything on the socket.
        None => match tells::drain(shared, &mut reading, Some(tag)) {
            Ok(Some(frame)) => Some(Borrowed::Took(frame)),
            Ok(None) => read_until(shared, &mut reading, &conn, tag, deadline, Read::Buffered),
            Err(e) => Some(refuse(&mut reading, e)),
        },
    };
    let on_page = sys::SHARED_WAIT && reading.ring.is_some();
    let disarmed = outcome.is_none() && !on_page;
    if outcome.is_none() {
        outcome = if on_page {
            // Nothing there: wait on the shared page, where the reply comes, with the
            // loop still watching the socket for anything else.
            wait_on_page(shared, &mut reading, &conn, tag, deadline)
        } else {
            // Nothing there: wait on the socket here, with the loop's interest off, so
            // that the reply wakes this thread only.
            reactor::disarm(sys::stream_fd(conn.stream()), reading.key);
            read_until(shared, &mut reading, &conn, tag, deadline, Read::Wait)
        };
    }
    let outcome = outcome.unwrap_or(Borrowed::Wait);
    shared.lock().inbox.lent = false;
    let retired = shared.retire_reader.load(SeqCst);
    if retired {
        retire(shared, &mut reading);
    }
    let handed_over = !reading.pending.is_empty();
    let key = reading.key;
    drop(reading);
    if retired || handed_over {
        reactor::kick(key);
    } else if disarmed || shared.rearm_owed.swap(false, SeqCst) {
        // Also after a take from the buffer alone, when the loop used its one-shot
        // event meanwhile, found the reader lent, and left the re-arming to this
        // borrower (it says so in `rearm_owed`, before it tries the reader: see the
        // supervisor). Without it, the socket's next readiness (the child's report,
        // its end) would never reach the loop.
        reactor::rearm(sys::stream_fd(conn.stream()), key);
    }
    drop(conn);
    shared.borrowers.fetch_sub(1, SeqCst);
    outcome
}

/// Lets go of an ended attempt's reader, after filing what its child committed to the
/// tells ring: nothing it told is lost, however it ended.
pub(crate) fn retire(shared: &Shared, reading: &mut Reading) {
    // A ring that breaks the protocol now only loses what is after the break: the
    // attempt has ended already.
    let _ = tells::drain(shared, reading, None);
    *reading = Reading::default();
}

/// Waits for the wanted message on the shared page: the child commits its messages to
/// the tells ring and, seeing this thread wait, wakes it through the page, which costs
/// both sides less than a frame on the socket and leaves the event loop's interest in
/// the socket alone (two system calls fewer per wait). Whatever else the child sends
/// comes on the socket: the loop, finding it ready while the reader is lent, says so in
/// `rearm_owed` and wakes this thread, which reads it, then lets the loop watch again.
fn wait_on_page(
    shared: &Shared,
    reading: &mut Reading,
    conn: &Conn,
    tag: u64,
    deadline: Option<Instant>,
) -> Option<Borrowed> {
    loop {
        if shared.retire_reader.load(SeqCst) {
            return Some(Borrowed::Wait);
        }
        // Read before the last looks: a wake-up after them ends the wait at once.
        let wakes = reading.ring.as_ref()?.wakes();
        match tells::drain(shared, reading, Some(tag)) {
            Ok(Some(frame)) => return Some(Borrowed::Took(frame)),
            Ok(None) => {}
            Err(e) => return Some(refuse(reading, e)),
        }
        if let Some(done) = read_until(shared, reading, conn, tag, deadline, Read::Buffered) {
            return Some(done);
        }
        if shared.rearm_owed.swap(false, SeqCst) {
            // The socket has something: read what has arrived (the reader does not
            // wait, its `wait` is off), and once it has nothing more, arm the loop's
            // interest again so that the next frame wakes this thread through it.
            let reader = reading.reader.as_mut()?;
            match reader.read_frame(MAX_FRAME) {
                Ok(Some(frame)) => {
                    shared.rearm_owed.store(true, SeqCst);
                    match file(shared, reading, frame, tag) {
                        Some(done) => return Some(done),
                        None => continue,
                    }
                }
                Ok(None) => reactor::rearm(sys::stream_fd(conn.stream()), reading.key),
                Err(e) => return Some(hand_over_error(reading, e)),
            }
            continue;
        }
        if tells::child_on_socket(reading) {
            // The ring was full, or a message too large for it: the child writes to the
            // socket until this side has read what it sent there, and commits nothing
            // to the ring meanwhile. Wait on the socket itself for that long, with the
            // loop's interest off, as where there is no waiting on the page.
            let fd = sys::stream_fd(conn.stream());
            reactor::disarm(fd, reading.key);
            let done = read_until(shared, reading, conn, tag, deadline, Read::WhileOnSocket);
            reactor::rearm(fd, reading.key);
            match done {
                Some(done) => return Some(done),
                None => continue,
            }
        }
        let timeout = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if left >= Duration::from_micros(1) => Some(left),
                _ => return Some(Borrowed::Timeout),
            },
        };
        reading.ring.as_ref()?.wait_committed(wakes, timeout);
    }
}

/// How long [`read_until`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Only the frames already in the reader's buffer.
    Buffered,
    /// Waiting on the socket, until the wanted message or the deadline.
    Wait,
    /// As `Wait`, but only while the child sends on the socket (see
    /// [`tells::child_on_socket`]): once it no longer does, the next message comes
    /// through the ring.
    WhileOnSocket,
}

/// Reads frames until the wanted message, the deadline, or something for the loop;
/// `None` once what `how` reads is filed (see [`Read`]).
fn read_until(
    shared: &Shared,
    reading: &mut Reading,
    conn: &Conn,
    tag: u64,
    deadline: Option<Instant>,
    how: Read,
) -> Option<Borrowed> {
    loop {
        if shared.retire_reader.load(SeqCst) {
            return Some(Borrowed::Wait);
        }
        if how == Read::WhileOnSocket && !tells::child_on_socket(reading) {
            return None;
        }
        if how == Read::Buffered {
            let Some(reader) = reading.reader.as_mut() else {
                return Some(Borrowed::Wait);
            };
            match reader.buffered_frame(MAX_FRAME) {
                Ok(Some(frame)) => match file(shared, reading, frame, tag) {
                    Some(done) => return Some(done),
                    None => continue,
                },
                Ok(None) => return None,
                Err(e) => return Some(hand_over_error(reading, e)),
            }
        }
        let timeout = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if left >= Duration::from_micros(1) => Some(left),
                _ => return Some(Borrowed::Timeout),
            },
        };
        // As in the child: the timeout is set only when it must change, and a wait
        // may end early, but never much later than the deadline.
        let stale = match (reading.read_timeout, timeout) {
            (Some(old), Some(new)) => {
                old > new + (new / 64).max(Duration::from_millis(1)) || old < new / 2
            }
            (old, new) => old != new,
        };
        if stale {
            if conn.set_read_timeout(timeout).is_err() {
                return Some(Borrowed::Wait);
            }
            reading.read_timeout = timeout;
        }
        // The child announces its next commit to the ring on the socket; one that came
        // meanwhile is drained instead of waited for.
        if reading.ring.as_ref().is_some_and(|ring| !ring.wait_ready()) {
            match tells::drain(shared, reading, Some(tag)) {
                Ok(Some(frame)) => return Some(Borrowed::Took(frame)),
                Ok(None) => continue,
                Err(e) => return Some(refuse(reading, e)),
            }
        }
        let Some(reader) = reading.reader.as_mut() else {
            return Some(Borrowed::Wait);
        };
        // A blocking read: one system call per message, as on a plain socket. The
        // event loop shuts the socket down to wake it if the attempt ends meanwhile.
        reader.get_mut().wait = true;
        let read = reader.read_frame(MAX_FRAME);
        reader.get_mut().wait = false;
        match read {
            Ok(Some(frame)) => {
                if let Some(done) = file(shared, reading, frame, tag) {
                    return Some(done);
                }
            }
            Ok(None) => {}
            Err(e) => return Some(hand_over_error(reading, e)),
        }
    }
}

/// Files a frame the borrower read: the wanted message ends the borrow; other
/// messages and room notices are filed as the loop would; anything else (the report,
/// a malformed frame, a message beyond the grant) is left for the loop.
fn file(shared: &Shared, reading: &mut Reading, frame: Frame, tag: u64) -> Option<Borrowed> {
    let what = protocol::kind_of(frame.payload(), &protocol::TO_PARENT);
    // A message on the socket is newer than what the ring holds: the ring first.
    let mut from_ring = None;
    if matches!(what, Ok(Kind::Message(_) | Kind::Ready)) {
        match tells::drain(shared, reading, Some(tag)) {
            Ok(taken) => from_ring = taken,
            Err(e) => return Some(refuse(reading, e)),
        }
    }
    let mut inner = shared.lock();
    match what {
        Ok(Kind::Message(t)) if mailbox::within_grant(&inner) => {
            tells::read_from_socket(inner.beacon.as_deref());
            if t == tag && from_ring.is_none() {
                mailbox::count_received(&mut inner).expect("within the grant");
                return Some(Borrowed::Took(frame));
            }
            mailbox::on_message(&mut inner, t, frame).expect("within the grant");
        }
        Ok(Kind::Ready) => {}
        Ok(Kind::Room) => mailbox::on_room(&mut inner),
        _ => {
            drop(inner);
            reading.pending.push_back(Event::Frame(frame));
            return Some(from_ring.map_or(Borrowed::Wait, Borrowed::Took));
        }
    }
    let wake = mailbox::has_waiters(&inner);
    drop(inner);
    if wake {
        shared.notify();
    }
    from_ring.map(Borrowed::Took)
}

/// The child broke the protocol in its tells ring: the loop's to handle.
fn refuse(reading: &mut Reading, error: ProcessError) -> Borrowed {
    reading.pending.push_back(Event::Refused(error));
    Borrowed::Wait
}

/// An end-of-file or a broken read: the loop's to handle.
fn hand_over_error(reading: &mut Reading, error: ReadError) -> Borrowed {
    reading.pending.push_back(match error {
        ReadError::Closed { partial: false } => Event::Closed,
        e => Event::Broken(e),
    });
    Borrowed::Wait
}
