//! The caller's side of a pool call: reads the input lazily, cuts it into chunks for the
//! drivers, and hands back the results, in input order or as they finish.
//!
//! **Chunks** are sized to the work ([`chunk_size`]). When the input's length is known,
//! a chunk is a quarter of a fair share of what is left, `remaining / (4 * workers)`
//! (as Python's `Pool.map` does), so chunks shrink towards the end and the workers
//! finish together. When it is not, chunks start at one item and grow, at most
//! doubling, towards what a worker runs in [`CHUNK_TIME`], from the time per item of
//! the chunks finished so far. Either way a chunk holds at most [`MAX_CHUNK`] items
//! and, past its first item, [`CHUNK_BYTES`] of arguments: a dead worker costs one
//! item, but a retried rest and a chunk message stay small. A call that takes its
//! results all together (`map`, `run`) has no result to hand back early, so its chunks
//! are larger, fewer round trips: up to [`MAX_WHOLE_CHUNK`] items, and shrinking no
//! further than an eighth of a worker's share of the whole (so the workers finish
//! within an eighth of a share of each other, for items of even cost).
//!
//! **Laziness.** `imap` and `imap_unordered` read ahead only a window of items, twice
//! what the workers can hold in chunks of the current size; results taken from the
//! iterator make room for more. So the first result does not wait for the whole input,
//! and an endless input consumed as it goes runs in bounded memory (in order, a slow
//! item holds at most a window of finished results behind it). `map` reads all of its
//! input first, as it returns all the results at once anyway.
//!
//! **A panicking input** is caught where it is read and raised again in the caller when
//! its turn comes: after every item read before it has been handed back, as
//! `input.map(f)` would.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use serde::Serialize;

use super::driver::Core;
use super::queue::{Batch, Chunk, Job, ProcessRules};
use super::worker::Items;
use crate::call::encode_arg_into;
use crate::ProcessError;

/// Most items in one chunk.
pub(crate) const MAX_CHUNK: usize = 1024;
/// Most items in one chunk of a call that takes its results all together (`map`,
/// `run`): more items a chunk, fewer round trips to a worker, and such a call hands
/// back no result before its last anyway.
pub(crate) const MAX_WHOLE_CHUNK: usize = 16 * 1024;
/// A call that takes its results all together cuts its input in chunks no smaller than
/// this fraction of a worker's share of the whole input: the shrinking chunks of its end
/// (see [`chunk_size`]) stop before they cost more round trips than they balance.
const WHOLE_CHUNK_FLOOR: usize = 8;
/// Most bytes of arguments in one chunk, past its first item.
pub(crate) const CHUNK_BYTES: usize = 1 << 20;
/// Results `map` waits for before it decodes them (fewer when fewer are awaited).
const DECODE_BATCH: usize = 8 * 1024;
/// What a chunk of an input of unknown length aims to take a worker.
pub(crate) const CHUNK_TIME: Duration = Duration::from_millis(5);

/// The size of the next chunk: `fixed` when set; else a quarter of a fair share of
/// the `remaining` items when their number is known; else, from the time per item
/// measured so far, what fits in [`CHUNK_TIME`], at most twice the `last` chunk (one
/// item before anything was measured). Always within `1..=MAX_CHUNK`, but for a call
/// that takes its results all together, of `whole` items: then a quarter of a fair
/// share is up to [`MAX_WHOLE_CHUNK`], and at least a [`WHOLE_CHUNK_FLOOR`]th of a
/// worker's share of the whole.
pub(crate) fn chunk_size(
    fixed: Option<usize>,
    workers: usize,
    remaining: Option<usize>,
    per_item: Option<Duration>,
    last: usize,
    whole: Option<usize>,
) -> usize {
    if let Some(fixed) = fixed {
        return fixed.clamp(1, MAX_CHUNK);
    }
    let workers = workers.max(1);
    if let Some(remaining) = remaining {
        let quarter = remaining / (4 * workers);
        return match whole {
            Some(whole) => quarter
                .max(whole / (WHOLE_CHUNK_FLOOR * workers))
                .clamp(1, MAX_WHOLE_CHUNK),
            None => quarter.clamp(1, MAX_CHUNK),
        };
    }
    let Some(per_item) = per_item else { return 1 };
    let fits = CHUNK_TIME.as_nanos() / per_item.as_nanos().max(1);
    let fits = usize::try_from(fits).unwrap_or(usize::MAX);
    fits.min(last.saturating_mul(2)).clamp(1, MAX_CHUNK)
}

/// An item's result, decoded.
type ItemResult<R> = Result<R, ProcessError>;

/// How results are handed back.
enum Order<R> {
    /// In input order: finished results wait in `held` for those before them.
    Input { next: u64, held: Held<R> },
    /// As they finish: `ready` holds them in the order they came (results known without
    /// a worker, an argument that does not serialize, come at once).
    Finished {
        ready: VecDeque<(u64, ItemResult<R>)>,
    },
}

/// Results that came before their turn, by how far each is from the next one due: a
/// window as long as the read-ahead, where taking and placing a result costs nothing
/// like a search.
struct Held<R> {
    slots: VecDeque<Option<ItemResult<R>>>,
}

impl<R> Default for Held<R> {
    fn default() -> Self {
        Self {
            slots: VecDeque::new(),
        }
    }
}

impl<R> Held<R> {
    /// The result of the item `ahead` places after the next one due.
    fn insert(&mut self, ahead: u64, result: ItemResult<R>) {
        let at = usize::try_from(ahead).expect("results in flight fit in memory");
        if at >= self.slots.len() {
            self.slots.resize_with(at + 1, || None);
        }
        self.slots[at] = Some(result);
    }

    /// The next result due, once it is there.
    fn take_first(&mut self) -> Option<ItemResult<R>> {
        match self.slots.front() {
            Some(Some(_)) => self.slots.pop_front().flatten(),
            _ => None,
        }
    }
}

/// Decodes a result's bytes as the caller's type.
pub(crate) type Decode<R> = fn(&[u8]) -> ItemResult<R>;

/// One call on a pool, from the caller's side.
pub(crate) struct Feed<'p, I, R> {
    core: &'p Core,
    input: I,
    input_done: bool,
    /// The input's length, when known, minus what was read.
    remaining: Option<usize>,
    /// The input's length, for a call that takes its results all together.
    whole: Option<usize>,
    /// Whether to read ahead only a window of items (`imap`), or everything (`map`).
    windowed: bool,
    call: i64,
    job: Arc<Job>,
    /// Items queued for the workers whose results have not come back yet.
    awaited: usize,
    decode: Decode<R>,
    /// Items read so far: the next item's index.
    read: u64,
    /// Items read and not handed back yet.
    pending: usize,
    last_chunk: usize,
    order: Order<R>,
    /// A panic of the input while reading item `.0`, raised when its turn comes.
    input_panic: Option<(u64, Box<dyn Any + Send>)>,
}

impl<'p, I, A, R> Feed<'p, I, R>
where
    I: Iterator<Item = A>,
    A: Serialize,
{
    /// A call of the function whose trampoline is at `call` on every item of `input`,
    /// whose results `decode` reads; `process` when the items are processes to run
    /// (`Pool::run`).
    pub(crate) fn new(
        core: &'p Core,
        call: i64,
        input: I,
        decode: Decode<R>,
        in_order: bool,
        windowed: bool,
        process: Option<ProcessRules>,
    ) -> Self {
        let remaining = match input.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        };
        Self {
            core,
            input,
            input_done: false,
            remaining,
            whole: remaining.filter(|_| !windowed),
            windowed,
            call,
            // `map` and `run` read the whole input and take every result at once.
            job: Arc::new(Job::new(process, !windowed)),
            awaited: 0,
            decode,
            read: 0,
            pending: 0,
            last_chunk: 1,
            order: if in_order {
                Order::Input {
                    next: 0,
                    held: Held::default(),
                }
            } else {
                Order::Finished {
                    ready: VecDeque::new(),
                }
            },
            input_panic: None,
        }
    }

    /// The next result with its item's index, in the order asked for; `None` when every
    /// item of the input has had its result.
    pub(crate) fn next_result(&mut self) -> Option<(u64, ItemResult<R>)> {
        loop {
            if let Some(next) = self.next_in_hand(true) {
                return next;
            }
            // `map` waits for all its results at once, and is woken once; `imap` hands
            // each on as it comes.
            let wanted = if self.windowed { 1 } else { self.awaited };
            for batch in self.job.inbox.take_when(wanted.max(1)) {
                self.place(batch);
            }
        }
    }

    /// Hands every result to `each` with its item's index, as they finish, once each:
    /// what `map` does with [`Feed::next_result`] of a feed not `in_order`, without
    /// the queue of results in between (each is decoded straight from its batch into
    /// its place).
    pub(crate) fn for_each_result(&mut self, mut each: impl FnMut(u64, ItemResult<R>)) {
        loop {
            self.top_up(true);
            if let Order::Finished { ready } = &mut self.order {
                // Results known without a worker: arguments that do not serialize.
                while let Some((index, result)) = ready.pop_front() {
                    self.pending -= 1;
                    each(index, result);
                }
            }
            self.raise_input_panic_if_due();
            if self.pending == 0 {
                return;
            }
            let decode = self.decode;
            // Woken once a good many results have come, not at each batch: so the
            // results are decoded while the workers run the rest, at a few wake-ups a
            // call.
            let wanted = self.awaited.clamp(1, DECODE_BATCH);
            for batch in self.job.inbox.take_when(wanted) {
                self.awaited -= batch.len();
                self.pending -= batch.len();
                batch.for_each(|index, result| each(index, result.and_then(decode)));
            }
        }
    }

    /// [`Feed::next_result`] without blocking: `Pending` when the next result has not
    /// come, and the task of `cx` is woken by the driver that delivers it (see
    /// `inbox.rs`). The input is still read on the caller's thread, here.
    pub(crate) fn poll_next_result(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<(u64, ItemResult<R>)>> {
        loop {
            if let Some(next) = self.next_in_hand(false) {
                return Poll::Ready(next);
            }
            let mut batches = self.job.inbox.take();
            if batches.is_empty() {
                self.job.inbox.set_waker(cx.waker());
                // A batch delivered before the waker was set did not wake it.
                batches = self.job.inbox.take();
                if batches.is_empty() {
                    return Poll::Pending;
                }
            }
            for batch in batches {
                self.place(batch);
            }
        }
    }

    /// The next result if it is in hand (`Some(None)` when every item has had its
    /// result), after reading the input up to the window (and running a chunk on this
    /// thread, if it may block it: see [`Feed::read_chunk`]); `None` when it must be
    /// waited for.
    fn next_in_hand(&mut self, may_block: bool) -> Option<Option<(u64, ItemResult<R>)>> {
        self.top_up(may_block);
        self.raise_input_panic_if_due();
        let found = match &mut self.order {
            Order::Input { next, held } => held.take_first().map(|r| {
                let index = *next;
                *next += 1;
                (index, r)
            }),
            Order::Finished { ready } => ready.pop_front(),
        };
        if let Some(found) = found {
            self.pending -= 1;
            return Some(Some(found));
        }
        (self.pending == 0).then_some(None)
    }

    /// Puts the results of `batch` where they wait for their turn.
    fn place(&mut self, batch: Batch) {
        self.awaited -= batch.len();
        let decode = self.decode;
        match &mut self.order {
            Order::Input { next, held } => batch.for_each(|index, result| {
                // Each item has one result: none comes after its turn.
                if let Some(ahead) = index.checked_sub(*next) {
                    held.insert(ahead, result.and_then(decode));
                }
            }),
            Order::Finished { ready } => batch.for_each(|index, result| {
                ready.push_back((index, result.and_then(decode)));
            }),
        }
    }

    /// The items that will have a result: handed back yet to come, and left in the input.
    pub(crate) fn size_hint(&self) -> (usize, Option<usize>) {
        if self.input_done {
            return (self.pending, Some(self.pending));
        }
        let (low, high) = self.input.size_hint();
        (
            self.pending.saturating_add(low),
            high.and_then(|h| h.checked_add(self.pending)),
        )
    }

    /// Reads items and queues them in chunks, up to the window.
    fn top_up(&mut self, may_block: bool) {
        let settings = &self.core.settings;
        while !self.input_done {
            let size = chunk_size(
                settings.chunk_size,
                settings.workers,
                self.remaining,
                self.job.time_per_item(),
                self.last_chunk,
                self.whole,
            );
            let window = (2 * settings.workers * size).max(4 * settings.workers);
            if self.windowed && self.pending >= window {
                break;
            }
            self.read_chunk(size, may_block);
        }
    }

    /// Reads up to `size` items and queues them as one chunk; or, when that chunk is
    /// all the caller will wait for (nothing else is out, the input is read whole, and
    /// the caller takes no result before the chunk's last: an `apply`, say) and
    /// `may_block`, runs it on this thread on an idle worker, if there is one: the
    /// caller would only wait for it, and a driver would have to be woken to run it,
    /// and to wake this thread again.
    fn read_chunk(&mut self, size: usize, may_block: bool) {
        let mut items = Items::with_capacity(size);
        while items.len() < size && items.arg_bytes() < CHUNK_BYTES {
            let index = self.read;
            let next = match panic::catch_unwind(AssertUnwindSafe(|| self.input.next())) {
                Ok(Some(next)) => next,
                Ok(None) => {
                    self.input_done = true;
                    break;
                }
                Err(payload) => {
                    // The input is left alone from now on.
                    self.input_done = true;
                    self.input_panic = Some((index, payload));
                    break;
                }
            };
            self.read += 1;
            self.pending += 1;
            if let Some(remaining) = &mut self.remaining {
                *remaining = remaining.saturating_sub(1);
            }
            if let Err(error) = items.push_with(index, |args| encode_arg_into(&next, args)) {
                match &mut self.order {
                    Order::Input { next, held } => {
                        if let Some(ahead) = index.checked_sub(*next) {
                            held.insert(ahead, Err(error));
                        }
                    }
                    Order::Finished { ready } => ready.push_back((index, Err(error))),
                }
            }
        }
        if !items.is_empty() {
            self.last_chunk = items.len();
            // An `imap` hands on each result as it comes: a chunk run here could not
            // before its end, so only a chunk of one item is.
            let alone = self.awaited == 0
                && (self.input_done || self.remaining == Some(0))
                && (!self.windowed || items.len() == 1);
            self.awaited += items.len();
            let mut chunk = Some(Chunk::new(Arc::clone(&self.job), self.call, items));
            if alone && may_block {
                chunk = chunk.and_then(|c| self.core.run_here(c));
            }
            if let Some(chunk) = chunk {
                self.core.queue.push_back(chunk);
            }
        }
    }

    /// Raises the input's panic once every item read before it was handed back.
    fn raise_input_panic_if_due(&mut self) {
        let due = match (&self.input_panic, &self.order) {
            (Some((at, _)), Order::Input { next, .. }) => *next == *at,
            (Some(_), Order::Finished { .. }) => self.pending == 0,
            (None, _) => false,
        };
        if due {
            if let Some((_, payload)) = self.input_panic.take() {
                panic::resume_unwind(payload);
            }
        }
    }
}

impl<I, R> Drop for Feed<'_, I, R> {
    /// A call dropped before its end: its queued chunks are dropped, and the drivers
    /// running its items kill their workers (see `driver.rs`).
    fn drop(&mut self) {
        self.job.cancel();
        self.core.queue.remove_job(&self.job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_length_is_cut_in_quarters_of_a_fair_share() {
        assert_eq!(chunk_size(None, 4, Some(100_000), None, 1, None), MAX_CHUNK);
        assert_eq!(chunk_size(None, 4, Some(1600), None, 1, None), 100);
        assert_eq!(chunk_size(None, 4, Some(100), None, 1, None), 6);
        assert_eq!(chunk_size(None, 4, Some(3), None, 1, None), 1);
        assert_eq!(chunk_size(None, 4, Some(0), None, 1, None), 1);
    }

    #[test]
    fn a_call_taking_its_results_together_has_larger_chunks_down_to_a_floor() {
        let whole = Some(100_000);
        assert_eq!(chunk_size(None, 2, Some(100_000), None, 1, whole), 12_500);
        assert_eq!(chunk_size(None, 2, Some(80_000), None, 1, whole), 10_000);
        // An eighth of a worker's share of the whole, at the end.
        assert_eq!(chunk_size(None, 2, Some(20_000), None, 1, whole), 6_250);
        assert_eq!(chunk_size(None, 2, Some(10), None, 1, whole), 6_250);
        assert_eq!(
            chunk_size(None, 2, Some(10_000_000), None, 1, Some(10_000_000)),
            MAX_WHOLE_CHUNK
        );
        assert_eq!(chunk_size(None, 4, Some(3), None, 1, Some(3)), 1);
        assert_eq!(chunk_size(Some(7), 2, Some(100), None, 1, Some(100)), 7);
    }

    #[test]
    fn an_unknown_length_starts_at_one_and_grows_while_items_are_fast() {
        assert_eq!(chunk_size(None, 2, None, None, 1, None), 1);
        let fast = Some(Duration::from_micros(1));
        assert_eq!(chunk_size(None, 2, None, fast, 1, None), 2);
        assert_eq!(chunk_size(None, 2, None, fast, 64, None), 128);
        assert_eq!(chunk_size(None, 2, None, fast, 1000, None), MAX_CHUNK);
        let slow = Some(Duration::from_millis(1));
        assert_eq!(chunk_size(None, 2, None, slow, 64, None), 5);
        let very_slow = Some(Duration::from_secs(1));
        assert_eq!(chunk_size(None, 2, None, very_slow, 64, None), 1);
    }

    #[test]
    fn held_results_come_out_in_turn() {
        let mut held = Held::default();
        assert!(held.take_first().is_none());
        held.insert(2, Ok(2));
        held.insert(0, Ok(0));
        assert_eq!(held.take_first(), Some(Ok(0)));
        assert!(held.take_first().is_none(), "the one now due is not there");
        held.insert(0, Err(ProcessError::Killed));
        assert_eq!(held.take_first(), Some(Err(ProcessError::Killed)));
        assert_eq!(held.take_first(), Some(Ok(2)));
        assert!(held.take_first().is_none());
        assert!(held.slots.is_empty());
    }

    #[test]
    fn a_fixed_size_wins_within_bounds() {
        assert_eq!(chunk_size(Some(7), 2, Some(100_000), None, 1, None), 7);
        assert_eq!(chunk_size(Some(0), 2, None, None, 1, None), 1);
        assert_eq!(chunk_size(Some(1 << 20), 2, None, None, 1, None), MAX_CHUNK);
    }
}
