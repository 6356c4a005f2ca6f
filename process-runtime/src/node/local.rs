//! This process's place in the node: its own pid, the numbers it gives its children,
//! and the table of its children that are alive, by number.
//!
//! The table holds what this process must know of each child to route to it, to
//! answer `is_alive` and `processes`, and to clean up after it: a child is entered
//! before its first attempt is spawned and removed when its end is published (see
//! `parent/reap.rs`), however it ended. Entries hold a `Weak`, so that the table keeps
//! no process alive.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use crate::parent::shared::Shared;
use crate::{Pid, ProcessError};

/// This process's pid, set once in a child before its lifecycle runs; the root's
/// otherwise.
static SELF: OnceLock<Pid> = OnceLock::new();

/// The number the next child gets (numbers start at 1 and are never given out twice).
static NEXT_CHILD: AtomicU32 = AtomicU32::new(1);

/// The children alive, by number.
static CHILDREN: Mutex<BTreeMap<u32, Weak<Shared>>> = Mutex::new(BTreeMap::new());

/// This process's pid.
pub(crate) fn self_pid() -> Pid {
    SELF.get().copied().unwrap_or(Pid::ROOT)
}

/// This attempt's number (1 for the first), in a child; 1 in the root.
static ATTEMPT: AtomicU32 = AtomicU32::new(1);

/// Records this process's pid and the number of its attempt; called once in a child,
/// before any user code that could ask for them.
pub(crate) fn set_self(pid: Pid, attempt: u32) {
    let _ = SELF.set(pid);
    ATTEMPT.store(attempt.max(1), Ordering::Relaxed);
}

/// This attempt's number: 1 in the root and in a child's first attempt.
pub(crate) fn attempt() -> u32 {
    ATTEMPT.load(Ordering::Relaxed)
}

/// Lets [`Pid::os_pid`] ask this process; called before `main`, by the runtime's entry
/// constructor.
pub(crate) fn install() {
    Pid::__set_os_pid_lookup(os_pid);
}

/// The pid for a new child of this process.
pub(crate) fn new_child_pid() -> Result<Pid, ProcessError> {
    install();
    let n = NEXT_CHILD.fetch_add(1, Ordering::Relaxed);
    if n == u32::MAX {
        // Never wrap: a number is never given out twice.
        NEXT_CHILD.store(u32::MAX, Ordering::Relaxed);
        return Err(ProcessError::Config(
            "this process has started 4294967294 processes, the most one may".into(),
        ));
    }
    self_pid().__child(n).ok_or_else(|| {
        ProcessError::Config(format!(
            "processes nest at most {} levels below the root; {} cannot start another",
            process_core::MAX_DEPTH,
            self_pid()
        ))
    })
}

/// Whether this process has started processes of its own.
pub(crate) fn has_children() -> bool {
    NEXT_CHILD.load(Ordering::Relaxed) > 1
}

fn children() -> MutexGuard<'static, BTreeMap<u32, Weak<Shared>>> {
    CHILDREN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Enters a child that is about to be spawned.
pub(crate) fn enter_child(shared: &Arc<Shared>) {
    children().insert(shared.id.__number(), Arc::downgrade(shared));
}

/// Removes a child whose end is being published; `true` when it was there (an end is
/// published once).
pub(crate) fn remove_child(pid: Pid) -> bool {
    children().remove(&pid.__number()).is_some()
}

/// The child of this process with number `n`, while it is in the table.
pub(crate) fn child(n: u32) -> Option<Arc<Shared>> {
    children().get(&n).and_then(Weak::upgrade)
}

/// The pids of this process's children alive, in the order they were started.
pub(crate) fn child_pids() -> Vec<Pid> {
    let me = self_pid();
    children().keys().filter_map(|&n| me.__child(n)).collect()
}

/// The OS process id behind `pid`, for the pids this process knows.
fn os_pid(pid: Pid) -> Option<u32> {
    let me = self_pid();
    if pid == me {
        return Some(std::process::id());
    }
    if Some(pid) == me.parent() {
        return Some(crate::sys::parent_pid());
    }
    if pid.parent() == Some(me) {
        return child(pid.__number()).and_then(|shared| shared.lock().live_pid);
    }
    None
}
