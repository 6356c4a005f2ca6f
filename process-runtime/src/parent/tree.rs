//! The processes this program started and that may still run: what a shutdown stops.
//!
//! Each start registers its process here (a `Weak`, so that the list keeps nothing
//! alive) once its first child is spawned and handed to the event loop. A graceful
//! phase ([`graceful`]) asks every one of them to stop, kills the daemons, and waits
//! until each has ended, every limit holding as usual (the event loop still holds the
//! section timeouts, `on_finish`'s included). While a phase runs, new starts are
//! refused with [`ProcessError::ShuttingDown`]: a start already past that check when
//! the phase began is waited for and stopped too, so nothing slips through.
//!
//! Asking the event loop instead would need a message and an answer for each process;
//! the handles already reach every process's [`Shared`], which is all a stop or a kill
//! needs.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::reap;
use super::shared::Shared;
use crate::ProcessError;

/// The registry: live processes, starts in flight, phases running.
struct Tree {
    live: Vec<Weak<Shared>>,
    /// The length at which the list is next pruned of ended processes (doubling, so
    /// that pruning costs O(1) per start however many processes are alive).
    prune_at: usize,
    /// Starts that passed the check and have not registered yet.
    starting: usize,
    /// Graceful phases running ([`graceful`] may be called from several threads).
    phases: usize,
}

static TREE: Mutex<Tree> = Mutex::new(Tree {
    live: Vec::new(),
    prune_at: 16,
    starting: 0,
    phases: 0,
});
static CHANGED: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, Tree> {
    TREE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A start that passed the check: registers its process, or, dropped unregistered (the
/// spawn failed), lets a waiting phase go on.
pub(crate) struct Ticket(());

/// Lets a start go on, unless a graceful phase runs.
pub(crate) fn begin_start() -> Result<Ticket, ProcessError> {
    let mut tree = lock();
    if tree.phases > 0 {
        drop(tree);
        // A program that is about to exit because of a signal does not see the refusal
        // (it would act on it while its processes are being stopped).
        crate::shutdown::hold();
        return Err(ProcessError::ShuttingDown);
    }
    tree.starting += 1;
    Ok(Ticket(()))
}

impl Ticket {
    /// Registers `shared`, whose first child runs under the event loop.
    pub(crate) fn register(self, shared: &Arc<Shared>) {
        let mut tree = lock();
        if tree.live.len() >= tree.prune_at {
            tree.live
                .retain(|w| w.upgrade().is_some_and(|s| !s.lock().finished()));
            tree.prune_at = (tree.live.len() * 2).max(16);
        }
        tree.live.push(Arc::downgrade(shared));
        let stopping = tree.phases > 0;
        drop(tree);
        // The check passed before a phase began: stop it now, as the phase would.
        if stopping {
            wind_down(shared);
        }
        crate::shutdown::registered_a_process();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        lock().starting -= 1;
        CHANGED.notify_all();
    }
}

/// Stops a process the way a shutdown does: a daemon is killed, any other is asked to
/// stop.
fn wind_down(shared: &Shared) {
    if shared.config.daemon {
        shared.request_kill();
    } else {
        shared.request_stop();
    }
}

/// The registered processes that have not ended, once no start is in flight.
fn running() -> Vec<Arc<Shared>> {
    let mut tree = lock();
    while tree.starting > 0 {
        tree = CHANGED.wait(tree).unwrap_or_else(PoisonError::into_inner);
    }
    let live: Vec<Arc<Shared>> = tree.live.iter().filter_map(Weak::upgrade).collect();
    drop(tree);
    live.into_iter().filter(|s| !s.lock().finished()).collect()
}

/// The graceful phase: every running process is asked to stop (a daemon is killed),
/// then waited for until it has ended, within its own limits; starts are refused
/// meanwhile. Returns when every process of the program has ended. Several phases may
/// run at once; each returns when everything has ended.
pub(crate) fn graceful() {
    begin_phase().run();
}

/// Refuses starts from now on, until the phase returned has run (or is dropped): so
/// that a shutdown refuses starts from the moment it is known, even before the thread
/// that runs it is up.
pub(crate) fn begin_phase() -> Phase {
    lock().phases += 1;
    Phase(())
}

/// A graceful phase that refuses starts while it lives.
pub(crate) struct Phase(());

impl Phase {
    /// Stops everything and waits, then lets starts go on again.
    pub(crate) fn run(self) {
        loop {
            let running = running();
            if running.is_empty() {
                return;
            }
            for shared in &running {
                wind_down(shared);
            }
            for shared in &running {
                drop(reap::wait_for_end(shared));
            }
        }
    }
}
impl Drop for Phase {
    fn drop(&mut self) {
        lock().phases -= 1;
        CHANGED.notify_all();
    }
}

/// Asks every running process to stop (daemons are killed) without waiting: what a
/// child does as soon as its own parent stops it, so that the stop reaches the whole
/// tree at once while each level still ends after its children.
pub(crate) fn stop_all() {
    let tree = lock();
    let live: Vec<Arc<Shared>> = tree.live.iter().filter_map(Weak::upgrade).collect();
    drop(tree);
    for shared in &live {
        wind_down(shared);
    }
}

/// Kills every process at once (each one's process group), then waits up to `within`
/// for them to be reaped.
pub(crate) fn kill_all(within: Duration) {
    let tree = lock();
    let live: Vec<Arc<Shared>> = tree.live.iter().filter_map(Weak::upgrade).collect();
    drop(tree);
    for shared in &live {
        shared.request_kill();
    }
    let deadline = Instant::now().checked_add(within);
    for shared in &live {
        drop(shared.wait_until(deadline, |i| i.finished()));
    }
}
