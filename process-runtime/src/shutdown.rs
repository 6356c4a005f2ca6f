//! Stopping a whole program: SIGTERM, Ctrl-C and [`shutdown`].
//!
//! **The graceful phase** ([`tree::graceful`]) asks every process the program started
//! to stop, kills its daemons, and waits until every one has ended, each within its own
//! limits. Starts are refused meanwhile ([`ProcessError::ShuttingDown`]).
//!
//! **Nested processes end bottom-up.** A stop that comes from a process's parent (its
//! handle's `stop()` or drop, or a shutdown) is marked as such in the page the two
//! share. A child that started processes of its own waits for that mark (the parent
//! wakes it) and passes the stop on to its own children at once; and when its engine
//! reaches `on_finish`, it first runs the graceful phase over its own children, so
//! that they have ended before its `on_finish` starts. That wait counts against its own `timeout.onfinish`: past it,
//! it is killed as usual, and its children with it. A process that ends by itself
//! (`num_loops`, `join_in`, `cx.stop()`) leaves its children alone, as before.
//!
//! **Signals.** [`shutdown_on_signals`] (called by `#[process_runtime::main]`) starts a
//! thread that receives SIGTERM and SIGINT (see `sys`). The first one begins the
//! graceful phase on a thread of its own; a second one, at any time after, kills every
//! process at once and exits. When the phase is over, the program exits with 128 + the
//! signal's number, unless it asked to be told ([`shutdown_requested`],
//! [`wait_for_shutdown`]): then `main` decides. Until then, the program's own calls
//! that wait on processes do not return ([`hold`]), so that it never acts on the ends
//! of processes that are only being stopped because it is about to exit.
//!
//! A child never installs anything: `shutdown_on_signals` does nothing there, and the
//! attribute's call is never reached in a child (the child is entered before it).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard, Once, OnceLock, PoisonError};
use std::task::Poll;
use std::time::Duration;

use crate::parent::tree;
use crate::parent::wakers::{Registration, Wakers};
use crate::{sys, ProcessError};

/// What the signals did so far.
struct Signals {
    /// The signal that began the shutdown, once one did.
    first: Option<i32>,
    /// A second signal came: the signal thread kills everything and exits with it.
    killing: bool,
}

static SIGNALS: Mutex<Signals> = Mutex::new(Signals {
    first: None,
    killing: false,
});
/// The wakers of pending [`wait_for_shutdown_async`] futures, registered under the
/// lock of [`SIGNALS`] and woken after the first signal is recorded there.
static SHUTDOWN_WAKERS: LazyLock<Wakers> = LazyLock::new(Wakers::default);
/// Signalled when a shutdown begins and when the program asks to be told.
static CHANGED: Condvar = Condvar::new();
/// A signal began a shutdown (read without the lock on every waiting call).
static REQUESTED: AtomicBool = AtomicBool::new(false);
/// The program asked to be told of a shutdown, and decides what happens after it.
static TOLD: AtomicBool = AtomicBool::new(false);
/// The handlers are installed.
static INSTALLED: Mutex<bool> = Mutex::new(false);

/// How long a second signal waits for the killed processes to be reaped before the
/// program exits.
const KILL_REAP: Duration = Duration::from_secs(2);

fn signals() -> MutexGuard<'static, Signals> {
    SIGNALS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes SIGTERM and SIGINT (Ctrl-C) stop this program's processes gracefully, then
/// exit. `#[process_runtime::main]` calls it unless written
/// `#[process_runtime::main(signals = false)]`; without the attribute, call it at the
/// top of `main`. Nothing is installed unless it is called.
///
/// The first signal stops every process of the tree: each gets `stop()`, its current
/// section finishes, then its `on_finish` and `result` run, within their limits (a
/// section or `on_finish` past its limit is killed as usual). Daemons are killed. A
/// process with children of its own stops them, and waits for them, before its own
/// `on_finish`. No process starts meanwhile ([`ProcessError::ShuttingDown`]). The
/// program's own calls that wait on processes (`result`, `wait`, `listen`, `tell`,
/// dropping a handle, `start`) do not return while this runs; when every process has
/// ended, the program exits with 143 after SIGTERM or 130 after SIGINT.
///
/// A program that wants to finish its own work first asks to be told, with
/// [`shutdown_requested`], [`wait_for_shutdown`] or [`wait_for_shutdown_async`]: then its calls return as for a
/// stopped process, and `main` decides what to do and when to exit.
///
/// A second signal, at any time after the first, kills every process at once and
/// exits with 128 + that signal's number.
///
/// The signal handler only records the signal; the work is done on a thread of the
/// runtime's. Calling this more than once changes nothing. In a process started by
/// process-runtime (a child) it does nothing: a child that receives SIGTERM from
/// outside still ends as a crash (`exit_code()` is `Some(-15)`), and its parent decides.
///
/// # Errors
/// [`ProcessError::Io`] when the handlers or their thread cannot be set up (then
/// nothing is installed, and the signals keep their default action).
pub fn shutdown_on_signals() -> Result<(), ProcessError> {
    if in_child() {
        return Ok(());
    }
    let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
    if *installed {
        return Ok(());
    }
    sys::on_termination_signals(on_signal)
        .map_err(|e| ProcessError::Io(format!("cannot handle SIGTERM and SIGINT: {e}")))?;
    *installed = true;
    Ok(())
}

/// Runs the graceful phase now, as the first signal would, and returns when every
/// process the program started has ended: each non-daemon is asked to stop and runs
/// its `on_finish` and `result` within its limits, daemons are killed, and a process
/// with children of its own stops them before its own `on_finish`. Starts made
/// meanwhile (from other threads) are refused with [`ProcessError::ShuttingDown`];
/// once it returns, processes may be started again.
///
/// The handles stay usable: `result()` returns each process's outcome (a stopped
/// process's result, `ProcessError::Killed` for a daemon, a timeout for one that did
/// not finish in time). It exits nothing and does not change [`shutdown_requested`].
/// A section whose timeout is `"none"` and that never returns is waited for. Called
/// while a signal's shutdown runs in a program that did not ask to be told, it does not
/// return: the program exits when that shutdown is over.
pub fn shutdown() {
    tree::graceful();
    hold();
}

/// Whether a signal (SIGTERM or SIGINT, with [`shutdown_on_signals`] or
/// `#[process_runtime::main]`) has begun a shutdown. Stays true from then on.
///
/// Calling it also tells the runtime that this program handles a shutdown itself, as
/// listening for Ctrl-C does in other runtimes: from then on, the graceful phase still
/// stops every process, but the program's calls return as for a stopped process and
/// the program does not exit when the phase is over; `main` decides. Call it early
/// (before any signal can come), typically as the condition of the program's own loop:
///
/// ```no_run
/// # fn serve_one_request() {}
/// #[process_runtime::main]
/// fn main() {
///     while !process_runtime::shutdown_requested() {
///         serve_one_request();
///     }
///     // The processes are being stopped; their handles' `result()` returns once
///     // each has ended. Finish our own work, then return.
/// }
/// ```
#[must_use]
pub fn shutdown_requested() -> bool {
    ask_to_be_told();
    REQUESTED.load(Ordering::Acquire)
}

/// Blocks until a signal begins a shutdown (returns at once if one has). Like
/// [`shutdown_requested`], it tells the runtime that the program handles a shutdown
/// itself: call it, for example, on a thread of its own that then winds the program's
/// own work down. Without [`shutdown_on_signals`] or `#[process_runtime::main]`, no
/// signal is ever caught, and it blocks for ever.
pub fn wait_for_shutdown() {
    ask_to_be_told();
    let mut state = signals();
    while state.first.is_none() {
        state = CHANGED.wait(state).unwrap_or_else(PoisonError::into_inner);
    }
}

/// [`wait_for_shutdown`] as a future, for any executor: it resolves when a signal
/// begins a shutdown (at once if one has), woken by the runtime's signal thread, never
/// by a timer. Like [`shutdown_requested`], creating it tells the runtime that the
/// program handles a shutdown itself.
///
/// ```no_run
/// # async fn serve() {}
/// # async fn run() {
/// let shutdown = process_runtime::wait_for_shutdown_async();
/// // With tokio: tokio::select! { _ = serve() => {}, _ = shutdown => {} }
/// # let _ = shutdown;
/// # }
/// ```
pub fn wait_for_shutdown_async() -> impl Future<Output = ()> + Send + 'static {
    ask_to_be_told();
    ShutdownBegun {
        registration: Registration::new(&SHUTDOWN_WAKERS),
    }
}

/// The future of [`wait_for_shutdown_async`]; its waker stays registered until it
/// resolves or is dropped.
struct ShutdownBegun {
    registration: Registration<'static>,
}

impl Future for ShutdownBegun {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let state = signals();
        if state.first.is_some() {
            self.registration.clear();
            return Poll::Ready(());
        }
        // Under the lock the signal thread records the signal with: it wakes after.
        self.registration.set(cx.waker());
        Poll::Pending
    }
}

fn ask_to_be_told() {
    if !TOLD.swap(true, Ordering::AcqRel) {
        // Calls held until the exit can return now.
        let _state = signals();
        CHANGED.notify_all();
    }
}

/// Blocks for ever when a signal began a shutdown of a program that did not ask to be
/// told: the program exits when the graceful phase is over, and must not act on the
/// ends of its processes before (for example by returning from `main`, which would
/// end the processes still stopping). Returns at once otherwise; it costs one load.
pub(crate) fn hold() {
    if !REQUESTED.load(Ordering::Acquire) {
        return;
    }
    let mut state = signals();
    while !TOLD.load(Ordering::Acquire) {
        state = CHANGED.wait(state).unwrap_or_else(PoisonError::into_inner);
    }
}

/// What each SIGTERM or SIGINT does, on the signal thread.
fn on_signal(signal: i32) {
    let mut state = signals();
    if state.first.is_some() {
        // The graceful phase, which the kills end early, must not exit first.
        state.killing = true;
        drop(state);
        tracing::warn!(signal, "a second signal: killing every process and exiting");
        tree::kill_all(KILL_REAP);
        exit(signal);
    }
    // Starts are refused before anyone can learn of the shutdown.
    let phase = tree::begin_phase();
    state.first = Some(signal);
    REQUESTED.store(true, Ordering::Release);
    CHANGED.notify_all();
    drop(state);
    SHUTDOWN_WAKERS.wake_all();
    tracing::info!(signal, "stopping every process, then exiting");
    // On a thread of its own, so that a second signal is received while it runs. If
    // the thread cannot start, the phase is dropped with its closure, and a new one
    // runs here instead.
    let shutdown = move || graceful_then_exit(phase, signal);
    let spawned = std::thread::Builder::new()
        .name("process-runtime-shutdown".into())
        .spawn(shutdown);
    if let Err(e) = spawned {
        tracing::error!("cannot start the shutdown thread ({e}); stopping from the signal thread");
        graceful_then_exit(tree::begin_phase(), signal);
    }
}

/// Runs the phase, then exits with 128 + `signal` unless the program asked to be told
/// or a second signal took over.
fn graceful_then_exit(phase: tree::Phase, signal: i32) {
    phase.run();
    // Held while exiting, so that a second signal now waits for this exit rather than
    // racing it with another status.
    let state = signals();
    if !state.killing && !TOLD.load(Ordering::Acquire) {
        exit(signal);
    }
}

fn exit(signal: i32) -> ! {
    std::process::exit(sys::exit_code_after_signal(signal))
}

/// The child side: the flags of the page its parent shares with it, set once when the
/// child is entered. Their presence is also what says that this process is a child.
struct ParentStop {
    stop: &'static AtomicBool,
    parent_stop: &'static AtomicBool,
    /// Bumped and woken by the parent after each stop it requests.
    stop_wake: &'static AtomicU32,
}

static PARENT_STOP: OnceLock<ParentStop> = OnceLock::new();

fn in_child() -> bool {
    PARENT_STOP.get().is_some()
}

/// Called once when this process runs as a child: where its parent's stop requests
/// are stored.
pub(crate) fn set_parent_stop(
    stop: &'static AtomicBool,
    parent_stop: &'static AtomicBool,
    stop_wake: &'static AtomicU32,
) {
    let _ = PARENT_STOP.set(ParentStop {
        stop,
        parent_stop,
        stop_wake,
    });
}

/// In a child: its stop flag, and the flag that says its parent set it (a pool worker
/// lends them to the process it runs, see `pool/lifecycle.rs`).
pub(crate) fn child_stop_flags() -> Option<(&'static AtomicBool, &'static AtomicBool)> {
    PARENT_STOP
        .get()
        .map(|flags| (flags.stop, flags.parent_stop))
}

/// Whether this process is a child whose parent asked it to stop.
fn stopped_by_parent() -> bool {
    PARENT_STOP.get().is_some_and(|flags| {
        // Acquire pairs with the parent's release store of the stop flag, which it makes
        // after the parent-stop flag.
        flags.stop.load(Ordering::Acquire) && flags.parent_stop.load(Ordering::Relaxed)
    })
}

/// In a child that its parent stopped: runs the graceful phase over its own children,
/// before its `on_finish`. Does nothing otherwise.
pub(crate) fn before_on_finish() {
    if stopped_by_parent() {
        tree::graceful();
    }
}

/// Where the parent's wake-ups cannot reach a waiting thread (`sys::SHARED_WAIT` is
/// false), how often a child with children of its own looks whether its parent stopped
/// it.
const PARENT_STOP_POLL: Duration = Duration::from_millis(20);

/// What runs, once, when this child's parent stops it: see [`on_parent_stop`].
type StopHook = Box<dyn FnOnce() + Send>;

/// The hooks registered with [`on_parent_stop`] that have not run yet; `None` once they
/// have (a hook registered after that runs at once).
static STOP_HOOKS: Mutex<Option<Vec<StopHook>>> = Mutex::new(Some(Vec::new()));

/// In a child: runs `hook` as soon as its parent stops it, before the stop is passed on
/// to the child's own children (so that, say, a supervisor running here stops restarting
/// before its children go); at once if that already happened. Elsewhere `hook` never
/// runs. The hook runs on the thread that watches for the stop; it only needs to start
/// the work, not finish it.
pub(crate) fn on_parent_stop(hook: impl FnOnce() + Send + 'static) {
    if !in_child() {
        return;
    }
    watch_for_parent_stop();
    let mut hooks = STOP_HOOKS.lock().unwrap_or_else(PoisonError::into_inner);
    match hooks.as_mut() {
        Some(pending) => pending.push(Box::new(hook)),
        None => {
            drop(hooks);
            hook();
        }
    }
}

/// Called when a process is registered: in a child, starts the thread that passes a stop
/// from its parent on to its own children as soon as it comes (see
/// [`watch_for_parent_stop`]). A child that starts no process has no such thread.
pub(crate) fn registered_a_process() {
    watch_for_parent_stop();
}

/// In a child, the first call starts a thread that waits for a stop from the parent
/// (on the word the parent wakes after each stop, see `beacon.rs`), then runs the
/// [`on_parent_stop`] hooks and stops this process's own children, at once instead of
/// when its engine next reaches `on_finish` (a section may be waiting on one of those
/// children). It costs no wake-up until then.
fn watch_for_parent_stop() {
    static WATCHING: Once = Once::new();
    let Some(flags) = PARENT_STOP.get() else {
        return;
    };
    WATCHING.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("process-runtime-stop-watch".into())
            .stack_size(64 * 1024)
            .spawn(|| loop {
                let seen = flags.stop_wake.load(Ordering::SeqCst);
                if stopped_by_parent() {
                    let hooks = STOP_HOOKS
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .take();
                    hooks.into_iter().flatten().for_each(|hook| hook());
                    tree::stop_all();
                    return;
                }
                if sys::SHARED_WAIT {
                    sys::wait_on_word(flags.stop_wake, seen, None);
                } else {
                    std::thread::sleep(PARENT_STOP_POLL);
                }
            });
        if let Err(e) = spawned {
            // Its children are still stopped before its `on_finish`.
            tracing::warn!("cannot watch for a stop from the parent: {e}");
        }
    });
}
