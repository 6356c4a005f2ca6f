//! What an attempt's end means for the process, as pure functions: deliver, retry from
//! the original state, run `error` in a fresh child, or end with which error.
//!
//! Kept apart from the processes and sockets so that every rule can be tested on its
//! own; the supervisor only gathers the facts and carries out the decision.

use std::time::Duration;

use crate::{Exit, ProcessError, Section};

/// How an attempt ended, as far as the policy cares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ending {
    /// The child reported its output.
    Done,
    /// The child reported an error; `last` when `error` already ran (or could not).
    Failed { error: ProcessError, last: bool },
    /// The channel carried something invalid; the child was killed.
    Refused(ProcessError),
    /// A section ran past its limit; the child was killed.
    TimedOut { section: Section, limit: Duration },
    /// End-of-file without a report, in `section` as the beacon last said.
    Vanished { section: Option<Section> },
    /// Killed by an exit signal it did not trap, which makes this error.
    Signalled(ProcessError),
}

/// The facts around an attempt's end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Circumstances {
    /// The attempt's number: 1 for the first.
    pub(crate) attempt: u32,
    /// The process's lives.
    pub(crate) lives: u32,
    /// The attempt only ran `error`, after every life was spent.
    pub(crate) handling_error: bool,
    pub(crate) stop_requested: bool,
    pub(crate) kill_requested: bool,
    /// How the child exited.
    pub(crate) exit: Exit,
}

/// What happens next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// The output is the outcome.
    Deliver,
    /// This error is the outcome.
    Fail(ProcessError),
    /// Start the next attempt from the original state; `after` is the failure that
    /// cost the life.
    Retry {
        last_life: bool,
        after: ProcessError,
    },
    /// Run `error` with this error in a fresh child (the failed one is gone).
    HandleError(ProcessError),
}

/// Decides what an attempt's end means.
///
/// A report is final whatever was requested meanwhile: the child finished before a
/// kill could reach it. A kill ends the process as `Killed`. A failure costs a life; a
/// stopped process is not restarted, and when no life is left `error` receives the last
/// attempt's own error, as it is: a crash stays `Crashed` and a timeout `Timeout`,
/// whatever `lives` was.
pub(crate) fn decide(ending: Ending, c: Circumstances) -> Decision {
    let failure = match ending {
        Ending::Done => return Decision::Deliver,
        Ending::Failed { error, last: true } | Ending::Refused(error) => {
            return Decision::Fail(error)
        }
        _ if c.kill_requested => return Decision::Fail(ProcessError::Killed),
        Ending::Failed { error, last: false } => error,
        Ending::TimedOut { section, limit } => ProcessError::Timeout { section, limit },
        Ending::Vanished { section } => ProcessError::Crashed {
            section,
            exit: c.exit,
        },
        Ending::Signalled(error) => error,
    };
    if c.handling_error {
        Decision::Fail(failure)
    } else if c.attempt < c.lives && !c.stop_requested {
        Decision::Retry {
            last_life: c.attempt + 1 >= c.lives,
            after: failure,
        }
    } else {
        Decision::HandleError(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RemoteError;

    fn facts(attempt: u32, lives: u32) -> Circumstances {
        Circumstances {
            attempt,
            lives,
            handling_error: false,
            stop_requested: false,
            kill_requested: false,
            exit: Exit::Signal(6),
        }
    }

    fn crash() -> Ending {
        Ending::Vanished {
            section: Some(Section::MainLoop),
        }
    }

    fn crashed() -> ProcessError {
        ProcessError::Crashed {
            section: Some(Section::MainLoop),
            exit: Exit::Signal(6),
        }
    }

    #[test]
    fn failures_retry_while_lives_remain_and_the_last_life_is_marked() {
        assert_eq!(
            decide(crash(), facts(1, 3)),
            Decision::Retry {
                last_life: false,
                after: crashed()
            }
        );
        assert_eq!(
            decide(crash(), facts(2, 3)),
            Decision::Retry {
                last_life: true,
                after: crashed()
            }
        );
    }

    #[test]
    fn an_exit_signal_is_a_failure_that_costs_a_life_and_a_kill_wins_over_it() {
        let linked = ProcessError::Exited {
            from: crate::Pid::ROOT,
            reason: Box::new(crate::node::ExitReason::Shutdown),
        };
        assert_eq!(
            decide(Ending::Signalled(linked.clone()), facts(1, 2)),
            Decision::Retry {
                last_life: true,
                after: linked.clone()
            }
        );
        assert_eq!(
            decide(Ending::Signalled(linked.clone()), facts(2, 2)),
            Decision::HandleError(linked.clone())
        );
        let killed = Circumstances {
            kill_requested: true,
            ..facts(1, 2)
        };
        assert_eq!(
            decide(Ending::Signalled(linked), killed),
            Decision::Fail(ProcessError::Killed)
        );
    }

    #[test]
    fn the_error_after_the_last_life_is_the_last_attempts_own() {
        for lives in [1, 3] {
            assert_eq!(
                decide(crash(), facts(lives, lives)),
                Decision::HandleError(crashed())
            );
            let timeout = Ending::TimedOut {
                section: Section::Postloop,
                limit: Duration::from_millis(300),
            };
            assert_eq!(
                decide(timeout, facts(lives, lives)),
                Decision::HandleError(ProcessError::Timeout {
                    section: Section::Postloop,
                    limit: Duration::from_millis(300)
                })
            );
        }
    }

    #[test]
    fn reports_are_final_even_after_a_kill() {
        let mut c = facts(1, 3);
        c.kill_requested = true;
        assert_eq!(decide(Ending::Done, c), Decision::Deliver);
        let e = ProcessError::Preloop(RemoteError::msg("no"));
        assert_eq!(
            decide(
                Ending::Failed {
                    error: e.clone(),
                    last: true
                },
                c
            ),
            Decision::Fail(e)
        );
        assert_eq!(decide(crash(), c), Decision::Fail(ProcessError::Killed));
    }

    #[test]
    fn protocol_refusals_are_not_retried() {
        let e = ProcessError::Protocol("bad".into());
        assert_eq!(
            decide(Ending::Refused(e.clone()), facts(1, 3)),
            Decision::Fail(e)
        );
    }

    #[test]
    fn a_stopped_process_is_not_restarted() {
        let mut c = facts(1, 3);
        c.stop_requested = true;
        assert_eq!(decide(crash(), c), Decision::HandleError(crashed()));
    }

    #[test]
    fn a_failing_error_handler_is_the_outcome() {
        let mut c = facts(3, 3);
        c.handling_error = true;
        assert_eq!(decide(crash(), c), Decision::Fail(crashed()));
    }

    #[test]
    fn an_error_reported_with_lives_left_is_retried() {
        let e = ProcessError::MainLoop(RemoteError::msg("boom"));
        assert_eq!(
            decide(
                Ending::Failed {
                    error: e.clone(),
                    last: false
                },
                facts(1, 2)
            ),
            Decision::Retry {
                last_life: true,
                after: e.clone()
            }
        );
        let mut c = facts(1, 2);
        c.stop_requested = true;
        assert_eq!(
            decide(
                Ending::Failed {
                    error: e.clone(),
                    last: false
                },
                c
            ),
            Decision::HandleError(e)
        );
    }
}
