//! What a running section can see of its process and do to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::ProcessConfig;
use crate::timer::ProcessTimers;

/// Handed to every section of a running process, in the child.
///
/// It is built by the runtime; user code only reads it and calls [`Context::stop`].
#[derive(Debug)]
pub struct Context {
    /// The stop flag. In a child it lives in the page shared with the parent, so that
    /// `Handle::stop` is one store on the parent's side and one load on this one.
    stop: &'static AtomicBool,
    lap: u64,
    pid: u32,
    parent_pid: u32,
    attempt: u32,
    started: Instant,
    config: ProcessConfig,
    timers: ProcessTimers,
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
            attempt,
            started: Instant::now(),
            config,
            timers: ProcessTimers::default(),
        }
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
        &self.timers
    }

    /// The section timers, to add user-made named timers.
    pub fn timers_mut(&mut self) -> &mut ProcessTimers {
        &mut self.timers
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

    /// Takes the timers out, to send them to the parent at the end.
    #[doc(hidden)]
    pub fn __take_timers(&mut self) -> ProcessTimers {
        std::mem::take(&mut self.timers)
    }
}
