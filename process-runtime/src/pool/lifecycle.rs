//! `Pool::run`: a process type's whole lifecycle as a pool item, on a warm worker.
//!
//! An item of `run` is an ordinary pool item whose "function" is [`run_item`] for the
//! process type: the worker calls it like any function (see `worker.rs`), and it runs
//! the state through the child's own engine (`child/engine.rs`), the one a started
//! process runs in, so sections, laps, `num_loops`, `join_in`, `cx.stop()`, `error` and
//! the wrapping of errors by section are the same code. What differs is around it:
//!
//! - **The argument** is an [`ItemHeader`] (which attempt this is, and the error to
//!   hand `error` when only `error` is left to run), then the state's postcard bytes,
//!   the original ones, which every attempt decodes afresh.
//! - **Lives.** A section error or a panic is caught by the engine, so the worker
//!   retries at once, from the original bytes, while lives remain, and calls `error`
//!   on the last one's failure. A crash or a timeout kills the worker: its driver
//!   reads which attempt died ([`ItemWords`]) and queues the item again with the next
//!   attempt, or with the error for `error` to run on a fresh worker
//!   ([`after_death`]), as a started process's supervisor decides (`parent/policy.rs`).
//! - **Section limits.** The engine stores each section start into the worker's item
//!   beacon ([`ItemWords`], in the results area the driver reads), and the driver
//!   holds the type's own `#[process(timeout...)]` limits on it (see `driver.rs`).
//! - **The context** has no parent to talk to: `cx.tell` and `cx.listen` return
//!   `Ended`, since the worker's channel carries the pool's own messages.
//! - **Stops.** The process checks the worker's own stop flag ([`ItemStop`]), so that a
//!   stop from above (a graceful shutdown) stops it as it stops a started process:
//!   the current section finishes, then `on_finish` and `result`, and no life is
//!   spent after it. A stop the process asked for itself (`cx.stop()`) is cleared
//!   once it is over, so that it ends that process, not the worker.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::ring::ItemWords;
use crate::call::{self, CallError, Trampoline};
use crate::child::engine;
use crate::wire::protocol::POSTCARD_LIMITS;
use crate::{Context, Pid, Process, ProcessError};

/// What precedes the state in the argument of a process item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ItemHeader {
    /// The attempt to run: 1 for the first.
    pub(crate) attempt: u32,
    /// Every life is spent and this was the last one's error: only `error` runs.
    pub(crate) error: Option<ProcessError>,
}

impl ItemHeader {
    /// The header of a fresh item.
    pub(crate) const FIRST: ItemHeader = ItemHeader {
        attempt: 1,
        error: None,
    };
}

/// The argument of a process item as the caller's side encodes it: the header, then
/// the state, end to end (postcard writes a struct's fields one after the other).
#[derive(Serialize)]
pub(crate) struct Staged<P> {
    header: ItemHeader,
    state: P,
}

impl<P> Staged<P> {
    pub(crate) fn first(state: P) -> Self {
        Self {
            header: ItemHeader::FIRST,
            state,
        }
    }
}

/// Splits the argument of a process item into its header and the state's bytes.
pub(crate) fn split(arg: &[u8]) -> Result<(ItemHeader, &[u8]), postcard::Error> {
    postcard::take_from_bytes(arg)
}

/// The argument of the same item with another header.
pub(crate) fn restage(header: &ItemHeader, state: &[u8], out: &mut Vec<u8>) -> bool {
    if call::encode_into(header, out).is_err() {
        return false;
    }
    out.extend_from_slice(state);
    true
}

/// The code offset of [`run_item`] for `P`, to name it to a worker as a function.
pub(crate) fn offset_of<P: Process>() -> i64 {
    let run: Trampoline = run_item::<P>;
    call::offset_of_trampoline(run)
}

/// The stop flag of the process item a worker runs (one at a time): the worker's own,
/// which its parent sets to stop it.
struct ItemStop {
    stop: &'static AtomicBool,
    /// Set with `stop` when the stop came from the worker's parent.
    from_parent: &'static AtomicBool,
}

impl ItemStop {
    fn of_this_worker() -> Self {
        static STOP: AtomicBool = AtomicBool::new(false);
        static FROM_PARENT: AtomicBool = AtomicBool::new(false);
        let (stop, from_parent) =
            crate::shutdown::child_stop_flags().unwrap_or((&STOP, &FROM_PARENT));
        Self { stop, from_parent }
    }

    /// Whether the worker's parent asked it to stop.
    fn asked_by_parent(&self) -> bool {
        self.from_parent.load(Ordering::Acquire)
    }

    /// Clears a stop the process asked for itself: it ended that process (or
    /// attempt) only. One from the parent stays, for the worker.
    fn clear_own(&self) {
        if !self.asked_by_parent() {
            self.stop.store(false, Ordering::Relaxed);
        }
    }
}

/// Runs the lifecycle of the `P` whose header and state are `arg`, in the worker, and
/// appends its output's bytes to `out`; its failure, once its lives are spent and
/// `error` did not recover, is [`CallError::Failed`].
fn run_item<P: Process>(arg: &[u8], out: &mut Vec<u8>) -> Result<(), CallError> {
    let (header, state) = split(arg)
        .map_err(|e| CallError::Argument(format!("a pool item's header does not decode: {e}")))?;
    let words = ItemWords::of_this_child();
    let config = P::config();
    let me = crate::node::local::self_pid();
    let parent_pid = crate::sys::parent_pid();
    let stop = ItemStop::of_this_worker();
    let mut attempt = header.attempt.max(1);
    let mut last_error = header.error;
    let outcome = loop {
        words.begin_attempt(attempt);
        stop.clear_own();
        let mut obj: P = postcard::from_bytes(state).map_err(|e| {
            CallError::Argument(format!(
                "the worker cannot decode the state, a `{}` ({e}); {POSTCARD_LIMITS}",
                std::any::type_name::<P>()
            ))
        })?;
        let mut cx = Context::__new(
            config.clone(),
            stop.stop,
            std::process::id(),
            parent_pid,
            attempt,
        )
        .__with_ids(me, me.parent().unwrap_or(Pid::ROOT));
        if let Some(error) = last_error.take() {
            break engine::handle_error(&mut obj, &mut cx, error, words.beacon);
        }
        match engine::run(&mut obj, &mut cx, words.beacon, || {}) {
            Ok(output) => break Ok(output),
            // The last attempt's own error, as a started process's `error` gets it; a
            // process stopped from above is not restarted.
            Err(error) if attempt >= config.lives || stop.asked_by_parent() => {
                break engine::handle_error(&mut obj, &mut cx, error, words.beacon)
            }
            Err(_) => attempt += 1,
        }
    };
    stop.clear_own();
    let output = outcome.map_err(CallError::Failed)?;
    call::encode_into(&output, out).map_err(|e| {
        CallError::Output(format!(
            "the worker cannot encode the output, a `{}` ({e}); {POSTCARD_LIMITS}",
            std::any::type_name::<P::Output>()
        ))
    })
}

/// What becomes of a process item whose worker died while it ran (`failure` says how,
/// in the item's own section), at `attempt` of `lives`, `handling_error` when only its
/// `error` was running: as for a started process, the next attempt from the original
/// state while lives remain, then `error` with the last attempt's own failure, and a
/// death in `error` is the outcome.
pub(crate) fn after_death(
    failure: ProcessError,
    attempt: u32,
    lives: u32,
    handling_error: bool,
) -> Result<ItemHeader, ProcessError> {
    if handling_error {
        Err(failure)
    } else if attempt < lives {
        Ok(ItemHeader {
            attempt: attempt + 1,
            error: None,
        })
    } else {
        Ok(ItemHeader {
            attempt,
            error: Some(failure),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Exit, Section};

    fn crash() -> ProcessError {
        ProcessError::Crashed {
            section: Some(Section::Postloop),
            exit: Exit::Signal(6),
        }
    }

    #[test]
    fn the_header_comes_off_and_back_on_the_original_state() {
        let arg = postcard::to_allocvec(&Staged::first((7u32, "state".to_owned()))).unwrap();
        let (header, state) = split(&arg).unwrap();
        assert_eq!(header, ItemHeader::FIRST);
        assert_eq!(
            postcard::from_bytes::<(u32, String)>(state).unwrap(),
            (7, "state".to_owned())
        );
        let next = ItemHeader {
            attempt: 3,
            error: Some(crash()),
        };
        let mut again = Vec::new();
        assert!(restage(&next, state, &mut again));
        let (header, same) = split(&again).unwrap();
        assert_eq!(header, next);
        assert_eq!(same, state);
    }

    #[test]
    fn a_death_costs_a_life_then_error_runs_then_it_is_the_outcome() {
        assert_eq!(
            after_death(crash(), 1, 3, false),
            Ok(ItemHeader {
                attempt: 2,
                error: None
            })
        );
        assert_eq!(
            after_death(crash(), 3, 3, false),
            Ok(ItemHeader {
                attempt: 3,
                error: Some(crash())
            }),
            "the last attempt's own error, as it is"
        );
        assert_eq!(
            after_death(crash(), 1, 1, false).unwrap().error,
            Some(crash())
        );
        assert_eq!(after_death(crash(), 3, 3, true), Err(crash()));
    }
}
