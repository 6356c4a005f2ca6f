//! The future behind `node::receive_async`: a receive from this process's mailbox that
//! waits without a thread.
//!
//! The node's messages are filed in the mailbox (`mailbox.rs`) by the event loop: in
//! the root, and in a child that has children, the loop reads every socket anyway. A
//! child without children reads its parent's socket only when a section receives, so
//! on its first poll the future has the event loop watch that socket from then on (as
//! it does once a child starts children of its own, see `child/port.rs`), and the loop
//! files what arrives. Filing wakes the futures registered with the mailbox, and a time
//! limit is an alarm the event loop rings (`parent/wakers.rs`): nothing polls on a
//! timer, and the future runs on any executor.
//!
//! Dropping the future cancels only the wait: it deregisters its waker and its alarm.
//! A message is taken from the mailbox only in the poll that returns it, so none is lost
//! with a dropped future.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use serde::de::DeserializeOwned;

use super::mailbox::AsyncWait;
use crate::parent::reactor;
use crate::parent::wakers::Alarm;
use crate::{Pid, RecvError};

/// The oldest message of type `M` in this process's mailbox, with its sender.
#[derive(Debug)]
pub(crate) struct Receive<M> {
    tag: u64,
    deadline: Option<Instant>,
    wait: AsyncWait,
    /// Rings at the deadline, once the future has waited.
    alarm: Option<Arc<Alarm>>,
    /// The event loop runs (and, in a child, reads the parent's socket).
    prepared: bool,
    _message: PhantomData<fn() -> M>,
}

impl<M> Receive<M> {
    pub(crate) fn new(tag: u64, deadline: Option<Instant>) -> Self {
        Self {
            tag,
            deadline,
            wait: AsyncWait::new(),
            alarm: None,
            prepared: false,
            _message: PhantomData,
        }
    }

    /// Makes sure the event loop runs, and in a child, that it reads the parent's
    /// socket, so that what arrives is filed without a section reading it.
    fn prepare(&mut self) -> Result<(), RecvError> {
        if self.prepared {
            return Ok(());
        }
        if !reactor::ensure_running() {
            return Err(RecvError::Protocol(
                "the event loop cannot run, and nothing else would wake this receive".into(),
            ));
        }
        if let Some(port) = crate::child::port::port() {
            port.watch_from_loop();
        }
        self.prepared = true;
        Ok(())
    }

    /// Makes sure that the waker is woken at the deadline, if there is one.
    fn arm(&mut self, cx: &Context<'_>) {
        let Some(at) = self.deadline else { return };
        if let Some(alarm) = &self.alarm {
            if alarm.set_waker(cx.waker()) {
                return;
            }
        }
        let alarm = Arc::new(Alarm::new(at, cx.waker()));
        self.alarm = Some(Arc::clone(&alarm));
        reactor::alarm(alarm);
    }

    fn finish<T>(&mut self, result: Result<T, RecvError>) -> Poll<Result<T, RecvError>> {
        self.wait.clear();
        if let Some(alarm) = self.alarm.take() {
            alarm.cancel();
        }
        Poll::Ready(result)
    }
}

impl<M: DeserializeOwned + 'static> Future for Receive<M> {
    type Output = Result<(Pid, M), RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Err(e) = this.prepare() {
            return this.finish(Err(e));
        }
        if let Some(entry) = this.wait.take_or_register(this.tag, cx.waker()) {
            let decoded = process_core::__decode::<M>(entry.body()).map(|m| (entry.from, m));
            // Dropped here: taking it gives its room back to its sender.
            drop(entry);
            return this.finish(decoded);
        }
        let parent_gone = crate::child::port::port().is_some_and(|p| p.parent_gone());
        if parent_gone && !super::local::has_children() {
            return this.finish(Err(RecvError::Ended));
        }
        if this.deadline.is_some_and(|d| Instant::now() >= d) {
            return this.finish(Err(RecvError::Timeout));
        }
        this.arm(cx);
        Poll::Pending
    }
}

impl<M> Drop for Receive<M> {
    fn drop(&mut self) {
        if let Some(alarm) = self.alarm.take() {
            alarm.cancel();
        }
    }
}
