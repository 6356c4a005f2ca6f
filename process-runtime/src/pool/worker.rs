//! A pool worker, the child side: a process that runs the items it is told, one per lap,
//! and leaves each result where its parent finds it as soon as it has it.
//!
//! One lap is one item: `preloop` takes the next item (listening for a chunk when none
//! is left), `main_loop` counts the item as started, calls the function on it and
//! commits the result to the results ring in the shared page (see `ring.rs`),
//! `postloop` tells the parent when it waits for results (or sends a result too large
//! for the ring). The worker's sections have no limits: its driver holds each item's
//! own (see `driver.rs`), so that waiting for work (`preloop`) and for room to tell
//! (`postloop`) never time out, and a process run by `Pool::run` (its "function" runs
//! a whole lifecycle, see `lifecycle.rs`) is held to its own section limits. A panic in the function is caught around that one call and becomes the
//! item's error; the worker goes on. An abort, a segfault or a kill ends the worker in
//! `main_loop`, and the parent blames the item it had started and not answered (see
//! `driver.rs`); the results committed before it are in the ring, dead worker or not.

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
    Chunk { call: i64, items: Items },
    /// No more work: end.
    Quit,
}

/// The inputs of a chunk: each item's position in the input of its call, and its
/// argument's postcard bytes, all arguments end to end in one buffer (one allocation
/// for a chunk on either side, not one per item).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Items {
    indices: Vec<u64>,
    /// Where each argument ends in `args`.
    ends: Vec<u64>,
    #[serde(with = "bytes")]
    args: Vec<u8>,
}

impl Items {
    pub(crate) fn with_capacity(items: usize) -> Self {
        Self {
            indices: Vec::with_capacity(items),
            ends: Vec::with_capacity(items),
            args: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.indices.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The position in its call's input of item `i` of the chunk, if there is one.
    pub(crate) fn index(&self, i: usize) -> Option<u64> {
        self.indices.get(i).copied()
    }

    /// The argument's bytes of item `i` (none for an item that is not there).
    pub(crate) fn arg(&self, i: usize) -> &[u8] {
        let start = match i.checked_sub(1) {
            Some(before) => self.ends.get(before).copied().unwrap_or(0),
            None => 0,
        };
        let end = self.ends.get(i).copied().unwrap_or(start);
        let range = usize::try_from(start).unwrap_or(usize::MAX)..usize::try_from(end).unwrap_or(0);
        self.args.get(range).unwrap_or_default()
    }

    /// Bytes of all the arguments.
    pub(crate) fn arg_bytes(&self) -> usize {
        self.args.len()
    }

    /// Adds item `index`, whose argument `write` appends to the arguments (it leaves
    /// them as they were when it fails: then nothing is added).
    pub(crate) fn push_with<E>(
        &mut self,
        index: u64,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        write(&mut self.args)?;
        self.indices.push(index);
        self.ends.push(self.args.len() as u64);
        Ok(())
    }

    /// Item `i` alone.
    pub(crate) fn one(&self, i: usize) -> Items {
        let mut one = Items::with_capacity(1);
        if let Some(index) = self.index(i) {
            let arg = self.arg(i);
            let _ = one.push_with(index, |args| {
                args.extend_from_slice(arg);
                Ok::<(), ()>(())
            });
        }
        one
    }

    /// The items from `at` on, taken out of these.
    pub(crate) fn split_off(&mut self, at: usize) -> Items {
        let at = at.min(self.len());
        let base = at
            .checked_sub(1)
            .and_then(|before| self.ends.get(before).copied())
            .unwrap_or(0);
        let base_at = usize::try_from(base)
            .unwrap_or(self.args.len())
            .min(self.args.len());
        Items {
            indices: self.indices.split_off(at),
            ends: self
                .ends
                .split_off(at)
                .into_iter()
                .map(|e| e - base)
                .collect(),
            args: self.args.split_off(base_at),
        }
    }
}

/// The result of one item: the result's postcard bytes, or the error. Its postcard
/// bytes are a record of the results ring.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Done {
    pub(crate) index: u64,
    #[serde(with = "outcome")]
    pub(crate) outcome: Result<Vec<u8>, ProcessError>,
}

/// A [`Done`] that borrows its bytes, encoded the same way: what a worker writes to its
/// ring without copying the result into a `Done` of its own.
#[derive(Serialize)]
struct DoneRef<'a> {
    index: u64,
    outcome: outcome::Ref<'a>,
}

/// A [`Done`] read with its bytes borrowed from the record: what the parent reads from
/// the ring, to copy the bytes straight into the batch for the caller.
#[derive(Deserialize)]
pub(crate) struct DoneIn<'a> {
    pub(crate) index: u64,
    #[serde(borrow, with = "outcome::borrowed")]
    pub(crate) outcome: Result<&'a [u8], ProcessError>,
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

    /// A `Result` of bytes, borrowed.
    #[derive(Serialize)]
    pub(super) enum Ref<'a> {
        Ok(#[serde(with = "super::bytes")] &'a [u8]),
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

    /// The same shape, its bytes borrowed from the input.
    pub(super) mod borrowed {
        use serde::{Deserialize, Deserializer};

        use crate::ProcessError;

        #[derive(Deserialize)]
        enum In<'a> {
            Ok(&'a [u8]),
            Err(ProcessError),
        }

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Result<&'de [u8], ProcessError>, D::Error> {
            Ok(match In::deserialize(d)? {
                In::Ok(bytes) => Ok(bytes),
                In::Err(e) => Err(e),
            })
        }
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
    /// The current chunk's items.
    #[serde(skip)]
    items: Items,
    /// The next of them to run.
    #[serde(skip)]
    next: usize,
    /// The item this lap runs, taken in `preloop`.
    #[serde(skip)]
    current: Option<usize>,
    /// The result of this lap's item, when it did not fit the ring: told in
    /// `postloop`.
    #[serde(skip)]
    done: Option<Done>,
    /// Where results go; `None` only outside a child (then each is told).
    #[serde(skip)]
    ring: Option<RingWriter>,
    /// The parent waits for results in the ring: tell it in `postloop`.
    #[serde(skip)]
    wake: bool,
    /// The result's bytes, and its record, reused from item to item.
    #[serde(skip)]
    result: Vec<u8>,
    #[serde(skip)]
    record: Vec<u8>,
}

impl Lifecycle for Worker {
    type Output = ();

    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        if self.ring.is_none() {
            self.ring = RingWriter::of_this_child();
        }
        while self.next >= self.items.len() {
            match cx.listen::<Work>(None)? {
                Work::Chunk { call, items } => {
                    self.call = call;
                    self.items = items;
                    self.next = 0;
                }
                Work::Quit => {
                    cx.stop();
                    return Ok(());
                }
            }
        }
        self.current = Some(self.next);
        self.next += 1;
        Ok(())
    }

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        let Some(i) = self.current.take() else {
            return Ok(());
        };
        let Some(index) = self.items.index(i) else {
            return Ok(());
        };
        if let Some(ring) = &mut self.ring {
            ring.begin();
        }
        // SAFETY: `call` is an offset the parent computed with `offset_of` and told this
        // worker, a re-executed copy of its own executable, on the authenticated
        // channel; see `trampoline_at`.
        let function = unsafe { call::trampoline_at(self.call) };
        let (arg, result) = (self.items.arg(i), &mut self.result);
        result.clear();
        let outcome = match panic::catch_unwind(AssertUnwindSafe(|| function(arg, result))) {
            Ok(called) => called.map_err(ProcessError::from),
            // The call is this lap's `main_loop`, as it is for `spawn`.
            Err(payload) => Err(ProcessError::MainLoop(RemoteError::from_panic(
                payload.as_ref(),
                panic_location::take(),
            ))),
        };
        let pushed = match &mut self.ring {
            Some(ring) => {
                let done = DoneRef {
                    index,
                    outcome: match &outcome {
                        Ok(()) => outcome::Ref::Ok(&self.result),
                        Err(e) => outcome::Ref::Err(e),
                    },
                };
                self.record.clear();
                match call::encode_into(&done, &mut self.record) {
                    Ok(()) => ring.push(&self.record),
                    Err(_) => Pushed::NoRoom,
                }
            }
            None => Pushed::NoRoom,
        };
        match pushed {
            Pushed::Committed { wake } => self.wake |= wake,
            Pushed::NoRoom => {
                self.done = Some(Done {
                    index,
                    outcome: outcome.map(|()| self.result.clone()),
                });
            }
        }
        Ok(())
    }

    fn postloop(&mut self, cx: &mut Context) -> Outcome {
        if let Some(done) = self.done.take() {
            // The message wakes the parent, which settles it in its place among the
            // results in the ring.
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
