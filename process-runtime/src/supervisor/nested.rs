//! A supervisor running as a child process of another supervisor: the runtime's own
//! process type whose state is a [`Supervisor`] and whose one `main_loop` runs it.
//!
//! The child's `main_loop` starts the supervisor (its children become this process's
//! children, so they die with it: its process group, and the parent-death signal each
//! child sets) and waits for it to end. A stop from the parent first stops the
//! supervisor (it no longer restarts anyone), then reaches the children directly (the
//! runtime passes a stop on to a process's children, see `shutdown.rs`), and the
//! process ends. When the supervisor gives up, `main_loop` fails with its
//! error, and the parent's supervisor sees a failed child.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::running::SupervisorHandle;
use super::Supervisor;
use crate::registry::{Registration, REGISTRY};
use crate::{BoxError, Context, Lifecycle, Outcome, Process, ProcessConfig};

/// A supervisor as a process.
#[derive(Serialize, Deserialize)]
pub(crate) struct SupervisorProcess {
    supervisor: Supervisor,
    #[serde(skip)]
    running: Option<SupervisorHandle>,
}

impl SupervisorProcess {
    /// The state bytes of a process running `supervisor`.
    pub(crate) fn state_of(supervisor: Supervisor) -> Vec<u8> {
        let state = Self {
            supervisor,
            running: None,
        };
        postcard::to_allocvec(&state).expect("a supervisor is plain data and always encodes")
    }

    /// The type's registration tag.
    pub(crate) fn tag() -> &'static str {
        SUPERVISOR_PROCESS.tag()
    }
}

impl Lifecycle for SupervisorProcess {
    type Output = ();

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        let handle = self.supervisor.clone().start()?;
        let board = Arc::clone(&handle.board);
        // A stop from the parent is the only way this process is asked to stop; the
        // supervisor then stops its children in reverse order and ends well.
        crate::shutdown::on_parent_stop(move || board.update(|s| s.stop_requested = true));
        let handle = self.running.insert(handle);
        let outcome = handle.wait();
        if handle.board.lock().stop_requested {
            return Ok(());
        }
        outcome.map_err(Into::into)
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

impl Process for SupervisorProcess {
    fn config() -> ProcessConfig {
        ProcessConfig::new("supervisor").with_num_loops(Some(1))
    }

    fn __registration() -> &'static Registration {
        &SUPERVISOR_PROCESS
    }
}

#[linkme::distributed_slice(REGISTRY)]
static SUPERVISOR_PROCESS: Registration =
    Registration::new::<SupervisorProcess>(concat!(module_path!(), "::SupervisorProcess"));
