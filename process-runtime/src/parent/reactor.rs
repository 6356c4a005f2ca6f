//! One event loop for every process of the program: one thread that watches every
//! child's socket and exit, and holds every deadline.
//!
//! A thread per child cost a stack and a scheduler entry per child, and woke each one
//! on its own timer. Here one thread waits on one poller for all of them: a child's
//! socket becomes readable (a frame or its end), a large start frame has room to go
//! on, a child's pidfd says it exited, or the earliest deadline comes. Each process is
//! a [`Supervisor`] state machine that the loop moves on; none of them blocks the
//! loop, except the spawn of an attempt after a failure (a re-execution, about a
//! millisecond, on the spawner thread).
//!
//! **Why `polling`.** It is the readiness layer under `async-io` and smol, small and
//! well kept, with epoll on Linux and kqueue elsewhere. Its interest is one-shot by
//! default: a socket is re-armed only after what arrived was read, so the loop never
//! spins on a level, and `Poller::notify` wakes the loop from any thread, which is how
//! new processes are handed to it (and how wakers will be, for async handles). `mio`
//! would do too, but is edge-triggered, which asks every reader to drain a socket to
//! the end before it may rely on a new event.
//!
//! Handles never wait for this thread to act on their behalf for stop or kill: those
//! are a store in shared memory and a signal. Timers run on the loop's clock: a section
//! timeout is noticed within a tenth of its limit, as before.
//!
//! **Alarms.** The loop also holds the deadlines of futures (`listen_async` with a
//! time limit): an [`Alarm`] handed over with [`alarm`] wakes its waker when its time
//! comes, so a future needs neither a timer of its executor nor a thread of its own.
//! A cancelled alarm stays in the heap until its time or the next sweep.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::os::fd::BorrowedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use polling::{Events, Poller};

use super::supervisor::Supervisor;
use super::wakers::Alarm;
use super::warm::WarmEntry;
use crate::ProcessError;

/// The loop's shared end: where new supervisors are handed over.
struct Reactor {
    poller: Poller,
    incoming: Mutex<Vec<Entry>>,
    /// Keys of supervisors to look at again (a caller handed their reader back with
    /// events for them).
    kicked: Mutex<Vec<usize>>,
    /// Alarms handed over since the loop last looked.
    alarms: Mutex<Vec<Arc<Alarm>>>,
}

static REACTOR: OnceLock<Result<Arc<Reactor>, String>> = OnceLock::new();

/// Hands a supervisor whose first attempt is spawned to the event loop, starting the
/// loop on first use.
/// Without a loop, the process is ended at once (killed and reaped) and the error is
/// returned.
pub(crate) fn adopt(mut supervisor: Supervisor) -> Result<(), ProcessError> {
    let reactor = match REACTOR.get_or_init(start) {
        Ok(reactor) => reactor,
        Err(e) => {
            let error = ProcessError::Io(e.clone());
            supervisor.abandon(None, error.clone());
            return Err(error);
        }
    };
    hand_over(reactor, Entry::Process(Box::new(supervisor)));
    Ok(())
}

/// Hands a warm child to the event loop, which checks its handshake and watches it
/// until it is taken or dies.
pub(crate) fn adopt_warm(warm: WarmEntry) -> Result<(), ProcessError> {
    match REACTOR.get_or_init(start) {
        Ok(reactor) => {
            hand_over(reactor, Entry::Warm(warm));
            Ok(())
        }
        Err(e) => Err(ProcessError::Io(e.clone())),
    }
}

/// Starts the loop if it is not running yet, for a waiter that needs it before any
/// process was started (`node::receive_async`: its alarm, a child's socket watched);
/// `false` when it cannot run.
pub(crate) fn ensure_running() -> bool {
    REACTOR.get_or_init(start).is_ok()
}

/// A warm child was taken: its socket is no longer the loop's to watch, and its entry
/// goes.
pub(crate) fn forget_warm(socket: BorrowedFd<'_>, key: usize) {
    if let Some(Ok(reactor)) = REACTOR.get() {
        let _ = reactor.poller.delete(socket);
    }
    kick(key);
}

fn hand_over(reactor: &Reactor, entry: Entry) {
    reactor
        .incoming
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(entry);
    if let Err(e) = reactor.poller.notify() {
        tracing::error!("cannot wake the process-runtime event loop: {e}");
    }
}

/// What the loop watches: a process, or a warm child waiting to become one.
enum Entry {
    Process(Box<Supervisor>),
    Warm(WarmEntry),
}

impl Entry {
    fn begin(&mut self, poller: &Poller, key: usize, now: Instant) {
        match self {
            Entry::Process(s) => s.begin(poller, key, now),
            Entry::Warm(w) => {
                w.registered(key);
                // SAFETY: the socket is removed from the poller before it is closed:
                // by `forget_warm` when the child is taken, below when it is dropped.
                if let Err(e) = unsafe { poller.add(&w.socket(), polling::Event::readable(key)) } {
                    tracing::warn!("cannot watch a warm child: {e}");
                }
                self.on_ready(poller, key, now);
            }
        }
    }

    fn on_ready(&mut self, poller: &Poller, key: usize, now: Instant) {
        match self {
            Entry::Process(s) => s.on_ready(poller, now),
            Entry::Warm(w) => match w.on_ready() {
                Some(true) => {
                    let _ = poller.modify(w.socket(), polling::Event::readable(key));
                }
                Some(false) => {
                    let _ = poller.delete(w.socket());
                }
                // Taken: the socket is no longer this entry's to touch.
                None => {}
            },
        }
    }

    fn on_timer(&mut self, poller: &Poller, now: Instant) {
        if let Entry::Process(s) = self {
            s.on_timer(poller, now);
        }
    }

    fn wake_at(&self) -> Option<Instant> {
        match self {
            Entry::Process(s) => s.wake_at,
            Entry::Warm(_) => None,
        }
    }

    fn is_over(&self) -> bool {
        match self {
            Entry::Process(s) => s.is_over(),
            Entry::Warm(w) => w.is_done(),
        }
    }
}

/// Asks the loop to look at the supervisor at `key` again.
pub(crate) fn kick(key: usize) {
    if let Some(Ok(reactor)) = REACTOR.get() {
        reactor
            .kicked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key);
        let _ = reactor.poller.notify();
    }
}

/// The key of this process's own socket to its parent, when the loop watches it (a
/// child that started children of its own: see `child/port.rs`). No entry has it.
const PORT_KEY: usize = usize::MAX - 1;

/// Watches this child's socket to its parent, so that what comes down for the
/// processes below it is handed on while none of its sections reads; returns the key
/// to re-arm it with. `None` without a loop.
pub(crate) fn watch_port(socket: BorrowedFd<'_>) -> Option<usize> {
    let Some(Ok(reactor)) = REACTOR.get() else {
        return None;
    };
    // SAFETY: the socket is the child's port to its parent, which lives as long as the
    // process.
    match unsafe {
        reactor
            .poller
            .add(&socket, polling::Event::readable(PORT_KEY))
    } {
        Ok(()) => Some(PORT_KEY),
        Err(e) => {
            tracing::warn!("cannot watch the socket to the parent: {e}");
            None
        }
    }
}

/// Asks the loop to read this child's socket to its parent once, whether it is
/// readable or not.
pub(crate) fn kick_port() {
    kick(PORT_KEY);
}

/// Takes the loop's interest off `socket` while a caller reads it: otherwise each
/// message would wake the loop too, for nothing.
pub(crate) fn disarm(socket: BorrowedFd<'_>, key: usize) {
    if let Some(Ok(reactor)) = REACTOR.get() {
        let _ = reactor.poller.modify(socket, polling::Event::none(key));
    }
}

/// Arms the loop's interest in `socket` again, after a caller read it (the interest is
/// one-shot, and the loop leaves a lent socket disarmed).
pub(crate) fn rearm(socket: BorrowedFd<'_>, key: usize) {
    if let Some(Ok(reactor)) = REACTOR.get() {
        // A socket the loop no longer watches (its attempt ended meanwhile) is refused
        // with `ENOENT`, which is what we want.
        let _ = reactor.poller.modify(socket, polling::Event::readable(key));
    }
}

/// Has the loop ring `alarm` at its time. There is a loop whenever a handle exists
/// (a start fails without one); without one, it rings at once.
pub(crate) fn alarm(alarm: Arc<Alarm>) {
    match REACTOR.get() {
        Some(Ok(reactor)) => {
            reactor
                .alarms
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(alarm);
            if let Err(e) = reactor.poller.notify() {
                tracing::error!("cannot wake the process-runtime event loop: {e}");
            }
        }
        _ => alarm.ring(),
    }
}

fn start() -> Result<Arc<Reactor>, String> {
    let poller =
        Poller::new().map_err(|e| format!("cannot create the event loop's poller: {e}"))?;
    let reactor = Arc::new(Reactor {
        poller,
        incoming: Mutex::new(Vec::new()),
        kicked: Mutex::new(Vec::new()),
        alarms: Mutex::new(Vec::new()),
    });
    let looped = Arc::clone(&reactor);
    std::thread::Builder::new()
        .name("process-runtime".into())
        .stack_size(1024 * 1024)
        .spawn(move || run(&looped))
        .map_err(|e| format!("cannot start the event loop's thread: {e}"))?;
    Ok(reactor)
}

/// The entries, by key, with the keys free for reuse.
#[derive(Default)]
struct Slots {
    slots: Vec<Option<Entry>>,
    free: Vec<usize>,
}

impl Slots {
    fn insert(&mut self, entry: Entry) -> usize {
        match self.free.pop() {
            Some(key) => {
                self.slots[key] = Some(entry);
                key
            }
            None => {
                self.slots.push(Some(entry));
                self.slots.len() - 1
            }
        }
    }

    fn get(&mut self, key: usize) -> Option<&mut Entry> {
        self.slots.get_mut(key).and_then(Option::as_mut)
    }

    fn remove(&mut self, key: usize) {
        if self.slots.get_mut(key).and_then(Option::take).is_some() {
            self.free.push(key);
        }
    }
}

/// The deadlines asked for, earliest first. A supervisor that asks again leaves its
/// old entry behind; an entry counts only while it matches what its supervisor wants.
type Timers = BinaryHeap<Reverse<(Instant, usize)>>;

/// An alarm in the loop's heap, ordered by its time, then by arrival.
struct Due(Instant, u64, Arc<Alarm>);

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.0, self.1) == (other.0, other.1)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(other.0, other.1))
    }
}

/// The alarms waiting for their time, earliest first.
#[derive(Default)]
struct Alarms {
    heap: BinaryHeap<Reverse<Due>>,
    arrived: u64,
    /// The heap's size after the last sweep of cancelled alarms: the next sweep comes
    /// when it has doubled, so a loop that creates and drops futures with long time
    /// limits does not grow the heap without bound.
    swept_at: usize,
}

impl Alarms {
    fn push(&mut self, alarm: Arc<Alarm>) {
        self.arrived += 1;
        self.heap
            .push(Reverse(Due(alarm.at(), self.arrived, alarm)));
        if self.heap.len() >= 64 && self.heap.len() >= 2 * self.swept_at {
            self.heap.retain(|Reverse(due)| !due.2.is_spent());
            self.swept_at = self.heap.len();
        }
    }

    fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(due)| due.0)
    }

    /// Rings every alarm whose time has come. A waker that panics (a bug of its
    /// executor) is logged; the loop goes on.
    fn ring_due(&mut self, now: Instant) {
        while self.heap.peek().is_some_and(|Reverse(due)| due.0 <= now) {
            if let Some(Reverse(due)) = self.heap.pop() {
                if catch_unwind(AssertUnwindSafe(|| due.2.ring())).is_err() {
                    tracing::error!("a waker panicked when its deadline came");
                }
            }
        }
    }
}

fn run(reactor: &Reactor) {
    let poller = &reactor.poller;
    let mut slots = Slots::default();
    let mut timers = Timers::new();
    let mut alarms = Alarms::default();
    let mut events = Events::new();
    loop {
        let next = [timers.peek().map(|Reverse((at, _))| *at), alarms.next_at()]
            .into_iter()
            .flatten()
            .min();
        let timeout = next.map(|at| at.saturating_duration_since(Instant::now()));
        events.clear();
        if let Err(e) = poller.wait(&mut events, timeout) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                tracing::error!("the process-runtime event loop cannot wait: {e}");
            }
        }
        let now = Instant::now();
        let arrived = std::mem::take(
            &mut *reactor
                .incoming
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for supervisor in arrived {
            let key = slots.insert(supervisor);
            drive(poller, &mut slots, &mut timers, key, |s, p| {
                s.begin(p, key, now)
            });
        }
        let kicked = std::mem::take(
            &mut *reactor
                .kicked
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for key in kicked {
            if key == PORT_KEY {
                if let Some(port) = crate::child::port::port() {
                    let _ = catch_unwind(AssertUnwindSafe(|| port.read_from_loop()));
                }
                continue;
            }
            drive(poller, &mut slots, &mut timers, key, |s, p| {
                s.on_ready(p, key, now);
            });
        }
        for event in events.iter() {
            let key = event.key;
            if key == PORT_KEY {
                if let Some(port) = crate::child::port::port() {
                    if catch_unwind(AssertUnwindSafe(|| port.read_from_loop())).is_err() {
                        tracing::error!("reading the socket to the parent panicked");
                    }
                }
                continue;
            }
            drive(poller, &mut slots, &mut timers, key, |s, p| {
                s.on_ready(p, key, now);
            });
        }
        let arrived = std::mem::take(
            &mut *reactor
                .alarms
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for alarm in arrived {
            alarms.push(alarm);
        }
        alarms.ring_due(now);
        while let Some(&Reverse((at, key))) = timers.peek() {
            if at > now {
                break;
            }
            timers.pop();
            let due = slots.get(key).is_some_and(|s| s.wake_at() == Some(at));
            if due {
                drive(poller, &mut slots, &mut timers, key, |s, p| {
                    s.on_timer(p, now)
                });
            }
        }
    }
}

/// Moves the supervisor at `key` on with `step`, then files its next deadline, or
/// drops it once its process is over. A panic (a bug of ours) ends that process with
/// an error; the loop and every other process go on.
fn drive(
    poller: &Poller,
    slots: &mut Slots,
    timers: &mut Timers,
    key: usize,
    step: impl FnOnce(&mut Entry, &Poller),
) {
    let Some(entry) = slots.get(key) else {
        return;
    };
    let before = entry.wake_at();
    if catch_unwind(AssertUnwindSafe(|| step(entry, poller))).is_err() {
        match entry {
            Entry::Process(supervisor) => {
                tracing::error!(
                    process = %supervisor.shared.config.name,
                    "the supervision of this process panicked; ending it"
                );
                let abandoned = catch_unwind(AssertUnwindSafe(|| {
                    supervisor.abandon(
                        Some(poller),
                        ProcessError::Io(
                            "the process-runtime event loop failed on this process".into(),
                        ),
                    );
                }));
                if abandoned.is_err() {
                    tracing::error!("ending the process panicked too");
                }
            }
            Entry::Warm(warm) => {
                tracing::error!("watching a warm child panicked; ending it");
                warm.abandon(poller);
            }
        }
    }
    if entry.is_over() {
        slots.remove(key);
        return;
    }
    if let Some(at) = entry.wake_at() {
        if before != Some(at) {
            timers.push(Reverse((at, key)));
        }
    }
}
