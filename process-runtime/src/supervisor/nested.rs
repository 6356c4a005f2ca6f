//! A supervisor running as a child process of another supervisor: the runtime's own
//! process type whose state is a [`Supervisor`] and whose one `main_loop` runs it.
//!
//! The child's `main_loop` starts the supervisor (its children become this process's
//! children, so they die with it: its process group, and the parent-death signal each
//! child sets) and waits for it to end. A stop from the parent reaches the children
//! directly too (the runtime passes a stop on to a process's children); the waiting
//! loop also looks at the stop flag every [`STOP_CHECK`] and stops the supervisor, so
//! that the process then ends. When the supervisor gives up, `main_loop` fails with its
//! error, and the parent's supervisor sees a failed child.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::running::SupervisorHandle;
use super::Supervisor;
use crate::registry::{Registration, REGISTRY};
use crate::{BoxError, Context, Lifecycle, Outcome, Process, ProcessConfig};

/// How often the waiting `main_loop` looks at its stop flag (the engine offers no wake
/// on a stop; a look costs a relaxed load).
const STOP_CHECK: Duration = Duration::from_millis(20);

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

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        let handle = self.supervisor.clone().start()?;
        let handle = self.running.insert(handle);
        loop {
            if let Some(outcome) = handle.wait_timeout(STOP_CHECK) {
                return outcome.map_err(Into::into);
            }
            if cx.is_stopping() {
                handle.stop();
                return Ok(());
            }
        }
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
