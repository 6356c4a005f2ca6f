//! Stopping a whole program: [`shutdown`].
//!
//! **The graceful phase** ([`tree::graceful`]) asks every process the program started
//! to stop, kills its daemons, and waits until every one has ended, each within its own
//! limits. Starts are refused meanwhile
//! ([`ProcessError::ShuttingDown`](crate::ProcessError::ShuttingDown)).
//!
//! **Nested processes end bottom-up.** A stop that comes from a process's parent (its
//! handle's `stop()` or drop, or a shutdown) is marked as such in the page the two
//! share. A child that started processes of its own watches for that mark and passes
//! the stop on to its own children at once, so the whole tree hears it within a few
//! tens of milliseconds per level; and when its engine reaches `on_finish`, it first
//! runs the graceful phase over its own children, so that they have ended before its
//! `on_finish` starts. That wait counts against its own `timeout.onfinish`: past it,
//! it is killed as usual, and its children with it. A process that ends by itself
//! (`num_loops`, `join_in`, `cx.stop()`) leaves its children alone, as before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Duration;

use crate::parent::tree;

/// Runs the graceful phase now, and returns when every process the program started
/// has ended: each non-daemon is asked to stop and runs its `on_finish` and `result`
/// within its limits, daemons are killed, and a process with children of its own stops
/// them before its own `on_finish`. Starts made
/// meanwhile (from other threads) are refused with
/// [`ProcessError::ShuttingDown`](crate::ProcessError::ShuttingDown); once it returns,
/// processes may be started again.
///
/// The handles stay usable: `result()` returns each process's outcome (a stopped
/// process's result, `ProcessError::Killed` for a daemon, a timeout for one that did
/// not finish in time). It exits nothing. A section whose timeout is `"none"` and that
/// never returns is waited for.
pub fn shutdown() {
    tree::graceful();
}

/// The child side: the flags of the page its parent shares with it, set once when the
/// child is entered. Their presence is also what says that this process is a child.
struct ParentStop {
    stop: &'static AtomicBool,
    parent_stop: &'static AtomicBool,
}

static PARENT_STOP: OnceLock<ParentStop> = OnceLock::new();

fn in_child() -> bool {
    PARENT_STOP.get().is_some()
}

/// Called once when this process runs as a child: where its parent's stop requests
/// are stored.
pub(crate) fn set_parent_stop(stop: &'static AtomicBool, parent_stop: &'static AtomicBool) {
    let _ = PARENT_STOP.set(ParentStop { stop, parent_stop });
}

/// Whether this process is a child whose parent asked it to stop.
fn stopped_by_parent() -> bool {
    PARENT_STOP.get().is_some_and(|flags| {
        // Acquire pairs with the parent's release store of the stop flag, which it makes
        // after the parent-stop flag.
        flags.stop.load(Ordering::Acquire) && flags.parent_stop.load(Ordering::Relaxed)
    })
}

/// In a child that its parent stopped: runs the graceful phase over its own children,
/// before its `on_finish`. Does nothing otherwise.
pub(crate) fn before_on_finish() {
    if stopped_by_parent() {
        tree::graceful();
    }
}

/// How often a child with children of its own looks whether its parent stopped it.
const PARENT_STOP_POLL: Duration = Duration::from_millis(20);

/// Called when a process is registered. In a child, the first one starts a thread that
/// passes a stop from its parent on to its own children as soon as it comes, instead of
/// when its engine next reaches `on_finish` (a section may be waiting on one of those
/// children). A child that starts no process has no such thread.
pub(crate) fn registered_a_process() {
    static WATCHING: Once = Once::new();
    if !in_child() {
        return;
    }
    WATCHING.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("process-runtime-stop-watch".into())
            .stack_size(64 * 1024)
            .spawn(|| loop {
                if stopped_by_parent() {
                    tree::stop_all();
                    return;
                }
                std::thread::sleep(PARENT_STOP_POLL);
            });
        if let Err(e) = spawned {
            // Its children are still stopped before its `on_finish`.
            tracing::warn!("cannot watch for a stop from the parent: {e}");
        }
    });
}
