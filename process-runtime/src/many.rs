//! Waiting on many processes at once: [`wait_any`] (Python's
//! `multiprocessing.connection.wait` over the processes' sentinels) and
//! [`as_completed`] (`concurrent.futures.as_completed`).
//!
//! The caller's thread blocks on notifications from the processes, never on a loop
//! that looks at each handle in turn. A watch registers one [`Waker`] with each
//! process's shared state (the registry the futures use, see `parent/wakers.rs`); the
//! waker of the `i`th process puts `i` in a queue and signals the watch's condition
//! variable. The watch looks only at the processes the queue names: each wake costs
//! one look, whatever the number of processes.
//!
//! **No lost wake-up.** Every waker is registered before the first look at any
//! process, and every index starts in the queue. An index leaves the queue before its
//! process is looked at, so a change after that look queues it again.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use crate::parent::shared::Shared;
use crate::parent::wakers::Registration;
use crate::Handle;

mod sealed {
    /// A process's shared state, as a handle lends it to a watch.
    pub struct Lent<'a>(pub(crate) &'a crate::parent::shared::Shared);

    /// What [`AsProcess`](super::AsProcess) needs, out of the public API.
    pub trait Sealed {
        fn lend(&self) -> Lent<'_>;
    }
}

use sealed::Lent;

/// A process that [`wait_any`] and [`as_completed`] can watch: a [`Handle`] of any output
/// type, or a reference, `Box` or `Arc` of one.
///
/// Handles of one output type go in a slice as they are (`&[Handle<u32>]`,
/// `&[&Handle<u32>]`, `&[Arc<Handle<u32>>]`); handles of different output types go in
/// a slice of trait objects: `&[&dyn AsProcess]`. The trait is sealed: only the
/// runtime's handles implement it.
pub trait AsProcess: sealed::Sealed {}

impl<T> sealed::Sealed for Handle<T> {
    fn lend(&self) -> Lent<'_> {
        Lent(Handle::shared(self))
    }
}
impl<T> AsProcess for Handle<T> {}

impl<P: AsProcess + ?Sized> sealed::Sealed for &P {
    fn lend(&self) -> Lent<'_> {
        (**self).lend()
    }
}
impl<P: AsProcess + ?Sized> AsProcess for &P {}

impl<P: AsProcess + ?Sized> sealed::Sealed for Box<P> {
    fn lend(&self) -> Lent<'_> {
        (**self).lend()
    }
}
impl<P: AsProcess + ?Sized> AsProcess for Box<P> {}

impl<P: AsProcess + ?Sized> sealed::Sealed for Arc<P> {
    fn lend(&self) -> Lent<'_> {
        (**self).lend()
    }
}
impl<P: AsProcess + ?Sized> AsProcess for Arc<P> {}

/// Blocks until one of `handles`' processes has ended, for at most `timeout`: a
/// `Duration`, `Duration::ZERO` to only look, or `None` to wait for ever. Returns the
/// index of that handle, or `None` when none ended in time (or `handles` is empty).
/// When several have ended, the lowest index.
///
/// A process has ended as [`Handle::wait`] means it: its outcome is known and every
/// child of it reaped, so `handles[i].result()` returns at once. The thread sleeps
/// until a process's state changes, woken by the runtime; it never polls the handles.
///
/// ```no_run
/// # use process_runtime::prelude::*;
/// # fn demo(handles: Vec<Handle<u32>>) {
/// if let Some(i) = process_runtime::wait_any(&handles, std::time::Duration::from_secs(1)) {
///     println!("{} ended first: {:?}", handles[i].name(), handles[i].result());
/// }
/// # }
/// ```
pub fn wait_any<P: AsProcess>(
    handles: &[P],
    timeout: impl Into<Option<Duration>>,
) -> Option<usize> {
    let deadline = process_core::__deadline(timeout.into());
    if deadline.is_some_and(|d| d <= Instant::now()) {
        return handles.iter().position(|h| h.lend().0.lock().finished());
    }
    if handles.is_empty() {
        return None;
    }
    Watch::new(handles).next(deadline)
}

/// An iterator over the indices of `handles`, in the order their processes end: each
/// `next()` blocks until one more has ended, and the iterator ends once all of them
/// have been yielded. Those already ended when it first looks come first, in index
/// order.
///
/// As with [`wait_any`], the thread sleeps until a process's state changes. There is
/// no time limit: for one, call [`wait_any`] over the handles not yet seen. In async
/// code, await [`Handle::wait_async`] of each instead (for example with
/// `futures::stream::FuturesUnordered`).
///
/// ```no_run
/// # use process_runtime::prelude::*;
/// # fn demo(handles: Vec<Handle<u32>>) {
/// for i in process_runtime::as_completed(&handles) {
///     println!("{} ended: {:?}", handles[i].name(), handles[i].result());
/// }
/// # }
/// ```
pub fn as_completed<P: AsProcess>(handles: &[P]) -> AsCompleted<'_> {
    AsCompleted {
        left: handles.len(),
        watch: Watch::new(handles),
    }
}

/// The iterator [`as_completed`] returns: indices of handles, as their processes end.
pub struct AsCompleted<'a> {
    watch: Watch<'a>,
    left: usize,
}

impl std::fmt::Debug for AsCompleted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsCompleted")
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

impl Iterator for AsCompleted<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        let i = self.watch.next(None)?;
        self.left -= 1;
        Some(i)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for AsCompleted<'_> {}

impl std::iter::FusedIterator for AsCompleted<'_> {}

/// Processes watched by one caller: a waker registered with each, until it has been
/// seen to end.
struct Watch<'a> {
    shared: Vec<&'a Shared>,
    /// `None` once that process was seen to end (its waker is deregistered).
    registrations: Vec<Option<Registration<'a>>>,
    ready: Arc<Ready>,
}

/// The indices of the processes whose state changed, and the condition variable their
/// wakers signal.
struct Ready {
    queue: Mutex<Queue>,
    changed: Condvar,
}

struct Queue {
    order: VecDeque<usize>,
    queued: Vec<bool>,
}

impl Ready {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The waker of the `index`th process of a watch.
struct Mark {
    ready: Arc<Ready>,
    index: usize,
}

impl Wake for Mark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut queue = self.ready.lock();
        if !queue.queued[self.index] {
            queue.queued[self.index] = true;
            queue.order.push_back(self.index);
            drop(queue);
            self.ready.changed.notify_one();
        }
    }
}

impl<'a> Watch<'a> {
    /// Registers a waker with each of `handles`' processes, every index queued.
    fn new<P: AsProcess>(handles: &'a [P]) -> Self {
        let shared: Vec<&'a Shared> = handles.iter().map(|h| h.lend().0).collect();
        let n = shared.len();
        let ready = Arc::new(Ready {
            queue: Mutex::new(Queue {
                order: (0..n).collect(),
                queued: vec![true; n],
            }),
            changed: Condvar::new(),
        });
        let registrations = shared
            .iter()
            .enumerate()
            .map(|(index, &s)| {
                let mut registration = Registration::new(&s.wakers);
                let mark = Arc::new(Mark {
                    ready: Arc::clone(&ready),
                    index,
                });
                registration.set(&Waker::from(mark));
                Some(registration)
            })
            .collect();
        Self {
            shared,
            registrations,
            ready,
        }
    }

    /// The index of a process seen to end for the first time, waiting until
    /// `deadline` for one; `None` when it passed.
    fn next(&mut self, deadline: Option<Instant>) -> Option<usize> {
        let mut queue = self.ready.lock();
        loop {
            while let Some(i) = queue.order.pop_front() {
                queue.queued[i] = false;
                if self.registrations[i].is_none() {
                    continue;
                }
                drop(queue);
                if self.shared[i].lock().finished() {
                    self.registrations[i] = None;
                    return Some(i);
                }
                queue = self.ready.lock();
            }
            queue = match deadline {
                None => self
                    .ready
                    .changed
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return None;
                    }
                    self.ready
                        .changed
                        .wait_timeout(queue, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}
