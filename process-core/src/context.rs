//! What a running section can see of its process and do to it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::ProcessConfig;
use crate::message::{self, __Port, RecvError, SendError};
use crate::pid::Pid;
use crate::timer::ProcessTimers;

/// Handed to every section of a running process, in the child.
///
/// It is built by the runtime; user code reads it, calls [`Context::stop`], and talks
/// to the parent with [`Context::tell`] and [`Context::listen`].
pub struct Context {
    /// The stop flag. In a child it lives in the page shared with the parent, so that
    /// `Handle::stop` is one store on the parent's side and one load on this one.
    stop: &'static AtomicBool,
    lap: u64,
    pid: u32,
    parent_pid: u32,
    id: Pid,
    parent_id: Pid,
    attempt: u32,
    started: Instant,
    config: ProcessConfig,
    timers: Timers,
    port: Option<Box<dyn __Port>>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("name", &self.config.name)
            .field("id", &self.id)
            .field("pid", &self.pid)
            .field("parent_pid", &self.parent_pid)
            .field("attempt", &self.attempt)
            .field("lap", &self.lap)
            .field("stopping", &self.is_stopping())
            .field("connected", &self.port.is_some())
            .finish_non_exhaustive()
    }
}

/// Where a context's timers live.
#[derive(Debug)]
enum Timers {
    /// In a child: in the memory it shares with its parent, so that the parent can
    /// read the section timers even if the child dies without a report; the flag,
    /// shared too, is set whenever they may have been written to, so that the parent
    /// reads them only then.
    Shared(&'static mut ProcessTimers, &'static AtomicBool),
    /// In a context built in-process (tests, benches): on the heap, once written to.
    Owned(Option<Box<ProcessTimers>>),
}

impl Context {
    /// Builds a context. Used by the runtime's engine (and by tests that run a
    /// lifecycle in-process); `stop` is the flag the engine checks between sections.
    #[doc(hidden)]
    #[must_use]
    pub fn __new(
        config: ProcessConfig,
        stop: &'static AtomicBool,
        pid: u32,
        parent_pid: u32,
        attempt: u32,
    ) -> Self {
        Self {
            stop,
            lap: 0,
            pid,
            parent_pid,
            id: Pid::ROOT,
            parent_id: Pid::ROOT,
            attempt,
            started: Instant::now(),
            config,
            timers: Timers::Owned(None),
            port: None,
        }
    }

    /// Connects the context to its parent: [`Context::tell`] and [`Context::listen`]
    /// go through `port`.
    #[doc(hidden)]
    #[must_use]
    pub fn __with_port(mut self, port: Box<dyn __Port>) -> Self {
        self.port = Some(port);
        self
    }

    /// Sets the process's pid in the node and its parent's (a context built in-process
    /// has the root's for both).
    #[doc(hidden)]
    #[must_use]
    pub fn __with_ids(mut self, id: Pid, parent_id: Pid) -> Self {
        self.id = id;
        self.parent_id = parent_id;
        self
    }

    /// Keeps the timers in `timers` (in a child, the memory it shares with its parent)
    /// instead of on the heap, and sets `written` whenever they are lent out mutably.
    #[doc(hidden)]
    #[must_use]
    pub fn __with_timers(
        mut self,
        timers: &'static mut ProcessTimers,
        written: &'static AtomicBool,
    ) -> Self {
        self.timers = Timers::Shared(timers, written);
        self
    }

    /// Asks the engine to stop: the current section finishes, then `on_finish` and
    /// `result` run. Calling it again changes nothing.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was requested, by [`Context::stop`] or by the parent's
    /// `Handle::stop`. Useful to end a long section early.
    #[must_use]
    pub fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sends `msg` to the parent's mailbox, waiting while it is full (the parent's
    /// mailbox for this child holds as many unread messages as this process's
    /// `mailbox` setting). Messages arrive exactly once and in order; those told just
    /// before the process ends are still there for a parent that listens afterwards.
    ///
    /// # Errors
    /// [`SendError::Ended`] when the parent is gone (or in a context that has no
    /// parent), [`SendError::Encode`] when postcard cannot encode `msg`.
    pub fn tell<T: Serialize + 'static>(&mut self, msg: &T) -> Result<(), SendError> {
        self.send(msg, true)
    }

    /// Like [`Context::tell`], but returns [`SendError::Full`] at once instead of
    /// waiting when the parent's mailbox is full.
    ///
    /// # Errors
    /// As [`Context::tell`], and [`SendError::Full`].
    pub fn try_tell<T: Serialize + 'static>(&mut self, msg: &T) -> Result<(), SendError> {
        self.send(msg, false)
    }

    fn send<T: Serialize + 'static>(&mut self, msg: &T, wait: bool) -> Result<(), SendError> {
        let port = self.port.as_mut().ok_or(SendError::Ended)?;
        let frame = message::__encode_into(msg, port.frame_prefix(message::__tag_of::<T>()));
        match frame {
            Ok(frame) => port.send(frame, std::any::type_name::<T>(), wait),
            Err(e) => {
                port.abandon();
                Err(e)
            }
        }
    }

    /// Takes the oldest message of type `T` the parent sent, waiting up to `timeout`:
    /// a `Duration`, `Duration::ZERO` to only look at what has arrived, or `None` to
    /// wait for ever. Messages of other types stay queued, in order. Only what the
    /// parent told (`h.tell`) is taken here: messages sent with `node::send`, from the
    /// parent or anyone else, are taken with `node::receive`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`] when none came in time; [`RecvError::Ended`] when the
    /// parent is gone and none is left (or in a context that has no parent);
    /// [`RecvError::Decode`] when a message tagged for `T` does not decode as `T` (it
    /// is consumed).
    pub fn listen<T: DeserializeOwned + 'static>(
        &mut self,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<T, RecvError> {
        let port = self.port.as_mut().ok_or(RecvError::Ended)?;
        let deadline = message::__deadline(timeout.into());
        let mut decoded = None;
        port.recv(message::__tag_of::<T>(), deadline, &mut |body| {
            decoded = Some(message::__decode::<T>(body));
        })?;
        decoded.expect("recv hands over a message when it succeeds")
    }

    /// Laps completed so far: 0 during the first lap.
    #[must_use]
    pub fn lap(&self) -> u64 {
        self.lap
    }

    /// The child's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The process id of the parent that started this process.
    #[must_use]
    pub fn parent_pid(&self) -> u32 {
        self.parent_pid
    }

    /// This process's [`Pid`] in the node: the same for every attempt (what
    /// `node::self_pid()` returns in this process).
    #[must_use]
    pub fn id(&self) -> Pid {
        self.id
    }

    /// The [`Pid`] of the process that started this one.
    #[must_use]
    pub fn parent_id(&self) -> Pid {
        self.parent_id
    }

    /// The process's name (`name` in the attribute, the type's name by default).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The configuration this process runs with.
    #[must_use]
    pub fn config(&self) -> &ProcessConfig {
        &self.config
    }

    /// Which attempt this is: 1 for the first, 2 after one life was lost, and so on.
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Time since this attempt started running the lifecycle.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The section timers filled by `#[timethis]`.
    #[must_use]
    pub fn timers(&self) -> &ProcessTimers {
        match &self.timers {
            Timers::Shared(timers, _) => timers,
            Timers::Owned(Some(timers)) => timers,
            Timers::Owned(None) => ProcessTimers::__empty(),
        }
    }

    /// The section timers, to add user-made named timers.
    #[inline]
    pub fn timers_mut(&mut self) -> &mut ProcessTimers {
        match &mut self.timers {
            Timers::Shared(timers, written) => {
                written.store(true, Ordering::Relaxed);
                timers
            }
            Timers::Owned(timers) => timers.get_or_insert_with(ProcessTimers::__new_boxed),
        }
    }

    /// Moves the named timers out, to send them to the parent at the end (the section
    /// timers stay where they are: a child's are read by its parent).
    #[doc(hidden)]
    pub fn __take_named_timers(&mut self) -> crate::timer::__NamedTimers {
        match &mut self.timers {
            Timers::Shared(timers, _) => timers.__take_named(),
            Timers::Owned(timers) => timers.as_mut().and_then(|t| t.__take_named()),
        }
    }

    /// The stop flag, for the engine's checks between sections.
    #[doc(hidden)]
    #[must_use]
    pub fn __stop_flag(&self) -> &'static AtomicBool {
        self.stop
    }

    /// Records that a lap was completed.
    #[doc(hidden)]
    pub fn __set_lap(&mut self, lap: u64) {
        self.lap = lap;
    }
}
