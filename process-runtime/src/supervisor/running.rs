//! A started supervisor as its user sees it: the [`SupervisorHandle`], the
//! [`ChildInfo`] listing, the [`SupervisorError`] of one that gave up, and the board
//! the handle shares with the supervising thread.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Wake;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::node::ExitReason;
use crate::parent::shared::Shared;
use crate::Pid;

/// Why a supervisor ended on its own.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// Restarts came faster than its intensity allows: every child was stopped.
    #[error(
        "the supervisor gave up: {restarts} restarts within {period:?} (at most {max} \
         allowed), the last of child `{child}`, which ended with {reason}"
    )]
    Intensity {
        /// The child whose end asked for the restart that was one too many.
        child: String,
        /// The restarts counted within the window, that one included.
        restarts: u32,
        /// The intensity's `max`.
        max: u32,
        /// The intensity's window.
        period: Duration,
        /// How that child ended.
        reason: Box<ExitReason>,
    },
}

/// One child of a running supervisor, as [`SupervisorHandle::which_children`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildInfo {
    /// The name from its [`ChildSpec`](super::ChildSpec), under which it is registered
    /// in the node while it runs.
    pub name: String,
    /// Its pid in the node while it runs; `None` between an end and a restart, and
    /// for a child that ended and is not restarted. Each restart is a new process,
    /// with a new pid.
    pub pid: Option<Pid>,
    /// Its OS process id while it runs (of its current attempt).
    pub os_pid: Option<u32>,
    /// How many times it was started again (by its own end or a sibling's).
    pub restarts: u32,
}

/// A running supervisor; see [`Supervisor`](super::Supervisor).
///
/// Dropping it stops the supervisor as [`SupervisorHandle::stop`] does: nothing it
/// started outlives it.
#[derive(Debug)]
pub struct SupervisorHandle {
    pub(crate) board: Arc<Board>,
    pub(crate) thread: Option<JoinHandle<()>>,
}

impl SupervisorHandle {
    /// Its children in start order: name, current pid, restarts. A
    /// [`Restart::Temporary`](super::Restart::Temporary) child that ended is not listed.
    #[must_use]
    pub fn which_children(&self) -> Vec<ChildInfo> {
        let state = self.board.lock();
        state
            .children
            .iter()
            .map(|c| {
                let running = c.running.as_ref().filter(|s| !s.lock().finished());
                ChildInfo {
                    name: c.name.clone(),
                    pid: running.map(|s| s.id),
                    os_pid: running.map(|s| s.lock().pid),
                    restarts: c.restarts,
                }
            })
            .collect()
    }

    /// Stops the supervisor: its children are stopped in reverse start order, each
    /// given its `on_finish` limit (60 s by default; no limit waits for it) from the
    /// stop request before it is killed. Returns once every child has ended. Has no
    /// effect on a supervisor that has ended.
    pub fn stop(&self) {
        self.board.update(|s| s.stop_requested = true);
        self.wait_ended(None);
    }

    /// Blocks until the supervisor has ended: after [`SupervisorHandle::stop`], or by
    /// itself when it gave up.
    ///
    /// # Errors
    /// [`SupervisorError::Intensity`] when it gave up, naming the child, the number of
    /// restarts and that child's last exit reason. `Ok` after a stop.
    pub fn wait(&self) -> Result<(), SupervisorError> {
        self.wait_ended(None)
            .expect("waiting without a limit returns the outcome")
    }

    /// Like [`SupervisorHandle::wait`], for at most `timeout`: `None` when it still
    /// runs then. `Duration::ZERO` only looks.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<(), SupervisorError>> {
        self.wait_ended(Instant::now().checked_add(timeout))
    }

    fn wait_ended(&self, deadline: Option<Instant>) -> Option<Result<(), SupervisorError>> {
        let mut state = self.board.lock();
        loop {
            if let Some(outcome) = &state.outcome {
                return Some(outcome.clone());
            }
            state = match deadline {
                None => self.board.wait(state),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return None;
                    }
                    self.board.wait_timeout(state, d - now)
                }
            };
        }
    }
}

impl Drop for SupervisorHandle {
    fn drop(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the handle and the supervising thread share; the thread is woken through it
/// by the handle (a stop) and by its children's state changes (a waker registered
/// with each).
#[derive(Debug, Default)]
pub(crate) struct Board {
    state: Mutex<BoardState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
pub(crate) struct BoardState {
    pub(crate) children: Vec<BoardChild>,
    pub(crate) stop_requested: bool,
    /// Set when something changed since the thread last looked.
    pub(crate) poked: bool,
    pub(crate) outcome: Option<Result<(), SupervisorError>>,
}

/// One child as the handle lists it.
#[derive(Debug)]
pub(crate) struct BoardChild {
    pub(crate) name: String,
    pub(crate) running: Option<Arc<Shared>>,
    pub(crate) restarts: u32,
}

impl Board {
    pub(crate) fn lock(&self) -> MutexGuard<'_, BoardState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the state, marks it poked, and wakes every waiter.
    pub(crate) fn update(&self, f: impl FnOnce(&mut BoardState)) {
        let mut state = self.lock();
        f(&mut state);
        state.poked = true;
        drop(state);
        self.changed.notify_all();
    }

    pub(crate) fn wait<'a>(&self, g: MutexGuard<'a, BoardState>) -> MutexGuard<'a, BoardState> {
        self.changed.wait(g).unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn wait_timeout<'a>(
        &self,
        g: MutexGuard<'a, BoardState>,
        timeout: Duration,
    ) -> MutexGuard<'a, BoardState> {
        self.changed
            .wait_timeout(g, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }
}

/// The waker registered with each running child: a change of its state pokes the
/// board.
pub(crate) struct Poke(pub(crate) Arc<Board>);

impl Wake for Poke {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.update(|_| {});
    }
}
