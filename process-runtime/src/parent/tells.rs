//! The parent's side of the tells ring: the messages a child commits to its page
//! instead of writing them to the socket (see `child/port.rs` for why, and for the
//! rule that keeps the ring and the socket in one order).
//!
//! Whoever holds the reader ([`Reading`]) drains the ring: the event loop, or a caller
//! of `listen` that borrowed it. They drain it before they take a message off the
//! socket (what the ring holds is older), when the child says it is ready, before
//! they wait on the socket, and when the attempt ends, so that nothing the child
//! committed is lost, however it ended. A caller that waits without the reader (the
//! reader is lent to another, or it is a future) raises the ring's waiting flag
//! itself and, when records wait already, asks the loop to drain them.

use std::sync::atomic::Ordering::SeqCst;

use super::mailbox;
use super::reactor;
use super::reading::Reading;
use super::shared::{Inner, Shared};
use crate::beacon::Beacon;
use crate::pool::ring;
use crate::wire::channel::Frame;
use crate::wire::protocol::{self, Kind, TO_PARENT};
use crate::ProcessError;

/// Drains every record committed so far into the inbox, in order. The first message
/// tagged `want`, if any, is not filed but counted and returned, for the caller to
/// take. Wakes the inbox's waiters when it filed anything.
///
/// # Errors
/// A record that is not a message, a message beyond the grant, or a ring whose counts
/// no child following the protocol writes: the child broke the protocol.
pub(crate) fn drain(
    shared: &Shared,
    reading: &mut Reading,
    want: Option<u64>,
) -> Result<Option<Frame>, ProcessError> {
    let Some(ring) = reading.ring.as_mut() else {
        return Ok(None);
    };
    if !ring.has_records() {
        return Ok(None);
    }
    let mut taken = None;
    let mut filed = false;
    let mut inner = shared.lock();
    let drained = ring.drain_owned(|record| file(&mut inner, record, want, &mut taken, &mut filed));
    let wake = filed && mailbox::has_waiters(&inner);
    drop(inner);
    if wake {
        shared.notify();
    }
    drained.map_err(|e: Malformed| e.0)?;
    Ok(taken)
}

/// How a ring broke the protocol.
struct Malformed(ProcessError);

impl From<String> for Malformed {
    fn from(text: String) -> Self {
        Self(ProcessError::Protocol(text))
    }
}

/// Files one record of the ring as a message from the child, or keeps it in `taken`
/// when it is the first one tagged `want`.
fn file(
    inner: &mut Inner,
    record: Vec<u8>,
    want: Option<u64>,
    taken: &mut Option<Frame>,
    filed: &mut bool,
) -> Result<(), Malformed> {
    let tag = match protocol::kind_of(&record, &TO_PARENT) {
        Ok(Kind::Message(tag)) => tag,
        Ok(_) => {
            return Err("the tells ring holds a frame that is not a message"
                .to_owned()
                .into())
        }
        Err(e) => return Err(Malformed(e)),
    };
    let frame = Frame::owned(record);
    if taken.is_none() && want == Some(tag) {
        mailbox::count_received(inner).map_err(Malformed)?;
        *taken = Some(frame);
        return Ok(());
    }
    mailbox::on_message(inner, tag, frame).map_err(Malformed)?;
    *filed = true;
    Ok(())
}

/// Whether the child sends on the socket for now: it sent more frames there than
/// the parent has read, and until the parent has read them all, it commits nothing to
/// the ring. Then the socket is the place to wait.
pub(crate) fn child_on_socket(reading: &Reading) -> bool {
    reading.ring.as_ref().is_some_and(|ring| {
        ring.sent_on_socket() > ring.beacon().mail().socket_frames_read.load(SeqCst)
    })
}

/// Counts a frame with content (a message, of the pair or of the node, or the node's
/// control) read off the socket of the attempt whose page is `beacon`, once the ring
/// was drained before it and it was handled: the child may commit to the ring again
/// once it sees the count match its own.
pub(crate) fn read_from_socket(beacon: Option<&Beacon>) {
    if let Some(beacon) = beacon {
        beacon.mail().socket_frames_read.fetch_add(1, SeqCst);
    }
}

/// Wakes a caller that borrowed the reader and waits on the page (see `reading`):
/// the loop found the socket ready while the reader was lent, or the attempt ended.
pub(crate) fn wake_borrower(shared: &Shared) {
    if let Some(beacon) = &shared.lock().beacon {
        ring::wake_waiter(beacon.tells());
    }
}

/// For a caller about to wait for a message without the reader: raises the ring's
/// waiting flag, so that the child's next commit is announced on the socket, which
/// the loop watches; and when records wait already, asks the loop to drain them.
pub(crate) fn before_waiting(shared: &Shared, inner: &Inner) {
    let Some(beacon) = &inner.beacon else { return };
    if ring::raise_waiting(beacon.tells()) {
        reactor::kick(shared.loop_key.load(SeqCst));
    }
}
