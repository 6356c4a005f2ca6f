//! The supervision of one process: feeds the current attempt its events, reaps it,
//! applies the [policy](super::policy), and publishes the end.
//!
//! Each process has one supervisor thread today, which owns the child's read half and
//! its `std::process::Child`; the [`Handle`](crate::Handle) talks to it through
//! [`Shared`]. The outcome is published only after the deciding child and its process
//! group are reaped, so `result()` returning means the process has ended.

use std::sync::Arc;

use super::attempt::{Attempt, AttemptEnd, StartOptions};
use super::mailbox;
use super::policy::{self, Circumstances, Decision, Ending};
use super::reap;
use super::shared::{Output, Reaping, Shared};
use crate::beacon::AttemptTimers;
use crate::wire::protocol::{self, Mode, ReportTimers, ToChild};
use crate::{Exit, ProcessError};

/// Supervises one process from its first attempt to its end.
pub(crate) struct Supervisor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) tag: &'static str,
    /// The original state, sent to every attempt.
    pub(crate) state: Vec<u8>,
    pub(crate) options: StartOptions,
}

impl Supervisor {
    /// The mode of the first attempt.
    pub(crate) fn first_mode(&self) -> Mode {
        Mode::Run {
            last_life: self.shared.config.lives <= 1,
        }
    }

    /// Spawns the next attempt, in `mode`. `new_life` is false for the child that only
    /// runs `error`: it keeps the number of the attempt that failed before it.
    pub(crate) fn spawn(&self, mode: Mode, new_life: bool) -> Result<Attempt, ProcessError> {
        let number = self.shared.lock().attempts + u32::from(new_life);
        let start = protocol::encode(&ToChild::Start {
            tag: self.tag,
            config: self.shared.config.clone(),
            attempt: number,
            mode,
            state: &self.state,
        })?;
        Attempt::spawn(&self.shared, &self.options, new_life, start)
    }

    /// Runs attempts until the outcome is decided, then publishes it.
    pub(crate) fn run(self, first: Attempt) {
        let lives = self.shared.config.lives;
        let mut attempt = first;
        let mut mode = self.first_mode();
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
            let end = self.drive(&mut attempt);
            let (ending, output, reported) = split(end, &attempt);
            if !handling_error || timers.is_none() {
                timers = Some(AttemptTimers::new(
                    &attempt.beacon,
                    reported,
                    attempt.number,
                ));
            }
            if let Ending::Done | Ending::Failed { last: true, .. } = ending {
                let report = match ending {
                    Ending::Failed { error, .. } => {
                        self.log_failure(&attempt, &error, "process failed");
                        Err(error)
                    }
                    _ => Ok(output.expect("a reported output")),
                };
                return self.conclude(attempt, report, timers, failed_exit);
            }
            let exit = reap::reap(&self.shared, &mut attempt.child);
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
            attempt = match self.spawn(mode.clone(), new_life) {
                Ok(next) => next,
                Err(e) => return self.finish(attempt, Err(e), timers, exit),
            };
        }
    }

    /// Feeds the attempt its events until it ends.
    fn drive(&self, attempt: &mut Attempt) -> AttemptEnd {
        loop {
            let event = attempt.next_event();
            if let Some(end) = attempt.on_event(event, &self.shared) {
                // Its socket is released with it; messages told from now on wait in
                // the outbox for the next attempt, if there is one.
                mailbox::detach(&mut self.shared.lock());
                return end;
            }
        }
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
        reap::publish(&self.shared, report, timers, exit);
    }

    /// The child reported the outcome, so nothing can change it any more: what is left
    /// is its exit. A caller already blocked on the end is handed the reaping (see
    /// [`reap`]); otherwise this thread does it.
    fn conclude(
        &self,
        attempt: Attempt,
        report: Result<Output, ProcessError>,
        timers: Option<AttemptTimers>,
        decided_exit: Option<Exit>,
    ) {
        // The socket is closed here, before the hand-over: the caller that completes
        // the reaping returns at once, and must find no descriptor of ours still open.
        let child = attempt.into_child();
        let reaping = Reaping {
            child,
            report,
            timers,
            decided_exit,
        };
        let mut inner = self.shared.lock();
        // From here on a kill changes nothing: the child finished.
        inner.decided = true;
        if inner.waiting > 0 {
            inner.reaping = Some(reaping);
            drop(inner);
            self.shared.notify();
        } else {
            drop(inner);
            reap::complete(reaping, &self.shared);
        }
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
