//! A pool's drivers: one thread per worker, in the parent, that feeds it chunks, reads
//! its results, and replaces it when it dies.
//!
//! A driver tells its worker one chunk at a time and reads the results in order, one
//! per item, as the worker tells them. So when the worker dies, the items without a
//! result are known, and so is the one it was running: the first of them. Whether that
//! item is to blame depends on where the worker was ([`blames_item`]): in `main_loop`,
//! the item ran and killed it (an abort, a segfault, its time limit, a kill from
//! outside while it ran), and its result is the worker's error; anywhere else (waiting
//! for work, telling a result) no item is, and every item without a result is simply
//! run again. Either way the rest of the chunk goes back to the front of the queue,
//! where any driver can take it, and this driver starts a fresh worker for its next
//! chunk. A failed item with lives left goes back to the front too, in a chunk of its
//! own ([`after_failure`]).
//!
//! A call dropped while its items run (an `imap` iterator dropped early) does not hold
//! the worker: the driver notices within [`CANCEL_CHECK`] and kills it, and the next
//! chunk gets a fresh one.
//!
//! The worker is a process like any other, under its own supervisor; the driver only
//! tells, listens, and reads the worker's outcome once it has ended.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::queue::{Chunk, Marks, Queue};
use super::worker::{Done, Item, Work, Worker};
use crate::parent::attempt::StartOptions;
use crate::{Handle, ProcessConfig, ProcessError, RecvError, Section, SendError};

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

/// What a pool and its drivers share.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) queue: Queue,
    pub(crate) settings: Settings,
}

/// A driver's worker, as the pool sees it: to kill a busy one when the pool is dropped.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    worker: Mutex<Option<Arc<Handle<()>>>>,
    /// The driver has a chunk (set by `Queue::take`).
    pub(crate) busy: AtomicBool,
}

impl Slot {
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

/// Starts one worker process.
pub(crate) fn start_worker(settings: &Settings) -> Result<Handle<()>, ProcessError> {
    let config = ProcessConfig::new(settings.name.clone())
        .with_timeout(Section::Preloop, None)
        .with_timeout(Section::MainLoop, settings.item_timeout)
        .with_timeout(Section::Postloop, None)
        .with_mailbox(WORKER_MAILBOX);
    let options = StartOptions::default().with_default_error();
    let shared = crate::parent::start::start(&Worker::default(), config, options)?;
    Ok(Handle::new(shared))
}

/// Whether a worker that ended with `error` was running the first item it had not
/// answered: it died in `main_loop`, which is the call (see `worker.rs`).
pub(crate) fn blames_item(error: &ProcessError) -> bool {
    error.section() == Some(Section::MainLoop)
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

/// One worker and the thread that drives it.
pub(crate) struct Driver {
    core: Arc<Core>,
    slot: Arc<Slot>,
    worker: Option<Arc<Handle<()>>>,
}

impl Driver {
    /// A driver for `worker`, started by the pool (or `None`: it starts one itself).
    pub(crate) fn new(core: Arc<Core>, slot: Arc<Slot>, worker: Option<Handle<()>>) -> Self {
        let worker = worker.map(Arc::new);
        *slot.lock() = worker.clone();
        Self { core, slot, worker }
    }

    /// Runs chunks until the queue is closed, then ends the worker.
    pub(crate) fn run(mut self) {
        while let Some(chunk) = self.core.queue.take(&self.slot.busy) {
            let ran = panic::catch_unwind(AssertUnwindSafe(|| self.run_chunk(chunk)));
            self.slot.busy.store(false, Ordering::SeqCst);
            if ran.is_err() {
                // A bug of ours: the chunk gave its items an error as it unwound. Start
                // afresh, with a new worker.
                if let Some(w) = &self.worker {
                    w.kill();
                }
                self.bury();
            }
        }
        self.retire();
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
        };
        let told = worker.tell(&work);
        if let Work::Chunk { items, .. } = work {
            chunk.items = items;
        }
        if let Err(SendError::Encode { cause, .. }) = told {
            return chunk.fail_rest(&ProcessError::State(format!(
                "the items cannot be sent to a worker: {cause}"
            )));
        }
        // A worker that ended before it read the chunk answers nothing: the listen
        // below finds it ended.
        while chunk.settled < count {
            let due = chunk.items[chunk.settled].index;
            match worker.listen::<Done>(CANCEL_CHECK) {
                Ok(done) if done.index == due => self.settle(&mut chunk, done.outcome),
                Ok(done) => {
                    let why = format!(
                        "a pool worker answered item {} when item {due} was due",
                        done.index
                    );
                    return self.lose_worker(chunk, Some(ProcessError::Protocol(why)));
                }
                Err(RecvError::Ended) => return self.lose_worker(chunk, None),
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
                    return self.lose_worker(chunk, Some(ProcessError::Protocol(why)));
                }
            }
        }
        chunk.job.record(count, started.elapsed());
    }

    /// The item due got its result from the worker.
    fn settle(&self, chunk: &mut Chunk, outcome: Result<Vec<u8>, ProcessError>) {
        match outcome {
            Ok(bytes) => {
                let index = chunk.items[chunk.settled].index;
                chunk.settled += 1;
                chunk.job.deliver(index, Ok(bytes));
            }
            Err(error) => self.failed(chunk, error),
        }
    }

    /// The item due failed with `error`: retried in a chunk of its own at the front of
    /// the queue while it has lives, or given the error.
    fn failed(&self, chunk: &mut Chunk, error: ProcessError) {
        let i = chunk.settled;
        let index = chunk.items[i].index;
        chunk.settled += 1;
        match after_failure(chunk.marks[i], true, self.core.settings.item_lives) {
            Fate::Retry(marks) => {
                let item = Item {
                    index,
                    arg: std::mem::take(&mut chunk.items[i].arg),
                };
                let retry =
                    Chunk::with_marks(Arc::clone(&chunk.job), chunk.call, vec![item], vec![marks]);
                self.core.queue.push_front(retry);
            }
            Fate::Fail => chunk.job.deliver(index, Err(error)),
        }
    }

    /// The worker is gone (or broke the protocol: `broke`, and it is killed). Its error
    /// is the result of the item it was running, if it was running one; the rest of
    /// the chunk goes back to the queue.
    fn lose_worker(&mut self, mut chunk: Chunk, broke: Option<ProcessError>) {
        if broke.is_some() {
            if let Some(w) = &self.worker {
                w.kill();
            }
        }
        let ended = self.bury();
        if self.core.queue.is_closed() {
            // The pool is being dropped (and killed the worker): nobody waits.
            return;
        }
        let (error, blamed) = match (broke, ended) {
            (Some(e), _) => (e, false),
            (None, Some(Err(e))) => {
                let blamed = blames_item(&e);
                (e, blamed)
            }
            (None, _) => (
                ProcessError::Protocol("a pool worker ended while it had work".into()),
                false,
            ),
        };
        tracing::debug!(pool = %self.core.settings.name, blamed, "a worker ended: {error}");
        let due = chunk.settled;
        if due < chunk.items.len() {
            if blamed {
                self.failed(&mut chunk, error);
            } else {
                // It stays first in the rest of the chunk, unless it was lost too often.
                match after_failure(chunk.marks[due], false, self.core.settings.item_lives) {
                    Fate::Retry(marks) => chunk.marks[due] = marks,
                    Fate::Fail => {
                        chunk.settled += 1;
                        chunk.job.deliver(chunk.items[due].index, Err(error));
                    }
                }
            }
        }
        if let Some(rest) = chunk.split_rest() {
            self.core.queue.push_front(rest);
        }
    }

    /// The live worker, or a fresh one in place of a dead one.
    fn worker(&mut self) -> Result<Arc<Handle<()>>, ProcessError> {
        if let Some(w) = &self.worker {
            if w.is_alive() {
                return Ok(Arc::clone(w));
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
        self.worker = Some(Arc::clone(&worker));
        Ok(worker)
    }

    /// Forgets the worker once it has ended (reaped); returns its outcome.
    fn bury(&mut self) -> Option<Result<(), ProcessError>> {
        self.slot.lock().take();
        let worker = self.worker.take()?;
        Some(worker.take_result())
    }

    /// Ends the worker: `Quit` lets an idle one end by itself; one that does not
    /// within [`QUIT_GRACE`] is killed. Returns once it is reaped.
    fn retire(&mut self) {
        self.slot.lock().take();
        let Some(worker) = self.worker.take() else {
            return;
        };
        let _ = worker.try_tell(&Work::Quit);
        if !worker.wait_timeout(QUIT_GRACE) {
            worker.kill();
        }
        worker.wait();
    }
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
        assert!(blames_item(&crash(Some(Section::MainLoop))));
        assert!(blames_item(&ProcessError::Timeout {
            section: Section::MainLoop,
            limit: Duration::from_secs(1)
        }));
        assert!(!blames_item(&crash(Some(Section::Preloop))));
        assert!(!blames_item(&crash(Some(Section::Postloop))));
        assert!(!blames_item(&crash(None)));
        assert!(!blames_item(&ProcessError::Killed));
        assert!(!blames_item(&ProcessError::Preloop(RemoteError::msg("x"))));
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
