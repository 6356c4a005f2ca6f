//! The child side: entered before any user code when the binary was re-executed by a
//! parent; it authenticates, receives the state, runs the engine and reports.

pub(crate) mod engine;
pub(crate) mod entry;
mod fault;
pub(crate) mod port;
mod run;

pub(crate) use engine::panic_location;
pub(crate) use entry::{enter_if_marked, exit_code};
pub(crate) use run::{run, run_with, ChildRun};
