//! The supervision of one process, as a state machine the [reactor](super::reactor)
//! drives: it feeds the current attempt its events, waits for its child to exit,
//! reaps it, applies the [policy](super::policy), and publishes the end.
//!
//! A supervisor is `Live` while an attempt runs (its socket is watched), `Exiting`
//! once the attempt ended and its child is on its way out (its pidfd is watched, with a
//! grace period after which its group is killed), and `Over` once the end is published
//! or handed to a caller waiting for it. Nothing here blocks, except spawning the next
//! attempt after a failure. The [`Handle`](crate::Handle) talks to the supervisor
//! through [`Shared`]. The outcome is published only after the deciding child and its
//! process group are reaped, so `result()` returning means the process has ended.

use std::os::fd::{AsFd, OwnedFd};
use std::process::Child;
use std::sync::atomic::Ordering;
use std::sync::{Arc, TryLockError};
use std::time::{Duration, Instant};

use polling::{Event, Poller};

use super::attempt::{Attempt, AttemptEnd, StartOptions};
use super::deadline::Watch;
use super::mailbox;
use super::policy::{self, Circumstances, Decision, Ending};
use super::reading::retire;
use super::reap;
use super::shared::{Output, Reaping, Shared};
use super::tells;
use crate::beacon::AttemptTimers;
use crate::wire::protocol::{self, Mode, ReportTimers, ToChild};
use crate::{sys, Exit, ProcessError};

/// How long a child whose channel ended may take to exit before its group is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// How often a child's exit is checked where the platform has no pidfd.
const EXIT_POLL: Duration = Duration::from_millis(2);

/// Supervises one process from its first attempt to its end.
pub(crate) struct Supervisor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) tag: &'static str,
    /// The original state, sent to every attempt.
    pub(crate) state: Vec<u8>,
    /// The descriptors the state carries, kept until the process ends: each attempt
    /// receives duplicates of them.
    pub(crate) state_fds: Arc<[OwnedFd]>,
    pub(crate) options: StartOptions,
    /// The mode of the current attempt.
    mode: Mode,
    /// When `error` runs in a fresh child, the outcome was decided by the attempt that
    /// failed before it: its exit status is the one `exit_code` reports.
    failed_exit: Option<Exit>,
    /// The timers of the latest attempt: its section timers from the shared page (also
    /// after a timeout, a crash or a kill), its named ones from its report. A child
    /// that only runs `error` has timed nothing, so it keeps the failed attempt's.
    timers: Option<AttemptTimers>,
    stage: Stage,
    /// The reactor's key for this supervisor, and when it wants its next tick.
    pub(crate) key: usize,
    pub(crate) wake_at: Option<Instant>,
}

enum Stage {
    Live(Attempt),
    Exiting(Exiting),
    Over,
}

/// An attempt that ended, whose child is to exit and be reaped.
struct Exiting {
    child: Child,
    number: u32,
    /// Readable once the child has exited, where the platform has pidfds.
    watch: Option<OwnedFd>,
    since: Instant,
    group_killed: bool,
    then: AfterExit,
}

/// What to do once the child of an ended attempt is reaped.
enum AfterExit {
    /// The outcome was reported: publish it. `decided_exit` is the exit status that
    /// decided it when it is not this child's (the attempt that failed before a child
    /// that only ran `error`).
    Publish {
        report: Result<Output, ProcessError>,
        decided_exit: Option<Exit>,
    },
    /// Apply the policy to how the attempt ended.
    Decide {
        ending: Ending,
        output: Option<Output>,
        handling_error: bool,
    },
}

impl Supervisor {
    /// A supervisor for `shared`, before its first attempt.
    pub(crate) fn new(
        shared: Arc<Shared>,
        tag: &'static str,
        state: Vec<u8>,
        state_fds: Arc<[OwnedFd]>,
        options: StartOptions,
    ) -> Self {
        let mode = Mode::Run {
            last_life: shared.config.lives <= 1,
        };
        Self {
            shared,
            tag,
            state,
            state_fds,
            options,
            mode,
            failed_exit: None,
            timers: None,
            stage: Stage::Over,
            key: usize::MAX,
            wake_at: None,
        }
    }

    /// Spawns the first attempt (on the caller's thread, so that a start from the main
    /// thread spawns in place).
    pub(crate) fn spawn_first(&mut self) -> Result<(), ProcessError> {
        let in_place = self.options.first_spawn_in_place;
        let attempt = self.spawn(self.mode.clone(), true, in_place)?;
        self.stage = Stage::Live(attempt);
        Ok(())
    }

    /// Whether the end is published or handed over: the reactor drops it then.
    pub(crate) fn is_over(&self) -> bool {
        matches!(self.stage, Stage::Over)
    }

    /// Spawns the next attempt, in `mode`. `new_life` is false for the child that only
    /// runs `error`: it keeps the number of the attempt that failed before it.
    /// `in_place` spawns on the calling thread (see `StartOptions`).
    fn spawn(&self, mode: Mode, new_life: bool, in_place: bool) -> Result<Attempt, ProcessError> {
        let number = self.shared.lock().attempts + u32::from(new_life);
        let start = protocol::encode(&ToChild::Start {
            tag: self.tag,
            pid: self.shared.id,
            config: self.shared.config.clone(),
            attempt: number,
            mode,
            state: &self.state,
        })?;
        Attempt::spawn(
            &self.shared,
            &self.options,
            new_life,
            start,
            Arc::clone(&self.state_fds),
            in_place,
        )
    }

    /// Starts watching what this supervisor waits for, now that the reactor knows it
    /// by `key`.
    pub(crate) fn begin(&mut self, poller: &Poller, key: usize, now: Instant) {
        self.key = key;
        self.shared.loop_key.store(key, Ordering::SeqCst);
        self.watch(poller);
        self.on_ready(poller, now);
    }

    /// Registers the current attempt's socket, or the exiting child's pidfd.
    fn watch(&mut self, poller: &Poller) {
        let key = self.key;
        let result = match &self.stage {
            Stage::Live(attempt) => {
                // SAFETY: the socket is removed from the poller before it is closed
                // (`unwatch`, called before the attempt is dropped).
                unsafe { poller.add(&attempt.socket(), interest(attempt, key)) }
            }
            Stage::Exiting(Exiting {
                watch: Some(fd), ..
            }) => {
                // SAFETY: as above, for the pidfd.
                unsafe { poller.add(&fd.as_fd(), Event::readable(key)) }
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::error!(process = %self.shared.config.name, "cannot watch the child: {e}");
        }
        // A new stage asks for its own ticks.
        self.wake_at = None;
    }

    /// Stops watching what was registered, before it is closed.
    fn unwatch(&mut self, poller: &Poller) {
        let _ = match &self.stage {
            Stage::Live(attempt) => poller.delete(attempt.socket()),
            Stage::Exiting(Exiting {
                watch: Some(fd), ..
            }) => poller.delete(fd.as_fd()),
            _ => Ok(()),
        };
    }

    /// Something this supervisor watches is ready.
    pub(crate) fn on_ready(&mut self, poller: &Poller, now: Instant) {
        match &mut self.stage {
            Stage::Live(attempt) => {
                let shared = Arc::clone(&self.shared);
                // A caller of `listen` has the reader: it re-arms the socket when it
                // gives it back.
                // Said before trying the reader, so that a borrower that lets it go
                // after the try sees it, and re-arms the socket.
                shared.rearm_owed.store(true, Ordering::SeqCst);
                let mut reading = match shared.reading.try_lock() {
                    Ok(reading) => reading,
                    Err(TryLockError::WouldBlock) => {
                        // A borrower that waits on the page rather than the socket
                        // learns of it here.
                        tells::wake_borrower(&shared);
                        return;
                    }
                    Err(TryLockError::Poisoned(p)) => p.into_inner(),
                };
                shared.rearm_owed.store(false, Ordering::SeqCst);
                reading.kick = false;
                reading.key = self.key;
                let mut ended = attempt.flush_start(&shared);
                // A caller waiting without the reader may have asked for this.
                if ended.is_none() {
                    ended = attempt.drain_tells(&shared, &mut reading);
                }
                while ended.is_none() {
                    match attempt.poll_event(&mut reading) {
                        Some(event) => {
                            // What the ring holds is older than anything on the socket:
                            // filed before any message, and before the report or the
                            // end decide the outcome.
                            ended = attempt
                                .drain_tells(&shared, &mut reading)
                                .or_else(|| attempt.on_event(event, &shared));
                        }
                        None => break,
                    }
                }
                match ended {
                    Some(end) => {
                        retire(&shared, &mut reading);
                        drop(reading);
                        self.attempt_ended(poller, end, now);
                    }
                    None => {
                        reading.lendable = attempt.lendable();
                        // Oneshot interest: armed again for the next readiness, after
                        // the reader is free again (a borrower that takes it now re-arms
                        // it itself when it is done).
                        drop(reading);
                        let _ = poller.modify(attempt.socket(), interest(attempt, self.key));
                        self.keep_ticking(now);
                    }
                }
            }
            Stage::Exiting(_) => self.check_exit(poller, now),
            Stage::Over => {}
        }
    }

    /// The time this supervisor asked for has come.
    pub(crate) fn on_timer(&mut self, poller: &Poller, now: Instant) {
        self.wake_at = None;
        match &mut self.stage {
            Stage::Live(attempt) => {
                match attempt.on_event(super::attempt::Event::Tick, &self.shared) {
                    Some(end) => {
                        // The reader goes with the attempt; a caller that borrowed it
                        // is woken to give it back.
                        match self.shared.reading.try_lock() {
                            Ok(mut reading) => retire(&self.shared, &mut reading),
                            Err(_) => {
                                self.shared.retire_reader.store(true, Ordering::SeqCst);
                                attempt.shut_down();
                                tells::wake_borrower(&self.shared);
                            }
                        }
                        self.attempt_ended(poller, end, now);
                    }
                    None => self.keep_ticking(now),
                }
            }
            Stage::Exiting(_) => self.check_exit(poller, now),
            Stage::Over => {}
        }
    }

    /// Deadlines are checked on every event and at least once per tick.
    fn keep_ticking(&mut self, now: Instant) {
        if self.wake_at.is_none_or(|at| at <= now) {
            self.wake_at = Some(now + Watch::tick(&self.shared.config.timeouts));
        }
    }

    fn attempt_ended(&mut self, poller: &Poller, end: AttemptEnd, now: Instant) {
        crate::timeline::mark("attempt ended");
        self.unwatch(poller);
        let Stage::Live(attempt) = std::mem::replace(&mut self.stage, Stage::Over) else {
            unreachable!("an attempt ends only while live")
        };
        // Its socket is released with it; messages told from now on wait in the
        // outbox for the next attempt, if there is one.
        mailbox::detach(&mut self.shared.lock());
        let handling_error = matches!(self.mode, Mode::HandleError(_));
        let (ending, output, reported) = split(end, &attempt);
        if !handling_error || self.timers.is_none() {
            self.timers = Some(AttemptTimers::new(
                &attempt.beacon,
                reported,
                attempt.number,
            ));
        }
        let number = attempt.number;
        let pid = attempt.child.id();
        let child = attempt.into_child();
        let then = match ending {
            Ending::Done | Ending::Failed { last: true, .. } => {
                let report = match ending {
                    Ending::Failed { error, .. } => {
                        self.log_failure(pid, number, &error, "process failed");
                        Err(error)
                    }
                    _ => Ok(output.expect("a reported output")),
                };
                match self.conclude(child, report) {
                    Some((child, report)) => (
                        child,
                        AfterExit::Publish {
                            report,
                            decided_exit: self.failed_exit,
                        },
                    ),
                    // A waiting caller reaps it.
                    None => return,
                }
            }
            ending => (
                child,
                AfterExit::Decide {
                    ending,
                    output,
                    handling_error,
                },
            ),
        };
        self.exiting(poller, then.0, number, then.1, now);
    }

    /// The child reported the outcome, so nothing can change it any more: what is left
    /// is its exit. A caller already blocked on the end is handed the reaping (see
    /// [`reap`]); otherwise the child and report come back, to be reaped here.
    fn conclude(
        &mut self,
        child: Child,
        report: Result<Output, ProcessError>,
    ) -> Option<(Child, Result<Output, ProcessError>)> {
        let mut inner = self.shared.lock();
        // From here on a kill changes nothing: the child finished.
        inner.decided = true;
        if inner.waiting > 0 {
            inner.reaping = Some(Reaping {
                child,
                report,
                timers: self.timers.take(),
                decided_exit: self.failed_exit,
            });
            drop(inner);
            self.shared.notify();
            None
        } else {
            drop(inner);
            // Listeners that wait learn that nothing more will come.
            self.shared.notify();
            Some((child, report))
        }
    }

    /// Waits for `child` to exit, then does `then`.
    fn exiting(
        &mut self,
        poller: &Poller,
        child: Child,
        number: u32,
        then: AfterExit,
        now: Instant,
    ) {
        let watch = sys::exit_watch(child.id()).unwrap_or_else(|e| {
            tracing::warn!(process = %self.shared.config.name, "cannot watch the child's exit: {e}");
            None
        });
        self.stage = Stage::Exiting(Exiting {
            child,
            number,
            watch,
            since: now,
            group_killed: false,
            then,
        });
        self.watch(poller);
        self.check_exit(poller, now);
    }

    fn check_exit(&mut self, poller: &Poller, now: Instant) {
        let Stage::Exiting(exiting) = &mut self.stage else {
            return;
        };
        let pid = exiting.child.id();
        let exited = sys::exited(pid).unwrap_or_else(|e| {
            tracing::error!(process = %self.shared.config.name, "waiting for the child failed: {e}");
            true
        });
        // The end is published only once no caller holds the attempt's socket, so
        // that whoever it wakes finds no descriptor of this process open.
        let lent = self.shared.borrowers.load(Ordering::SeqCst) > 0;
        if !exited || lent {
            if !exited && !exiting.group_killed && now >= exiting.since + EXIT_GRACE {
                tracing::warn!(
                    process = %self.shared.config.name,
                    pid,
                    "the child did not exit after its channel ended; killing it"
                );
                let _ = sys::kill_group(pid);
                exiting.group_killed = true;
            }
            let next = if exiting.group_killed || lent {
                EXIT_POLL
            } else if exiting.watch.is_some() {
                (exiting.since + EXIT_GRACE).saturating_duration_since(now)
            } else {
                EXIT_POLL
            };
            if let Some(fd) = &exiting.watch {
                let _ = poller.modify(fd.as_fd(), Event::readable(self.key));
            }
            self.wake_at = Some(now + next.max(Duration::from_millis(1)));
            return;
        }
        crate::timeline::mark("child exit seen");
        self.unwatch(poller);
        let Stage::Exiting(mut exiting) = std::mem::replace(&mut self.stage, Stage::Over) else {
            unreachable!("checked above")
        };
        self.wake_at = None;
        // Closed before the end is published: whoever it wakes finds no descriptor of
        // this process still open.
        drop(exiting.watch.take());
        let exit = reap::collect(&self.shared, &mut exiting.child);
        match exiting.then {
            AfterExit::Publish {
                report,
                decided_exit,
            } => self.publish(report, decided_exit.unwrap_or(exit)),
            AfterExit::Decide {
                ending,
                output,
                handling_error,
            } => self.decide(
                poller,
                ending,
                output,
                handling_error,
                exiting.number,
                pid,
                exit,
                now,
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn decide(
        &mut self,
        poller: &Poller,
        ending: Ending,
        output: Option<Output>,
        handling_error: bool,
        number: u32,
        pid: u32,
        exit: Exit,
        now: Instant,
    ) {
        let (facts, signal) = {
            let mut inner = self.shared.lock();
            let facts = Circumstances {
                attempt: number,
                lives: self.shared.config.lives,
                handling_error,
                stop_requested: inner.stop_requested,
                kill_requested: inner.kill_requested,
                exit,
            };
            (facts, inner.signal.take())
        };
        // A child killed by an exit signal fails with the signal's error.
        let ending = match (signal, ending) {
            (Some(error), Ending::Vanished { .. }) => Ending::Signalled(error),
            (_, ending) => ending,
        };
        let new_life = match policy::decide(ending, facts) {
            Decision::Deliver => {
                let output = output.expect("a delivered attempt reported an output");
                return self.publish(Ok(output), self.failed_exit.unwrap_or(exit));
            }
            Decision::Fail(error) => {
                self.log_failure(pid, number, &error, "process failed");
                return self.publish(Err(error), self.failed_exit.unwrap_or(exit));
            }
            Decision::Retry { last_life, after } => {
                self.log_failure(pid, number, &after, "attempt failed");
                self.mode = Mode::Run { last_life };
                true
            }
            // No child is spawned only to run `error` (see `StartOptions`): the error is
            // the outcome as it is.
            Decision::HandleError(error) if self.options.no_error_child => {
                self.log_failure(pid, number, &error, "process failed");
                return self.publish(Err(error), exit);
            }
            Decision::HandleError(error) => {
                self.log_failure(pid, number, &error, "attempt failed");
                self.failed_exit = Some(exit);
                self.mode = Mode::HandleError(error);
                false
            }
        };
        // The process starts again in a new child: whatever the last one started died
        // with it (or ended before it), and what it set up in the node goes with it.
        // (The child that only runs `error` is the end of the same attempt: the end
        // comes right after it, and cleans up everything.)
        if new_life {
            crate::node::control::attempt_ended(self.shared.id);
        }
        crate::timeline::mark("next attempt spawn begins");
        match self.spawn(self.mode.clone(), new_life, false) {
            Ok(next) => {
                crate::timeline::mark("next attempt spawned");
                self.stage = Stage::Live(next);
                self.watch(poller);
                self.on_ready(poller, now);
            }
            Err(e) => self.publish(Err(e), exit),
        }
    }

    fn publish(&mut self, report: Result<Output, ProcessError>, exit: Exit) {
        crate::timeline::mark("end published");
        self.stage = Stage::Over;
        reap::publish(&self.shared, report, self.timers.take(), exit);
    }

    fn log_failure(&self, pid: u32, number: u32, error: &ProcessError, what: &str) {
        tracing::warn!(
            process = %self.shared.config.name,
            pid,
            attempt = number,
            lives = self.shared.config.lives,
            "{what}: {error}"
        );
    }

    /// The reactor cannot go on with this supervisor (it panicked, or never got it):
    /// end its process with `error`, killing and reaping what is left of it. `poller`
    /// is where its descriptors are registered, if they are.
    pub(crate) fn abandon(&mut self, poller: Option<&Poller>, error: ProcessError) {
        if let Some(poller) = poller {
            self.unwatch(poller);
        }
        let stage = std::mem::replace(&mut self.stage, Stage::Over);
        let mut child = match stage {
            Stage::Live(attempt) => {
                mailbox::detach(&mut self.shared.lock());
                attempt.into_child()
            }
            Stage::Exiting(exiting) => exiting.child,
            Stage::Over => return,
        };
        let _ = sys::kill_group(child.id());
        let exit = reap::collect(&self.shared, &mut child);
        reap::publish(&self.shared, Err(error), self.timers.take(), exit);
    }
}

/// What an attempt's socket is watched for: reading, and writing while a large start
/// frame is going out.
fn interest(attempt: &Attempt, key: usize) -> Event {
    if attempt.writing() {
        Event::all(key)
    } else {
        Event::readable(key)
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
