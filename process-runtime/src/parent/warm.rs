//! Warm children: copies of this binary started ahead of time, authenticated, and
//! waiting for a start frame (`process_runtime::keep_warm`).
//!
//! A cold start pays for the kernel loading the binary, the dynamic linker and the
//! runtime's own start before the handshake; a warm child has paid all of that while
//! nobody waited. `start()` (and a restart after a failure) takes one when one is
//! ready and never waits for one: with none ready it starts cold.
//!
//! A warm child follows every rule of a cold one: it is spawned by a thread that lives
//! as long as the program (the keeper, below), so the parent-death signal holds; it is
//! in its own process group; it proved it holds its secret before it is handed out.
//! While it waits, the event loop watches its socket, which wakes the loop only if the
//! child dies (then it is reaped and replaced) and never otherwise: an idle warm child
//! costs no wake-up at all.
//!
//! Its shared page is made for the largest mailbox, so that any process type can use
//! it; the pages a small mailbox never touches cost nothing.

use std::collections::VecDeque;
use std::process::Child;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use super::spawn;
use crate::beacon::Beacon;
use crate::wire::channel::{Conn, FrameReader, ParentRead};
use crate::wire::handoff::{new_secret, SECRET_LEN};
use crate::wire::protocol;
use crate::{registry, sys, ProcessConfig, ProcessError};

/// A warm child: spawned, its handshake checked, waiting for its start frame.
pub(crate) struct WarmChild {
    pub(crate) child: Child,
    pub(crate) conn: Conn,
    beacon: Arc<Beacon>,
    secret: [u8; SECRET_LEN],
}

impl WarmChild {
    /// The parts an attempt is made of.
    pub(crate) fn into_parts(self) -> (Child, Conn, Arc<Beacon>, [u8; SECRET_LEN]) {
        (self.child, self.conn, self.beacon, self.secret)
    }

    /// The page this child shares with the parent, where its room to send is granted.
    pub(crate) fn beacon(&self) -> &Beacon {
        &self.beacon
    }

    /// Kills and reaps a warm child that cannot be used.
    pub(crate) fn discard(mut self) {
        let _ = sys::kill_group(self.child.id());
        let _ = self.child.wait();
    }
}

/// A warm child as the pool and the event loop share it: whoever takes the child out
/// first owns it (a taker that starts a process with it, or the loop that found it
/// dead).
pub(crate) struct WarmSlot {
    child: Mutex<Option<WarmChild>>,
    /// The event loop's key for it, once registered.
    key: Mutex<Option<usize>>,
}

impl WarmSlot {
    fn lock(&self) -> MutexGuard<'_, Option<WarmChild>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Pool {
    state: Mutex<PoolState>,
    changed: Condvar,
}

#[derive(Default)]
struct PoolState {
    /// How many warm children to keep.
    target: usize,
    /// Checked and ready, oldest first.
    ready: VecDeque<Arc<WarmSlot>>,
    /// Spawned, handshake not checked yet.
    starting: usize,
    keeper: bool,
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// How long the keeper waits before replacing a warm child that was taken, when others
/// are still ready.
const REFILL_DELAY: Duration = Duration::from_millis(5);

fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState::default()),
        changed: Condvar::new(),
    })
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps `n` warm children ready; `0` ends the idle ones.
pub(crate) fn keep(n: usize) -> Result<(), ProcessError> {
    let pool = pool();
    let mut state = pool.lock();
    state.target = n;
    let surplus = state.ready.len().saturating_sub(n);
    let idle: Vec<_> = state.ready.drain(..surplus).collect();
    if n > 0 && !state.keeper {
        std::thread::Builder::new()
            .name("process-runtime-warm".into())
            .stack_size(256 * 1024)
            .spawn(keeper)
            .map_err(|e| ProcessError::Io(format!("cannot start the warm-children thread: {e}")))?;
        state.keeper = true;
    }
    drop(state);
    pool.changed.notify_all();
    for slot in idle {
        if let Some(child) = forget(&slot) {
            child.discard();
        }
    }
    Ok(())
}

/// A ready warm child, if there is one; a replacement is started in the background.
pub(crate) fn take() -> Option<WarmChild> {
    let pool = POOL.get()?;
    loop {
        let slot = pool.lock().ready.pop_front()?;
        pool.changed.notify_all();
        let Some(child) = forget(&slot) else {
            continue;
        };
        // One that died while it waited, and the loop has not seen it yet.
        if sys::exited(child.child.id()).unwrap_or(true) {
            child.discard();
            continue;
        }
        return Some(child);
    }
}

/// The process ids of the warm children ready now, oldest first (for tests).
#[cfg(feature = "fault-injection")]
pub(crate) fn ready_pids() -> Vec<u32> {
    let Some(pool) = POOL.get() else {
        return Vec::new();
    };
    let state = pool.lock();
    state
        .ready
        .iter()
        .filter_map(|slot| slot.lock().as_ref().map(|c| c.child.id()))
        .collect()
}

/// Takes a warm child out of its slot and out of the event loop's watch.
fn forget(slot: &WarmSlot) -> Option<WarmChild> {
    let child = slot.lock().take()?;
    if let Some(key) = *slot.key.lock().unwrap_or_else(PoisonError::into_inner) {
        super::reactor::forget_warm(sys::stream_fd(child.conn.stream()), key);
    }
    Some(child)
}

/// The keeper: spawns warm children while fewer than the target are ready or starting.
/// It lives as long as the program, so the parent-death signal of the children it
/// spawns fires only when the program ends.
fn keeper() {
    let pool = pool();
    let mut failures = 0u32;
    loop {
        {
            let mut state = pool.lock();
            while state.ready.len() + state.starting >= state.target {
                state = pool
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            // A replacement is started a moment after a warm child is taken, while
            // others remain ready: its exec and start-up would otherwise compete for
            // the CPU with the very start that took one.
            if !state.ready.is_empty() {
                drop(state);
                std::thread::sleep(REFILL_DELAY);
                state = pool.lock();
                if state.ready.len() + state.starting >= state.target {
                    continue;
                }
            }
            state.starting += 1;
        }
        match spawn_warm() {
            Ok(entry) => {
                failures = 0;
                if let Err(e) = super::reactor::adopt_warm(entry) {
                    tracing::warn!("cannot watch a warm child: {e}");
                    starting_ended(None);
                }
            }
            Err(e) => {
                tracing::warn!("cannot start a warm child: {e}");
                starting_ended(None);
                // A machine out of processes or memory is not hammered.
                failures = (failures + 1).min(10);
                std::thread::sleep(Duration::from_millis(10) * 2u32.pow(failures));
            }
        }
    }
}

/// A warm child whose handshake the event loop is to read.
pub(crate) struct WarmEntry {
    pub(crate) slot: Arc<WarmSlot>,
    pub(crate) reader: FrameReader<ParentRead>,
    pub(crate) greeted: bool,
}

fn spawn_warm() -> Result<WarmEntry, ProcessError> {
    let io = |what: &str, e: std::io::Error| ProcessError::Io(format!("{what}: {e}"));
    let (parent_end, child_end) =
        sys::socket_pair().map_err(|e| io("creating the socket pair", e))?;
    let secret = new_secret().map_err(|e| io("generating the secret", e))?;
    let (beacon, beacon_fd) =
        Beacon::create(ProcessConfig::MAX_MAILBOX).map_err(|e| io("creating the beacon", e))?;
    let conn = Conn::from_fd(parent_end);
    let child = spawn::spawn_on_this_thread(child_end, beacon_fd, secret, Vec::new())
        .map_err(|e| io("spawning a warm child", e))?;
    let reader = FrameReader::new(ParentRead {
        conn: conn.clone(),
        wait: false,
    });
    Ok(WarmEntry {
        slot: Arc::new(WarmSlot {
            child: Mutex::new(Some(WarmChild {
                child,
                conn,
                beacon: Arc::new(beacon),
                secret,
            })),
            key: Mutex::new(None),
        }),
        reader,
        greeted: false,
    })
}

/// A warm child stopped starting: checked and `ready` (`Some`), or gone (`None`).
fn starting_ended(ready: Option<Arc<WarmSlot>>) {
    let pool = pool();
    let mut state = pool.lock();
    state.starting = state.starting.saturating_sub(1);
    if let Some(slot) = ready {
        state.ready.push_back(slot);
    }
    drop(state);
    pool.changed.notify_all();
}

impl WarmEntry {
    /// The event loop registered it under `key`.
    pub(crate) fn registered(&self, key: usize) {
        *self.slot.key.lock().unwrap_or_else(PoisonError::into_inner) = Some(key);
    }

    /// Its socket is readable: the handshake, or (once greeted) its end. Returns
    /// whether the loop should keep watching it; `None` when the child was taken (the
    /// taker took the socket out of the loop's watch, and it may be watched again under
    /// another key by now: the loop must leave it alone).
    pub(crate) fn on_ready(&mut self) -> Option<bool> {
        let slot = Arc::clone(&self.slot);
        let guard = slot.lock();
        let secret = guard.as_ref()?.secret;
        Some(self.step(guard, secret))
    }

    fn step(
        &mut self,
        mut guard: MutexGuard<'_, Option<WarmChild>>,
        secret: [u8; SECRET_LEN],
    ) -> bool {
        if self.greeted {
            // A warm child sends nothing after its handshake: this is its end (or a
            // broken child). Either way it is not handed out.
            if let Some(child) = guard.take() {
                drop(guard);
                remove_ready(&self.slot);
                child.discard();
            }
            return false;
        }
        match self.reader.read_frame(protocol::MAX_HELLO_FRAME) {
            Ok(None) => true,
            Ok(Some(frame)) => {
                match protocol::check_hello(frame.payload(), &secret, registry::fingerprint()) {
                    Ok(()) => {
                        self.greeted = true;
                        drop(guard);
                        starting_ended(Some(Arc::clone(&self.slot)));
                        true
                    }
                    Err(e) => {
                        tracing::warn!("a warm child failed its handshake: {e}");
                        let child = guard.take();
                        drop(guard);
                        if let Some(child) = child {
                            child.discard();
                        }
                        starting_ended(None);
                        false
                    }
                }
            }
            Err(_) => {
                let child = guard.take();
                drop(guard);
                if let Some(child) = child {
                    child.discard();
                }
                starting_ended(None);
                false
            }
        }
    }

    /// The socket to watch.
    pub(crate) fn socket(&self) -> std::os::fd::BorrowedFd<'_> {
        sys::stream_fd(self.reader.get_ref().conn.stream())
    }

    /// Whether the loop is done with it: taken, or ended.
    pub(crate) fn is_done(&self) -> bool {
        self.slot.lock().is_none()
    }

    /// The loop cannot go on with it: it is ended.
    pub(crate) fn abandon(&mut self, poller: &polling::Poller) {
        let child = self.slot.lock().take();
        if let Some(child) = child {
            let _ = poller.delete(self.socket());
            remove_ready(&self.slot);
            child.discard();
        }
    }
}

/// Removes a warm child that died from the ready list, so that the keeper replaces it.
fn remove_ready(slot: &Arc<WarmSlot>) {
    let pool = pool();
    let mut state = pool.lock();
    state.ready.retain(|s| !Arc::ptr_eq(s, slot));
    drop(state);
    pool.changed.notify_all();
}
