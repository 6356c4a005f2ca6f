//! A program for `tests/shutdown.rs` with `#[process_runtime::main(signals = false)]`.
//!
//! ```text
//! shutdown_off <dir> <mode>
//! ```
//!
//! Starts one worker, writes `<dir>/ready` once it runs, then waits for its result.
//! Modes: `off` leaves SIGTERM and SIGINT alone (a signal ends the program at once);
//! `explicit` calls `process_runtime::shutdown_on_signals()` first, as a program
//! without the attribute would.

#[path = "../shutdown_tree/workers.rs"]
mod workers;

use process_runtime::prelude::*;
use workers::{pid_of, report, Worker};

#[process_runtime::main(signals = false)]
fn main() -> Result<(), ProcessError> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("a directory");
    let mode = args.next().expect("a mode");
    match mode.as_str() {
        "off" => {}
        "explicit" => process_runtime::shutdown_on_signals()?,
        other => panic!("unknown mode {other}"),
    }
    let worker = Worker {
        dir: dir.clone(),
        name: "worker".into(),
        finish_ms: 0,
    }
    .start()?;
    pid_of(&dir, "worker");
    report(&dir, "ready", "ready");
    let result = worker.result();
    report(&dir, "main.returned", &format!("{result:?}"));
    Ok(())
}
