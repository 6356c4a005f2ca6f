//! Types shared by every part of `process-runtime`, with no I/O of their own.
//!
//! This crate holds what both sides of a process agree on: the [`ProcessConfig`] a
//! `#[process(...)]` attribute produces, the [`Lifecycle`] a user implements, the
//! [`Context`] handed to each section, the [`ProcessError`] the parent receives, and
//! the [`Timer`]s that `#[timethis]` fills. Users depend on `process-runtime`, which
//! re-exports all of it; this crate exists so that the types can be used (and tested)
//! without pulling in the spawning machinery.

mod config;
mod context;
mod error;
mod lifecycle;
mod message;
mod pid;
mod timer;

pub use config::{ProcessConfig, Timeouts};
pub use context::Context;
pub use error::{__set_signal_names, Exit, ExitReason, ProcessError, RemoteError, Section};
pub use lifecycle::{BoxError, Lifecycle, Outcome};
pub use message::{
    __Port, __cause, __deadline, __decode, __encode_into, __explain, __tag_of, RecvError, SendError,
};
pub use pid::{Pid, MAX_DEPTH};
pub use timer::{__NamedTimers, __SparseTimer, ProcessTimers, TimeThis, Timer};
