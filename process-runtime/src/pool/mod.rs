//! `Pool`: warm worker processes that run a function over many items, after Python's
//! `multiprocessing.Pool`, except that nothing an item does can break it.
//!
//! - [`worker`] is the child side: a process type that runs one item per lap.
//! - [`driver`] is one parent thread per worker: it feeds its worker chunks, reads the
//!   results, blames the item a dead worker was running, retries, and replaces it.
//! - [`ring`] is where a worker leaves its results, in the page it shares with its
//!   parent: read after its death as before it.
//! - [`queue`] holds the chunks waiting for a worker, tied to the call they belong to.
//! - [`feed`] is the caller's side: it reads the input lazily, sizes chunks, and
//!   hands results back in order or as they finish.
//! - [`inbox`] is where the drivers leave a call's results, and wakes its caller only
//!   once what it waits for has come.
//! - [`gather`] is where `map` and `run` write each result in its place as it comes.
//!
//! The function travels as a code offset, as for `spawn` (see `call.rs`): a worker can
//! run any function of the binary, so one pool serves calls of different functions.

mod driver;
mod feed;
mod gather;
mod inbox;
mod lifecycle;
mod queue;
pub(crate) mod ring;
mod worker;

use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use self::driver::{Core, Settings, Slot};
use self::feed::Feed;
use self::gather::Gather;
use self::queue::{ProcessRules, Queue};
use crate::wire::protocol::POSTCARD_LIMITS;
use crate::{Process, ProcessConfig, ProcessError};

/// Worker processes, started once and kept warm, that run a function over many items
/// ([`Pool::map`], [`Pool::imap`], [`Pool::imap_unordered`] and [`Pool::apply`]), or
/// many processes with their whole lifecycle ([`Pool::run`]).
///
/// ```
/// use process_runtime::prelude::*;
///
/// let pool = Pool::new(2)?;
/// let squares = pool.map(|x: u64| x * x, 0..1000);
/// assert_eq!(squares[7], Ok(49));
/// for (i, len) in pool.imap(|s: String| s.len(), ["a", "bb"].map(String::from)).enumerate() {
///     assert_eq!(len?, i + 1);
/// }
/// # Ok::<(), ProcessError>(())
/// ```
///
/// The function is a fn item or a closure that captures nothing, as for
/// [`spawn`](crate::spawn): it runs in the workers, where values captured here do not
/// exist. Items and results cross with postcard. Each item's result is its own: the
/// function's value, or the [`ProcessError`] that says why there is none.
///
/// **A pool never breaks.** A panic in the function is that item's error
/// ([`ProcessError::MainLoop`] with the panic's message; the call is the worker's
/// `main_loop`) and the worker goes on. A worker that aborts, segfaults, exits or is
/// killed from outside while running an item costs that item only: its result is
/// [`ProcessError::Crashed`] with the signal or exit code, the items it finished keep
/// their results, the rest of its chunk is run by another worker, a fresh worker takes
/// its place, and the pool serves later calls as before. An item running past its limit ([`PoolBuilder::item_timeout`],
/// 300 s by default) is killed with its worker and its result is
/// [`ProcessError::Timeout`]. With [`PoolBuilder::item_lives`] a failed item is run
/// again before its error is the result. An argument that does not decode in the
/// worker is [`ProcessError::State`], a result that does not encode there or decode
/// here is [`ProcessError::Output`]; neither costs a worker.
///
/// **Chunks.** Items go to the workers in chunks sized to the work: a quarter of each
/// worker's fair share of what is left when the input's length is known, growing from
/// one item towards 5 ms of work when it is not, at most 1024 items and about 1 MiB of
/// arguments; [`PoolBuilder::chunk_size`] fixes the size instead. `map` and `run`,
/// which hand back no result before the last, cut larger chunks: up to 16,384 items,
/// and never below an eighth of a worker's share of the whole input. A result of
/// `imap` is handed back as soon as its item finishes when the pool waits for it, and
/// in a batch with the others that finished meanwhile when it is busy, whatever the
/// chunk.
///
/// **Dropping the pool** ends its workers: idle ones are told to end, busy ones (still
/// running items of a call that was dropped) are killed, and the drop returns once
/// every worker is reaped. A pool is `Send` and `Sync`: calls from several threads
/// share its workers.
pub struct Pool {
    core: Arc<Core>,
    drivers: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.core.settings.name)
            .field("workers", &self.core.settings.workers)
            .finish_non_exhaustive()
    }
}

/// The settings of a [`Pool`]: `Pool::builder().workers(4).item_timeout(d).build()?`.
#[derive(Debug, Clone)]
#[must_use]
pub struct PoolBuilder {
    workers: Option<usize>,
    name: String,
    item_timeout: Option<Duration>,
    item_lives: u32,
    chunk_size: Option<usize>,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        Self {
            workers: None,
            name: "pool worker".to_owned(),
            item_timeout: Some(crate::Timeouts::DEFAULT_MAIN_LOOP),
            item_lives: 1,
            chunk_size: None,
        }
    }
}

impl PoolBuilder {
    /// The number of worker processes (by default one per core, as
    /// `std::thread::available_parallelism` tells). At least 1.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// The workers' process name, shown in logs (`"pool worker"` by default).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The limit of one item: a `Duration`, or `None` to let items run for ever. An
    /// item past it is killed with its worker, its result is
    /// [`ProcessError::Timeout`], and a fresh worker goes on with the rest. By default
    /// 300 s, the limit of a process's `main_loop`. For functions: the processes of
    /// [`Pool::run`] are held to their own section limits.
    pub fn item_timeout(mut self, limit: impl Into<Option<Duration>>) -> Self {
        self.item_timeout = limit.into();
        self
    }

    /// Attempts of each item before its failure is its result: with `item_lives(3)`, an
    /// item that panics, crashes its worker or runs past its limit is run again, up to
    /// three times in all. At least 1 (the default). For functions: the processes of
    /// [`Pool::run`] have their own `lives`.
    pub fn item_lives(mut self, lives: u32) -> Self {
        self.item_lives = lives;
        self
    }

    /// Sends items to the workers in chunks of exactly `size` (at most 1024), instead
    /// of sizing chunks to the work. `chunk_size(1)` spreads slow items best.
    pub fn chunk_size(mut self, size: usize) -> Self {
        self.chunk_size = Some(size);
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    /// [`ProcessError::Config`] for no workers, no lives, a chunk size of 0 or an
    /// empty name; [`ProcessError::Io`] when a worker cannot be started (those
    /// started already are ended).
    pub fn build(self) -> Result<Pool, ProcessError> {
        let workers = match self.workers {
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        if workers == 0 {
            return Err(ProcessError::Config(
                "a pool needs at least one worker".into(),
            ));
        }
        if self.chunk_size == Some(0) {
            return Err(ProcessError::Config(
                "`chunk_size` must be at least 1".into(),
            ));
        }
        ProcessConfig::new(self.name.clone())
            .with_lives(self.item_lives)
            .validate()?;
        let settings = Settings {
            name: self.name,
            workers,
            item_timeout: self.item_timeout,
            item_lives: self.item_lives,
            chunk_size: self.chunk_size,
        };
        // Started here, so that an error reaches the caller (and, on the main thread,
        // without a detour through the spawner thread).
        let mut started = Vec::with_capacity(workers);
        for _ in 0..workers {
            match driver::start_worker(&settings) {
                Ok(worker) => started.push(worker),
                Err(e) => {
                    for worker in &started {
                        worker.kill();
                    }
                    return Err(e);
                }
            }
        }
        let core = Arc::new(Core {
            queue: Queue::default(),
            settings,
            slots: started.into_iter().map(|w| Slot::new(Some(w))).collect(),
        });
        let mut pool = Pool {
            core,
            drivers: Vec::with_capacity(workers),
        };
        for i in 0..workers {
            let core = Arc::clone(&pool.core);
            let thread = std::thread::Builder::new()
                .name(format!("process-runtime-pool-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || driver::drive(&core, &core.slots[i]))
                .map_err(|e| ProcessError::Io(format!("cannot start a pool thread: {e}")))?;
            pool.drivers.push(thread);
        }
        Ok(pool)
    }
}

impl Pool {
    /// Starts `workers` worker processes, with the default settings of
    /// [`PoolBuilder`].
    ///
    /// # Errors
    /// As [`PoolBuilder::build`].
    pub fn new(workers: usize) -> Result<Pool, ProcessError> {
        Self::builder().workers(workers).build()
    }

    /// The settings, to change before starting the workers.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// The number of worker processes.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.core.settings.workers
    }

    /// Runs `f(arg)` on a worker and waits for its result.
    ///
    /// # Errors
    /// The item's error: see [`Pool`].
    pub fn apply<A, R, F>(&self, f: F, arg: A) -> Result<R, ProcessError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        F: Fn(A) -> R,
    {
        self.imap(f, std::iter::once(arg))
            .next()
            .expect("one item has one result")
    }

    /// Runs `f` on every item, on the workers, and returns the results in input order
    /// once all are done. The input is read whole first.
    pub fn map<A, R, F, I>(&self, f: F, items: I) -> Vec<Result<R, ProcessError>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        F: Fn(A) -> R,
        I: IntoIterator<Item = A>,
    {
        let items: Vec<A> = items.into_iter().collect();
        let call = crate::call::offset_of::<A, R, F>(&f);
        self.collect(call, items, None)
    }

    /// Runs each process of `states`, a process type's states, on the workers, with
    /// its whole lifecycle, and returns their outcomes in input order once all are
    /// done: what [`Handle::result`](crate::Handle::result) of the process started
    /// with [`start`](crate::Process::start) would return, without a process started
    /// for each. The input is read whole first.
    ///
    /// ```
    /// use process_runtime::prelude::*;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Process, Serialize, Deserialize)]
    /// #[process(num_loops = 3, lives = 2, timeout.loop = "10s")]
    /// struct Count { n: u32 }
    ///
    /// impl Lifecycle for Count {
    ///     type Output = u32;
    ///     fn main_loop(&mut self, _cx: &mut Context) -> Outcome { self.n += 1; Ok(()) }
    ///     fn result(&mut self, _cx: &mut Context) -> Result<u32, BoxError> { Ok(self.n) }
    /// }
    ///
    /// # #[process_runtime::main]
    /// # fn main() -> Result<(), ProcessError> {
    /// let pool = Pool::new(2)?;
    /// let outcomes = pool.run((0..10).map(|n| Count { n }));
    /// assert_eq!(outcomes[4], Ok(7));
    /// # Ok(()) }
    /// ```
    ///
    /// Everything in the type's `#[process(...)]` holds as for a started process:
    /// `num_loops`, `join_in`, `cx.stop()`, the wrapping of errors by section, `lives`
    /// (each attempt starts from the original state, the one read from `states`) and
    /// `error` once they are spent, and each section's limit. The pool's own
    /// `item_timeout` and `item_lives` are for functions and do not apply.
    ///
    /// A process that panics or returns an error costs no worker: the worker runs its
    /// next attempt at once. One that aborts, segfaults, exits or is killed from
    /// outside ([`ProcessError::Crashed`], naming the process's section), or runs past
    /// a section's limit ([`ProcessError::Timeout`], and its worker is killed), costs
    /// its worker and a life: its next attempt (or its `error`) runs on another
    /// worker, a fresh worker takes the dead one's place, and the other processes keep
    /// their own outcomes.
    ///
    /// The processes run inside the workers: [`Context::pid`](crate::Context::pid) and
    /// [`Context::id`](crate::Context::id) are the worker's, and there is no handle to
    /// talk to, so [`Context::tell`](crate::Context::tell) and
    /// [`Context::listen`](crate::Context::listen) return `Ended`.
    pub fn run<P, I>(&self, states: I) -> Vec<Result<P::Output, ProcessError>>
    where
        P: Process,
        I: IntoIterator<Item = P>,
    {
        let config = P::config();
        let rules = ProcessRules {
            timeouts: config.timeouts,
            lives: config.lives,
        };
        let items: Vec<_> = states.into_iter().map(lifecycle::Staged::first).collect();
        self.collect(lifecycle::offset_of::<P>(), items, Some(rules))
    }

    /// Runs the function whose trampoline is at `call` on every item, and returns the
    /// results in input order.
    fn collect<A: Serialize, R: DeserializeOwned>(
        &self,
        call: i64,
        items: Vec<A>,
        process: Option<ProcessRules>,
    ) -> Vec<Result<R, ProcessError>> {
        let mut results = Gather::new(items.len());
        let mut feed = Feed::new(
            &self.core,
            call,
            items.into_iter(),
            decode,
            false,
            false,
            process,
        );
        feed.for_each_result(|index, result| {
            let at = usize::try_from(index).expect("an index of an item in memory");
            results.put(at, result);
        });
        // Every item read gets exactly one result (see `queue.rs`).
        results.finish()
    }

    /// Runs `f` on every item, on the workers, and yields the results in input order
    /// as they become available. Lazy: it reads ahead only a few chunks of the input,
    /// so the first result comes before the input is read whole, and an endless input
    /// runs in bounded memory when the results are taken as they come. Dropping the
    /// iterator cancels the items not started, and kills the workers still running
    /// its items a moment later (fresh ones take their place), so that an item that
    /// never ends cannot hold the pool.
    ///
    /// A panic of the input iterator reaches the caller when its turn comes, after the
    /// results of the items read before it.
    pub fn imap<A, R, F, I>(&self, f: F, items: I) -> Imap<'_, I::IntoIter, R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        F: Fn(A) -> R,
        I: IntoIterator<Item = A>,
    {
        Imap {
            feed: self.lazy_feed(&f, items, true),
        }
    }

    /// Like [`Pool::imap`], but yields each result as soon as its item finishes,
    /// whatever its place in the input.
    pub fn imap_unordered<A, R, F, I>(&self, f: F, items: I) -> ImapUnordered<'_, I::IntoIter, R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        F: Fn(A) -> R,
        I: IntoIterator<Item = A>,
    {
        ImapUnordered {
            feed: self.lazy_feed(&f, items, false),
        }
    }

    /// The feed of `imap` (`in_order`) or `imap_unordered`: `f` over `items`, read a
    /// window ahead of the results taken.
    fn lazy_feed<A, R, F, I>(&self, f: &F, items: I, in_order: bool) -> Feed<'_, I::IntoIter, R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        F: Fn(A) -> R,
        I: IntoIterator<Item = A>,
    {
        let call = crate::call::offset_of::<A, R, F>(f);
        Feed::new(
            &self.core,
            call,
            items.into_iter(),
            decode,
            in_order,
            true,
            None,
        )
    }
}

impl Default for Pool {
    /// A pool of one worker per core, with the default settings.
    ///
    /// # Panics
    /// When the workers cannot be started; [`PoolBuilder::build`] returns the error
    /// instead.
    fn default() -> Self {
        Self::builder()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the workers of a pool: {e}"))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.core.queue.close();
        for slot in &self.core.slots {
            slot.kill_if_busy();
        }
        for driver in self.drivers.drain(..) {
            let _ = driver.join();
        }
        for slot in &self.core.slots {
            driver::retire(&self.core, slot);
        }
    }
}

/// An item's result, decoded from its bytes.
fn decode<R: DeserializeOwned>(bytes: &[u8]) -> Result<R, ProcessError> {
    postcard::from_bytes(bytes).map_err(|e| {
        ProcessError::Output(format!(
            "the parent cannot decode `{}` ({e}); {POSTCARD_LIMITS}",
            std::any::type_name::<R>()
        ))
    })
}

/// The results of [`Pool::imap`], in input order.
pub struct Imap<'p, I, R> {
    feed: Feed<'p, I, R>,
}

/// The results of [`Pool::imap_unordered`], as their items finish.
pub struct ImapUnordered<'p, I, R> {
    feed: Feed<'p, I, R>,
}

/// What [`Imap`] and [`ImapUnordered`] share: the order is their [`Feed`]'s, so the
/// two are one iterator under two names, each documented for what it promises.
macro_rules! results_iterator {
    ($name:ident) => {
        impl<'p, I, R> $name<'p, I, R> {
            /// The same results as a [`Stream`](futures_core::Stream), for async code
            /// (see [`ImapStream`]).
            #[must_use]
            pub fn into_stream(self) -> ImapStream<'p, I, R> {
                ImapStream { feed: self.feed }
            }
        }

        impl<I, R, A> Iterator for $name<'_, I, R>
        where
            I: Iterator<Item = A>,
            A: Serialize,
            R: DeserializeOwned,
        {
            type Item = Result<R, ProcessError>;

            fn next(&mut self) -> Option<Self::Item> {
                self.feed.next_result().map(|(_, result)| result)
            }

            fn size_hint(&self) -> (usize, Option<usize>) {
                self.feed.size_hint()
            }
        }

        impl<I, R> fmt::Debug for $name<'_, I, R> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}

results_iterator!(Imap);
results_iterator!(ImapUnordered);

/// The results of [`Pool::imap`] or [`Pool::imap_unordered`] as a
/// [`Stream`](futures_core::Stream), in the order of the call it came from:
/// `pool.imap(f, items).into_stream()`.
///
/// A task that polls it is woken by the pool's threads when results come, never by a
/// timer, and no thread is blocked or started for it: it works on any executor. The
/// input is read when the stream is polled, on the polling task's thread, a window
/// ahead as for the iterator (an input that blocks blocks that task). Dropping the
/// stream cancels the call, as dropping the iterator does.
pub struct ImapStream<'p, I, R> {
    feed: Feed<'p, I, R>,
}

// Nothing in it is pinned structurally: results are only moved out of it.
impl<I: Unpin, R> Unpin for ImapStream<'_, I, R> {}

impl<I, R, A> futures_core::Stream for ImapStream<'_, I, R>
where
    I: Iterator<Item = A> + Unpin,
    A: Serialize,
    R: DeserializeOwned,
{
    type Item = Result<R, ProcessError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.get_mut()
            .feed
            .poll_next_result(cx)
            .map(|next| next.map(|(_, result)| result))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.feed.size_hint()
    }
}

impl<I, R> fmt::Debug for ImapStream<'_, I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapStream").finish_non_exhaustive()
    }
}
