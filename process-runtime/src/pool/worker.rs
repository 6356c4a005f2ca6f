//! A pool worker, the child side: a process that runs the items it is told, one per lap,
//! and tells each result back as soon as it has it.
//!
//! One lap is one item: `preloop` takes the next item (listening for a chunk when none
//! is left), `main_loop` calls the function on it, `postloop` tells the result. So the
//! beacon says, at every moment, whether an item is running, and the pool's per-item
//! limit is simply the worker's `main_loop` timeout; waiting for work (`preloop`) and
//! for room to tell a result (`postloop`) have no limit. A panic in the function is
//! caught around that one call and becomes the item's error; the worker goes on. An
//! abort, a segfault or a kill ends the worker in `main_loop`, and the parent blames
//! the item whose result it did not get (see `driver.rs`).

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};

use serde::{Deserialize, Serialize};

use crate::call;
use crate::child::panic_location;
use crate::registry::{Registration, REGISTRY};
use crate::{
    BoxError, Context, Lifecycle, Outcome, Process, ProcessConfig, ProcessError, RemoteError,
};

/// What the parent tells a worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Work {
    /// Call the function whose trampoline is at offset `call` (see `call.rs`) on each
    /// item, in order.
    Chunk { call: i64, items: Vec<Item> },
    /// No more work: end.
    Quit,
}

/// One input of a pool call: its position in the input, and its postcard bytes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Item {
    pub(crate) index: u64,
    pub(crate) arg: Vec<u8>,
}

/// What a worker tells back for each item: the result's postcard bytes, or the error.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Done {
    pub(crate) index: u64,
    pub(crate) outcome: Result<Vec<u8>, ProcessError>,
}

/// The worker's state lives only in the child: what the parent sends is empty.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct Worker {
    /// The trampoline's offset for the items of the current chunk.
    #[serde(skip)]
    call: i64,
    /// The current chunk's items not run yet.
    #[serde(skip)]
    items: VecDeque<Item>,
    /// The result of this lap's item, to tell in `postloop`.
    #[serde(skip)]
    done: Option<Done>,
    /// The item this lap runs, taken in `preloop`.
    #[serde(skip)]
    current: Option<Item>,
}

impl Lifecycle for Worker {
    type Output = ();

    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        while self.items.is_empty() {
            match cx.listen::<Work>(None)? {
                Work::Chunk { call, items } => {
                    self.call = call;
                    self.items = items.into();
                }
                Work::Quit => {
                    cx.stop();
                    return Ok(());
                }
            }
        }
        self.current = self.items.pop_front();
        Ok(())
    }

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        let Some(item) = self.current.take() else {
            return Ok(());
        };
        // SAFETY: `call` is an offset the parent computed with `offset_of` and told this
        // worker, a re-executed copy of its own executable, on the authenticated
        // channel; see `trampoline_at`.
        let function = unsafe { call::trampoline_at(self.call) };
        let outcome = match panic::catch_unwind(AssertUnwindSafe(|| function(&item.arg))) {
            Ok(result) => result.map_err(ProcessError::from),
            // The call is this lap's `main_loop`, as it is for `spawn`.
            Err(payload) => Err(ProcessError::MainLoop(RemoteError::from_panic(
                payload.as_ref(),
                panic_location::take(),
            ))),
        };
        self.done = Some(Done {
            index: item.index,
            outcome,
        });
        Ok(())
    }

    fn postloop(&mut self, cx: &mut Context) -> Outcome {
        if let Some(done) = self.done.take() {
            cx.tell(&done)?;
        }
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

impl Process for Worker {
    fn config() -> ProcessConfig {
        ProcessConfig::new("pool worker")
    }

    fn __registration() -> &'static Registration {
        &WORKER
    }
}

#[linkme::distributed_slice(REGISTRY)]
static WORKER: Registration = Registration::new::<Worker>(concat!(module_path!(), "::Worker"));
