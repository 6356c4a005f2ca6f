//! The futures behind `Handle::wait_async`, `result_async` and `listen_async`.
//!
//! They depend on no executor: a future registers its task's [`Waker`] with the
//! process's shared state (see `parent/wakers.rs`), and whatever changes that state,
//! the event loop's thread mostly, wakes it. Nothing polls on a timer; a time limit is
//! an alarm the event loop rings. A future never blocks its executor's thread: it
//! only takes the state's lock, which no one holds across a wait, and it never takes
//! the reaping of a decided child (the blocking `result()` and `wait()` may, see
//! `parent/reap.rs`); when no blocking caller waits, the event loop reaps it.
//!
//! Dropping a future cancels only the wait: it deregisters its waker (and, for
//! `listen_async`, stops counting as a listener). A message is taken from the mailbox
//! only in the poll that returns it, so none is lost with a dropped future.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use serde::de::DeserializeOwned;

use crate::parent::mailbox::AsyncListener;
use crate::parent::shared::Shared;
use crate::parent::wakers::{Deadline, Registration};
use crate::RecvError;

/// Ready once the process has ended: its outcome and exit status are published.
#[derive(Debug)]
pub(crate) struct Ended<'a> {
    shared: &'a Shared,
    registration: Registration<'a>,
}

impl<'a> Ended<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Self {
        Self {
            shared,
            registration: Registration::new(&shared.wakers),
        }
    }
}

impl Future for Ended<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let inner = this.shared.lock();
        if inner.finished() {
            drop(inner);
            this.registration.clear();
            return Poll::Ready(());
        }
        // Under the state's lock: the end, published after this look, wakes it.
        this.registration.set(cx.waker());
        Poll::Pending
    }
}

/// The oldest message of type `M` from the child, as `Handle::listen` takes it.
#[derive(Debug)]
pub(crate) struct Listen<'a, M> {
    listener: AsyncListener<'a>,
    /// Rings at the deadline, once the future has waited.
    deadline: Deadline,
    _message: PhantomData<fn() -> M>,
}

impl<'a, M> Listen<'a, M> {
    pub(crate) fn new(shared: &'a Arc<Shared>, tag: u64, deadline: Option<Instant>) -> Self {
        Self {
            listener: AsyncListener::new(shared, tag),
            deadline: Deadline::new(deadline),
            _message: PhantomData,
        }
    }
}

impl<M: DeserializeOwned + 'static> Future for Listen<'_, M> {
    type Output = Result<M, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut decoded = None;
        let polled = this
            .listener
            .poll(cx.waker(), this.deadline.at(), &mut |body| {
                decoded = Some(process_core::__decode::<M>(body));
            });
        match polled {
            Poll::Pending => {
                this.deadline.arm(cx.waker());
                Poll::Pending
            }
            Poll::Ready(result) => {
                this.deadline.disarm();
                Poll::Ready(result.and_then(|()| {
                    decoded.expect("the listener hands over a message when it succeeds")
                }))
            }
        }
    }
}
