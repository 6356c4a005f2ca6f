//! The results ring: where a pool worker leaves each item's result, in the results area
//! of the page it shares with its parent (see `beacon.rs`), and where its driver reads
//! them.
//!
//! Telling each result as a message costs the worker a system call per item and the
//! parent a wake-up per item, which is most of what a trivial item costs. Written
//! here, a result costs a copy and two atomic operations; the parent is woken only when
//! it waits for results ([`RingReader::wait_ready`] raises a flag, and the worker that
//! finds it raised tells one [`Answer::Ready`](super::worker::Answer)), so fast items
//! come back in batches of whatever finished while the parent was busy, and a slow
//! item's result comes back at once, as before.
//!
//! Nothing is lost when the worker dies, however: a result is in shared memory the
//! moment it is committed, and the parent reads it after the death as before it. The
//! worker also counts the items it starts ([`RingWriter::begin`]), so after a death
//! the parent knows whether the worker was running an item (it started one more than
//! it answered) and so which item to blame: exactly the one it was running.
//!
//! A worker running a process's lifecycle for `Pool::run` also says here which
//! section and which attempt of it runs ([`ItemWords`]), so that its driver holds the
//! process's own section limits and, after a death, names the section it died in.
//!
//! Layout of the area: the child's words (bytes committed, items started, the running
//! process's section and attempt) on one cache line, the parent's (bytes consumed, the waiting flag) on the next, then the
//! data, a ring of records. A record sits at an 8-byte-aligned position: a `u32`
//! length, then that many bytes; one that would not fit before the end of the data is
//! preceded by a [`WRAP`] mark and written from the start. Positions are byte counts
//! since the worker started, so `committed - consumed` is what is waiting.
//!
//! The parent trusts nothing it reads here: a child can write anything into its own
//! area. Counts out of range and records that do not fit are a protocol error, and a
//! record is copied out before it is decoded, so a child that changes it meanwhile only
//! garbles its own result.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::beacon::{Area, Beacon, RESULTS_LEN};
use crate::spin;
use crate::wire::spare;

/// Bytes the worker committed (written by the worker).
const COMMITTED: usize = 0;
/// Items the worker started (written by the worker).
const STARTED: usize = 8;
/// The beacon word of the process the worker runs for `Pool::run` (written by the
/// worker; see `lifecycle.rs`): which section of it runs, as a child's beacon says.
const ITEM_BEACON: usize = 16;
/// Which attempt of that process runs (written by the worker).
const ITEM_ATTEMPT: usize = 24;
/// In a tells ring: the messages the child sent on the socket instead (written by the
/// child, before each), so that a parent that has not read as many knows to wait on
/// the socket rather than on the ring (see `child/port.rs`).
const SOCKET_SENT: usize = 32;
/// The number of the last chunk whose last result the worker committed (written by the
/// worker, before the commit): a parent waiting for the end of a chunk
/// ([`RingReader::wait_ready_for_end`]) knows from it whether that end came already.
const CHUNK_ENDED: usize = 40;
/// Bytes the parent consumed (written by the parent).
const CONSUMED: usize = 64;
/// Set by the parent when it is about to wait for results; cleared by the worker that
/// sees it, which then wakes the parent: with a frame on the socket for
/// [`FRAME_WANTED`], through [`WAKE`] for [`WAKE_WANTED`].
const WAITING: usize = 72;
/// Counts the wake-ups through shared memory: a parent thread waits on this word
/// (`sys::wait_on_word`) instead of the socket, and a commit that finds
/// [`WAKE_WANTED`] raised moves it on and wakes it. A 32-bit word, as waits on shared
/// memory take.
const WAKE: usize = 80;
/// In the waiting flag: tell the parent with a frame on the socket.
const FRAME_WANTED: u64 = 1;
/// In the waiting flag: a parent thread waits on [`WAKE`].
const WAKE_WANTED: u64 = 2;
/// In the waiting flag: tell the parent with a frame once the last result of the chunk
/// is committed, or once the ring is half full, not at each commit: a parent that hands
/// the results on only all together (`map`) is woken once per chunk, not once per
/// handful of results.
const END_WANTED: u64 = 4;
/// Where the records start.
const DATA: usize = 128;
/// Bytes of records.
const CAPACITY: usize = RESULTS_LEN - DATA;
/// The length that says "the next record is at the start of the data".
const WRAP: u32 = u32::MAX;
/// Bytes of a record's length.
const PREFIX: usize = 4;
/// The largest record: larger results go as messages, so that one cannot fill the ring.
pub(crate) const MAX_RECORD: usize = CAPACITY / 4;

const _: () = assert!(CAPACITY % 8 == 0);

/// The bytes a record takes in the ring: its length and its bytes, to the next 8.
fn footprint(len: usize) -> usize {
    (PREFIX + len).next_multiple_of(8)
}

fn word(area: Area, offset: usize) -> &'static AtomicU64 {
    // SAFETY: the header words are inside the area (DATA < RESULTS_LEN), 8-aligned in
    // a page-aligned area, and valid while the area is (its owner keeps it: for ever in
    // the child, the `Arc<Beacon>` in the reader). Atomics have no invalid values.
    unsafe { area.as_ptr().add(offset).cast::<AtomicU64>().as_ref() }
}

fn wake_word(area: Area) -> &'static AtomicU32 {
    // SAFETY: as for `word`: WAKE is inside the header, 4-aligned; AtomicU32 has no
    // invalid values.
    unsafe { area.as_ptr().add(WAKE).cast::<AtomicU32>().as_ref() }
}

fn data(area: Area) -> NonNull<u8> {
    // SAFETY: DATA < RESULTS_LEN: inside the area.
    unsafe { area.as_ptr().add(DATA) }
}

/// The worker's side: commits results, counts the items it starts.
#[derive(Debug)]
pub(crate) struct RingWriter {
    area: Area,
    committed: u64,
    started: u64,
    /// What the parent had consumed when last looked at: the parent's cache line is
    /// read again only when this says the ring is too full, not on every record.
    consumed: u64,
}

/// What became of a result offered to the ring.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Committed; `wake` when the parent waits for it and must be told.
    Committed { wake: bool },
    /// Too large for the ring, or no room now: it goes as a message.
    NoRoom,
}

impl RingWriter {
    /// The ring of this child's page; `None` in a process that is not a child.
    pub(crate) fn of_this_child() -> Option<Self> {
        crate::beacon::child_results().map(Self::new)
    }

    /// A writer for a fresh area (zero-filled: nothing committed, nothing started).
    pub(crate) fn new(area: Area) -> Self {
        Self {
            area,
            committed: 0,
            started: 0,
            consumed: 0,
        }
    }

    /// An item starts: counted before it runs, so that a death while it runs blames it.
    /// The words of a process item are reset first: what the last item left there
    /// does not describe this one.
    pub(crate) fn begin(&mut self) {
        word(self.area, ITEM_BEACON).store(crate::beacon::NOT_STARTED, Ordering::Relaxed);
        word(self.area, ITEM_ATTEMPT).store(0, Ordering::Relaxed);
        self.started += 1;
        // Relaxed: the parent reads it only once this process is gone.
        word(self.area, STARTED).store(self.started, Ordering::Relaxed);
    }

    /// Commits `record` as the next result.
    pub(crate) fn push(&mut self, record: &[u8]) -> Pushed {
        self.push_in_chunk(record, None, false)
    }

    /// Commits `record` as the next result, the last one of the worker's chunk number
    /// `ends` if it is one. With `lazy` (the parent waits only for the ends of chunks,
    /// [`RingReader::wait_ready_for_end`]), a result that ends no chunk is committed
    /// without a full fence: it is in the shared page all the same, dead worker or not,
    /// and a parent that raises its flag meanwhile is told at the next commit, at the
    /// latest at the chunk's end, which is fenced.
    pub(crate) fn push_in_chunk(&mut self, record: &[u8], ends: Option<u64>, lazy: bool) -> Pushed {
        if record.len() > MAX_RECORD {
            return Pushed::NoRoom;
        }
        let at = self.offset();
        let to_end = CAPACITY - at;
        let need = footprint(record.len());
        let skip = if need > to_end { to_end } else { 0 };
        if skip + need > self.free() {
            self.consumed = word(self.area, CONSUMED).load(Ordering::Acquire);
            if skip + need > self.free() {
                return Pushed::NoRoom;
            }
        }
        let base = data(self.area);
        if skip > 0 {
            // SAFETY: `at` is 8-aligned and below CAPACITY, so 4 bytes fit there; the
            // parent reads no byte past `committed`, and this one is not committed yet.
            unsafe { write_bytes(base, at, &WRAP.to_le_bytes()) };
            self.committed += skip as u64;
        }
        let at = self.offset();
        let len = u32::try_from(record.len()).expect("records are at most MAX_RECORD");
        // SAFETY: `need` bytes from `at` are inside the data (checked above, after the
        // wrap) and not committed, so the parent does not read them.
        unsafe {
            write_bytes(base, at, &len.to_le_bytes());
            write_bytes(base, at + PREFIX, record);
        }
        self.committed += need as u64;
        if let Some(chunk) = ends {
            // Before the commit, which publishes it.
            word(self.area, CHUNK_ENDED).store(chunk, Ordering::Relaxed);
        }
        // SeqCst with the flag below, against the parent's pair in `wait_ready`: either
        // the parent sees this commit before it waits, or this side sees that it waits.
        // The fence waits for every store before it to reach the cache, more than an
        // item of a trivial function costs: a lazy commit does without it.
        let (store, load) = if lazy && ends.is_none() {
            (Ordering::Release, Ordering::Relaxed)
        } else {
            (Ordering::SeqCst, Ordering::SeqCst)
        };
        word(self.area, COMMITTED).store(self.committed, store);
        // Loaded before it is swapped: the flag shares the parent's cache line, and a
        // swap on every record would take that line from the parent each time.
        let flag = word(self.area, WAITING);
        let raised = flag.load(load);
        let now = raised & (FRAME_WANTED | WAKE_WANTED) != 0
            || (raised & END_WANTED != 0 && (ends.is_some() || self.half_full()));
        let waiting = if now {
            flag.swap(0, Ordering::SeqCst)
        } else {
            0
        };
        if waiting & WAKE_WANTED != 0 {
            wake_waiter(self.area);
        }
        Pushed::Committed {
            wake: waiting & (FRAME_WANTED | END_WANTED) != 0,
        }
    }

    /// Whether more than half the ring waits for the parent, as it reads it now.
    fn half_full(&mut self) -> bool {
        let half = (CAPACITY / 2) as u64;
        if self.committed - self.consumed <= half {
            return false;
        }
        self.consumed = word(self.area, CONSUMED).load(Ordering::Acquire);
        self.committed.saturating_sub(self.consumed) > half
    }

    /// Says that the child's `sent`th message goes on the socket rather than the ring
    /// (a tells ring only).
    pub(crate) fn sent_on_socket(&self, sent: u64) {
        word(self.area, SOCKET_SENT).store(sent, Ordering::SeqCst);
    }

    /// Bytes free in the ring, as far as the last look at the parent's count says.
    fn free(&self) -> usize {
        let used =
            usize::try_from(self.committed.saturating_sub(self.consumed)).unwrap_or(CAPACITY);
        CAPACITY.saturating_sub(used)
    }

    fn offset(&self) -> usize {
        // The remainder is below CAPACITY, which fits a usize.
        (self.committed % CAPACITY as u64) as usize
    }
}

/// Copies `bytes` into the data at `base + at`.
///
/// # Safety
/// `at + bytes.len()` is at most CAPACITY, and the parent does not read those bytes
/// (they are not committed).
unsafe fn write_bytes(base: NonNull<u8>, at: usize, bytes: &[u8]) {
    // SAFETY: inside the data, as the caller promises; `bytes` is this process's own
    // memory, so the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), base.as_ptr().add(at), bytes.len());
    }
}

/// The parent's side: reads the results a worker committed, in order.
#[derive(Debug)]
pub(crate) struct RingReader {
    /// Keeps the mapping, and with it the area, for as long as this reader lives.
    beacon: Arc<Beacon>,
    area: Area,
    consumed: u64,
    /// Where a record is copied before it is handed on.
    record: Vec<u8>,
}

impl RingReader {
    /// A reader of the results area of `beacon`, the page of a worker that has
    /// committed nothing yet.
    pub(crate) fn new(beacon: Arc<Beacon>) -> Self {
        let area = beacon.results();
        Self::on(beacon, area)
    }

    /// A reader of the tells area of `beacon` (see `child/port.rs`), the page of a
    /// child that has told nothing yet.
    pub(crate) fn tells(beacon: Arc<Beacon>) -> Self {
        let area = beacon.tells();
        Self::on(beacon, area)
    }

    fn on(beacon: Arc<Beacon>, area: Area) -> Self {
        Self {
            beacon,
            area,
            consumed: 0,
            record: Vec::new(),
        }
    }

    /// Hands every record committed so far to `each`, in order, and frees their room.
    /// Stops at the first error of `each`, after freeing the room of the records before
    /// it.
    ///
    /// # Errors
    /// Counts or lengths that no worker following the protocol writes, as text; or
    /// the error of `each`.
    pub(crate) fn drain<E: From<String>>(
        &mut self,
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.drain_with(&mut |record: &mut Vec<u8>| each(record))
    }

    /// As [`drain`](Self::drain), handing each record over as a vector of its own,
    /// copied once out of the ring.
    ///
    /// # Errors
    /// As [`drain`](Self::drain).
    pub(crate) fn drain_owned<E: From<String>>(
        &mut self,
        mut each: impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.drain_with(&mut |record: &mut Vec<u8>| each(std::mem::take(record)))
    }

    fn drain_with<E: From<String>>(
        &mut self,
        each: &mut impl FnMut(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let committed = word(self.area, COMMITTED).load(Ordering::SeqCst);
        let result = self.read_to(committed, each);
        word(self.area, CONSUMED).store(self.consumed, Ordering::Release);
        result
    }

    fn read_to<E: From<String>>(
        &mut self,
        committed: u64,
        each: &mut impl FnMut(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        if committed < self.consumed || committed - self.consumed > CAPACITY as u64 {
            return Err(format!(
                "the ring says {committed} bytes were committed, with {} read",
                self.consumed
            )
            .into());
        }
        let base = data(self.area);
        while self.consumed < committed {
            let waiting = committed - self.consumed;
            let at = (self.consumed % CAPACITY as u64) as usize;
            let mut prefix = [0u8; PREFIX];
            // SAFETY: `at` is 8-aligned (every step below is a multiple of 8) and below
            // CAPACITY, so 4 bytes fit; they were committed, so the worker is done with
            // them. Any bytes are a valid [u8; 4].
            unsafe { copy_out(base, at, prefix.as_mut_ptr(), PREFIX) };
            let len = u32::from_le_bytes(prefix);
            if len == WRAP {
                let skip = (CAPACITY - at) as u64;
                if skip > waiting {
                    return Err(format!("a wrap mark past the {waiting} bytes committed").into());
                }
                self.consumed += skip;
                continue;
            }
            let len = len as usize;
            let need = footprint(len);
            if len > MAX_RECORD || at + need > CAPACITY || need as u64 > waiting {
                return Err(format!(
                    "a record of {len} bytes at {at}, with {waiting} bytes committed"
                )
                .into());
            }
            if self.record.capacity() < len {
                // A record handed on owns its vector: the next comes in a spare one.
                let smaller = std::mem::replace(&mut self.record, spare::take(len));
                spare::give(smaller);
            }
            self.record.clear();
            // SAFETY: `len` bytes after the prefix are inside the data and committed
            // (checked above); copied out, so that the worker cannot change them while
            // they are decoded. The vector has room for `len` bytes (above), all of
            // which the copy writes before the length covers them, so none is read
            // unwritten; any bytes are valid u8s. Not zeroed first: each byte is
            // written once.
            unsafe {
                copy_out(base, at + PREFIX, self.record.as_mut_ptr(), len);
                self.record.set_len(len);
            }
            self.consumed += need as u64;
            each(&mut self.record)?;
        }
        Ok(())
    }

    /// Raises the waiting flag before the parent waits for a message, so that the
    /// worker tells one when it commits its next result. Returns `false`, with the flag
    /// lowered, when results were committed meanwhile: drain them instead of waiting.
    pub(crate) fn wait_ready(&self) -> bool {
        let flag = word(self.area, WAITING);
        flag.fetch_or(FRAME_WANTED, Ordering::SeqCst);
        if word(self.area, COMMITTED).load(Ordering::SeqCst) != self.consumed {
            flag.fetch_and(!FRAME_WANTED, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// As [`wait_ready`](Self::wait_ready), for a parent that waits for the end of
    /// the worker's chunk number `chunk`: the worker tells it only once that chunk's
    /// last result is committed, or the ring is half full. Returns `false`, with the
    /// flag lowered, when either is the case already.
    pub(crate) fn wait_ready_for_end(&self, chunk: u64) -> bool {
        let flag = word(self.area, WAITING);
        flag.fetch_or(END_WANTED, Ordering::SeqCst);
        // The worker stores the chunk's end before the commit that publishes it.
        let committed = word(self.area, COMMITTED).load(Ordering::SeqCst);
        let ended = word(self.area, CHUNK_ENDED).load(Ordering::Acquire) >= chunk;
        if ended || committed.saturating_sub(self.consumed) > (CAPACITY / 2) as u64 {
            flag.fetch_and(!END_WANTED, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// The count of wake-ups through shared memory, read before a last look at what
    /// to wait for: [`wait_committed`](Self::wait_committed) returns at once if it
    /// moved since.
    pub(crate) fn wakes(&self) -> u32 {
        wake_word(self.area).load(Ordering::SeqCst)
    }

    /// Waits on this thread, up to `timeout`, until the worker commits a record or
    /// anyone calls [`wake_waiter`], unless either happened since `wakes` was read
    /// (see [`wakes`](Self::wakes)). Returns early for no reason now and then: callers
    /// look again.
    ///
    /// It watches the ring for a while first (see `spin.rs`), without raising the flag:
    /// a record committed meanwhile costs neither side a system call.
    pub(crate) fn wait_committed(&self, wakes: u32, timeout: Option<Duration>) {
        let budget = timeout.map_or(spin::BUDGET, |t| t.min(spin::BUDGET));
        if spin::watch(budget, || self.moved(wakes)) {
            return;
        }
        word(self.area, WAITING).fetch_or(WAKE_WANTED, Ordering::SeqCst);
        if word(self.area, COMMITTED).load(Ordering::SeqCst) != self.consumed {
            return;
        }
        crate::sys::wait_on_word(wake_word(self.area), wakes, timeout);
    }

    /// Whether a record was committed or a wake-up counted since `wakes` was read.
    fn moved(&self, wakes: u32) -> bool {
        word(self.area, COMMITTED).load(Ordering::Acquire) != self.consumed
            || wake_word(self.area).load(Ordering::Acquire) != wakes
    }

    /// Whether records were committed that this reader has not drained.
    pub(crate) fn has_records(&self) -> bool {
        word(self.area, COMMITTED).load(Ordering::SeqCst) != self.consumed
    }

    /// The messages the child sent on the socket rather than the ring, as it last said
    /// (a tells ring only).
    pub(crate) fn sent_on_socket(&self) -> u64 {
        word(self.area, SOCKET_SENT).load(Ordering::SeqCst)
    }

    /// The page this ring is in.
    pub(crate) fn beacon(&self) -> &Beacon {
        &self.beacon
    }

    /// Items the worker started, as it last said; read once it is gone, it tells
    /// whether it was running one.
    pub(crate) fn started(&self) -> u64 {
        word(self.area, STARTED).load(Ordering::Acquire)
    }

    /// The section word and the attempt of the process item the worker runs (or ran
    /// last), as it last said.
    pub(crate) fn item(&self) -> (u64, u32) {
        let attempt = word(self.area, ITEM_ATTEMPT).load(Ordering::Acquire);
        (
            word(self.area, ITEM_BEACON).load(Ordering::Acquire),
            u32::try_from(attempt).unwrap_or(u32::MAX),
        )
    }
}

/// Where the worker says which section and attempt of a process item runs: the words
/// the engine and the lifecycle item write (see `lifecycle.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ItemWords {
    /// The beacon word the engine stores each section start into.
    pub(crate) beacon: &'static AtomicU64,
    attempt: &'static AtomicU64,
}

impl ItemWords {
    /// The words of this child's ring; outside a child (a unit test), words of plain
    /// memory that nobody reads.
    pub(crate) fn of_this_child() -> Self {
        static BEACON: AtomicU64 = AtomicU64::new(crate::beacon::NOT_STARTED);
        static ATTEMPT: AtomicU64 = AtomicU64::new(0);
        match crate::beacon::child_results() {
            Some(area) => Self {
                beacon: word(area, ITEM_BEACON),
                attempt: word(area, ITEM_ATTEMPT),
            },
            None => Self {
                beacon: &BEACON,
                attempt: &ATTEMPT,
            },
        }
    }

    /// Attempt `n` of the item starts: before its first section.
    pub(crate) fn begin_attempt(&self, n: u32) {
        self.beacon
            .store(crate::beacon::NOT_STARTED, Ordering::Relaxed);
        self.attempt.store(u64::from(n), Ordering::Release);
    }
}

/// Raises the waiting flag of `area` for a parent that waits without draining the ring
/// itself (it waits for whoever reads the child's socket to do it): the child's next
/// commit tells the parent. Returns whether records wait already, committed and not
/// yet consumed: then there is nothing to wait for, only a drain to ask for.
pub(crate) fn raise_waiting(area: Area) -> bool {
    word(area, WAITING).fetch_or(FRAME_WANTED, Ordering::SeqCst);
    word(area, COMMITTED).load(Ordering::SeqCst) != word(area, CONSUMED).load(Ordering::SeqCst)
}

/// Wakes a parent thread in [`RingReader::wait_committed`] on `area`, if there is one:
/// the worker after a commit, or the parent's event loop when something else than a
/// record arrived for the thread (on the socket).
pub(crate) fn wake_waiter(area: Area) {
    let word = wake_word(area);
    word.fetch_add(1, Ordering::SeqCst);
    crate::sys::wake_word(word);
}

/// Copies `len` bytes of the data at `base + at` to `out`.
///
/// # Safety
/// `at + len` is at most CAPACITY, and `out` is valid for writing `len` bytes of this
/// process's own memory.
unsafe fn copy_out(base: NonNull<u8>, at: usize, out: *mut u8, len: usize) {
    // SAFETY: inside the data, as the caller promises, and `out` is this process's own
    // memory, so the two do not overlap. The bytes may be written by the worker at the
    // same time only if it breaks the protocol; any value read is a valid u8 and is
    // checked by its decoder.
    unsafe {
        std::ptr::copy_nonoverlapping(base.as_ptr().add(at), out, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer and a reader on one area of plain memory, as a worker and its parent
    /// share one.
    fn pair() -> (RingWriter, RingReader) {
        let area = Area::leaked_for_test();
        let (beacon, _fd) = Beacon::create(1).unwrap();
        (
            RingWriter::new(area),
            RingReader::on(Arc::new(beacon), area),
        )
    }

    fn drain(reader: &mut RingReader) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::new();
        reader.drain(|r| {
            out.push(r.to_vec());
            Ok::<(), String>(())
        })?;
        Ok(out)
    }

    #[test]
    fn records_come_out_in_order_and_free_their_room() {
        let (mut w, mut r) = pair();
        assert_eq!(drain(&mut r).unwrap(), Vec::<Vec<u8>>::new());
        for n in 0..5u8 {
            assert!(matches!(
                w.push(&vec![n; usize::from(n)]),
                Pushed::Committed { .. }
            ));
        }
        let out = drain(&mut r).unwrap();
        assert_eq!(out.len(), 5);
        for (n, rec) in (0..5u8).zip(&out) {
            assert_eq!(rec, &vec![n; usize::from(n)]);
        }
        assert_eq!(word(w.area, CONSUMED).load(Ordering::Relaxed), w.committed);
    }

    #[test]
    fn the_ring_wraps_and_refuses_what_does_not_fit() {
        let (mut w, mut r) = pair();
        assert_eq!(w.push(&vec![0u8; MAX_RECORD + 1]), Pushed::NoRoom);
        let big = vec![7u8; MAX_RECORD];
        let mut pushed = 0;
        while w.push(&big) != Pushed::NoRoom {
            pushed += 1;
        }
        assert_eq!(
            pushed, 3,
            "three records of a quarter, each with its prefix"
        );
        assert_eq!(drain(&mut r).unwrap().len(), 3);
        // Records of many sizes, the parent reading only when the ring is full: every
        // one comes out whole and in order, across many wraps.
        let (mut sent, mut got) = (Vec::new(), Vec::new());
        for n in 0..2000usize {
            let rec = vec![(n % 251) as u8; (n * 7919) % 5000];
            if w.push(&rec) == Pushed::NoRoom {
                got.extend(drain(&mut r).unwrap());
                assert!(matches!(w.push(&rec), Pushed::Committed { .. }));
            }
            sent.push(rec);
        }
        got.extend(drain(&mut r).unwrap());
        assert_eq!(got, sent);
        assert!(w.committed > 20 * CAPACITY as u64, "wrapped many times");
    }

    #[test]
    fn the_worker_wakes_the_parent_only_when_it_waits() {
        let (mut w, mut r) = pair();
        assert_eq!(w.push(b"a"), Pushed::Committed { wake: false });
        assert!(!r.wait_ready(), "a result is there: no wait");
        drain(&mut r).unwrap();
        assert!(r.wait_ready());
        assert_eq!(w.push(b"b"), Pushed::Committed { wake: true });
        assert_eq!(w.push(b"c"), Pushed::Committed { wake: false }, "told once");
        assert_eq!(drain(&mut r).unwrap(), [b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn a_parent_waiting_for_a_chunk_end_is_woken_at_its_end_or_a_half_full_ring() {
        let (mut w, mut r) = pair();
        assert!(r.wait_ready_for_end(1));
        assert_eq!(
            w.push_in_chunk(b"a", None, true),
            Pushed::Committed { wake: false }
        );
        assert_eq!(
            w.push_in_chunk(b"b", Some(1), true),
            Pushed::Committed { wake: true }
        );
        assert_eq!(drain(&mut r).unwrap(), [b"a".to_vec(), b"b".to_vec()]);
        assert!(!r.wait_ready_for_end(1), "that chunk ended already");
        // A ring past half full wakes it before the end.
        assert!(r.wait_ready_for_end(2));
        let big = vec![1u8; MAX_RECORD];
        assert_eq!(
            w.push_in_chunk(&big, None, true),
            Pushed::Committed { wake: false }
        );
        assert_eq!(
            w.push_in_chunk(b"c", None, true),
            Pushed::Committed { wake: false }
        );
        // A quarter and a bit, twice: past half.
        assert_eq!(
            w.push_in_chunk(&big, None, true),
            Pushed::Committed { wake: true }
        );
        assert!(!r.wait_ready_for_end(2), "more than half is waiting");
        assert_eq!(drain(&mut r).unwrap().len(), 3);
        assert!(r.wait_ready_for_end(2));
    }

    #[test]
    fn the_started_count_tells_whether_an_item_was_running() {
        let (mut w, r) = pair();
        assert_eq!(r.started(), 0);
        w.begin();
        w.push(b"done");
        w.begin();
        assert_eq!(r.started(), 2);
    }

    #[test]
    fn what_no_worker_writes_is_refused() {
        // Committed past what the ring holds.
        let (w, mut r) = pair();
        word(w.area, COMMITTED).store(CAPACITY as u64 + 8, Ordering::Relaxed);
        assert!(drain(&mut r).unwrap_err().contains("committed"));
        // Committed behind what was read.
        let (mut w, mut r) = pair();
        w.push(b"x");
        drain(&mut r).unwrap();
        word(w.area, COMMITTED).store(0, Ordering::Relaxed);
        assert!(drain(&mut r).is_err());
        // A length past what was committed, or past the largest record.
        for len in [100u32, MAX_RECORD as u32 + 1, WRAP - 1] {
            let (mut w, mut r) = pair();
            w.push(b"12345678");
            // SAFETY: the first record's prefix, inside the area.
            unsafe { write_bytes(data(w.area), 0, &len.to_le_bytes()) };
            let e = drain(&mut r).unwrap_err();
            assert!(e.contains(&format!("a record of {len} bytes")), "{e}");
        }
        // A wrap mark that jumps past what was committed.
        let (mut w, mut r) = pair();
        w.push(b"1234");
        // SAFETY: as above.
        unsafe { write_bytes(data(w.area), 0, &WRAP.to_le_bytes()) };
        assert!(drain(&mut r).unwrap_err().contains("wrap"));
    }

    #[test]
    fn a_worker_and_its_parent_share_the_ring_through_the_page() {
        let (parent, fd) = Beacon::create(100).unwrap();
        let child = Beacon::open(&fd).unwrap();
        let mut w = RingWriter::new(child.results());
        let mut r = RingReader::new(Arc::new(parent));
        w.begin();
        w.push(b"through the page");
        assert_eq!(r.started(), 1);
        assert_eq!(drain(&mut r).unwrap(), [b"through the page".to_vec()]);
        // The area is the page's last bytes, apart from the taken bitmap.
        let taken = child.taken();
        assert!(taken.mark(99));
        assert_eq!(word(w.area, COMMITTED).load(Ordering::Relaxed), w.committed);
        drop(child);
    }
}
