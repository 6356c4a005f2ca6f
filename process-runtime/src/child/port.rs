//! The child's end of the messages: what `cx.tell` and `cx.listen` go through.
//!
//! Nothing reads the socket in the background: the engine's thread reads it when a
//! section listens, or when it tells and the parent's mailbox is full. The child's
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

use std::collections::VecDeque;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use crate::beacon::{MailCounters, Taken};
use crate::sys;
use crate::wire::channel::{write_frame, Conn, Frame, FrameReader, ReadError};
use crate::wire::protocol::{self, kind, Kind, MAX_FRAME, TO_CHILD, TO_PARENT};
use crate::{RecvError, SendError};
use process_core::__Port;

/// The child's port to its parent.
pub(crate) struct ChildPort {
    reader: FrameReader<Conn>,
    writer: Conn,
    mail: &'static MailCounters,
    taken: Taken<'static>,
    /// Messages read from the socket and not taken yet, oldest first, with their tags
    /// and slots.
    queue: VecDeque<(u64, u32, Frame)>,
    /// Messages sent to the parent so far.
    sent: u64,
    /// The socket's read timeout as last set, to set it only when it changes.
    read_timeout: Option<Duration>,
    /// The parent closed its end.
    ended: bool,
}

impl ChildPort {
    pub(crate) fn new(
        reader: FrameReader<Conn>,
        writer: Conn,
        mail: &'static MailCounters,
        taken: Taken<'static>,
    ) -> Self {
        Self {
            reader,
            writer,
            mail,
            taken,
            queue: VecDeque::new(),
            sent: 0,
            read_timeout: None,
            ended: false,
        }
    }

    /// Reads one frame, waiting until `deadline` at most. `Ok(false)` when the time ran
    /// out first.
    fn read_one(&mut self, deadline: Option<Instant>) -> Result<bool, RecvError> {
        let timeout = match deadline {
            None => None,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // Only what has arrived: a zero read timeout would mean "for ever".
                    if !self.reader.has_buffered()
                        && !sys::poll_readable(self.writer.stream(), Duration::ZERO)
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
        let stale = match (self.read_timeout, timeout) {
            (Some(old), Some(new)) => {
                old > new + (new / 64).max(Duration::from_millis(1)) || old < new / 2
            }
            (old, new) => old != new,
        };
        if stale {
            self.writer
                .set_read_timeout(timeout)
                .map_err(|e| RecvError::Protocol(format!("setting the socket's timeout: {e}")))?;
            self.read_timeout = timeout;
        }
        let frame = match self.reader.read_frame(MAX_FRAME) {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(false),
            Err(ReadError::Closed { .. }) => {
                self.ended = true;
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
        };
        match protocol::kind_of(frame.payload(), &TO_CHILD) {
            Ok(Kind::Message(tag)) => {
                let slot = protocol::slot_of(frame.payload());
                if u64::from(slot) >= self.taken.slots() {
                    return Err(RecvError::Protocol(format!(
                        "the parent sent a message in slot {slot}, beyond the shared page's {} slots",
                        self.taken.slots()
                    )));
                }
                self.queue.push_back((tag, slot, frame));
            }
            Ok(Kind::Room) => {}
            Ok(Kind::Other) => {
                return Err(RecvError::Protocol(
                    "the parent sent a frame that is not a message".into(),
                ))
            }
            Err(e) => return Err(RecvError::Protocol(e.to_string())),
        }
        Ok(true)
    }

    /// Marks the message in `slot` as taken, counts it, and tells a parent that waits
    /// for room. The mark comes first: a parent that sees the count sees the mark.
    fn took_one(&mut self, slot: u32) {
        self.taken.mark(slot);
        self.mail.child_took.fetch_add(1, SeqCst);
        if self.mail.parent_waits.swap(0, SeqCst) != 0 {
            // A parent that is gone needs no notice.
            let _ = write_frame(&self.writer, &protocol::room_frame(kind::TO_PARENT_ROOM));
        }
    }

    fn has_room(&self) -> bool {
        self.sent < self.mail.parent_grants.load(SeqCst)
    }
}

impl __Port for ChildPort {
    fn frame_prefix(&self, tag: u64) -> Vec<u8> {
        protocol::message_prefix(&TO_PARENT, tag)
    }

    fn send(
        &mut self,
        frame: Vec<u8>,
        type_name: &'static str,
        wait: bool,
    ) -> Result<(), SendError> {
        let frame = protocol::seal(frame, type_name)?;
        while !self.has_room() {
            if self.ended {
                return Err(SendError::Ended);
            }
            if !wait {
                return Err(SendError::Full);
            }
            self.mail.child_waits.store(1, SeqCst);
            if self.has_room() {
                break;
            }
            // Wait for a room notice; messages that arrive meanwhile are queued.
            self.read_one(Some(Instant::now() + Duration::from_secs(1)))
                .map_err(|_| SendError::Ended)?;
        }
        if self.ended {
            return Err(SendError::Ended);
        }
        write_frame(&self.writer, &frame).map_err(|_| SendError::Ended)?;
        self.sent += 1;
        Ok(())
    }

    fn recv(
        &mut self,
        tag: u64,
        deadline: Option<Instant>,
        take: &mut dyn FnMut(&[u8]),
    ) -> Result<(), RecvError> {
        let mut looked = 0;
        loop {
            if let Some(i) = self
                .queue
                .iter()
                .skip(looked)
                .position(|(t, _, _)| *t == tag)
            {
                let (_, slot, frame) = self.queue.remove(looked + i).expect("found above");
                self.took_one(slot);
                take(&frame.payload()[TO_CHILD.body..]);
                return Ok(());
            }
            looked = self.queue.len();
            if self.ended {
                return Err(RecvError::Ended);
            }
            // A read may time out before the deadline (the socket's timeout is only
            // reset when it must change): only the deadline ends the wait.
            if !self.read_one(deadline)? && deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(RecvError::Timeout);
            }
        }
    }
}
