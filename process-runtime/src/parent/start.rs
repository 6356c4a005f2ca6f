//! `Process::start`: check and serialize the state, spawn the first attempt, and hand
//! the rest to a supervisor thread.

use std::sync::Arc;

use super::attempt::StartOptions;
use super::shared::Shared;
use super::supervisor::Supervisor;
use crate::wire::handoff::MARKER;
use crate::wire::protocol::POSTCARD_LIMITS;
use crate::{child, sys, Process, ProcessConfig, ProcessError};

/// Starts `obj` with `config`; returns what its handle shares with the supervisor.
pub(crate) fn start<T: Process>(
    obj: &T,
    config: ProcessConfig,
    options: StartOptions,
) -> Result<Arc<Shared>, ProcessError> {
    config.validate()?;
    crate::__set_signal_names(sys::signal_name);
    if std::env::var_os(MARKER).is_some() {
        // We are a re-executed child, yet the child entry never ran: without this check
        // the child would run the user's main again and start children of its own.
        eprintln!(
            "process-runtime: this binary was re-executed as a child but its entry point \
             never ran; mark `main` with #[process_runtime::main]"
        );
        sys::exit_now(child::exit_code::BAD_START);
    }
    let state = postcard::to_allocvec(obj).map_err(|e| {
        ProcessError::State(format!("it does not serialize ({e}); {POSTCARD_LIMITS}"))
    })?;
    // Postcard cannot decode some serde shapes it can encode (`flatten`, untagged
    // enums, `skip_serializing_if`): find out here, not in the child.
    postcard::from_bytes::<T>(&state).map_err(|e| {
        ProcessError::State(format!(
            "it serializes but does not deserialize back ({e}); {POSTCARD_LIMITS}"
        ))
    })?;
    let shared = Arc::new(Shared::new(config));
    let supervisor = Supervisor {
        shared: Arc::clone(&shared),
        tag: T::__registration().tag(),
        state,
        options,
    };
    let first = supervisor.spawn(supervisor.first_mode(), true)?;
    std::thread::Builder::new()
        .name(format!("process-runtime:{}", shared.config.name))
        .stack_size(256 * 1024)
        .spawn(move || supervisor.run(first))
        .map_err(|e| {
            shared.request_kill();
            ProcessError::Io(format!("cannot start the supervisor thread: {e}"))
        })?;
    Ok(shared)
}
