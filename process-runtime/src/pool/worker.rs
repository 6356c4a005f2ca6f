//! A pool worker, the child side: a process that runs the items it is told, one per lap,
//! and leaves each result where its parent finds it as soon as it has it.
//!
//! One lap is one item: `preloop` takes the next item (listening for a chunk when none
//! is left), `main_loop` counts the item as started, calls the function on it and
//! commits the result to the results ring in the shared page (see `ring.rs`),
//! `postloop` tells the parent when it waits for results (or sends a result too large
//! for the ring). So the pool's per-item limit is simply the worker's `main_loop`
//! timeout; waiting for work (`preloop`) and for room to tell (`postloop`) have no
//! limit. A panic in the function is caught around that one call and becomes the
//! item's error; the worker goes on. An abort, a segfault or a kill ends the worker in
//! `main_loop`, and the parent blames the item it had started and not answered (see
//! `driver.rs`); the results committed before it are in the ring, dead worker or not.

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};

use serde::{Deserialize, Serialize};

use super::ring::{Pushed, RingWriter};
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
    #[serde(with = "bytes")]
    pub(crate) arg: Vec<u8>,
}

/// The result of one item: the result's postcard bytes, or the error. Its postcard
/// bytes are a record of the results ring.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Done {
    pub(crate) index: u64,
    #[serde(with = "outcome")]
    pub(crate) outcome: Result<Vec<u8>, ProcessError>,
}

/// Bytes as one block. Postcard writes a `Vec<u8>` the same way (a length, then the
/// bytes), but reads it back one element at a time unless told it is bytes.
mod bytes {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer, T: AsRef<[u8]>>(
        bytes: &T,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes.as_ref())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(Bytes)
    }

    struct Bytes;

    impl<'de> Visitor<'de> for Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element()? {
                v.push(b);
            }
            Ok(v)
        }
    }
}

/// A result's bytes as one block (see [`bytes`]), in the shape of a `Result`.
mod outcome {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::ProcessError;

    #[derive(Serialize)]
    enum Ref<'a> {
        Ok(#[serde(with = "super::bytes")] &'a Vec<u8>),
        Err(&'a ProcessError),
    }

    #[derive(Deserialize)]
    enum Owned {
        Ok(#[serde(with = "super::bytes")] Vec<u8>),
        Err(ProcessError),
    }

    pub(super) fn serialize<S: Serializer>(
        outcome: &Result<Vec<u8>, ProcessError>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match outcome {
            Ok(bytes) => Ref::Ok(bytes),
            Err(e) => Ref::Err(e),
        }
        .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Result<Vec<u8>, ProcessError>, D::Error> {
        Ok(match Owned::deserialize(d)? {
            Owned::Ok(bytes) => Ok(bytes),
            Owned::Err(e) => Err(e),
        })
    }
}

/// What a worker tells its parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Answer {
    /// Results are in the ring, and the parent said it waits for them.
    Ready,
    /// A result that does not fit the ring now, after every result in it.
    Done(Done),
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
    /// The result of this lap's item, when it did not fit the ring: told in
    /// `postloop`.
    #[serde(skip)]
    done: Option<Done>,
    /// The item this lap runs, taken in `preloop`.
    #[serde(skip)]
    current: Option<Item>,
    /// Where results go; `None` only outside a child (then each is told).
    #[serde(skip)]
    ring: Option<RingWriter>,
    /// The parent waits for results in the ring: tell it in `postloop`.
    #[serde(skip)]
    wake: bool,
    /// A result's record, reused.
    #[serde(skip)]
    record: Vec<u8>,
}

impl Lifecycle for Worker {
    type Output = ();

    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        if self.ring.is_none() {
            self.ring = RingWriter::of_this_child();
        }
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
        if let Some(ring) = &mut self.ring {
            ring.begin();
        }
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
        let done = Done {
            index: item.index,
            outcome,
        };
        let pushed = match &mut self.ring {
            Some(ring) => {
                self.record.clear();
                match postcard::to_extend(&done, std::mem::take(&mut self.record)) {
                    Ok(record) => {
                        self.record = record;
                        ring.push(&self.record)
                    }
                    Err(_) => Pushed::NoRoom,
                }
            }
            None => Pushed::NoRoom,
        };
        match pushed {
            Pushed::Committed { wake } => self.wake |= wake,
            Pushed::NoRoom => self.done = Some(done),
        }
        Ok(())
    }

    fn postloop(&mut self, cx: &mut Context) -> Outcome {
        if let Some(done) = self.done.take() {
            // The message wakes the parent, which reads the ring before it.
            self.wake = false;
            cx.tell(&Answer::Done(done))?;
        } else if self.wake {
            self.wake = false;
            cx.tell(&Answer::Ready)?;
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
