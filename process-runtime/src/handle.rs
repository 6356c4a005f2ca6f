//! The parent's handle on a running process, shaped after `multiprocessing.Process`
//! and `std::process::Child`.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::future::{Ended, Listen};
use crate::parent::mailbox;
use crate::parent::shared::{Output, Shared};
use crate::wire::protocol::{self, POSTCARD_LIMITS};
use crate::{ProcessError, ProcessTimers, RecvError, SendError};

/// A process started by `Process::start`.
///
/// `result()` blocks until the process has ended and returns its outcome; the output is
/// kept, so it returns the same value on every call (which is why it needs `T: Clone`;
/// use [`Handle::take_result`] to move a large output out instead).
///
/// Every method takes `&self` and the handle is `Sync` (for a `Send` output): one
/// thread may wait in `result()` while another calls `kill()`.
///
/// Dropping a handle never leaves an orphan: a daemon is killed; any other process is
/// asked to stop and waited for, for at most its `on_finish` timeout (60 s by default),
/// then killed. (In async code, that wait blocks the thread: await
/// [`Handle::wait_async`] before dropping a handle whose process may still run.)
///
/// While a signal's graceful shutdown runs in a program that did not ask to be told
/// (see [`shutdown_on_signals`](crate::shutdown_on_signals)), the methods that wait
/// (`wait`, `wait_timeout`, `result`, `result_timeout`, `take_result`, `listen`,
/// `tell`) and the drop of a running process's handle do not return: the program exits
/// when every process has ended.
///
/// [`Handle::result_async`], [`Handle::wait_async`] and [`Handle::listen_async`] are
/// futures for any executor, woken by the runtime when the process's state changes.
#[derive(Debug)]
pub struct Handle<T> {
    shared: Arc<Shared>,
    /// The decoded outcome, once asked for.
    output: Mutex<Option<Result<T, ProcessError>>>,
    _output: PhantomData<fn() -> T>,
}

/// How long `Drop` waits for a stopped non-daemon when its `on_finish` has no limit.
const DROP_GRACE_WITHOUT_LIMIT: Duration = Duration::from_secs(60);

impl<T: DeserializeOwned> Handle<T> {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            output: Mutex::new(None),
            _output: PhantomData,
        }
    }

    /// The shared page of the running attempt; `None` once it has ended. A pool's
    /// driver keeps its worker's, to read the results it left there after its end too.
    pub(crate) fn beacon(&self) -> Option<Arc<crate::beacon::Beacon>> {
        self.shared.lock().beacon.clone()
    }

    /// The process id of the running child (of the latest attempt, when lives were
    /// used).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.shared.lock().pid
    }

    /// The process's [`Pid`](crate::node::Pid) in the node: the same for every
    /// attempt, never given to another process. Use it with [`crate::node`].
    #[must_use]
    pub fn id(&self) -> crate::Pid {
        self.shared.id
    }

    /// The process's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// Whether the process is still running (a child exists or is being restarted).
    #[must_use]
    pub fn is_alive(&self) -> bool {
        !self.shared.lock().finished()
    }

    /// How the child that decided the outcome ended, in the convention of Python's
    /// `exitcode`: `None` while running, `Some(0)` after a normal end, `Some(n)` for
    /// an exit code, `Some(-signal)` for a signal (`Some(-9)` after `kill`).
    #[must_use]
    pub fn exit_code(&self) -> Option<i32> {
        self.shared.lock().end.as_ref().map(|end| end.exit.code())
    }

    /// How many attempts were started: 1 unless lives were used.
    #[must_use]
    pub fn lives_used(&self) -> u32 {
        self.shared.lock().attempts
    }

    /// Blocks until the process has ended and every child of it has been reaped.
    pub fn wait(&self) {
        drop(crate::parent::reap::wait_for_end(&self.shared));
        crate::shutdown::hold();
    }

    /// Waits, without blocking a thread, until the process has ended and every child
    /// of it has been reaped: [`Handle::wait`] for async code, on any executor.
    ///
    /// The future is woken by the runtime when the process's state changes, never by
    /// polling. Dropping it cancels only the wait. It has no time limit: use your
    /// executor's timeout (`tokio::time::timeout`), or [`Handle::wait_timeout`] with
    /// `Duration::ZERO` to only look.
    pub fn wait_async(&self) -> impl Future<Output = ()> + Send + '_ {
        Ended::new(&self.shared)
    }

    /// Blocks for at most `timeout`; returns whether the process has ended.
    /// `Duration::ZERO` polls without blocking.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let ended = self.shared.wait_until(deadline, |i| i.finished()).1;
        crate::shutdown::hold();
        ended
    }

    /// Asks the process to stop: the section running finishes, then `on_finish` and
    /// `result` run. Has no effect on a process that has ended.
    ///
    /// A section that never returns is escalated in three steps: the stop request is
    /// sent at once (the engine sees it between sections); the section's own timeout
    /// (`timeout.loop` and friends) still runs, and when it passes the child's process
    /// group is killed and the outcome is `ProcessError::Timeout`; a stopped process is
    /// not restarted, whatever lives remain (its failure goes to `error`). A section
    /// with no timeout (`"none"`) is waited for; use [`Handle::kill`] to end it.
    ///
    /// The stop reaches the whole tree: a process that started processes of its own
    /// passes it on to them at once (its daemons are killed), and waits until they have
    /// ended before its own `on_finish` runs; that wait counts against its
    /// `timeout.onfinish`. A process that ends by itself (`num_loops`, `join_in`,
    /// `cx.stop()`) leaves its children as they are.
    pub fn stop(&self) {
        self.shared.request_stop();
    }

    /// Kills the process (and its process group) at once: `on_finish` does not run and
    /// `result()` returns [`ProcessError::Killed`]. Has no effect once the outcome is
    /// known.
    pub fn kill(&self) {
        self.shared.request_kill();
    }

    /// Sends `msg` to the child's mailbox, waiting while it is full (it holds
    /// `mailbox` unread messages, 100 by default, counted from the start of the
    /// process). The child takes it with `cx.listen`. Messages arrive exactly once and
    /// in order; when the child fails and lives remain, those it had not taken reach
    /// the next attempt, before any told later.
    ///
    /// # Errors
    /// [`SendError::Ended`] when the process has ended (its outcome is decided);
    /// [`SendError::Encode`] when postcard cannot encode `msg`.
    pub fn tell<M: Serialize + 'static>(&self, msg: &M) -> Result<(), SendError> {
        self.send(msg, true)
    }

    /// Like [`Handle::tell`], but returns [`SendError::Full`] at once instead of
    /// waiting when the child's mailbox is full.
    ///
    /// # Errors
    /// As [`Handle::tell`], and [`SendError::Full`].
    pub fn try_tell<M: Serialize + 'static>(&self, msg: &M) -> Result<(), SendError> {
        self.send(msg, false)
    }

    fn send<M: Serialize + 'static>(&self, msg: &M, wait: bool) -> Result<(), SendError> {
        let (frame, fds) = frame_to_child(msg)?;
        let sent = mailbox::tell(&self.shared, frame, fds, wait);
        if wait {
            crate::shutdown::hold();
        }
        sent
    }

    /// Takes the oldest message of type `M` the child sent (with `cx.tell`), waiting
    /// up to `timeout`: a `Duration`, `Duration::ZERO` to only look at what has
    /// arrived, or `None` to wait for ever. Messages of other types stay queued, in
    /// order. Messages a child sent stay here after it ends or is restarted, until
    /// taken. Only what the child told (`cx.tell`) is here: what it sent with
    /// `node::send` is in the receiver's node mailbox, for `node::receive`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`] when none came in time; [`RecvError::Ended`] at once when
    /// the process has ended (or its outcome is decided) and none is left;
    /// [`RecvError::Decode`] when a message tagged for `M` does not decode as `M` (it is
    /// consumed).
    pub fn listen<M: DeserializeOwned + 'static>(
        &self,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<M, RecvError> {
        let deadline = process_core::__deadline(timeout.into());
        let mut decoded = None;
        let listened = mailbox::listen(
            &self.shared,
            process_core::__tag_of::<M>(),
            deadline,
            &mut |body| {
                decoded = Some(process_core::__decode::<M>(body));
            },
        );
        crate::shutdown::hold();
        listened?;
        decoded.expect("listen hands over a message when it succeeds")
    }

    /// Like [`Handle::listen`] without a time limit (`listen(None)`), without blocking
    /// a thread: a future for any executor, woken by the runtime when a message
    /// arrives or the process ends (then [`RecvError::Ended`] once nothing of type `M`
    /// is left). Dropping the future cancels only the wait: no message is taken but
    /// the one it returns. [`Handle::listen_async_timeout`] adds a time limit.
    ///
    /// While it waits, the future reads nothing itself: the runtime's event loop reads
    /// every child's socket and wakes it (where the blocking `listen` reads the socket
    /// on its own thread, a little faster).
    ///
    /// # Errors
    /// As [`Handle::listen`].
    pub fn listen_async<M: DeserializeOwned + 'static>(
        &self,
    ) -> impl Future<Output = Result<M, RecvError>> + Send + '_ {
        self.listen_async_timeout(None)
    }

    /// [`Handle::listen_async`] with a time limit, as [`Handle::listen`] takes one:
    /// `timeout` is counted from this call, and its deadline is held by the runtime's
    /// event loop, so it needs no timer of the executor's.
    ///
    /// # Errors
    /// As [`Handle::listen`].
    pub fn listen_async_timeout<M: DeserializeOwned + 'static>(
        &self,
        timeout: impl Into<Option<Duration>>,
    ) -> impl Future<Output = Result<M, RecvError>> + Send + '_ {
        let deadline = process_core::__deadline(timeout.into());
        Listen::<M>::new(&self.shared, process_core::__tag_of::<M>(), deadline)
    }

    /// Blocks until the process has ended and returns its outcome: the output of
    /// `result` (or of `error`, when it recovered), or why there is none. When it
    /// returns, [`Handle::exit_code`] is known and every child of the process is reaped.
    ///
    /// # Errors
    /// The wrapped section error, timeout, crash or kill; [`ProcessError::ResultTaken`]
    /// after [`Handle::take_result`].
    pub fn result(&self) -> Result<T, ProcessError>
    where
        T: Clone,
    {
        self.with_output(|output| output.clone())
    }

    /// Like [`Handle::result`], but waits for at most `timeout`: `None` when the
    /// outcome is not known by then (the process keeps running), `Some` with what
    /// `result()` returns otherwise. `Duration::ZERO` only looks.
    pub fn result_timeout(&self, timeout: Duration) -> Option<Result<T, ProcessError>>
    where
        T: Clone,
    {
        self.wait_timeout(timeout).then(|| self.result())
    }

    /// Like [`Handle::result`], without blocking a thread: a future for any executor
    /// that resolves to the outcome once the process has ended (and every child of it
    /// is reaped), woken by the runtime, never by polling. Dropping it cancels only
    /// the wait; there is no time limit but your executor's timeout. The future is
    /// `Send` when `T` is.
    ///
    /// # Errors
    /// As [`Handle::result`].
    pub async fn result_async(&self) -> Result<T, ProcessError>
    where
        T: Clone,
    {
        self.wait_async().await;
        // It has ended: this does not wait.
        self.result()
    }

    /// Like [`Handle::result`], but moves the output out instead of cloning it; later
    /// calls return [`ProcessError::ResultTaken`].
    ///
    /// # Errors
    /// As [`Handle::result`].
    pub fn take_result(&self) -> Result<T, ProcessError> {
        self.with_output(|output| std::mem::replace(output, Err(ProcessError::ResultTaken)))
    }

    /// Waits for the end, decodes the outcome once, and lets `f` read or take it.
    fn with_output<R>(&self, f: impl FnOnce(&mut Result<T, ProcessError>) -> R) -> R {
        let inner = crate::parent::reap::wait_for_end(&self.shared);
        let mut output = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        let decoded = output.get_or_insert_with(|| {
            match &inner.end.as_ref().expect("waited for the end").report {
                Ok(bytes) => postcard::from_bytes(bytes.bytes()).map_err(|e| {
                    ProcessError::Output(format!(
                        "the parent cannot decode `{}` ({e}); {POSTCARD_LIMITS}",
                        std::any::type_name::<T>()
                    ))
                }),
                Err(e) => Err(e.clone()),
            }
        });
        drop(inner);
        let out = f(decoded);
        drop(output);
        crate::shutdown::hold();
        out
    }

    /// The child's timers, once the process has ended (empty before, and for sections
    /// `#[timethis]` does not mark), from the last attempt (the child that only runs
    /// `error` times nothing and keeps the failed attempt's). The section timers are
    /// there whatever the end, a timeout, a crash or a kill included, up to the last
    /// section the child completed; named timers arrive only with the child's report.
    #[must_use]
    pub fn timers(&self) -> &ProcessTimers {
        match self.shared.timers.get() {
            Some(timers) => timers.get(),
            None => ProcessTimers::__empty(),
        }
    }

    /// The bytes of the report frame the child sent (length prefix included), once
    /// the process ended with an output; for the benchmark. Not public API.
    #[doc(hidden)]
    #[must_use]
    pub fn __report_len(&self) -> Option<usize> {
        let inner = self.shared.lock();
        inner
            .end
            .as_ref()?
            .report
            .as_ref()
            .ok()
            .map(Output::frame_len)
    }
}

/// `msg` as a message frame to a child, sealed, with the descriptors of its
/// `Transfer`s, which travel with the frame.
pub(crate) fn frame_to_child<M: Serialize + 'static>(
    msg: &M,
) -> Result<(Vec<u8>, Vec<std::os::fd::OwnedFd>), SendError> {
    // The frame's slot is written once the outbox has one for it.
    let prefix = protocol::message_prefix(&protocol::TO_CHILD, process_core::__tag_of::<M>());
    let (frame, fds) = crate::transfer::collect(|| process_core::__encode_into(msg, prefix))?;
    Ok((protocol::seal(frame, std::any::type_name::<M>())?, fds))
}

impl<T> Handle<T> {
    /// What the handle shares with the supervision of its process.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl<T> Drop for Handle<T> {
    fn drop(&mut self) {
        if self.shared.lock().finished() {
            return;
        }
        crate::shutdown::hold();
        if self.shared.config.daemon {
            self.shared.request_kill();
        } else {
            self.shared.request_stop();
            let grace = self
                .shared
                .config
                .timeouts
                .on_finish
                .unwrap_or(DROP_GRACE_WITHOUT_LIMIT);
            let deadline = Instant::now().checked_add(grace);
            if !self.shared.wait_until(deadline, |i| i.finished()).1 {
                self.shared.request_kill();
            }
        }
        // The supervisor reaps the killed child; wait for it so no zombie outlives us.
        let deadline = Instant::now().checked_add(Duration::from_secs(5));
        drop(self.shared.wait_until(deadline, |i| i.finished()));
    }
}
