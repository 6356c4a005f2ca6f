//! The node: every process of one program tree, addressed by [`Pid`] (Erlang's
//! process layer over OS processes).
//!
//! - [`self_pid`], [`processes`], [`is_alive`]: who is who. Pids are paths from the
//!   root (`<0.0>`), never reused; see [`Pid`].
//! - [`send`], [`try_send`], [`receive`], [`receive_from`]: messages between any two
//!   processes of the tree, routed through their parents, bounded by the mailboxes on
//!   the way. `h.tell`/`cx.tell` remain the private conversation of one parent-child
//!   pair (taken with `listen`); what is sent here is taken with `receive`.
//! - [`register`], [`unregister`], [`whereis`], [`registered`]: names, node-wide,
//!   kept by the root and freed when their process ends.
//! - [`monitor`], [`demonitor`]: a [`Down`] when a process ends, however it ends.
//! - [`link`], [`unlink`], [`trap_exit`], [`exit`]: exit signals between processes
//!   that live and die together, or an [`Exit`] message for one that traps them.
//!
//! The README's "The node" has the whole picture.
//!
//! Inside: `local` (this process's pid and its children), `route` and `router` (where
//! a message goes, and handing on what passes through), `mailbox` (what is filed for
//! `receive`), `control` (the root's bookkeeping: alive processes, names, monitors,
//! links, exit signals), `contacts` (which of the other processes a child sends to
//! have ended), `direct` (socket pairs between siblings that talk a lot) and
//! `link_page` (the page the two ends of one share).

pub(crate) mod contacts;
pub(crate) mod control;
pub(crate) mod direct;
mod link_page;
pub(crate) mod local;
pub(crate) mod mailbox;
mod receive_future;
pub(crate) mod route;
pub(crate) mod router;
mod types;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::parent::shared::Shared;
use crate::{RecvError, SendError};

pub use process_core::{Pid, MAX_DEPTH};
pub use types::{Down, Exit, ExitReason, MonitorRef, RegistryError};

use control::{Ctl, Reply};

/// The room a message of the node takes on its way, given back when it is dropped:
/// once taken by its receiver, or handed on by this process.
pub(crate) enum Credit {
    /// Nothing to give back (a message this process made).
    None,
    /// A place in the grant of this child, which sent it up.
    Child(Arc<Shared>),
    /// A slot of this child's own mailbox, where it came down from the parent.
    Slot(u32),
    /// A place in the window of a direct link from a sibling, where it came on it.
    Direct(Arc<direct::Inbound>),
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
            Credit::Direct(link) => link.give_back(),
        }
    }
}

/// This process's [`Pid`]: `<0.0>` in the root (the program's own process, where
/// `main` runs), the pid its parent gave it in a child.
#[must_use]
pub fn self_pid() -> Pid {
    local::self_pid()
}

/// The processes of the node alive now, the root first: the whole tree, as the root
/// knows it (a child asks the root). A process is listed from the moment its parent
/// starts it until its end is known (its handle's `result()` returns, or would).
///
/// In a child whose parent has gone, only itself and its own children.
#[must_use]
pub fn processes() -> Vec<Pid> {
    match control::ask(Ctl::Processes) {
        Some(Reply::Pids(all)) => all,
        _ => {
            let mut all = vec![self_pid()];
            all.extend(local::child_pids());
            all
        }
    }
}

/// Whether `pid` is alive: started, and its end not known yet (as the root knows it;
/// a child asks the root). The root is always alive. When a [`Down`] of `pid` arrives,
/// `is_alive(pid)` is false already.
#[must_use]
pub fn is_alive(pid: Pid) -> bool {
    if pid == self_pid() {
        return true;
    }
    match control::ask(Ctl::IsAlive { pid }) {
        Some(Reply::Alive(alive)) => alive,
        _ => pid.parent() == Some(self_pid()) && local::child(pid.__number()).is_some(),
    }
}

/// Registers `pid` under `name`, node-wide: [`whereis`] finds it, from any process.
/// A process has at most one name; the name is freed when the process ends, whichever
/// way it ends (a crash or a kill from outside included), before its [`Down`]
/// notices go out. A name a process registered for itself is also freed when its
/// attempt fails and it restarts (the next attempt registers again, as the first
/// did); one another process gave it stays. The registry lives in the root; a child
/// asks it.
///
/// # Errors
/// [`RegistryError::Taken`] when a live process holds `name`;
/// [`RegistryError::AlreadyNamed`] when `pid` has a name; [`RegistryError::NoProc`]
/// when `pid` is not alive; [`RegistryError::EmptyName`];
/// [`RegistryError::Unreachable`] in a child whose parent has gone.
pub fn register(name: &str, pid: Pid) -> Result<(), RegistryError> {
    done(control::ask(Ctl::Register {
        name: name.to_owned(),
        pid,
    }))
}

/// Frees `name`.
///
/// # Errors
/// [`RegistryError::NotRegistered`] when no process has that name;
/// [`RegistryError::Unreachable`] in a child whose parent has gone.
pub fn unregister(name: &str) -> Result<(), RegistryError> {
    done(control::ask(Ctl::Unregister {
        name: name.to_owned(),
    }))
}

fn done(reply: Option<Reply>) -> Result<(), RegistryError> {
    match reply {
        Some(Reply::Done(result)) => result,
        _ => Err(RegistryError::Unreachable),
    }
}

/// The process registered as `name`; `None` when there is none (also once the process
/// that had it has ended, and in a child whose parent has gone).
#[must_use]
pub fn whereis(name: &str) -> Option<Pid> {
    match control::ask(Ctl::Whereis {
        name: name.to_owned(),
    }) {
        Some(Reply::Where(pid)) => pid,
        _ => None,
    }
}

/// Every registered name, sorted.
#[must_use]
pub fn registered() -> Vec<String> {
    match control::ask(Ctl::Registered) {
        Some(Reply::Names(names)) => names,
        _ => Vec::new(),
    }
}

/// Monitors `pid`: when it ends, a [`Down`] with the returned reference, the pid and
/// how it ended arrives in this process's mailbox (`node::receive::<Down>`). One
/// `Down` per call (monitors stack), for every way of ending: `Normal` when it
/// delivered its result, `Error` for a failure (a crash or a SIGKILL from outside is
/// [`ProcessError::Crashed`](crate::ProcessError::Crashed)), and `NoProc` at once when
/// `pid` is not alive. Monitoring the root never brings a `Down`: the node ends with
/// it. The monitors of a process that ends are dropped with it.
#[must_use = "the reference is how the Down is recognized, and how the monitor is taken back"]
pub fn monitor(pid: Pid) -> MonitorRef {
    let mref = control::new_monitor_ref();
    mailbox::monitor_made(mref);
    control::tell(Ctl::Monitor { mref, target: pid });
    mref
}

/// Takes a monitor back: no [`Down`] of it is received after this returns (one that
/// arrived already is removed from the mailbox, as Erlang's
/// `demonitor(Ref, [flush])`). Returns whether the monitor was active (its `Down` had
/// not arrived).
pub fn demonitor(mref: MonitorRef) -> bool {
    if mref.owner != self_pid() {
        return false;
    }
    let active = mailbox::demonitor(mref);
    control::tell(Ctl::Demonitor { mref });
    active
}

/// Links this process and `pid`, both ways: when either ends with a reason other than
/// `Normal`, the other gets an exit signal. A process that does not trap exits is
/// ended by it at once, with [`ProcessError::Linked`](crate::ProcessError::Linked) as
/// its outcome (a failure like any other: its lives apply); one that traps exits
/// ([`trap_exit`]) receives an [`Exit`] message instead, for a `Normal` end too.
/// Linking twice is linking once.
///
/// A process restarted after a failure (its lives) has not ended: nobody linked to it
/// gets a signal, and its monitors do not fire. The links it made itself belong to
/// the attempt that made them and are gone from the next one, like the rest of its
/// state (and so are the monitors it made, its `trap_exit` and a name it registered
/// for itself); the links another process made to it stay, and hold its next attempt.
/// The root is never ended by an exit signal; without `trap_exit` it ignores them.
///
/// # Errors
/// [`SendError::NoProc`] when `pid` is not alive; a process that traps exits gets an
/// `Exit { from: pid, reason: NoProc }` message then as well.
pub fn link(pid: Pid) -> Result<(), SendError> {
    match control::ask(Ctl::Link { pid }) {
        Some(Reply::Linked(true)) => Ok(()),
        _ => Err(SendError::NoProc),
    }
}

/// Removes the link between this process and `pid`, if there is one.
pub fn unlink(pid: Pid) {
    control::tell(Ctl::Unlink { pid });
}

/// Whether exit signals reach this process as [`Exit`] messages (`true`) or end it
/// (`false`, the default); returns the previous setting. Like links, it belongs to the
/// attempt that sets it.
pub fn trap_exit(on: bool) -> bool {
    static TRAPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let was = TRAPPING.swap(on, std::sync::atomic::Ordering::SeqCst);
    control::tell(Ctl::Trap { on });
    was
}

/// Sends an exit signal to `pid`, from this process: a process that traps exits
/// receives `Exit { from: self_pid(), reason }`; any other is ended at once with
/// [`ProcessError::Exited`](crate::ProcessError::Exited) (a failure: its lives apply),
/// unless `reason` is `Normal`, which it ignores. Its monitors see the `Error`.
/// Nothing happens to a process that is not alive, nor to the root unless it traps
/// exits.
pub fn exit(pid: Pid, reason: ExitReason) {
    control::tell(Ctl::Exit { to: pid, reason });
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
/// [`SendError::NoProc`] when `to` has ended, or no process ever had it, as this
/// process knows: at once for its own children, and in the root for any process. A
/// child asks the root the first time it sends to any other process (one round trip),
/// and the root tells it when that process ends; a message sent while that notice is
/// on its way is dropped where it can go no further. [`SendError::Encode`] when
/// postcard cannot encode `msg`.
pub fn send<M: Serialize + 'static>(to: Pid, msg: &M) -> Result<(), SendError> {
    let sent = route::send(to, msg, true);
    crate::shutdown::hold();
    sent
}

/// Like [`send`], but returns [`SendError::Full`] at once instead of waiting when the
/// next mailbox on the way is full. (A child's first send to a process other than its
/// parent and children still asks the root whether it is alive, as [`send`] does.)
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

/// Like [`receive`] without a time limit (`receive(None)`), without blocking a thread:
/// a future for any executor (tokio, smol, `futures::executor`) that resolves to the
/// oldest message of type `M` in this process's mailbox, in the root as in a child. It
/// is woken by the runtime's event loop when a message is filed, never by polling on a
/// timer. Dropping it cancels only the wait: a message is taken only by the poll that
/// returns it. The future is `Send` and `'static`. [`receive_async_timeout`] adds a
/// time limit.
///
/// ```no_run
/// # async fn run() -> Result<(), process_runtime::RecvError> {
/// use std::time::Duration;
/// use process_runtime::node;
///
/// let n: u64 = node::receive_async().await?;
/// let m: u64 = node::receive_async_timeout(Duration::from_secs(1)).await?;
/// # let _ = (n, m); Ok(()) }
/// ```
///
/// In a child with no children of its own, the first poll has the event loop read the
/// parent's socket from then on, as it does once the child starts children.
///
/// # Errors
/// As [`receive`].
pub fn receive_async<M: DeserializeOwned + 'static>(
) -> impl Future<Output = Result<M, RecvError>> + Send + 'static {
    receive_async_timeout(None)
}

/// [`receive_async`] with a time limit, as [`receive`] takes one: `timeout` is counted
/// from this call, and at its end an alarm of the runtime's event loop wakes the future.
///
/// # Errors
/// As [`receive`].
pub fn receive_async_timeout<M: DeserializeOwned + 'static>(
    timeout: impl Into<Option<Duration>>,
) -> impl Future<Output = Result<M, RecvError>> + Send + 'static {
    let received = receive_from_async_timeout::<M>(timeout);
    async move { received.await.map(|(_, msg)| msg) }
}

/// Like [`receive_async`], and tells who sent the message.
///
/// # Errors
/// As [`receive`].
pub fn receive_from_async<M: DeserializeOwned + 'static>(
) -> impl Future<Output = Result<(Pid, M), RecvError>> + Send + 'static {
    receive_from_async_timeout(None)
}

/// Like [`receive_async_timeout`], and tells who sent the message.
///
/// # Errors
/// As [`receive`].
pub fn receive_from_async_timeout<M: DeserializeOwned + 'static>(
    timeout: impl Into<Option<Duration>>,
) -> impl Future<Output = Result<(Pid, M), RecvError>> + Send + 'static {
    let deadline = process_core::__deadline(timeout.into());
    receive_future::Receive::<M>::new(process_core::__tag_of::<M>(), deadline)
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
                entry.deliver(&mut take);
                Ok(())
            }
            None => Err(RecvError::Timeout),
        },
    };
    crate::shutdown::hold();
    received?;
    decoded.expect("a receive hands over a message when it succeeds")
}
