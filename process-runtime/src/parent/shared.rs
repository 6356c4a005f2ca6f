//! What a handle and the supervisor of its process share: a mutex-held [`Inner`], and a
//! condition variable signalled at every change, with the [wakers](super::wakers) of
//! the async waiters woken beside it.
//!
//! The outcome and the exit are published together, after every child of the process
//! has been reaped: whoever is woken by the outcome finds `exit_code()` known and
//! `is_alive()` false.

use std::process::Child;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use super::mailbox::{Inbox, Outbox};
use super::reading::Reading;
use super::wakers::Wakers;
use crate::beacon::{AttemptTimers, Beacon};
use crate::wire::channel::Frame;
use crate::{sys, Exit, Pid, ProcessConfig, ProcessError};

/// The output bytes of a finished process, kept inside the frame they arrived in.
#[derive(Debug)]
pub(crate) struct Output {
    frame: Frame,
    start: usize,
    len: usize,
}

impl Output {
    /// `len` bytes at `start` of `frame`'s payload.
    pub(crate) fn new(frame: Frame, start: usize, len: usize) -> Self {
        Self { frame, start, len }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.frame.payload()[self.start..self.start + self.len]
    }

    /// The bytes of the report frame this output arrived in, length prefix included.
    pub(crate) fn frame_len(&self) -> usize {
        4 + self.frame.payload().len()
    }
}

/// What the handle and the supervisor share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ProcessConfig,
    /// The process's pid in the node, the same for every attempt.
    pub(crate) id: Pid,
    pub(crate) timers: OnceLock<AttemptTimers>,
    inner: Mutex<Inner>,
    changed: Condvar,
    /// The wakers of futures and `wait_any` callers, woken with `changed`.
    pub(crate) wakers: Wakers,
    /// Messages to the child not taken yet (see [`mailbox`](super::mailbox)).
    pub(crate) outbox: Mutex<Outbox>,
    /// The live attempt's reader, which a caller of `listen` may borrow (see
    /// [`reading`](super::reading)).
    pub(crate) reading: Mutex<Reading>,
    /// Set when the attempt ended while its reader was lent: the borrower drops it.
    pub(crate) retire_reader: AtomicBool,
    /// Callers that hold, or still hold a handle on, the attempt's socket.
    pub(crate) borrowers: AtomicUsize,
    /// Set by the event loop when it found the reader lent and left its one-shot
    /// interest disarmed: the borrower re-arms it when it gives the reader back.
    pub(crate) rearm_owed: AtomicBool,
    /// The event loop's key for this process, to ask it to look again (see
    /// [`tells`](super::tells)).
    pub(crate) loop_key: AtomicUsize,
    /// Told to the child with every stop request (see `StartOptions::stop_message`).
    pub(crate) stop_message: Option<Vec<u8>>,
}

/// The mutable part of [`Shared`].
#[derive(Debug, Default)]
pub(crate) struct Inner {
    /// The current attempt's process id.
    pub(crate) pid: u32,
    /// The process id while it may be signalled: from the spawn until just before the
    /// child is reaped (after that the id may belong to someone else).
    pub(crate) live_pid: Option<u32>,
    /// The current attempt's shared page, where a stop request is stored.
    pub(crate) beacon: Option<Arc<Beacon>>,
    /// The outcome and how the deciding attempt ended, set together once everything
    /// of this process has been reaped.
    pub(crate) end: Option<End>,
    /// A final report arrived: the outcome is decided, and a kill changes nothing.
    pub(crate) decided: bool,
    /// Callers blocked until the end with no time limit (`result`, `wait`).
    pub(crate) waiting: u32,
    /// A decided process's child, handed to one of those callers to reap (see
    /// [`reap`](super::reap)).
    pub(crate) reaping: Option<Reaping>,
    pub(crate) stop_requested: bool,
    pub(crate) kill_requested: bool,
    /// An exit signal the process does not trap ended (or is to end) the attempt: the
    /// error it fails with.
    pub(crate) signal: Option<ProcessError>,
    /// Attempts started so far.
    pub(crate) attempts: u32,
    /// Messages from the child.
    pub(crate) inbox: Inbox,
}

/// A decided process whose child is still to be reaped.
#[derive(Debug)]
pub(crate) struct Reaping {
    pub(crate) child: Child,
    pub(crate) report: Result<Output, ProcessError>,
    pub(crate) timers: Option<AttemptTimers>,
    /// The exit status that decided the outcome when it is not this child's own (the
    /// failed attempt before a child that only ran `error`).
    pub(crate) decided_exit: Option<Exit>,
}

/// A process's end: its outcome and the exit status of the attempt that decided it.
#[derive(Debug)]
pub(crate) struct End {
    pub(crate) report: Result<Output, ProcessError>,
    pub(crate) exit: Exit,
}

impl Inner {
    /// Whether the process has ended (everything reaped, outcome known).
    pub(crate) fn finished(&self) -> bool {
        self.end.is_some()
    }
}

impl Shared {
    pub(crate) fn new(config: ProcessConfig, id: Pid) -> Self {
        let outbox = Outbox::new(config.mailbox);
        Self {
            config,
            id,
            timers: OnceLock::new(),
            inner: Mutex::new(Inner::default()),
            changed: Condvar::new(),
            wakers: Wakers::default(),
            outbox: Mutex::new(outbox),
            reading: Mutex::new(Reading::default()),
            retire_reader: AtomicBool::new(false),
            borrowers: AtomicUsize::new(0),
            rearm_owed: AtomicBool::new(false),
            loop_key: AtomicUsize::new(usize::MAX),
            stop_message: None,
        }
    }

    /// The reader's lock (taken before the state's, never after).
    pub(crate) fn lock_reading(&self) -> MutexGuard<'_, Reading> {
        self.reading.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `done` holds or `deadline` passes; returns whether it holds.
    pub(crate) fn wait_until(
        &self,
        deadline: Option<Instant>,
        done: impl FnMut(&Inner) -> bool,
    ) -> (MutexGuard<'_, Inner>, bool) {
        self.wait_until_with(self.lock(), deadline, done)
    }

    /// [`Shared::wait_until`] with the lock already held.
    pub(crate) fn wait_until_with<'a>(
        &self,
        mut inner: MutexGuard<'a, Inner>,
        deadline: Option<Instant>,
        mut done: impl FnMut(&Inner) -> bool,
    ) -> (MutexGuard<'a, Inner>, bool) {
        loop {
            if done(&inner) {
                return (inner, true);
            }
            match deadline {
                None => {
                    inner = self
                        .changed
                        .wait(inner)
                        .unwrap_or_else(PoisonError::into_inner)
                }
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return (inner, false);
                    }
                    inner = self
                        .changed
                        .wait_timeout(inner, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }

    /// Waits for the next change.
    pub(crate) fn wait<'a>(&self, inner: MutexGuard<'a, Inner>) -> MutexGuard<'a, Inner> {
        self.changed
            .wait(inner)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the next change, for at most `timeout`.
    pub(crate) fn wait_timeout<'a>(
        &self,
        inner: MutexGuard<'a, Inner>,
        timeout: std::time::Duration,
    ) -> MutexGuard<'a, Inner> {
        self.changed
            .wait_timeout(inner, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    /// Changes the shared state and wakes every waiter.
    pub(crate) fn update(&self, f: impl FnOnce(&mut Inner)) {
        f(&mut self.lock());
        self.notify();
    }

    /// Wakes every waiter: the blocked ones and the registered wakers. Called after a
    /// change, once the lock it was made under is released.
    pub(crate) fn notify(&self) {
        self.changed.notify_all();
        self.wakers.wake_all();
    }

    /// Asks the running attempt to stop (and remembers it for later attempts): one store
    /// into the page the child's engine reads between sections.
    pub(crate) fn request_stop(&self) {
        let mut inner = self.lock();
        inner.stop_requested = true;
        if let Some(beacon) = &inner.beacon {
            beacon.request_stop();
        }
        drop(inner);
        if let Some(frame) = &self.stop_message {
            // A full mailbox means work is queued: the child reaches the stop flag
            // between two pieces of it.
            let _ = super::mailbox::tell(self, frame.clone(), Vec::new(), false);
        }
    }

    /// An exit signal the process does not trap (`node::link`, `node::exit`): the
    /// running attempt is killed at once and fails with `error`, a failure like any
    /// other (lives apply). Nothing happens once the outcome is decided.
    pub(crate) fn exit_signal(&self, error: ProcessError) {
        let mut inner = self.lock();
        if inner.decided || inner.finished() || inner.signal.is_some() {
            return;
        }
        inner.signal = Some(error);
        if let Some(pid) = inner.live_pid {
            if let Err(e) = sys::kill_group(pid) {
                tracing::warn!(process = %self.config.name, pid, "kill failed: {e}");
            }
        }
    }

    /// Kills the running attempt's process group, unless the outcome is decided.
    pub(crate) fn request_kill(&self) {
        let mut inner = self.lock();
        if inner.decided || inner.finished() {
            return;
        }
        inner.kill_requested = true;
        if let Some(pid) = inner.live_pid {
            if let Err(e) = sys::kill_group(pid) {
                tracing::warn!(process = %self.config.name, pid, "kill failed: {e}");
            }
        }
    }
}
