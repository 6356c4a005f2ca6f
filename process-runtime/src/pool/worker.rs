//! A pool worker, the child side: a process that runs the items it is told, and leaves
//! each result where its parent finds it as soon as it has it.
//!
//! One lap is the rest of a chunk: `preloop` takes the next item (listening for a chunk
//! when none is left), `main_loop` runs it and the items after it, each counted as
//! started, called, and its result committed to the results ring in the shared page
//! (see `ring.rs`), telling the parent when it waits for results; a result too large
//! for the ring ends the lap, and `postloop` sends it as a message. The worker's
//! sections have no limits: its driver holds each item's own (see `driver.rs`), so
//! that waiting for work (`preloop`) and for room to tell never time out, and a process
//! run by `Pool::run` (its "function" runs a whole lifecycle, see `lifecycle.rs`) is
//! held to its own section limits. A panic in the function is caught around that one
//! call and becomes the item's error; the worker goes on. An abort, a segfault or a
//! kill ends the worker in `main_loop`, and the parent blames the item it had started
//! and not answered (see `driver.rs`); the results committed before it are in the ring,
//! dead worker or not.

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
    /// item, in order; `lazy` when the parent waits only for the chunk's end (see
    /// `RingWriter::push_in_chunk`).
    Chunk { call: i64, items: Items, lazy: bool },
    /// No more work: end.
    Quit,
}

/// The inputs of a chunk: each item's position in the input of its call, and its
/// argument's postcard bytes, all arguments end to end in one buffer (one allocation
/// for a chunk on either side, not one per item).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Items {
    #[serde(with = "words")]
    indices: Vec<u64>,
    /// Where each argument ends in `args`.
    #[serde(with = "words")]
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

/// A record of the results ring for item `index` whose value's bytes are `value`,
/// appended to `out`: the postcard bytes of the [`Done`] that says so, written without
/// going through serde, as each item of a chunk is.
pub(crate) fn encode_value_record(index: u64, value: &[u8], out: &mut Vec<u8>) {
    // Postcard's varints of the index and the length, and its variant number of `Ok`,
    // as the derived encoding of `DoneRef` writes them (a test checks they agree).
    push_varint(index, out);
    out.push(0);
    push_varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

/// Appends postcard's varint of `n`: seven bits a byte, low bits first, the high bit
/// set on every byte but the last.
fn push_varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The item and the value's bytes of a record that holds a value, read without building
/// a [`DoneIn`] (whose error side is over a hundred bytes to move about); `None` for a
/// record of an error, or one that does not decode, which [`DoneIn`] reads instead.
pub(crate) fn value_record(record: &[u8]) -> Option<(u64, &[u8])> {
    let (index, rest) = postcard::take_from_bytes::<u64>(record).ok()?;
    let (&variant, rest) = rest.split_first()?;
    if variant != 0 {
        return None;
    }
    let (len, rest) = postcard::take_from_bytes::<u64>(rest).ok()?;
    let len = usize::try_from(len).ok()?;
    (rest.len() == len).then_some((index, rest))
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

/// Numbers as one block of bytes, eight each, little-endian: a chunk's indices and
/// ends go across as fast as a copy, where postcard's varints cost a loop per number on
/// either side.
mod words {
    use serde::de::Error;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(words: &[u64], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        s.serialize_bytes(&bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        let bytes = super::bytes::deserialize(d)?;
        let words = bytes.chunks_exact(8);
        if !words.remainder().is_empty() {
            return Err(D::Error::custom(
                "a block of numbers of a length not a multiple of 8",
            ));
        }
        Ok(words
            .map(|w| u64::from_le_bytes(w.try_into().expect("chunks of 8")))
            .collect())
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
    /// The parent waits only for the end of the current chunk.
    #[serde(skip)]
    lazy: bool,
    /// Chunks received: the current one's number, which its last result tells the
    /// parent (see `RingWriter::push_in_chunk`).
    #[serde(skip)]
    chunks: u64,
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

impl Worker {
    /// Runs item `i` of the chunk and commits its result to the ring; a result that
    /// does not fit there waits in `done`, to be told.
    fn run_item(&mut self, i: usize) {
        let Some(index) = self.items.index(i) else {
            return;
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
                self.record.clear();
                let encoded = match &outcome {
                    Ok(()) => {
                        encode_value_record(index, &self.result, &mut self.record);
                        Ok(())
                    }
                    Err(e) => call::encode_into(
                        &DoneRef {
                            index,
                            outcome: outcome::Ref::Err(e),
                        },
                        &mut self.record,
                    ),
                };
                let ends = (i + 1 == self.items.len()).then_some(self.chunks);
                match encoded {
                    Ok(()) => ring.push_in_chunk(&self.record, ends, self.lazy),
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
    }
}

impl Lifecycle for Worker {
    type Output = ();

    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        if self.ring.is_none() {
            self.ring = RingWriter::of_this_child();
        }
        while self.next >= self.items.len() {
            match cx.listen::<Work>(None)? {
                Work::Chunk { call, items, lazy } => {
                    self.call = call;
                    self.lazy = lazy;
                    self.items = items;
                    self.next = 0;
                    self.chunks += 1;
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

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        let Some(mut i) = self.current.take() else {
            return Ok(());
        };
        // The rest of the chunk runs in this one lap: a lap of the engine per item
        // would cost more than a trivial item does.
        loop {
            self.run_item(i);
            if self.done.is_some() {
                // Told in `postloop`: a death while it is told blames no item.
                return Ok(());
            }
            if self.wake {
                // Its result is committed: a death while this is told blames no item
                // either (it started as many items as it answered).
                self.wake = false;
                cx.tell(&Answer::Ready)?;
            }
            if self.next >= self.items.len() {
                return Ok(());
            }
            i = self.next;
            self.next += 1;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_record_is_the_postcard_encoding_of_its_done() {
        for (index, value) in [
            (0u64, &b""[..]),
            (7, b"\x08"),
            (127, &[1u8; 127][..]),
            (128, &[2u8; 128][..]),
            (u64::MAX, &[3u8; 20_000][..]),
        ] {
            let mut fast = Vec::new();
            encode_value_record(index, value, &mut fast);
            let derived = postcard::to_stdvec(&DoneRef {
                index,
                outcome: outcome::Ref::Ok(value),
            })
            .unwrap();
            assert_eq!(fast, derived, "item {index}");
            assert_eq!(value_record(&fast), Some((index, value)));
            let done: DoneIn<'_> = postcard::from_bytes(&fast).unwrap();
            assert_eq!((done.index, done.outcome.unwrap()), (index, value));
        }
        let error = postcard::to_stdvec(&DoneRef {
            index: 3,
            outcome: outcome::Ref::Err(&ProcessError::Killed),
        })
        .unwrap();
        assert_eq!(value_record(&error), None, "an error is read as a DoneIn");
        let mut short = Vec::new();
        encode_value_record(5, b"abc", &mut short);
        short.pop();
        assert_eq!(value_record(&short), None);
    }
}
