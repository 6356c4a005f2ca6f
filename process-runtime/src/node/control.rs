//! The node's own bookkeeping, kept in the root: which processes of the tree are
//! alive, the registry of names, the monitors, the links and who traps exits.
//!
//! The root learns of every process: each process tells it of each child it starts
//! (`Born`) and of each child that ends (`Ended`, with how), in control frames that go
//! up the tree and never wait behind messages (see `wire/protocol.rs`). A process that
//! dies with everything below it (killed from outside, say) cannot tell of its own
//! children: the root sweeps them with it. So whatever way a process ends, its name
//! is freed and its monitors fire, once, right when its end is known: before its
//! `Down` notices go out, nothing of it is left.
//!
//! Children ask the root (a registration, a lookup, a monitor) with a control frame,
//! and the root answers with a notice: a message of the node in no slot of the
//! child's mailbox, which a child takes like any message of the node.
//!
//! An exit signal for a process that does not trap exits is carried out by that
//! process's parent, which kills its process group (the root tells it so with a
//! control notice, `Signal`), so the process ends at once whatever it is doing, and
//! fails with `ProcessError::Linked` or `Exited` (see `Shared::exit_signal`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::mailbox::{self, Entry};
use super::router::{self, Hop, Job};
use super::types::{Down, Exit, ExitReason, MonitorRef, RegistryError};
use super::{local, Credit};
use crate::wire::channel::Frame;
use crate::wire::protocol::{self, Route};
use crate::{Pid, ProcessError};

/// A request to the root.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Ctl {
    /// The sender started this child.
    Born {
        pid: Pid,
    },
    /// This child of the sender ended; `None`: only the processes below it did (an
    /// attempt of it ended, and it is restarted).
    Ended {
        pid: Pid,
        reason: Option<ExitReason>,
    },
    Register {
        name: String,
        pid: Pid,
    },
    Unregister {
        name: String,
    },
    Whereis {
        name: String,
    },
    Registered,
    Processes,
    IsAlive {
        pid: Pid,
    },
    Monitor {
        mref: MonitorRef,
        target: Pid,
    },
    Demonitor {
        mref: MonitorRef,
    },
    /// Link the sender and `pid`.
    Link {
        pid: Pid,
    },
    Unlink {
        pid: Pid,
    },
    /// The sender traps exits, or stops.
    Trap {
        on: bool,
    },
    /// An exit signal from the sender to `to`.
    Exit {
        to: Pid,
        reason: ExitReason,
    },
    /// From the root to a parent: end the child `pid` with `error` (an exit signal it
    /// does not trap).
    Signal {
        pid: Pid,
        error: ProcessError,
    },
    /// Whether `pid` is alive; the sender is told when it ends (`Gone`). See
    /// `contacts.rs`.
    Watch {
        pid: Pid,
    },
    /// From the root to a watcher: `pid` has ended.
    Gone {
        pid: Pid,
    },
}

/// The root's answer to a request that has one.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Done(Result<(), RegistryError>),
    Where(Option<Pid>),
    Names(Vec<String>),
    Pids(Vec<Pid>),
    Alive(bool),
    /// The process linked to was alive.
    Linked(bool),
}

/// The tag of control frames.
pub(crate) fn ctl_tag() -> u64 {
    process_core::__tag_of::<Ctl>()
}

/// The tag of the root's replies.
pub(crate) fn reply_tag() -> u64 {
    process_core::__tag_of::<Reply>()
}

/// The tag of `Down` notices.
pub(crate) fn down_tag() -> u64 {
    process_core::__tag_of::<Down>()
}

/// What the root keeps.
#[derive(Default)]
struct Root {
    /// Every process of the tree alive, but the root.
    alive: BTreeSet<Pid>,
    names: BTreeMap<String, Pid>,
    /// Each named process's name, and whether it registered itself (a name it took
    /// belongs to its attempt; one another process gave it stays across restarts).
    name_of: BTreeMap<Pid, (String, bool)>,
    /// Monitors and the process each watches.
    monitors: BTreeMap<MonitorRef, Pid>,
    /// Links, each pair once, the smaller pid first, with which side made it.
    links: BTreeMap<(Pid, Pid), Made>,
    /// The processes that trap exits.
    trapping: BTreeSet<Pid>,
    /// The children told of each process's end (their contacts: `contacts.rs`).
    watchers: BTreeMap<Pid, BTreeSet<Pid>>,
}

/// A link's key.
fn link_key(a: Pid, b: Pid) -> (Pid, Pid) {
    (a.min(b), a.max(b))
}

/// Which side of a link made it (either, or both). What a process set up itself
/// belongs to its attempt and goes when the attempt ends, even when the process
/// restarts; what another process set up on it stays while the process lives (an
/// attempt that ends and is restarted is not the end of the process: no `Down`, no
/// exit signal).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct Made {
    /// By the first of the pair (the link key's smaller pid).
    first: bool,
    /// By the other.
    second: bool,
}

impl Made {
    /// Made by `by`, for the pair keyed `key`.
    fn by(key: (Pid, Pid), by: Pid) -> Self {
        Made {
            first: by == key.0,
            second: by != key.0,
        }
    }

    /// Merges what `other` made.
    fn with(self, other: Made) -> Self {
        Made {
            first: self.first || other.first,
            second: self.second || other.second,
        }
    }

    /// Takes back what `pid`, which restarts, set up; whether anything is left.
    fn without(&mut self, key: (Pid, Pid), pid: Pid) -> bool {
        if key.0 == pid {
            self.first = false;
        }
        if key.1 == pid {
            self.second = false;
        }
        self.first || self.second
    }
}

static ROOT: Mutex<Option<Root>> = Mutex::new(None);

fn root() -> MutexGuard<'static, Option<Root>> {
    ROOT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether `pid` is `of` or below it.
fn at_or_below(pid: Pid, of: Pid) -> bool {
    pid == of || of.__next_hop(pid).is_some()
}

/// The `Down` notices and exit signals an end made due, to send once the end is
/// published.
#[must_use = "the notices must be sent"]
pub(crate) struct Downs {
    downs: Vec<(MonitorRef, Pid, ExitReason)>,
    /// Exit signals: to, from, reason.
    signals: Vec<(Pid, Pid, ExitReason)>,
}

impl Downs {
    fn none() -> Self {
        Downs {
            downs: Vec::new(),
            signals: Vec::new(),
        }
    }

    /// Sends them.
    pub(crate) fn send(self) {
        for (mref, target, reason) in self.downs {
            send_down(mref, target, reason);
        }
        for (to, from, reason) in self.signals {
            signal(to, from, reason, true);
        }
    }
}

/// Carries out `ctl`, asked by `from`, in the root; returns the answer.
fn handle(from: Pid, ctl: Ctl) -> Option<Reply> {
    match ctl {
        Ctl::Ended { pid, reason } => {
            forget(pid, reason).send();
            None
        }
        Ctl::Exit { to, reason } => {
            signal(to, from, reason, false);
            None
        }
        Ctl::Link { pid } => {
            let (alive, traps) = {
                let mut guard = root();
                let root = guard.get_or_insert_with(Root::default);
                let alive = pid.is_root() || root.alive.contains(&pid);
                if alive && pid != from {
                    let key = link_key(from, pid);
                    let made = root.links.get(&key).copied().unwrap_or_default();
                    root.links.insert(key, made.with(Made::by(key, from)));
                }
                (alive, root.trapping.contains(&from))
            };
            if !alive && traps {
                // Linking to a process that has ended: the signal comes at once (to a
                // process that traps exits; `link` fails for any other).
                signal(from, pid, ExitReason::NoProc, true);
            }
            Some(Reply::Linked(alive))
        }
        ctl => answer(from, ctl),
    }
}

/// An exit signal from `from` to `to`: an [`Exit`] message to a process that traps
/// exits; otherwise, unless `reason` is `Normal`, the end of `to` (its parent kills
/// it, and its outcome is `Linked` or `Exited`). The root is never ended by a signal:
/// without `trap_exit` it ignores them.
fn signal(to: Pid, from: Pid, reason: ExitReason, linked: bool) {
    let (alive, traps) = {
        let mut guard = root();
        let root = guard.get_or_insert_with(Root::default);
        (
            to.is_root() || root.alive.contains(&to),
            root.trapping.contains(&to),
        )
    };
    if !alive {
        return;
    }
    if traps {
        let exit = Exit { from, reason };
        match postcard::to_allocvec(&exit) {
            Ok(body) => notify(to, from, exit_tag(), body),
            Err(e) => tracing::error!("cannot encode an exit signal: {e}"),
        }
        return;
    }
    if reason == ExitReason::Normal || to.is_root() {
        return;
    }
    let error = if linked {
        ProcessError::Linked {
            from,
            reason: Box::new(reason),
        }
    } else {
        ProcessError::Exited {
            from,
            reason: Box::new(reason),
        }
    };
    end_with(to, error);
}

/// Ends `pid` with `error`: through its parent, which kills it.
fn end_with(pid: Pid, error: ProcessError) {
    let Some(parent) = pid.parent() else { return };
    if parent == local::self_pid() {
        if let Some(shared) = local::child(pid.__number()) {
            shared.exit_signal(error);
        }
        return;
    }
    match postcard::to_allocvec(&Ctl::Signal { pid, error }) {
        Ok(body) => notify(parent, Pid::ROOT, ctl_tag(), body),
        Err(e) => tracing::error!("cannot encode an exit signal: {e}"),
    }
}

/// A control frame of the root to this child (read from the parent's socket).
pub(crate) fn from_root(body: &[u8]) {
    match postcard::from_bytes::<Ctl>(body) {
        Ok(Ctl::Signal { pid, error }) => end_with(pid, error),
        Ok(Ctl::Gone { pid }) => super::contacts::ended(pid),
        Ok(other) => tracing::warn!("an unexpected request from the root: {other:?}"),
        Err(e) => tracing::warn!("a malformed request from the root: {e}"),
    }
}

/// The tag of `Exit` messages.
pub(crate) fn exit_tag() -> u64 {
    process_core::__tag_of::<Exit>()
}

/// Forgets `pid` and what is below it: its name is freed, the monitors it made are
/// dropped, and those of it are taken out, their `Down` notices returned.
///
/// When `reason` is `None`, an attempt of `pid` ended and another starts: what is
/// below it is forgotten, and of `pid` itself only what its attempt set up (the
/// monitors it made, the links it made, its trapping, the name it took). The
/// monitors of it, the links others made to it and a name another gave it stay: the
/// process has not ended.
fn forget(pid: Pid, reason: Option<ExitReason>) -> Downs {
    let mut guard = root();
    let root = guard.get_or_insert_with(Root::default);
    root.trapping.remove(&pid);
    let gone: Vec<Pid> = root
        .alive
        .iter()
        .copied()
        .filter(|&p| at_or_below(p, pid) && (reason.is_some() || p != pid))
        .collect();
    for p in &gone {
        root.alive.remove(p);
        if let Some((name, _)) = root.name_of.remove(p) {
            root.names.remove(&name);
        }
    }
    if reason.is_none() {
        // A restart: the name the process took itself goes with its attempt.
        if let Some((name, itself)) = root.name_of.get(&pid) {
            if *itself {
                root.names.remove(name);
                root.name_of.remove(&pid);
            }
        }
    }
    let why = |p: Pid| match &reason {
        Some(reason) if p == pid => reason.clone(),
        _ => ExitReason::Error(ProcessError::Killed),
    };
    let mut downs = Downs::none();
    root.monitors.retain(|mref, target| {
        if gone.contains(target) {
            downs.downs.push((*mref, *target, why(*target)));
            false
        } else {
            !gone.contains(&mref.owner) && mref.owner != pid
        }
    });
    root.links.retain(|&(a, b), made| {
        let (a_gone, b_gone) = (gone.contains(&a), gone.contains(&b));
        if a_gone != b_gone {
            // One end is gone, the other gets its signal (not a process that restarts:
            // what its attempt had is gone anyway).
            let (dead, other) = if a_gone { (a, b) } else { (b, a) };
            if other != pid {
                downs.signals.push((other, dead, why(dead)));
            }
        }
        if a_gone || b_gone {
            return false;
        }
        // A restart: the links the process made itself go with its attempt; those
        // another process made to it stay, and its next attempt is linked.
        !(a == pid || b == pid) || made.without((a, b), pid)
    });
    for p in &gone {
        root.trapping.remove(p);
        for watcher in root.watchers.remove(p).into_iter().flatten() {
            if !gone.contains(&watcher) {
                // Sent while the root's lock is held: whatever the root tells the
                // watcher afterwards (an `is_alive` answer, a `Down`) comes after it, on
                // the same way, so a process that has heard of the end in any way finds
                // its sends refused.
                match postcard::to_allocvec(&Ctl::Gone { pid: *p }) {
                    Ok(body) => notify(watcher, Pid::ROOT, ctl_tag(), body),
                    Err(e) => tracing::error!("cannot encode a Gone notice: {e}"),
                }
            }
        }
    }
    if !gone.is_empty() {
        root.watchers.retain(|_, watchers| {
            watchers.retain(|w| !gone.contains(w));
            !watchers.is_empty()
        });
    }
    downs
}

/// Answers `ctl` in the root.
fn answer(from: Pid, ctl: Ctl) -> Option<Reply> {
    let mut guard = root();
    let root = guard.get_or_insert_with(Root::default);
    let alive = |root: &Root, pid: Pid| pid.is_root() || root.alive.contains(&pid);
    match ctl {
        Ctl::Born { pid } => {
            root.alive.insert(pid);
            None
        }
        Ctl::Ended { .. } | Ctl::Exit { .. } | Ctl::Link { .. } => {
            unreachable!("handled by `handle`")
        }
        Ctl::Unlink { pid } => {
            root.links.remove(&link_key(from, pid));
            None
        }
        Ctl::Trap { on } => {
            if on {
                root.trapping.insert(from);
            } else {
                root.trapping.remove(&from);
            }
            None
        }
        Ctl::Signal { pid, error } => {
            drop(guard);
            end_with(pid, error);
            None
        }
        Ctl::Register { name, pid } => Some(Reply::Done(if name.is_empty() {
            Err(RegistryError::EmptyName)
        } else if !alive(root, pid) {
            Err(RegistryError::NoProc(pid))
        } else if let Some(&holder) = root.names.get(&name) {
            Err(RegistryError::Taken { name, holder })
        } else if let Some((has, _)) = root.name_of.get(&pid) {
            Err(RegistryError::AlreadyNamed {
                pid,
                name: has.clone(),
            })
        } else {
            root.names.insert(name.clone(), pid);
            root.name_of.insert(pid, (name, from == pid));
            Ok(())
        })),
        Ctl::Unregister { name } => Some(Reply::Done(match root.names.remove(&name) {
            Some(pid) => {
                root.name_of.remove(&pid);
                Ok(())
            }
            None => Err(RegistryError::NotRegistered(name)),
        })),
        Ctl::Whereis { name } => Some(Reply::Where(root.names.get(&name).copied())),
        Ctl::Registered => Some(Reply::Names(root.names.keys().cloned().collect())),
        Ctl::Processes => {
            let mut all = vec![Pid::ROOT];
            all.extend(root.alive.iter().copied());
            Some(Reply::Pids(all))
        }
        Ctl::IsAlive { pid } => Some(Reply::Alive(alive(root, pid))),
        Ctl::Watch { pid } => {
            let alive = alive(root, pid);
            if alive && !pid.is_root() {
                root.watchers.entry(pid).or_default().insert(from);
            }
            Some(Reply::Alive(alive))
        }
        Ctl::Gone { .. } => None,
        Ctl::Monitor { mref, target } => {
            if target.is_root() {
                // The root ends with the node: its monitors never fire.
            } else if alive(root, target) {
                root.monitors.insert(mref, target);
            } else {
                drop(guard);
                send_down(mref, target, ExitReason::NoProc);
            }
            None
        }
        Ctl::Demonitor { mref } => {
            root.monitors.remove(&mref);
            None
        }
    }
}

/// Whether `pid` is alive, as the root knows it; call in the root only.
pub(crate) fn alive_in_root(pid: Pid) -> bool {
    pid.is_root()
        || root()
            .as_ref()
            .is_some_and(|root| root.alive.contains(&pid))
}

/// Sends the `Down` of `mref` to the process that made it.
fn send_down(mref: MonitorRef, target: Pid, reason: ExitReason) {
    let down = Down {
        monitor: mref,
        pid: target,
        reason,
    };
    match postcard::to_allocvec(&down) {
        Ok(body) => notify(mref.owner, target, down_tag(), body),
        Err(e) => tracing::error!("cannot encode a Down notice: {e}"),
    }
}

/// Delivers a notice of the node to `to`, from `from`: into this process's mailbox, or
/// down toward `to` in no slot of any mailbox. A process that is not alive is skipped.
fn notify(to: Pid, from: Pid, tag: u64, body: Vec<u8>) {
    let me = local::self_pid();
    if to == me {
        mailbox::file(Entry::new(from, tag, Frame::owned(body), 0, Credit::None));
    } else if let Some(child) = me.__next_hop(to).and_then(local::child) {
        router::push(Job {
            to: Hop::Down(child),
            frame: protocol::control_down(tag, Route { from, to }, &body),
            fds: Vec::new(),
            credit: Credit::None,
            control: true,
        });
    }
}

/// Sends `ctl` toward the root from a child, without waiting for room: on this thread
/// when `here` (it may wait for the socket), through the router otherwise.
fn send_up(ctl: &Ctl, here: bool) -> bool {
    let Some(port) = crate::child::port::port() else {
        return false;
    };
    let Ok(body) = postcard::to_allocvec(ctl) else {
        return false;
    };
    let route = Route {
        from: local::self_pid(),
        to: Pid::ROOT,
    };
    let frame = protocol::control_up(ctl_tag(), route, &body);
    if here {
        port.send_control(&frame)
    } else {
        router::push(Job {
            to: Hop::Up,
            frame,
            fds: Vec::new(),
            credit: Credit::None,
            control: true,
        });
        true
    }
}

/// Carries out `ctl` for this process: in the root at once, in a child by asking the
/// root; returns the root's answer (`None` when the root cannot be reached).
pub(crate) fn ask(ctl: Ctl) -> Option<Reply> {
    if crate::child::port::port().is_none() {
        return handle(Pid::ROOT, ctl);
    }
    // One question at a time, so that each answer goes to whoever asked it.
    static ASKING: Mutex<()> = Mutex::new(());
    let _one = ASKING.lock().unwrap_or_else(PoisonError::into_inner);
    if !send_up(&ctl, true) {
        return None;
    }
    let port = crate::child::port::port()?;
    let mut reply = None;
    let deadline = Instant::now() + ASK_LIMIT;
    port.receive_node(reply_tag(), Some(deadline), &mut |_, body| {
        reply = postcard::from_bytes::<Reply>(body).ok();
    })
    .ok()?;
    reply
}

/// How long a child waits for the root's answer.
const ASK_LIMIT: Duration = Duration::from_secs(30);

/// Tells `ctl` to the root, with no answer expected.
pub(crate) fn tell(ctl: Ctl) {
    if crate::child::port::port().is_none() {
        handle(Pid::ROOT, ctl);
    } else {
        send_up(&ctl, true);
    }
}

/// A control frame the event loop read from a child, from `from` (checked to be the
/// child or below it): carried out in the root, handed on toward the root elsewhere.
/// A child speaks for itself only: a request about processes it may not speak for is
/// a protocol error.
pub(crate) fn from_child(
    from: Pid,
    tag: u64,
    frame: Frame,
    body: usize,
) -> Result<(), ProcessError> {
    if tag != ctl_tag() {
        return Err(ProcessError::Protocol(
            "a control frame of the node with an unknown tag".into(),
        ));
    }
    let ctl: Ctl = protocol::decode(&frame.payload()[body..], "node control")?;
    let forged = match &ctl {
        Ctl::Born { pid } | Ctl::Ended { pid, .. } => pid.parent() != Some(from),
        Ctl::Monitor { mref, .. } | Ctl::Demonitor { mref } => mref.owner != from,
        Ctl::Signal { .. } | Ctl::Gone { .. } => true,
        _ => false,
    };
    if forged {
        return Err(ProcessError::Protocol(format!(
            "{from} sent a request of the node about processes it does not own: {ctl:?}"
        )));
    }
    if crate::child::port::port().is_some() {
        router::push(Job {
            to: Hop::Up,
            frame: super::route::whole(frame.payload()),
            fds: Vec::new(),
            credit: Credit::None,
            control: true,
        });
        return Ok(());
    }
    if let Some(reply) = handle(from, ctl) {
        match postcard::to_allocvec(&reply) {
            Ok(body) => notify(from, Pid::ROOT, reply_tag(), body),
            Err(e) => tracing::error!("cannot encode a reply of the node: {e}"),
        }
    }
    Ok(())
}

/// This process is about to start the child `pid`.
pub(crate) fn born(pid: Pid) {
    tell(Ctl::Born { pid });
}

/// The end of this process's child `pid` is about to be published: in the root, it is
/// forgotten now, and the `Down` notices returned are sent once the end is published
/// (so that a handle's `result()` finds the name freed, and a `Down` finds `result()`
/// ready). Elsewhere the root is told, through the router (this may be the event
/// loop's thread, which must not wait).
pub(crate) fn ended(pid: Pid, reason: ExitReason) -> Downs {
    if crate::child::port::port().is_none() {
        forget(pid, Some(reason))
    } else {
        send_up(
            &Ctl::Ended {
                pid,
                reason: Some(reason),
            },
            false,
        );
        Downs::none()
    }
}

/// An attempt of this process's child `pid` ended and another is about to start:
/// whatever the old one started is gone, and what it set up in the node (links,
/// monitors it made, trapping) goes with it.
pub(crate) fn attempt_ended(pid: Pid) {
    let ctl = Ctl::Ended { pid, reason: None };
    if crate::child::port::port().is_none() {
        handle(Pid::ROOT, ctl);
    } else {
        send_up(&ctl, false);
    }
}

/// A new monitor of this process's. Its number is unique across the attempts of the
/// process too (the attempt's number in the high half): a `Down` still on its way to
/// an attempt that ended can never pass for one of the next attempt's monitors.
pub(crate) fn new_monitor_ref() -> MonitorRef {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    MonitorRef {
        owner: local::self_pid(),
        n: (u64::from(local::attempt() - 1) << 32) | NEXT.fetch_add(1, Ordering::Relaxed),
    }
}
