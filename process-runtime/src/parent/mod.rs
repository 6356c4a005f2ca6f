//! The parent side: what a [`Handle`](crate::Handle) shares with the supervision of its
//! process, and the supervision itself.
//!
//! - [`start`] checks and serializes the state and starts the supervisor.
//! - [`spawn`] re-executes the binary from one long-lived thread.
//! - [`attempt`] is one child: an explicit state machine that frames, ticks and
//!   end-of-file move on, with no blocking call of its own.
//! - [`deadline`] holds section timeouts from the beacon's samples.
//! - [`policy`] decides, as pure functions, what a failure means: retry, run `error`
//!   in a fresh child, or end with which error.
//! - [`reactor`] is the one event loop that drives every process's supervisor.
//! - [`supervisor`] feeds an attempt its events, reaps it, and applies the policy, as a
//!   state machine that never blocks the loop.
//! - [`reap`] ends a process: exit, group cleanup, reaping, publishing; possibly on the
//!   thread of a caller waiting for it.
//! - [`mailbox`] holds the messages between the handle and the child; [`slots`] keeps
//!   the slots of the child's mailbox that hold messages it has not taken.
//! - [`reading`] lends a child's socket to a caller waiting in `listen`.
//! - [`warm`] keeps children started ahead of time, for `keep_warm`.
//! - [`shared`] is the state the handle and the supervisor share; [`wakers`] wakes the
//!   async waiters on it when it changes, and at their deadlines.
//! - [`tree`] lists the processes that may still run, for a shutdown.

pub(crate) mod attempt;
pub(crate) mod deadline;
pub(crate) mod mailbox;
pub(crate) mod policy;
pub(crate) mod reactor;
pub(crate) mod reading;
pub(crate) mod reap;
pub(crate) mod shared;
pub(crate) mod slots;
pub(crate) mod spawn;
pub(crate) mod start;
pub(crate) mod supervisor;
pub(crate) mod tells;
pub(crate) mod tree;
pub(crate) mod wakers;
pub(crate) mod warm;
