//! The end of a process: wait for its deciding child to exit, clean up its process
//! group, reap it, publish the outcome with the exit status.
//!
//! Once a child has reported its outcome, all that is left is its exit. The supervisor
//! does not wait for it when a caller is already blocked in `result()` or `wait()`: it
//! hands the [`Reaping`] to that caller, who is woken while the child is still tearing
//! itself down and then waits for the exit itself. That takes one thread wake-up off
//! the path from the child's exit to the caller's return, which is then what it is for
//! `waitpid` on a plain child: one.

use std::process::Child;
use std::sync::MutexGuard;
use std::time::Duration;

use super::shared::{End, Inner, Output, Reaping, Shared};
use crate::beacon::AttemptTimers;
use crate::node::ExitReason;
use crate::{sys, Exit, ProcessError};

/// Reaps the child of a decided process and publishes the end.
pub(crate) fn complete(reaping: Reaping, shared: &Shared) {
    let Reaping {
        mut child,
        report,
        timers,
        decided_exit,
    } = reaping;
    let exit = reap(shared, &mut child);
    publish(shared, report, timers, decided_exit.unwrap_or(exit));
}

/// Blocks until the process has ended. A caller waiting here may be handed the
/// reaping of the deciding child, and does it.
pub(crate) fn wait_for_end(shared: &Shared) -> MutexGuard<'_, Inner> {
    let mut inner = shared.lock();
    inner.waiting += 1;
    loop {
        if inner.finished() {
            inner.waiting -= 1;
            return inner;
        }
        if let Some(reaping) = inner.reaping.take() {
            drop(inner);
            complete(reaping, shared);
            inner = shared.lock();
            continue;
        }
        inner = shared.wait(inner);
    }
}

/// Waits for the child to exit, then kills whatever is left in its process group
/// (grandchildren it started and left behind), then reaps it.
///
/// The child closed its socket or was killed, so it is exiting: it gets a moment so
/// that its own exit status (a panic's 101, `exit(7)`) is what we record, and only then
/// is its group killed. The group is signalled while the child is still an unreaped
/// zombie, so its id cannot have been reused by an unrelated process.
pub(crate) fn reap(shared: &Shared, child: &mut Child) -> Exit {
    const GRACE: Duration = Duration::from_secs(2);
    match sys::wait_exited(child.id(), GRACE) {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            process = %shared.config.name,
            pid = child.id(),
            "the child did not exit after its channel ended; killing it"
        ),
        Err(e) => tracing::error!(
            process = %shared.config.name,
            "waiting for the child failed: {e}"
        ),
    }
    collect(shared, child)
}

/// Kills whatever is left in the group of a child that has exited (grandchildren it
/// started and left behind), then reaps it. The group is signalled while the child is
/// still an unreaped zombie, so its id cannot have been reused by an unrelated process.
pub(crate) fn collect(shared: &Shared, child: &mut Child) -> Exit {
    if let Err(e) = sys::kill_group(child.id()) {
        tracing::warn!(process = %shared.config.name, "cleaning up the process group failed: {e}");
    }
    {
        let mut inner = shared.lock();
        inner.live_pid = None;
        inner.beacon = None;
    }
    child
        .wait()
        .map_or_else(|_| sys::killed_exit(), sys::exit_of)
}

/// Records the end and wakes every waiter.
pub(crate) fn publish(
    shared: &Shared,
    report: Result<Output, ProcessError>,
    timers: Option<AttemptTimers>,
    exit: Exit,
) {
    if let Some(t) = timers {
        let _ = shared.timers.set(t);
    }
    crate::node::local::remove_child(shared.id);
    let reason = match &report {
        Ok(_) => ExitReason::Normal,
        // Ended by `node::exit`: with the reason it was given, as in Erlang.
        Err(ProcessError::Exited { reason, .. }) => (**reason).clone(),
        Err(e) => ExitReason::Error(e.clone()),
    };
    // Its name is freed before the end is published, and its monitors fire after:
    // whoever the end wakes finds the name free, whoever a `Down` wakes finds the
    // handle's `result()` ready.
    let downs = crate::node::control::ended(shared.id, reason);
    shared.update(|inner| {
        inner.end = Some(End { report, exit });
        inner.beacon = None;
        inner.live_pid = None;
    });
    downs.send();
    // What was told and never taken is never delivered now: the descriptors it
    // carried are closed.
    crate::parent::mailbox::drop_untaken(shared);
}
