//! The processes this child sends to that are neither its parent nor one of its
//! children, and which of them have ended: so that `node::send` to a process anywhere
//! in the tree that has ended fails with `NoProc`, as it does for a child.
//!
//! A child knows of its parent and its children only. For any other process, the
//! first `send` asks the root (which knows every end) whether it is alive, and the
//! root keeps this process among that process's watchers: when it ends, the root
//! tells each watcher (a `Gone` notice, in no slot), which marks it here. The first
//! `send` to a process costs a round trip to the root; the next ones cost a look-up.
//!
//! The root sends the notice as it forgets the process, so it comes before anything
//! the root tells this process afterwards (an `is_alive` answer, a `Down`): a process
//! that has heard of the end finds its sends refused. A `send` made while the notice
//! is on its way still goes, and the message is dropped where it can go no further.
//! Pids are never reused, so an ended process stays marked.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::control::{self, Ctl, Reply};
use super::local;
use crate::Pid;

/// The processes asked about, and whether they are alive as last heard.
static KNOWN: Mutex<Option<HashMap<Pid, bool>>> = Mutex::new(None);

fn known() -> MutexGuard<'static, Option<HashMap<Pid, bool>>> {
    KNOWN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether `to` may be alive, as far as this process can tell: `false` once the root
/// said it ended (or that no process has that pid). Its parent and its children are
/// for the caller to judge: this process knows them itself.
pub(crate) fn alive(to: Pid) -> bool {
    if to.is_root() {
        return true;
    }
    if let Some(&alive) = known().as_ref().and_then(|k| k.get(&to)) {
        return alive;
    }
    // Asked without holding the table: the root's answer comes through the reading
    // side, which may file a `Gone` notice on the way.
    let alive = match control::ask(Ctl::Watch { pid: to }) {
        Some(Reply::Alive(alive)) => alive,
        // The root cannot be reached: this process's parent has gone, and nothing it
        // sends goes anywhere; the send itself will say so.
        _ => return true,
    };
    let mut known = known();
    let known = known.get_or_insert_with(HashMap::new);
    // A `Gone` that came meanwhile has the last word.
    let entry = known.entry(to).or_insert(alive);
    *entry = *entry && alive;
    *entry
}

/// The root says `pid` has ended.
pub(crate) fn ended(pid: Pid) {
    known().get_or_insert_with(HashMap::new).insert(pid, false);
    // A direct link to it is closed now, not at the next send.
    super::direct::forget(pid);
}

/// Whether a send from this process to `to` needs [`alive`]: `to` is neither this
/// process, its parent, nor one of its children.
pub(crate) fn is_remote(to: Pid) -> bool {
    let me = local::self_pid();
    to != me && Some(to) != me.parent() && to.parent() != Some(me)
}
