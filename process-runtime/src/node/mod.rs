//! The node: every process of one program tree, addressed by [`Pid`].
//!
//! This is the BEAM-style process layer (Erlang's `erlang:self/0`, `!`, `receive`)
//! over OS processes. See the README's "The node" for the whole picture.

pub(crate) mod local;
pub(crate) mod mailbox;
pub(crate) mod route;
pub(crate) mod router;

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::parent::shared::Shared;
use crate::{RecvError, SendError};

pub use process_core::Pid;

/// The room a message of the node takes on its way, given back when it is dropped:
/// once taken by its receiver, or handed on by this process.
pub(crate) enum Credit {
    /// Nothing to give back (a message this process made).
    None,
    /// A place in the grant of this child, which sent it up.
    Child(Arc<Shared>),
    /// A slot of this child's own mailbox, where it came down from the parent.
    Slot(u32),
}

impl Drop for Credit {
    fn drop(&mut self) {
        match self {
            Credit::None => {}
            Credit::Child(shared) => crate::parent::mailbox::grant_forwarded(shared),
            Credit::Slot(slot) => {
                if let Some(port) = crate::child::port::port() {
                    port.took_one(*slot);
                }
            }
        }
    }
}

/// This process's [`Pid`]: `<0.0>` in the root (the program's own process, where
/// `main` runs), the pid its parent gave it in a child.
#[must_use]
pub fn self_pid() -> Pid {
    local::self_pid()
}

/// The processes of the node this process knows to be alive: itself and the
/// processes it started that have not ended, in the order they were started. In the
/// root, every process the root started.
#[must_use]
pub fn processes() -> Vec<Pid> {
    let mut all = vec![self_pid()];
    all.extend(local::child_pids());
    all
}

/// Whether `pid` is this process, or a process it started that has not ended yet.
/// A process whose end is published (its handle's `result()` has returned, or would at
/// once) is not alive.
#[must_use]
pub fn is_alive(pid: Pid) -> bool {
    pid == self_pid()
        || (pid.parent() == Some(self_pid()) && local::child(pid.__number()).is_some())
}

/// Sends `msg` to the process `to`, wherever it is in the tree: it reaches `to`'s
/// mailbox, where [`receive`] takes it. Waits while the mailbox of the next process on
/// the way is full (a child's mailbox holds `mailbox` unread messages, the pair's and
/// the node's together).
///
/// Messages between two processes arrive exactly once and in order. A message to a
/// process that is not this process's parent or child travels through their common
/// ancestors, which hand it on without waiting: `send` returns once the first of them
/// has it, and a message to a process that has ended by the time it gets there is
/// dropped.
///
/// # Errors
/// [`SendError::NoProc`] when this process knows that `to` has ended, or that no
/// process ever had it (a child of this process that has ended; any pid below a
/// process that is not alive, seen from the root); [`SendError::Encode`] when postcard
/// cannot encode `msg`.
pub fn send<M: Serialize + 'static>(to: Pid, msg: &M) -> Result<(), SendError> {
    let sent = route::send(to, msg, true);
    crate::shutdown::hold();
    sent
}

/// Like [`send`], but returns [`SendError::Full`] at once instead of waiting when the
/// next mailbox on the way is full.
///
/// # Errors
/// As [`send`], and [`SendError::Full`].
pub fn try_send<M: Serialize + 'static>(to: Pid, msg: &M) -> Result<(), SendError> {
    route::send(to, msg, false)
}

/// Takes the oldest message of type `M` in this process's mailbox, from any sender,
/// waiting up to `timeout`: a `Duration`, `Duration::ZERO` to only look at what has
/// arrived, or `None` to wait for ever. Messages of other types stay queued, in order
/// (selective receive, as in Erlang).
///
/// It sees what was sent with [`send`] and [`try_send`], from anywhere in the tree;
/// `h.tell`/`cx.tell` are the conversation of one parent-child pair, and only
/// `cx.listen`/`h.listen` take those (see the README's "The node").
///
/// # Errors
/// [`RecvError::Timeout`] when none came in time; [`RecvError::Ended`] in a child whose
/// parent has gone (nothing more can arrive); [`RecvError::Decode`] when a message
/// tagged for `M` does not decode as `M` (it is consumed).
pub fn receive<M: DeserializeOwned + 'static>(
    timeout: impl Into<Option<Duration>>,
) -> Result<M, RecvError> {
    receive_from(timeout).map(|(_, msg)| msg)
}

/// Like [`receive`], and tells who sent the message.
///
/// # Errors
/// As [`receive`].
pub fn receive_from<M: DeserializeOwned + 'static>(
    timeout: impl Into<Option<Duration>>,
) -> Result<(Pid, M), RecvError> {
    let deadline = process_core::__deadline(timeout.into());
    let tag = process_core::__tag_of::<M>();
    let mut decoded = None;
    let mut take = |from: Pid, body: &[u8]| {
        decoded = Some(process_core::__decode::<M>(body).map(|m| (from, m)));
    };
    let received = match crate::child::port::port() {
        Some(port) => port.receive_node(tag, deadline, &mut take),
        None => match mailbox::receive(tag, deadline) {
            Some(entry) => {
                take(entry.from, entry.body());
                Ok(())
            }
            None => Err(RecvError::Timeout),
        },
    };
    crate::shutdown::hold();
    received?;
    decoded.expect("a receive hands over a message when it succeeds")
}
