//! Waiting without a blocked thread: the [`Waker`]s of the futures of async handles and
//! of `wait_any`, woken at every change of a process's shared state, and the alarms
//! that wake them at a deadline.
//!
//! Blocking callers wait on the [`Shared`](super::shared::Shared) state's condition
//! variable; every change goes through `Shared::update` or `Shared::notify`, which
//! signal it. Those two wake the wakers registered here too, so a future is woken by
//! the same event that would wake a blocked caller, from the event loop's thread (or
//! whichever thread made the change), never by a timer that polls.
//!
//! **No lost wake-up.** A waiter registers its waker while it holds the state's lock,
//! right after it found nothing to return, or before it looks at the state at all.
//! A change is made under that lock and followed by a wake: either the change came
//! first and the waiter sees it, or the waiter's registration did and the change's
//! wake finds it (the lock orders the two, and the count of registrations is read
//! after the change's lock is released).
//!
//! **Registrations stay** until their owner removes them, on completion or on drop:
//! a wake does not consume them, so a waker woken by a change that did not concern
//! it (a message, when it waits for the end) needs no new registration when it finds
//! nothing. Lock order: the state's lock before this one, never after; wakers are
//! woken after both are released, since a waker may run code of its executor.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant;

/// The wakers waiting on one process's shared state.
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    /// How many are registered: a change with none to wake costs one load.
    registered: AtomicUsize,
    list: Mutex<Vec<(u64, Waker)>>,
}

impl Wakers {
    fn lock(&self) -> MutexGuard<'_, Vec<(u64, Waker)>> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes every registered waker (they stay registered).
    pub(crate) fn wake_all(&self) {
        if self.registered.load(SeqCst) == 0 {
            return;
        }
        let wakers: Vec<Waker> = self.lock().iter().map(|(_, w)| w.clone()).collect();
        for waker in wakers {
            waker.wake();
        }
    }

    /// How many wakers are registered (for the tests).
    #[cfg(feature = "fault-injection")]
    pub(crate) fn len(&self) -> usize {
        self.registered.load(SeqCst)
    }
}

/// One waiter's place among a process's [`Wakers`]; removed when dropped.
#[derive(Debug)]
pub(crate) struct Registration<'a> {
    wakers: &'a Wakers,
    id: u64,
    registered: bool,
}

impl<'a> Registration<'a> {
    /// A place among `wakers`, not registered yet.
    pub(crate) fn new(wakers: &'a Wakers) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self {
            wakers,
            id: NEXT.fetch_add(1, Relaxed),
            registered: false,
        }
    }

    /// Registers `waker`, or replaces the one registered when it would wake another
    /// task (a future may move between tasks).
    pub(crate) fn set(&mut self, waker: &Waker) {
        let mut list = self.wakers.lock();
        if self.registered {
            if let Some((_, old)) = list.iter_mut().find(|(id, _)| *id == self.id) {
                if !old.will_wake(waker) {
                    old.clone_from(waker);
                }
                return;
            }
        }
        list.push((self.id, waker.clone()));
        self.wakers.registered.fetch_add(1, SeqCst);
        self.registered = true;
    }

    /// Removes the registration, if there is one.
    pub(crate) fn clear(&mut self) {
        if !std::mem::take(&mut self.registered) {
            return;
        }
        let mut list = self.wakers.lock();
        if let Some(i) = list.iter().position(|(id, _)| *id == self.id) {
            list.swap_remove(i);
            self.wakers.registered.fetch_sub(1, SeqCst);
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A future's time limit: an [`Alarm`] set once the future first waits, moved to the
/// latest waker on each later wait, and cancelled when the future is done or dropped.
#[derive(Debug, Default)]
pub(crate) struct Deadline {
    at: Option<Instant>,
    alarm: Option<Arc<Alarm>>,
}

impl Deadline {
    /// A limit at `at`; `None` for none.
    pub(crate) fn new(at: Option<Instant>) -> Self {
        Self { at, alarm: None }
    }

    /// When it is.
    pub(crate) fn at(&self) -> Option<Instant> {
        self.at
    }

    /// Whether it has passed.
    pub(crate) fn passed(&self) -> bool {
        self.at.is_some_and(|at| Instant::now() >= at)
    }

    /// Makes sure that `waker` is woken at the limit, if there is one.
    pub(crate) fn arm(&mut self, waker: &Waker) {
        let Some(at) = self.at else { return };
        if let Some(alarm) = &self.alarm {
            if alarm.set_waker(waker) {
                return;
            }
        }
        let alarm = Arc::new(Alarm::new(at, waker));
        self.alarm = Some(Arc::clone(&alarm));
        super::reactor::alarm(alarm);
    }

    /// Wakes nobody any more.
    pub(crate) fn disarm(&mut self) {
        if let Some(alarm) = self.alarm.take() {
            alarm.cancel();
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// A waker to wake once at a deadline, unless cancelled first; the event loop holds
/// the deadline (see `reactor::alarm`).
#[derive(Debug)]
pub(crate) struct Alarm {
    at: Instant,
    /// The waker to wake; `None` once it rang or was cancelled.
    waker: Mutex<Option<Waker>>,
}

impl Alarm {
    /// An alarm that wakes `waker` at `at`.
    pub(crate) fn new(at: Instant, waker: &Waker) -> Self {
        Self {
            at,
            waker: Mutex::new(Some(waker.clone())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Waker>> {
        self.waker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When it rings.
    pub(crate) fn at(&self) -> Instant {
        self.at
    }

    /// Whether it rang or was cancelled: nothing is left for it to do.
    pub(crate) fn is_spent(&self) -> bool {
        self.lock().is_none()
    }

    /// Makes it wake `waker` instead; `false` when it is spent.
    pub(crate) fn set_waker(&self, waker: &Waker) -> bool {
        match &mut *self.lock() {
            Some(old) => {
                if !old.will_wake(waker) {
                    old.clone_from(waker);
                }
                true
            }
            None => false,
        }
    }

    /// Wakes its waker, once.
    pub(crate) fn ring(&self) {
        let waker = self.lock().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// It will not wake anyone.
    pub(crate) fn cancel(&self) {
        drop(self.lock().take());
    }
}
