//! The supervision of one process: feeds the current attempt its events, reaps it,
//! applies the [policy](super::policy), and publishes the end.
//!
//! Each process has one supervisor thread today, which owns the child's read half and
//! its `std::process::Child`; the [`Handle`](crate::Handle) talks to it through
//! [`Shared`]. The outcome is published only after the deciding child and its process
//! group are reaped, so `result()` returning means the process has ended.

use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use super::attempt::{Attempt, AttemptEnd, StartOptions};
use super::policy::{self, Circumstances, Decision, Ending};
use super::shared::{End, Output, Shared};
use crate::beacon::AttemptTimers;
use crate::wire::protocol::{self, Mode, ReportTimers, ToChild};
use crate::{sys, Exit, ProcessError};

/// Supervises one process from its first attempt to its end.
pub(crate) struct Supervisor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) tag: &'static str,
    /// The original state, sent to every attempt.
    pub(crate) state: Vec<u8>,
    pub(crate) options: StartOptions,
}

impl Supervisor {
    /// Runs attempts until the outcome is decided, then publishes it.
    pub(crate) fn run(self, first: Attempt) {
        let lives = self.shared.config.lives;
        let mut attempt = first;
        let mut mode = Mode::Run {
            last_life: lives <= 1,
        };
        // When `error` runs in a fresh child, the outcome was decided by the attempt
        // that failed before it: its exit status is the one `exit_code` reports.
        let mut failed_exit: Option<Exit> = None;
        // The timers of the latest attempt: its section timers from the shared page
        // (also after a timeout, a crash or a kill), its named ones from its report. A
        // child that only runs `error` has timed nothing, so it keeps the failed
        // attempt's timers.
        let mut timers: Option<AttemptTimers> = None;
        loop {
            let handling_error = matches!(mode, Mode::HandleError(_));
            let end = self.drive(&mut attempt, mode);
            let (ending, output, reported) = split(end, &attempt);
            if !handling_error || timers.is_none() {
                timers = Some(AttemptTimers::new(
                    &attempt.beacon,
                    reported,
                    attempt.number,
                ));
            }
            if matches!(ending, Ending::Done | Ending::Failed { last: true, .. }) {
                // The child finished: a kill from now on changes nothing.
                self.shared.lock().decided = true;
            }
            let exit = self.reap(&mut attempt.child);
            let facts = {
                let inner = self.shared.lock();
                Circumstances {
                    attempt: attempt.number,
                    lives,
                    handling_error,
                    stop_requested: inner.stop_requested,
                    kill_requested: inner.kill_requested,
                    exit,
                }
            };
            let new_life = match policy::decide(ending, facts) {
                Decision::Deliver => {
                    let output = output.expect("a delivered attempt reported an output");
                    return self.finish(attempt, Ok(output), timers, failed_exit.unwrap_or(exit));
                }
                Decision::Fail(error) => {
                    self.log_failure(&attempt, &error, "process failed");
                    return self.finish(attempt, Err(error), timers, failed_exit.unwrap_or(exit));
                }
                Decision::Retry { last_life, after } => {
                    self.log_failure(&attempt, &after, "attempt failed");
                    mode = Mode::Run { last_life };
                    true
                }
                Decision::HandleError(error) => {
                    self.log_failure(&attempt, &error, "attempt failed");
                    failed_exit = Some(exit);
                    mode = Mode::HandleError(error);
                    false
                }
            };
            attempt = match Attempt::spawn(&self.shared, &self.options, new_life) {
                Ok(next) => next,
                Err(e) => return self.finish(attempt, Err(e), timers, exit),
            };
        }
    }

    /// Sends the start frame and feeds the attempt its events until it ends.
    fn drive(&self, attempt: &mut Attempt, mode: Mode) -> AttemptEnd {
        let start = ToChild::Start {
            tag: self.tag,
            config: self.shared.config.clone(),
            attempt: attempt.number,
            mode,
            state: &self.state,
        };
        let start = match protocol::encode(&start) {
            Ok(frame) => frame,
            Err(e) => return attempt.refuse(&self.shared, e),
        };
        if let Some(end) = attempt.begin(start) {
            return end;
        }
        loop {
            let event = attempt.next_event();
            if let Some(end) = attempt.on_event(event, &self.shared) {
                return end;
            }
        }
    }

    /// Waits for the child to exit, then kills whatever is left in its process group
    /// (grandchildren it started and left behind), then reaps it.
    ///
    /// The child closed its socket or was killed, so it is exiting: it gets a moment so
    /// that its own exit status (a panic's 101, `exit(7)`) is what we record, and only
    /// then is its group killed. The group is signalled while the child is still an
    /// unreaped zombie, so its id cannot have been reused by an unrelated process.
    fn reap(&self, child: &mut Child) -> Exit {
        const GRACE: Duration = Duration::from_secs(2);
        match sys::wait_exited(child.id(), GRACE) {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                process = %self.shared.config.name,
                pid = child.id(),
                "the child did not exit after its channel ended; killing it"
            ),
            Err(e) => tracing::error!(
                process = %self.shared.config.name,
                "waiting for the child failed: {e}"
            ),
        }
        if let Err(e) = sys::kill_group(child.id()) {
            tracing::warn!(process = %self.shared.config.name, "cleaning up the process group failed: {e}");
        }
        {
            let mut inner = self.shared.lock();
            inner.live_pid = None;
            inner.writer = None;
        }
        child
            .wait()
            .map_or_else(|_| sys::killed_exit(), sys::exit_of)
    }

    fn log_failure(&self, attempt: &Attempt, error: &ProcessError, what: &str) {
        tracing::warn!(
            process = %self.shared.config.name,
            pid = attempt.child.id(),
            attempt = attempt.number,
            lives = self.shared.config.lives,
            "{what}: {error}"
        );
    }

    /// Publishes the end. The attempt's socket is released first, so that a caller
    /// woken by `wait()` finds no descriptor of this process still open (its mapping,
    /// which holds no descriptor, stays with the timers until the handle drops).
    fn finish(
        &self,
        attempt: Attempt,
        report: Result<Output, ProcessError>,
        timers: Option<AttemptTimers>,
        exit: Exit,
    ) {
        drop(attempt);
        if let Some(t) = timers {
            let _ = self.shared.timers.set(t);
        }
        self.shared.update(|inner| {
            inner.end = Some(End { report, exit });
            inner.writer = None;
            inner.live_pid = None;
        });
    }
}

/// Splits an attempt's end into what the policy needs, the output, and the timers the
/// child reported.
fn split(end: AttemptEnd, attempt: &Attempt) -> (Ending, Option<Output>, Option<ReportTimers>) {
    match end {
        AttemptEnd::Done(output, timers) => (Ending::Done, Some(output), Some(timers)),
        AttemptEnd::Failed {
            error,
            last,
            timers,
        } => (Ending::Failed { error, last }, None, Some(timers)),
        AttemptEnd::Vanished => (
            Ending::Vanished {
                section: attempt.last_section(),
            },
            None,
            None,
        ),
        AttemptEnd::Refused(e) => (Ending::Refused(e), None, None),
        AttemptEnd::TimedOut { section, limit } => {
            (Ending::TimedOut { section, limit }, None, None)
        }
    }
}
