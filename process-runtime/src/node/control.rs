//! The node's own bookkeeping, kept in the root: which processes of the tree are
//! alive, the registry of names, and the monitors.
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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::mailbox::{self, Entry};
use super::router::{self, Hop, Job};
use super::types::{Down, ExitReason, MonitorRef, RegistryError};
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
}

/// The root's answer to a request that has one.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Done(Result<(), RegistryError>),
    Where(Option<Pid>),
    Names(Vec<String>),
    Pids(Vec<Pid>),
    Alive(bool),
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
    name_of: BTreeMap<Pid, String>,
    /// Monitors and the process each watches.
    monitors: BTreeMap<MonitorRef, Pid>,
}

static ROOT: Mutex<Option<Root>> = Mutex::new(None);

fn root() -> MutexGuard<'static, Option<Root>> {
    ROOT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether `pid` is `of` or below it.
fn at_or_below(pid: Pid, of: Pid) -> bool {
    pid == of || of.__next_hop(pid).is_some()
}

/// The `Down` notices an end made due, to send once the end is published.
#[must_use = "the notices must be sent"]
pub(crate) struct Downs(Vec<(MonitorRef, Pid, ExitReason)>);

impl Downs {
    /// Sends them.
    pub(crate) fn send(self) {
        for (mref, target, reason) in self.0 {
            send_down(mref, target, reason);
        }
    }
}

/// Carries out `ctl` in the root; returns the answer.
fn handle(ctl: Ctl) -> Option<Reply> {
    match ctl {
        Ctl::Ended { pid, reason } => {
            forget(pid, reason).send();
            None
        }
        ctl => answer(ctl),
    }
}

/// Forgets `pid` and what is below it (only what is below it, when `reason` is
/// `None`): its name is freed, the monitors it made are dropped, and those of it are
/// taken out, their `Down` notices returned.
fn forget(pid: Pid, reason: Option<ExitReason>) -> Downs {
    let mut guard = root();
    let root = guard.get_or_insert_with(Root::default);
    let gone: Vec<Pid> = root
        .alive
        .iter()
        .copied()
        .filter(|&p| at_or_below(p, pid) && (reason.is_some() || p != pid))
        .collect();
    for p in &gone {
        root.alive.remove(p);
        if let Some(name) = root.name_of.remove(p) {
            root.names.remove(&name);
        }
    }
    let mut downs = Vec::new();
    root.monitors.retain(|mref, target| {
        if gone.contains(target) {
            let why = match &reason {
                Some(reason) if *target == pid => reason.clone(),
                _ => ExitReason::Error(ProcessError::Killed),
            };
            downs.push((*mref, *target, why));
            false
        } else {
            !gone.contains(&mref.owner)
        }
    });
    Downs(downs)
}

/// Answers `ctl` in the root.
fn answer(ctl: Ctl) -> Option<Reply> {
    let mut guard = root();
    let root = guard.get_or_insert_with(Root::default);
    let alive = |root: &Root, pid: Pid| pid.is_root() || root.alive.contains(&pid);
    match ctl {
        Ctl::Born { pid } => {
            root.alive.insert(pid);
            None
        }
        Ctl::Ended { .. } => unreachable!("handled by `handle`"),
        Ctl::Register { name, pid } => Some(Reply::Done(if name.is_empty() {
            Err(RegistryError::EmptyName)
        } else if !alive(root, pid) {
            Err(RegistryError::NoProc(pid))
        } else if let Some(&holder) = root.names.get(&name) {
            Err(RegistryError::Taken { name, holder })
        } else if let Some(has) = root.name_of.get(&pid) {
            Err(RegistryError::AlreadyNamed {
                pid,
                name: has.clone(),
            })
        } else {
            root.names.insert(name.clone(), pid);
            root.name_of.insert(pid, name);
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
        return handle(ctl);
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
        handle(ctl);
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
            credit: Credit::None,
            control: true,
        });
        return Ok(());
    }
    if let Some(reply) = handle(ctl) {
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
        Downs(Vec::new())
    }
}

/// An attempt of this process's child `pid` ended: whatever it started is gone.
pub(crate) fn attempt_ended(pid: Pid) {
    let ctl = Ctl::Ended { pid, reason: None };
    if crate::child::port::port().is_none() {
        handle(ctl);
    } else {
        send_up(&ctl, false);
    }
}

/// A new monitor of this process's.
pub(crate) fn new_monitor_ref() -> MonitorRef {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    MonitorRef {
        owner: local::self_pid(),
        n: NEXT.fetch_add(1, Ordering::Relaxed),
    }
}
