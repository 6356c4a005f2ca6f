//! Where the drivers leave a call's results for its caller, and how the caller is woken.
//!
//! A caller that blocks says how many results it waits for, and a driver wakes it only
//! once that many have come: `map`, which returns all its results at once, sleeps
//! until thousands have come (or all it waits for) instead of waking for each batch
//! (with chunks of one, a wake-up per item: a third of what an item costs), and decodes
//! them while the workers run the rest; `imap`, which hands each result on as it
//! comes, waits for one. A delivery to a caller that does not wait
//! costs a lock and no system call.
//!
//! A task that polls a call as a `Stream` leaves its waker instead, and any delivery
//! wakes it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use super::queue::Batch;

/// The results delivered to one call and not taken yet.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    state: Mutex<State>,
    arrived: Condvar,
    /// The task of an `imap` polled as a `Stream`, woken when results are delivered.
    waker: Mutex<Option<Waker>>,
    /// Whether `waker` holds one: a delivery to a caller that blocks costs one load.
    has_waker: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    batches: VecDeque<Batch>,
    /// Results in `batches`.
    results: usize,
    /// The caller sleeps until `results` reaches this; 0 when it does not sleep.
    wanted: usize,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leaves `batch` for the caller, and wakes it when it has what it waits for (or
    /// its task, when it polls).
    pub(crate) fn deliver(&self, batch: Batch) {
        let wake = {
            let mut state = self.lock();
            state.results += batch.len();
            state.batches.push_back(batch);
            state.wanted != 0 && state.results >= state.wanted
        };
        if wake {
            self.arrived.notify_one();
        }
        // SeqCst with the caller's pair in `set_waker`: either it sees this batch when
        // it looks again after registering, or this side sees its waker.
        if self.has_waker.load(Ordering::SeqCst) {
            let waker = {
                // The flag changes under the lock only, so it never says "none" while
                // one is registered.
                let mut slot = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
                self.has_waker.store(false, Ordering::SeqCst);
                slot.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// Waits until at least `wanted` results were delivered since the last take, then
    /// takes every batch delivered. The caller asks only for results that will come:
    /// every item queued gets exactly one (see `queue.rs`).
    pub(crate) fn take_when(&self, wanted: usize) -> VecDeque<Batch> {
        let mut state = self.lock();
        while state.results < wanted {
            state.wanted = wanted;
            state = self
                .arrived
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.wanted = 0;
        state.results = 0;
        std::mem::take(&mut state.batches)
    }

    /// Takes every batch delivered so far, without waiting.
    pub(crate) fn take(&self) -> VecDeque<Batch> {
        self.take_when(0)
    }

    /// Wakes `waker` at the next delivery. The caller looks for results once more
    /// afterwards, so that one delivered meanwhile is not waited for.
    pub(crate) fn set_waker(&self, waker: &Waker) {
        let mut slot = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *slot {
            Some(old) if old.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
        self.has_waker.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn batch(indices: std::ops::Range<u64>) -> Batch {
        let mut batch = Batch::default();
        for i in indices {
            batch.push(i, Ok(&[]));
        }
        batch
    }

    fn indices(batches: VecDeque<Batch>) -> Vec<u64> {
        let mut seen = Vec::new();
        for b in batches {
            b.for_each(|i, _| seen.push(i));
        }
        seen
    }

    #[test]
    fn a_caller_takes_what_came_without_waiting() {
        let inbox = Inbox::default();
        assert!(inbox.take().is_empty());
        inbox.deliver(batch(0..2));
        inbox.deliver(batch(2..3));
        assert_eq!(indices(inbox.take()), [0, 1, 2]);
        assert!(inbox.take().is_empty());
    }

    #[test]
    fn a_waiting_caller_wakes_once_all_it_waits_for_came() {
        let inbox = Arc::new(Inbox::default());
        let drivers = Arc::clone(&inbox);
        let delivering = std::thread::spawn(move || {
            for i in 0..10 {
                drivers.deliver(batch(i..i + 1));
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        assert_eq!(
            indices(inbox.take_when(10)),
            (0..10).collect::<Vec<_>>(),
            "not woken before the tenth"
        );
        delivering.join().unwrap();
        assert!(inbox.take().is_empty());
    }
}
