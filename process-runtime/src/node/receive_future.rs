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
use std::task::{Context, Poll};
use std::time::Instant;

use serde::de::DeserializeOwned;

use super::mailbox::AsyncWait;
use crate::parent::reactor;
use crate::parent::wakers::Deadline;
use crate::{Pid, RecvError};

/// The oldest message of type `M` in this process's mailbox, with its sender.
#[derive(Debug)]
pub(crate) struct Receive<M> {
    tag: u64,
    wait: AsyncWait,
    /// Rings at the deadline, once the future has waited.
    deadline: Deadline,
    /// The event loop runs (and, in a child, reads the parent's socket).
    prepared: bool,
    _message: PhantomData<fn() -> M>,
}

impl<M> Receive<M> {
    pub(crate) fn new(tag: u64, deadline: Option<Instant>) -> Self {
        Self {
            tag,
            wait: AsyncWait::new(),
            deadline: Deadline::new(deadline),
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

    fn finish<T>(&mut self, result: Result<T, RecvError>) -> Poll<Result<T, RecvError>> {
        self.wait.clear();
        self.deadline.disarm();
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
        if this.deadline.passed() {
            return this.finish(Err(RecvError::Timeout));
        }
        this.deadline.arm(cx.waker());
        Poll::Pending
    }
}
