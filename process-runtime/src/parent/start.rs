//! `Process::start`: check and serialize the state, spawn the first attempt, hand the
//! rest to the [event loop](super::reactor), and register the process for a
//! [shutdown](super::tree).

use std::sync::Arc;

use super::attempt::StartOptions;
use super::reactor;
use super::shared::Shared;
use super::supervisor::Supervisor;
use super::tree;
use crate::wire::handoff::MARKER;
use crate::wire::protocol::POSTCARD_LIMITS;
use crate::{child, node, sys, transfer, Process, ProcessConfig, ProcessError};

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
    // The descriptors of its `Transfer`s are duplicates the supervisor keeps until the
    // process ends; every attempt is sent its own.
    let (state, fds) = transfer::collect(|| postcard::to_allocvec(obj)).map_err(|e| {
        ProcessError::State(format!(
            "it does not serialize ({}); {POSTCARD_LIMITS}",
            process_core::__cause(&e)
        ))
    })?;
    // Postcard cannot decode some serde shapes it can encode (`flatten`, untagged
    // enums, `skip_serializing_if`): find out here, not in the child (with duplicates
    // of the descriptors, closed again at once).
    let copies = fds
        .iter()
        .map(|fd| fd.try_clone())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ProcessError::Io(format!("duplicating a descriptor of the state: {e}")))?;
    transfer::with_received(copies, || postcard::from_bytes::<T>(&state)).map_err(|e| {
        ProcessError::State(format!(
            "it serializes but does not deserialize back ({}); {POSTCARD_LIMITS}",
            process_core::__cause(&e)
        ))
    })?;
    start_encoded(
        T::__registration().tag(),
        state,
        fds.into(),
        config,
        options,
    )
}

/// Starts the process type registered as `tag` from its state's postcard bytes, known
/// to decode, and the descriptors of its `Transfer`s; for starts that hold no typed
/// value (a supervisor's children).
pub(crate) fn start_encoded(
    tag: &'static str,
    state: Vec<u8>,
    fds: Arc<[std::os::fd::OwnedFd]>,
    config: ProcessConfig,
    options: StartOptions,
) -> Result<Arc<Shared>, ProcessError> {
    config.validate()?;
    // Refused while a shutdown stops every process; otherwise registered once running,
    // so that a shutdown finds it.
    let ticket = tree::begin_start()?;
    let mut shared = Shared::new(config, node::local::new_child_pid()?);
    shared.stop_message.clone_from(&options.stop_message);
    let shared = Arc::new(shared);
    let mut supervisor = Supervisor::new(Arc::clone(&shared), tag, state, fds, options);
    // In the node's table before it exists, so that what is sent to it meanwhile
    // waits in its mailbox.
    node::local::enter_child(&shared);
    node::control::born(shared.id);
    if let Err(e) = supervisor.spawn_first() {
        node::local::remove_child(shared.id);
        node::control::ended(shared.id, node::ExitReason::Error(e.clone())).send();
        return Err(e);
    }
    reactor::adopt(supervisor)?;
    if let Some(port) = child::port::port() {
        // This child is a parent now: its event loop reads from its own parent too.
        port.watch_from_loop();
    }
    ticket.register(&shared);
    Ok(shared)
}
