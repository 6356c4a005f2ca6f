//! The work a pool has to do: chunks of items waiting for a worker, each chunk tied to
//! the call (`map`, `imap`, ...) it belongs to.
//!
//! Every item read from a call's input gets exactly one result, delivered to that
//! call's [`Job`]: by a driver when the worker answers or dies, and, for an item still
//! in a [`Chunk`] when the chunk is dropped (a call cancelled, the pool shut down, a
//! bug unwinding a driver), by the chunk itself. So no path can leave a caller waiting
//! for an item that nobody runs any more. Results go to the call's inbox (see `inbox.rs`)
//! in batches of whatever a driver read at once, gathered in the chunk, which hands on
//! what it gathered when it is dropped too.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::inbox::Inbox;
use super::worker::Items;
use crate::{ProcessError, Timeouts};

/// Results of items, handed to the caller together: each item's index and its result,
/// the postcard bytes of what the function returned (end to end in one buffer, so that
/// a batch costs two allocations however many items it holds) or the error.
///
/// An entry is an index and where its bytes end: 16 bytes, where a
/// `Result<_, ProcessError>` is over a hundred; the errors, rare, wait apart. A batch of
/// a thousand trivial results is so a few kilobytes to write and to read, not a hundred.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    bytes: Vec<u8>,
    /// Each result's item and where its bytes end in `bytes` ([`ERRED`] for an error).
    entries: Vec<(u64, usize)>,
    /// The errors, in the order of their entries.
    errors: Vec<ProcessError>,
}

/// The end of an entry whose result is the next of the batch's errors.
const ERRED: usize = usize::MAX;

impl Batch {
    /// Adds the result of item `index`.
    pub(crate) fn push(&mut self, index: u64, result: Result<&[u8], ProcessError>) {
        match result {
            Ok(bytes) => self.push_ok(index, bytes),
            Err(error) => {
                self.errors.push(error);
                self.entries.push((index, ERRED));
            }
        }
    }

    /// Adds the bytes of item `index`'s value.
    pub(crate) fn push_ok(&mut self, index: u64, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        self.entries.push((index, self.bytes.len()));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Results in the batch.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Hands each result to `each`, in order, with its bytes borrowed from the batch.
    pub(crate) fn for_each(self, mut each: impl FnMut(u64, Result<&[u8], ProcessError>)) {
        let Batch {
            bytes,
            entries,
            errors,
        } = self;
        let mut errors = errors.into_iter();
        let mut start = 0;
        for (index, end) in entries {
            if end == ERRED {
                // One error per entry that says so, pushed together.
                if let Some(error) = errors.next() {
                    each(index, Err(error));
                }
            } else {
                each(index, Ok(&bytes[start..end]));
                start = end;
            }
        }
    }
}

/// The rules of the process type a `Pool::run` call runs (see `lifecycle.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcessRules {
    /// Its own section limits, which the driver holds.
    pub(crate) timeouts: Timeouts,
    /// Its attempts before `error` runs.
    pub(crate) lives: u32,
}

/// One call on the pool, as the drivers see it: where its results go.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) inbox: Inbox,
    /// For a call of `Pool::run`: the items are processes, with these rules.
    pub(crate) process: Option<ProcessRules>,
    /// The caller takes the results only all together (`map`, `run`): a driver need
    /// not hand them on as they come, only by the end of each chunk.
    pub(crate) whole: bool,
    cancelled: AtomicBool,
    /// Items finished and the nanoseconds their chunks took, for the chunk size.
    finished: AtomicU64,
    nanos: AtomicU64,
}

impl Job {
    pub(crate) fn new(process: Option<ProcessRules>, whole: bool) -> Self {
        Self {
            inbox: Inbox::default(),
            process,
            whole,
            cancelled: AtomicBool::new(false),
            finished: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
        }
    }

    /// The caller is gone: its chunks need not run.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// A chunk of `items` items took `took`, from the moment it was told to a worker to
    /// its last result.
    pub(crate) fn record(&self, items: usize, took: Duration) {
        self.finished.fetch_add(items as u64, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The mean time per item of the chunks finished so far, once there are some.
    pub(crate) fn time_per_item(&self) -> Option<Duration> {
        let finished = self.finished.load(Ordering::Relaxed);
        (finished > 0).then(|| Duration::from_nanos(self.nanos.load(Ordering::Relaxed) / finished))
    }
}

/// What the pool remembers of an item between attempts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marks {
    /// Attempts that failed (a panic, a crash or a timeout while it ran).
    pub(crate) failures: u32,
    /// Times it was lost with a worker that died while it was not running it (killed
    /// while waiting, or while telling the result before it), so it was not blamed.
    pub(crate) losses: u32,
}

/// Items of one call, run in order by one worker. `items[settled..]` have no result
/// yet; when the chunk is dropped, each of them gets `dropped_error`.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) job: Arc<Job>,
    /// The trampoline's offset (see `call.rs`).
    pub(crate) call: i64,
    pub(crate) items: Items,
    pub(crate) marks: Vec<Marks>,
    pub(crate) settled: usize,
    /// Results not handed to the caller yet (see [`Chunk::flush`]).
    ready: Batch,
}

impl Chunk {
    pub(crate) fn new(job: Arc<Job>, call: i64, items: Items) -> Self {
        let marks = vec![Marks::default(); items.len()];
        Self::with_marks(job, call, items, marks)
    }

    pub(crate) fn with_marks(job: Arc<Job>, call: i64, items: Items, marks: Vec<Marks>) -> Self {
        Self {
            job,
            call,
            items,
            marks,
            settled: 0,
            ready: Batch::default(),
        }
    }

    /// The next item without a result gets `result` (the bytes of the function's
    /// value, or the error), handed to the caller at the next [`Chunk::flush`].
    pub(crate) fn settle(&mut self, result: Result<&[u8], ProcessError>) {
        if let Some(index) = self.items.index(self.settled) {
            self.ready.push(index, result);
        }
        self.settled += 1;
    }

    /// [`Chunk::settle`] with the bytes of the function's value.
    pub(crate) fn settle_value(&mut self, bytes: &[u8]) {
        if let Some(index) = self.items.index(self.settled) {
            self.ready.push_ok(index, bytes);
        }
        self.settled += 1;
    }

    /// Hands the results settled so far to the caller.
    pub(crate) fn flush(&mut self) {
        if !self.ready.is_empty() {
            self.job.inbox.deliver(std::mem::take(&mut self.ready));
        }
    }

    /// Gives every item without a result `error`, and hands every result to the caller.
    pub(crate) fn fail_rest(&mut self, error: &ProcessError) {
        while self.settled < self.items.len() {
            self.settle(Err(error.clone()));
        }
        self.flush();
    }

    /// The items without a result, as a chunk of their own (this one is left with none).
    pub(crate) fn split_rest(&mut self) -> Option<Chunk> {
        if self.settled >= self.items.len() {
            return None;
        }
        let items = self.items.split_off(self.settled);
        let marks = self.marks.split_off(self.settled);
        Some(Chunk::with_marks(
            Arc::clone(&self.job),
            self.call,
            items,
            marks,
        ))
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if self.settled < self.items.len() {
            self.fail_rest(&dropped_error());
        }
        self.flush();
    }
}

/// The result of an item whose chunk was dropped before it ran: only seen by a caller
/// when a driver thread failed.
fn dropped_error() -> ProcessError {
    ProcessError::Io("the pool dropped this item before it ran (a pool thread failed)".into())
}

/// The chunks waiting for a worker, oldest first; retried ones go to the front.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct State {
    chunks: VecDeque<Chunk>,
    closed: bool,
    /// Drivers waiting for a chunk: a chunk queued while every driver is busy wakes
    /// nobody, and costs no system call (`map` queues all its chunks at once).
    idle: usize,
    /// Workers lent to callers (see [`Queue::lend`]).
    lent: usize,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a chunk of new work.
    pub(crate) fn push_back(&self, chunk: Chunk) {
        let mut state = self.lock();
        state.chunks.push_back(chunk);
        self.wake_one(state);
    }

    /// Adds a chunk to run before anything else: items to retry.
    pub(crate) fn push_front(&self, chunk: Chunk) {
        let mut state = self.lock();
        state.chunks.push_front(chunk);
        self.wake_one(state);
    }

    /// Wakes a driver for the chunk just queued, if one waits: every waiting driver
    /// while workers are lent, as the one woken could be a driver whose worker is.
    fn wake_one(&self, state: MutexGuard<'_, State>) {
        let (idle, lent) = (state.idle, state.lent);
        drop(state);
        if idle > 0 && lent > 0 {
            self.ready.notify_all();
        } else if idle > 0 {
            self.ready.notify_one();
        }
    }

    /// Waits for the next chunk of a call that is not cancelled, while the driver's
    /// worker is not lent, and marks it `busy` under the same lock; `None` once the
    /// queue is closed.
    pub(crate) fn take(&self, busy: &AtomicBool) -> Option<Chunk> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return None;
            }
            let next = if busy.load(Ordering::SeqCst) {
                None
            } else {
                state.chunks.pop_front()
            };
            match next {
                Some(chunk) if chunk.job.is_cancelled() => drop(chunk),
                Some(chunk) => {
                    busy.store(true, Ordering::SeqCst);
                    return Some(chunk);
                }
                None => {
                    state.idle += 1;
                    state = self
                        .ready
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                    state.idle -= 1;
                }
            }
        }
    }

    /// Lends a caller the first of `slots` whose worker is idle (its `busy` flag,
    /// which `busy` finds, is down), marking it busy: its driver takes no chunk until
    /// it is given back. `None` when every worker is busy, or the queue is closed.
    pub(crate) fn lend<'s, S>(
        &self,
        slots: &'s [S],
        busy: impl Fn(&S) -> &AtomicBool,
    ) -> Option<&'s S> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        let slot = slots.iter().find(|s| !busy(s).load(Ordering::SeqCst))?;
        busy(slot).store(true, Ordering::SeqCst);
        state.lent += 1;
        Some(slot)
    }

    /// Gives back a worker [`lend`](Queue::lend) lent: its driver takes chunks again,
    /// and is woken for one queued meanwhile.
    pub(crate) fn give_back(&self, busy: &AtomicBool) {
        let mut state = self.lock();
        busy.store(false, Ordering::SeqCst);
        state.lent -= 1;
        let waiting = !state.chunks.is_empty() && state.idle > 0;
        drop(state);
        if waiting {
            self.ready.notify_all();
        }
    }

    /// Removes the chunks of a cancelled call.
    pub(crate) fn remove_job(&self, job: &Arc<Job>) {
        let removed: VecDeque<Chunk> = {
            let mut state = self.lock();
            let (gone, kept) = std::mem::take(&mut state.chunks)
                .into_iter()
                .partition(|c| Arc::ptr_eq(&c.job, job));
            state.chunks = kept;
            gone
        };
        // Dropped outside the lock: each tells the (gone) caller about its items.
        drop(removed);
    }

    /// No more work: wakes every driver waiting for some, and drops what is queued.
    pub(crate) fn close(&self) {
        let left = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.chunks)
        };
        self.ready.notify_all();
        drop(left);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(range: std::ops::Range<u64>) -> Items {
        let mut items = Items::with_capacity(range.clone().count());
        for index in range {
            items
                .push_with(index, |args| {
                    args.extend(std::iter::repeat_n(index as u8, index as usize % 3));
                    Ok::<(), ()>(())
                })
                .unwrap();
        }
        items
    }

    #[test]
    fn a_batch_hands_back_each_result_with_its_own_bytes() {
        let mut batch = Batch::default();
        assert!(batch.is_empty());
        batch.push(4, Ok(&[1, 2, 3]));
        batch.push(2, Err(ProcessError::Killed));
        batch.push(9, Ok(&[]));
        batch.push(7, Ok(&[5]));
        let mut seen = Vec::new();
        batch.for_each(|i, r| seen.push((i, r.map(<[u8]>::to_vec))));
        assert_eq!(
            seen,
            [
                (4, Ok(vec![1, 2, 3])),
                (2, Err(ProcessError::Killed)),
                (9, Ok(vec![])),
                (7, Ok(vec![5]))
            ]
        );
    }

    #[test]
    fn packed_items_split_and_single_out_with_their_own_bytes() {
        let mut all = items(0..6);
        assert_eq!(all.len(), 6);
        assert_eq!(
            (all.arg(0), all.arg(2), all.arg(4)),
            (&[][..], &[2, 2][..], &[4][..])
        );
        let one = all.one(5);
        assert_eq!(
            (one.len(), one.index(0), one.arg(0)),
            (1, Some(5), &[5, 5][..])
        );
        let rest = all.split_off(2);
        assert_eq!((all.len(), all.arg_bytes()), (2, 1));
        assert_eq!(all.arg(1), [1]);
        assert_eq!(rest.len(), 4);
        assert_eq!(rest.index(0), Some(2));
        assert_eq!(rest.arg(0), [2, 2]);
        assert_eq!(rest.arg(3), [5, 5]);
        assert_eq!(rest.index(4), None);
        assert_eq!(rest.arg(4), [0u8; 0]);
        let mut failed = items(0..1);
        assert_eq!(failed.push_with(9, |_| Err("no")), Err("no"));
        assert_eq!(failed.len(), 1);
    }

    #[test]
    fn a_dropped_chunk_gives_each_item_without_a_result_an_error() {
        let job = Arc::new(Job::new(None, false));
        let mut chunk = Chunk::new(Arc::clone(&job), 0, items(0..4));
        chunk.settle(Ok(&[]));
        assert!(job.inbox.take().is_empty(), "held until flushed");
        let rest = chunk.split_rest().unwrap();
        assert_eq!(rest.items.len(), 3);
        drop(chunk);
        let mut settled = Vec::new();
        let mut delivered = job.inbox.take();
        assert_eq!(delivered.len(), 1);
        delivered
            .pop_front()
            .unwrap()
            .for_each(|i, r| settled.push((i, r.map(<[u8]>::to_vec))));
        assert_eq!(settled, [(0, Ok(vec![]))], "handed on at the drop");
        assert!(
            job.inbox.take().is_empty(),
            "the split chunk has nothing left"
        );
        drop(rest);
        let mut dropped = Vec::new();
        for batch in job.inbox.take() {
            batch.for_each(|i, r| {
                assert!(r.is_err());
                dropped.push(i);
            });
        }
        assert_eq!(dropped, [1, 2, 3]);
    }

    #[test]
    fn retries_come_first_and_cancelled_calls_are_skipped() {
        let queue = Queue::default();
        let a = Arc::new(Job::new(None, false));
        let b = Arc::new(Job::new(None, false));
        queue.push_back(Chunk::new(Arc::clone(&a), 0, items(0..2)));
        queue.push_back(Chunk::new(Arc::clone(&b), 0, items(0..2)));
        queue.push_front(Chunk::new(Arc::clone(&b), 0, items(7..8)));
        let busy = AtomicBool::new(false);
        assert_eq!(queue.take(&busy).unwrap().items.index(0), Some(7));
        assert!(busy.load(Ordering::SeqCst));
        // The driver is done with that chunk.
        busy.store(false, Ordering::SeqCst);
        a.cancel();
        assert_eq!(queue.take(&busy).unwrap().items.index(0), Some(0));
        queue.close();
        assert!(queue.take(&busy).is_none());
    }

    #[test]
    fn a_lent_worker_takes_no_chunk_until_it_is_given_back() {
        let queue = Queue::default();
        let slots = [AtomicBool::new(false), AtomicBool::new(true)];
        let lent = queue.lend(&slots, |busy| busy).unwrap();
        assert!(std::ptr::eq(lent, &slots[0]), "the idle one");
        assert!(slots[0].load(Ordering::SeqCst));
        assert!(queue.lend(&slots, |busy| busy).is_none(), "none idle");
        let job = Arc::new(Job::new(None, false));
        queue.push_back(Chunk::new(job, 0, items(3..4)));
        std::thread::scope(|s| {
            let driver = s.spawn(|| queue.take(&slots[0]).map(|c| c.items.index(0)));
            std::thread::sleep(Duration::from_millis(50));
            assert!(!driver.is_finished(), "its worker is lent");
            queue.give_back(&slots[0]);
            assert_eq!(driver.join().unwrap(), Some(Some(3)));
        });
        queue.close();
        assert!(queue.lend(&slots, |busy| busy).is_none(), "closed");
    }
}
