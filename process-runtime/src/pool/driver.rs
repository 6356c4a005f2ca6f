//! A pool's drivers: one thread per worker, in the parent, that feeds it chunks, reads
//! its results, and replaces it when it dies.
//!
//! A driver tells its worker one chunk at a time and reads the results in order, one
//! per item, from the results ring the worker writes them to (see `ring.rs`): it drains
//! the ring, and when nothing is there it raises the ring's waiting flag and listens,
//! and the worker tells it when the next result is in. So fast items come back in
//! batches and slow ones one by one, and the results reach the caller the same way
//! (see `queue.rs`).
//!
//! When the worker dies, every result it committed is still in the ring: the driver
//! reads them all, so the items without a result are known, and the first of them is
//! the one the worker was running if it started one more item than it answered
//! ([`blames_item`]). That item, and only that one, is blamed when the worker died in
//! `main_loop`: the item ran and killed it (an abort, a segfault, its time limit, a
//! kill from outside while it ran), and its result is the worker's error. Otherwise
//! (it died waiting for work, or telling) no item is, and every item without a result
//! is simply run again. Either way the rest of the chunk goes back to the front of the
//! queue, where any driver can take it, and this driver starts a fresh worker for its
//! next chunk. A failed item with lives left goes back to the front too, in a chunk of
//! its own ([`after_failure`]).
//!
//! A call dropped while its items run (an `imap` iterator dropped early) does not hold
//! the worker: the driver notices within [`CANCEL_CHECK`] and kills it, and the next
//! chunk gets a fresh one.
//!
//! The worker is a process like any other, under its own supervisor; the driver only
//! tells, listens, and reads the worker's outcome once it has ended.
//!
//! A caller that would only wait for one chunk runs it itself, on the thread that
//! would wait, when a worker is idle ([`Core::run_here`]): the worker is lent to it,
//! and the run is the same code as its driver's. What a driver knows of its worker is
//! therefore kept in the worker's [`Slot`], not on the driver's thread.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::lifecycle::{self, ItemHeader};
use super::queue::{Chunk, Job, Marks, Queue};
use super::ring::RingReader;
use super::worker::{self, Answer, Done, DoneIn, Items, Work, Worker};
use crate::parent::attempt::StartOptions;
use crate::parent::deadline::{Overdue, Watch};
use crate::{beacon, Handle, ProcessConfig, ProcessError, RecvError, Section, SendError, Timeouts};

/// How a pool runs its items; set by `PoolBuilder`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) name: String,
    pub(crate) workers: usize,
    pub(crate) item_timeout: Option<Duration>,
    pub(crate) item_lives: u32,
    pub(crate) chunk_size: Option<usize>,
}

/// Unread results a worker may have told before it waits for its driver.
const WORKER_MAILBOX: u32 = 256;

/// Times an item may be lost with a worker that was not running it (killed while
/// waiting for work, say) before that worker's error is its result, so that no item
/// can go round for ever.
const MAX_LOSSES: u32 = 3;

/// How often a driver waiting for results checks whether their call was dropped.
const CANCEL_CHECK: Duration = Duration::from_millis(100);

/// How long an idle worker is given to end after `Quit` before it is killed.
const QUIT_GRACE: Duration = Duration::from_secs(1);

/// Pauses before each attempt to start a worker; after the last, the chunk's items get
/// the start's error.
const START_PAUSES: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(10),
    Duration::from_millis(100),
    Duration::from_secs(1),
];

/// What a pool, its drivers and its callers share.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) queue: Queue,
    pub(crate) settings: Settings,
    /// One per worker.
    pub(crate) slots: Vec<Slot>,
}

impl Core {
    /// Runs `chunk` on this thread, on an idle worker, when there is one (see
    /// [`Slot`]); gives the chunk back otherwise. A caller runs a chunk itself when it
    /// would only wait for it: that saves the wake-up of a driver, and of the caller.
    pub(crate) fn run_here(&self, chunk: Chunk) -> Option<Chunk> {
        let Some(slot) = self.queue.lend(&self.slots, |slot| &slot.busy) else {
            return Some(chunk);
        };
        Driver::seat(self, slot).run(chunk);
        self.queue.give_back(&slot.busy);
        None
    }
}

/// A worker and what its driver knows of it. Chunks run on it one at a time, on its
/// driver's thread, or on the thread of a caller it is lent to while its driver is
/// idle ([`Core::run_here`]); `busy` says which, under the queue's lock.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// The worker's handle, for the pool's drop to kill a busy one.
    worker: Mutex<Option<Arc<Handle<()>>>>,
    /// A chunk runs on the worker, or is about to (set by `Queue::take` and
    /// `Queue::lend`).
    pub(crate) busy: AtomicBool,
    /// The worker as the one running a chunk on it sees it.
    live: Mutex<Option<Live>>,
}

impl Slot {
    /// A slot for `worker`, started by the pool (or `None`: its driver starts one).
    pub(crate) fn new(worker: Option<Handle<()>>) -> Self {
        let live = worker.map(|w| Live::new(Arc::new(w)));
        Self {
            worker: Mutex::new(live.as_ref().map(|w| Arc::clone(&w.handle))),
            busy: AtomicBool::new(false),
            live: Mutex::new(live),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<Handle<()>>>> {
        self.worker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Kills the worker if it is running items. Called once the queue is closed: the
    /// items are nobody's any more.
    pub(crate) fn kill_if_busy(&self) {
        let worker = self.lock();
        if self.busy.load(Ordering::SeqCst) {
            if let Some(w) = worker.as_ref() {
                w.kill();
            }
        }
    }
}

/// A driver thread: runs chunks on the worker of `slot` until the queue is closed,
/// then ends the worker.
pub(crate) fn drive(core: &Core, slot: &Slot) {
    while let Some(chunk) = core.queue.take(&slot.busy) {
        Driver::seat(core, slot).run(chunk);
        slot.busy.store(false, Ordering::SeqCst);
    }
    Driver::seat(core, slot).retire();
}

/// Ends the worker of `slot` if it is still there: when its driver thread could not
/// be started, say. Called once the drivers are joined.
pub(crate) fn retire(core: &Core, slot: &Slot) {
    Driver::seat(core, slot).retire();
}

/// Starts one worker process. Its sections have no limits of their own: an item's
/// limit is held by its driver ([`ItemClock`]), since an item may be a function with
/// the pool's limit or a process with its own.
pub(crate) fn start_worker(settings: &Settings) -> Result<Handle<()>, ProcessError> {
    let config = ProcessConfig::new(settings.name.clone())
        .with_timeout(Section::Preloop, None)
        .with_timeout(Section::MainLoop, None)
        .with_timeout(Section::Postloop, None)
        .with_mailbox(WORKER_MAILBOX);
    let mut options = StartOptions::default().with_default_error();
    // An idle worker waits for work in a `listen` without a limit: a stop (a
    // shutdown, or its parent stopping the process that runs the pool) reaches it
    // as a `Quit`.
    let (quit, _) = crate::handle::frame_to_child(&Work::Quit)
        .map_err(|e| ProcessError::Io(format!("cannot encode a pool worker's quit: {e}")))?;
    options.stop_message = Some(quit);
    let shared = crate::parent::start::start(&Worker::default(), config, options)?;
    Ok(Handle::new(shared))
}

/// Whether a worker that ended with `error`, having `started` items and answered
/// `answered` of them, died of the first item it had not answered: it was running it
/// (it started one more than it answered), and it died in `main_loop`, which is the
/// call (see `worker.rs`).
pub(crate) fn blames_item(error: &ProcessError, started: u64, answered: u64) -> bool {
    started == answered + 1 && error.section() == Some(Section::MainLoop)
}

/// What becomes of an item after a failed attempt or a loss.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Run it again, with these marks.
    Retry(Marks),
    /// Its result is the error.
    Fail,
}

/// An attempt of an item failed (with `blamed`) or the item was lost with a worker
/// that was not running it: retried while it has lives (`item_lives` attempts in all)
/// or, for a loss, while it was lost fewer than [`MAX_LOSSES`] times.
pub(crate) fn after_failure(marks: Marks, blamed: bool, lives: u32) -> Fate {
    let mut next = marks;
    if blamed {
        next.failures += 1;
        if next.failures >= lives {
            return Fate::Fail;
        }
    } else {
        next.losses += 1;
        if next.losses > MAX_LOSSES {
            return Fate::Fail;
        }
    }
    Fate::Retry(next)
}

/// A worker process as its driver sees it.
#[derive(Debug)]
struct Live {
    handle: Arc<Handle<()>>,
    /// Its results; `None` when it ended before its page could be had.
    ring: Option<RingReader>,
    /// The results read from it, of every chunk.
    answered: u64,
    /// Chunks told to it: the number of the last one, as the worker counts them.
    chunks: u64,
}

impl Live {
    fn new(handle: Arc<Handle<()>>) -> Self {
        let ring = handle.beacon().map(RingReader::new);
        Self {
            handle,
            ring,
            answered: 0,
            chunks: 0,
        }
    }
}

/// The limit of the item a worker runs, held by its driver from what the worker
/// writes to its ring: for a function, the pool's `item_timeout` on the count of items
/// started (a new count is a new item); for a process (`Pool::run`), the type's own
/// section limits on the item's beacon word (see `lifecycle.rs`), with the clock
/// started again for each item and attempt. Sampled, as a started process's beacon is
/// (`parent/deadline.rs`): a limit is noticed within two ticks of it.
struct ItemClock {
    limits: Timeouts,
    process: bool,
    watch: Watch,
    /// The item and attempt the watch is timing.
    timing: Option<(u64, u32)>,
}

impl ItemClock {
    fn for_job(job: &Job, settings: &Settings) -> Self {
        let (limits, process) = match job.process {
            Some(rules) => (rules.timeouts, true),
            None => (function_limits(settings.item_timeout), false),
        };
        Self {
            limits,
            process,
            watch: Watch::new(limits),
            timing: None,
        }
    }

    /// How long the driver may wait before it samples again.
    fn tick(&self) -> Duration {
        Watch::tick(&self.limits).min(CANCEL_CHECK)
    }

    /// The item's timeout, once the item the worker runs is past its limit;
    /// `answered` is what the driver read of it.
    fn overdue(&mut self, ring: &RingReader, answered: u64) -> Option<ProcessError> {
        let started = ring.started();
        if started <= answered {
            // Nothing runs: the worker waits for work or for room to tell.
            self.timing = None;
            return None;
        }
        let (word, attempt) = if self.process {
            ring.item()
        } else {
            (beacon::encode(started, Section::MainLoop), 0)
        };
        if self.timing != Some((started, attempt)) {
            self.timing = Some((started, attempt));
            self.watch = Watch::new(self.limits);
        }
        match self.watch.check(word, Instant::now()) {
            Overdue::Section(section, limit) => Some(ProcessError::Timeout { section, limit }),
            // Decoding a state has no limit but the worker's life.
            Overdue::Startup(_) | Overdue::No => None,
        }
    }
}

/// The limits of a function item: `item_timeout` on the call, which is the worker's
/// `main_loop`.
fn function_limits(item_timeout: Option<Duration>) -> Timeouts {
    let mut limits = ProcessConfig::new("pool item").timeouts;
    for section in [Section::Preloop, Section::Postloop, Section::OnFinish] {
        limits.set(section, None);
    }
    limits.set(Section::MainLoop, item_timeout);
    limits
}

/// How a worker was lost.
enum Loss {
    /// It ended by itself (or was killed from outside).
    Ended,
    /// It broke the protocol and was killed.
    Broke(ProcessError),
    /// Its driver killed it: the item it ran was past its limit.
    Overdue(ProcessError),
}

/// A chunk's run on a worker, on whichever thread runs it: the slot's worker, held
/// for the run.
pub(crate) struct Driver<'a> {
    core: &'a Core,
    slot: &'a Slot,
    worker: MutexGuard<'a, Option<Live>>,
}

impl<'a> Driver<'a> {
    /// Takes the worker of `slot`, which `Queue::take` or `Queue::lend` gave this
    /// thread (or the driver's own, at the end).
    fn seat(core: &'a Core, slot: &'a Slot) -> Self {
        let worker = slot.live.lock().unwrap_or_else(PoisonError::into_inner);
        Self { core, slot, worker }
    }

    /// Runs `chunk`, every item of which gets its result, whatever happens.
    fn run(mut self, chunk: Chunk) {
        let ran = panic::catch_unwind(AssertUnwindSafe(|| self.run_chunk(chunk)));
        if ran.is_err() {
            // A bug of ours: the chunk gave its items an error as it unwound. Start
            // afresh, with a new worker.
            if let Some(w) = &*self.worker {
                w.handle.kill();
            }
            self.bury();
        }
    }

    fn run_chunk(&mut self, mut chunk: Chunk) {
        let worker = match self.worker() {
            Ok(worker) => worker,
            Err(e) => return chunk.fail_rest(&e),
        };
        let started = Instant::now();
        let count = chunk.items.len();
        // The items go out in the message and come back to the chunk, uncopied.
        let work = Work::Chunk {
            call: chunk.call,
            items: std::mem::take(&mut chunk.items),
            lazy: chunk.job.whole,
        };
        let told = worker.tell(&work);
        if let Work::Chunk { items, .. } = work {
            chunk.items = items;
        }
        match told {
            Err(SendError::Encode { cause, .. }) => {
                return chunk.fail_rest(&ProcessError::State(format!(
                    "the items cannot be sent to a worker: {cause}"
                )));
            }
            Ok(()) => {
                if let Some(live) = &mut *self.worker {
                    live.chunks += 1;
                }
            }
            // It has ended (a pool told of a shutdown quits its idle workers), so it
            // never got the chunk. Not waited for: its ring says that its last chunk
            // ended, which would send the wait below round for ever.
            Err(_) => return self.lose_worker(chunk, Loss::Ended),
        }
        // A worker that ended after the chunk was sent, before it read it, answers
        // nothing: the listen below finds it ended.
        let mut clock = ItemClock::for_job(&chunk.job, &self.core.settings);
        loop {
            if let Err(why) = self.drain(&mut chunk, None) {
                return self.lose_worker(chunk, Loss::Broke(ProcessError::Protocol(why)));
            }
            if chunk.settled == count {
                break;
            }
            // Everything read so far reaches the caller before this thread waits.
            chunk.flush();
            if !self.ready_to_wait(chunk.job.whole) {
                continue;
            }
            if let Some(timeout) = self.overdue(&mut clock) {
                return self.kill_overdue(&worker, chunk, timeout);
            }
            match worker.listen::<Answer>(clock.tick()) {
                Ok(Answer::Ready) => {}
                Ok(Answer::Done(done)) => {
                    if let Err(why) = self.drain(&mut chunk, Some(done)) {
                        return self.lose_worker(chunk, Loss::Broke(ProcessError::Protocol(why)));
                    }
                }
                Err(RecvError::Ended) => {
                    // Whatever it committed before it died is in the ring.
                    if let Err(why) = self.drain(&mut chunk, None) {
                        return self.lose_worker(chunk, Loss::Broke(ProcessError::Protocol(why)));
                    }
                    return self.lose_worker(chunk, Loss::Ended);
                }
                Err(RecvError::Timeout) => {
                    if chunk.job.is_cancelled() {
                        // Nobody wants these results any more: the worker is freed for
                        // the next call rather than left to finish them.
                        worker.kill();
                        self.bury();
                        return;
                    }
                }
                Err(e) => {
                    let why = format!("reading a pool worker's answer: {e}");
                    return self.lose_worker(chunk, Loss::Broke(ProcessError::Protocol(why)));
                }
            }
        }
        chunk.flush();
        chunk.job.record(count, started.elapsed());
    }

    /// The timeout of the item the worker runs, when it is past its limit.
    fn overdue(&self, clock: &mut ItemClock) -> Option<ProcessError> {
        let live = self.worker.as_ref()?;
        clock.overdue(live.ring.as_ref()?, live.answered)
    }

    /// Kills the worker whose item is past its limit; the results it committed before
    /// keep their place, and the item is blamed if it was still running.
    fn kill_overdue(&mut self, worker: &Handle<()>, mut chunk: Chunk, timeout: ProcessError) {
        worker.kill();
        worker.wait();
        if let Err(why) = self.drain(&mut chunk, None) {
            return self.lose_worker(chunk, Loss::Broke(ProcessError::Protocol(why)));
        }
        self.lose_worker(chunk, Loss::Overdue(timeout));
    }

    /// Settles the results the worker committed to its ring, in order, and `told`, a
    /// result it sent as a message, in its place among them: every result before it
    /// was committed before it was sent, so it is settled by the end of the drain (the
    /// ring may hold results after it too).
    fn drain(&mut self, chunk: &mut Chunk, mut told: Option<Done>) -> Result<(), String> {
        let mut answered = u64::from(told.is_some());
        if let Some(ring) = self.worker.as_mut().and_then(|live| live.ring.as_mut()) {
            let core = self.core;
            let drained = ring.drain(|record| {
                if told.is_none() {
                    if let Some((index, bytes)) = worker::value_record(record) {
                        answered += 1;
                        return settle_value(chunk, index, bytes);
                    }
                }
                let done: DoneIn<'_> = postcard::from_bytes(record)
                    .map_err(|e| format!("a pool worker's result does not decode: {e}"))?;
                answered += 1;
                if let Some(first) = told.take_if(|t| is_due(chunk, t.index)) {
                    settle_told(core, chunk, first)?;
                }
                // A value, the common case, is settled without moving an error-sized
                // `Result` about: this runs once per item.
                match done.outcome {
                    Ok(bytes) => settle_value(chunk, done.index, bytes),
                    Err(error) => settle_due(core, chunk, done.index, Err(error)),
                }
            });
            if let Some(live) = &mut *self.worker {
                live.answered += answered;
            }
            drained?;
        } else if let Some(live) = &mut *self.worker {
            live.answered += answered;
        }
        match told {
            Some(done) => settle_told(self.core, chunk, done),
            None => Ok(()),
        }
    }

    /// Raises the ring's waiting flag; `false` when results came meanwhile. For a call
    /// that takes its results only all together (`whole`), the worker is asked to
    /// tell only at the end of the chunk (or a half full ring), and `false` means that
    /// came.
    fn ready_to_wait(&self, whole: bool) -> bool {
        let Some(live) = self.worker.as_ref() else {
            return true;
        };
        match &live.ring {
            None => true,
            Some(ring) if whole => ring.wait_ready_for_end(live.chunks),
            Some(ring) => ring.wait_ready(),
        }
    }

    /// The worker is gone (or broke the protocol, and it is killed). Its error is the
    /// result of the item it was running, if it was running one; the rest of the chunk
    /// goes back to the queue.
    fn lose_worker(&mut self, mut chunk: Chunk, loss: Loss) {
        if matches!(loss, Loss::Broke(_)) {
            if let Some(w) = &*self.worker {
                w.handle.kill();
            }
        }
        let (started, answered, item) = self.worker.as_ref().map_or((0, 0, None), |live| {
            (
                live.ring.as_ref().map_or(0, RingReader::started),
                live.answered,
                live.ring.as_ref().map(RingReader::item),
            )
        });
        let ended = self.bury();
        if self.core.queue.is_closed() {
            // The pool is being dropped (and killed the worker): nobody waits.
            return;
        }
        let running = started == answered + 1;
        let (error, blamed) = match (loss, ended) {
            (Loss::Broke(e), _) => (e, false),
            (Loss::Overdue(e), _) => (e, running),
            (Loss::Ended, Some(Err(e))) => {
                let blamed = blames_item(&e, started, answered);
                (e, blamed)
            }
            (Loss::Ended, _) => (
                ProcessError::Protocol("a pool worker ended while it had work".into()),
                false,
            ),
        };
        tracing::debug!(pool = %self.core.settings.name, blamed, "a worker ended: {error}");
        let due = chunk.settled;
        if due < chunk.items.len() {
            if blamed {
                match (chunk.job.process, item) {
                    (Some(rules), Some(item)) => {
                        process_died(self.core, &mut chunk, error, item, rules.lives)
                    }
                    _ => failed(self.core, &mut chunk, error),
                }
            } else {
                // It stays first in the rest of the chunk, unless it was lost too often.
                match after_failure(chunk.marks[due], false, self.core.settings.item_lives) {
                    Fate::Retry(marks) => chunk.marks[due] = marks,
                    Fate::Fail => chunk.settle(Err(error)),
                }
            }
        }
        if let Some(rest) = chunk.split_rest() {
            self.core.queue.push_front(rest);
        }
    }

    /// The live worker, or a fresh one in place of a dead one.
    fn worker(&mut self) -> Result<Arc<Handle<()>>, ProcessError> {
        if let Some(w) = &*self.worker {
            if w.handle.is_alive() {
                return Ok(Arc::clone(&w.handle));
            }
            // It died while waiting for work (killed from outside, say): none of our
            // items was running.
            self.bury();
        }
        let mut last = None;
        for pause in START_PAUSES {
            std::thread::sleep(pause);
            if self.core.queue.is_closed() {
                break;
            }
            match start_worker(&self.core.settings) {
                Ok(worker) => return self.install(worker),
                Err(e) => {
                    tracing::warn!(pool = %self.core.settings.name, "cannot start a worker: {e}");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| ProcessError::Io("the pool is shutting down".into())))
    }

    /// Makes `worker` this driver's, unless the pool was closed meanwhile: checked under
    /// the slot's lock, which the pool's drop takes to kill busy workers, so that no
    /// worker started now escapes it.
    fn install(&mut self, worker: Handle<()>) -> Result<Arc<Handle<()>>, ProcessError> {
        let worker = Arc::new(worker);
        let mut slot = self.slot.lock();
        if self.core.queue.is_closed() {
            worker.kill();
            drop(slot);
            worker.wait();
            return Err(ProcessError::Io("the pool is shutting down".into()));
        }
        *slot = Some(Arc::clone(&worker));
        drop(slot);
        *self.worker = Some(Live::new(Arc::clone(&worker)));
        Ok(worker)
    }

    /// Forgets the worker once it has ended (reaped); returns its outcome.
    fn bury(&mut self) -> Option<Result<(), ProcessError>> {
        self.slot.lock().take();
        let worker = self.worker.take()?;
        Some(worker.handle.take_result())
    }

    /// Ends the worker: `Quit` lets an idle one end by itself; one that does not
    /// within [`QUIT_GRACE`] is killed. Returns once it is reaped.
    fn retire(&mut self) {
        self.slot.lock().take();
        let Some(Live { handle: worker, .. }) = self.worker.take() else {
            return;
        };
        let _ = worker.try_tell(&Work::Quit);
        if !worker.wait_timeout(QUIT_GRACE) {
            worker.kill();
        }
        worker.wait();
    }
}

/// [`settle_due`] with a result the worker told.
fn settle_told(core: &Core, chunk: &mut Chunk, done: Done) -> Result<(), String> {
    match done.outcome {
        Ok(bytes) => settle_due(core, chunk, done.index, Ok(&bytes)),
        Err(error) => settle_due(core, chunk, done.index, Err(error)),
    }
}

/// Whether item `index` is the one due next in `chunk`.
fn is_due(chunk: &Chunk, index: u64) -> bool {
    chunk.items.index(chunk.settled) == Some(index)
}

/// The value's bytes of item `index`, checked to be the one due next in `chunk`.
fn settle_value(chunk: &mut Chunk, index: u64, bytes: &[u8]) -> Result<(), String> {
    if chunk.items.index(chunk.settled) == Some(index) {
        chunk.settle_value(bytes);
        return Ok(());
    }
    out_of_turn(chunk, index)
}

/// Why the result of item `index` cannot be settled: it is not the one due.
fn out_of_turn(chunk: &Chunk, index: u64) -> Result<(), String> {
    match chunk.items.index(chunk.settled) {
        None => Err(format!(
            "a pool worker answered item {index} after its chunk was done"
        )),
        Some(due) => Err(format!(
            "a pool worker answered item {index} when item {due} was due"
        )),
    }
}

/// The result of item `index`, checked to be the one due next in `chunk`.
fn settle_due(
    core: &Core,
    chunk: &mut Chunk,
    index: u64,
    outcome: Result<&[u8], ProcessError>,
) -> Result<(), String> {
    if chunk.items.index(chunk.settled) != Some(index) {
        return out_of_turn(chunk, index);
    }
    match outcome {
        Ok(bytes) => chunk.settle(Ok(bytes)),
        // A process's lives were spent in the worker, and `error` ran there.
        Err(error) if chunk.job.process.is_some() => chunk.settle(Err(error)),
        Err(error) => failed(core, chunk, error),
    }
    Ok(())
}

/// The item due failed with `error`: retried in a chunk of its own at the front of the
/// queue while it has lives, or given the error.
fn failed(core: &Core, chunk: &mut Chunk, error: ProcessError) {
    let i = chunk.settled;
    match after_failure(chunk.marks[i], true, core.settings.item_lives) {
        Fate::Retry(marks) => {
            chunk.settled += 1;
            let item = chunk.items.one(i);
            let retry = Chunk::with_marks(Arc::clone(&chunk.job), chunk.call, item, vec![marks]);
            core.queue.push_front(retry);
        }
        Fate::Fail => chunk.settle(Err(error)),
    }
}

/// The worker died while it ran the process item due (`item`: its beacon word and
/// attempt as the worker last said), of `death` (a crash in the worker's `main_loop`,
/// where items run, or the item's timeout): the failure is named after the item's own
/// section, and the item runs again from its original state, or only its `error`, on
/// another worker, or has the failure as its result (see `lifecycle.rs`).
fn process_died(core: &Core, chunk: &mut Chunk, death: ProcessError, item: (u64, u32), lives: u32) {
    let i = chunk.settled;
    let (word, attempt) = item;
    let section = beacon::section_of(word);
    let failure = match death {
        ProcessError::Crashed { exit, .. } => ProcessError::Crashed { section, exit },
        other => other,
    };
    let arg = chunk.items.arg(i);
    let Ok((header, state)) = lifecycle::split(arg) else {
        return chunk.settle(Err(failure));
    };
    let attempt = if attempt == 0 {
        header.attempt
    } else {
        attempt
    };
    let handling_error = header.error.is_some() || section == Some(Section::Error);
    let next: ItemHeader = match lifecycle::after_death(failure, attempt, lives, handling_error) {
        Ok(next) => next,
        Err(failure) => return chunk.settle(Err(failure)),
    };
    let Some(index) = chunk.items.index(i) else {
        return;
    };
    let mut again = Items::with_capacity(1);
    let staged = again.push_with(index, |args| {
        if lifecycle::restage(&next, state, args) {
            Ok(())
        } else {
            Err(())
        }
    });
    if staged.is_err() {
        return chunk.settle(Err(ProcessError::State(
            "the pool cannot encode a process item's next attempt".into(),
        )));
    }
    let marks = chunk.marks[i];
    chunk.settled += 1;
    let retry = Chunk::with_marks(Arc::clone(&chunk.job), chunk.call, again, vec![marks]);
    core.queue.push_front(retry);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Exit, RemoteError};

    #[test]
    fn only_a_death_in_main_loop_blames_the_item() {
        let crash = |section| ProcessError::Crashed {
            section,
            exit: Exit::Signal(9),
        };
        // Item 5 started, 4 answered: it was running.
        let running = |e: &ProcessError| blames_item(e, 5, 4);
        assert!(running(&crash(Some(Section::MainLoop))));
        assert!(running(&ProcessError::Timeout {
            section: Section::MainLoop,
            limit: Duration::from_secs(1)
        }));
        assert!(!running(&crash(Some(Section::Preloop))));
        assert!(!running(&crash(Some(Section::Postloop))));
        assert!(!running(&crash(None)));
        assert!(!running(&ProcessError::Killed));
        assert!(!running(&ProcessError::Preloop(RemoteError::msg("x"))));
    }

    #[test]
    fn only_the_item_started_and_not_answered_is_blamed() {
        let crash = ProcessError::Crashed {
            section: Some(Section::MainLoop),
            exit: Exit::Signal(6),
        };
        assert!(
            blames_item(&crash, 1, 0),
            "the first item of a fresh worker"
        );
        assert!(blames_item(&crash, 1000, 999));
        // Its result was committed before the death, still in main_loop: nothing ran.
        assert!(!blames_item(&crash, 1000, 1000));
        assert!(!blames_item(&crash, 0, 0));
        // Counts no worker writes: nobody is blamed (the item is run again, a bounded
        // number of times).
        assert!(!blames_item(&crash, 1002, 1000));
        assert!(!blames_item(&crash, 3, 1000));
    }

    #[test]
    fn a_failed_item_is_retried_while_it_has_lives() {
        let fresh = Marks::default();
        assert_eq!(after_failure(fresh, true, 1), Fate::Fail);
        let Fate::Retry(once) = after_failure(fresh, true, 3) else {
            panic!("retried")
        };
        assert_eq!(once.failures, 1);
        let Fate::Retry(twice) = after_failure(once, true, 3) else {
            panic!("retried")
        };
        assert_eq!(after_failure(twice, true, 3), Fate::Fail);
    }

    #[test]
    fn a_lost_item_is_run_again_a_bounded_number_of_times_whatever_its_lives() {
        let mut marks = Marks::default();
        for _ in 0..MAX_LOSSES {
            match after_failure(marks, false, 1) {
                Fate::Retry(next) => marks = next,
                Fate::Fail => panic!("lost only {} times", marks.losses),
            }
        }
        assert_eq!(marks.failures, 0, "a loss costs no life");
        assert_eq!(after_failure(marks, false, 1), Fate::Fail);
    }
}
