//! Handing on the node's messages that pass through this process: from one child to
//! another, from a child up to this process's parent, from the parent down to a child.
//!
//! The event loop must never wait for a child that does not read, so it hands such a
//! message to the router, one thread per process (started on first use), which puts it
//! in the receiver's mailbox without waiting: when that mailbox is full, the message
//! waits here, and is tried again every millisecond, before any later message to the
//! same receiver (so that order between two processes holds). Its [`Credit`] (the room
//! it took in the sender's grant) is given back only once it is handed on, so a sender
//! whose messages wait here is held back by the bound of its own grant.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::Credit;
use crate::parent::mailbox;
use crate::parent::shared::Shared;
use crate::SendError;

/// A message to hand on.
pub(crate) struct Job {
    pub(crate) to: Hop,
    /// The whole frame, laid out for where it goes.
    pub(crate) frame: Vec<u8>,
    /// The descriptors the frame carries.
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) credit: Credit,
    /// A notice, reply or request of the node's own: written in no slot and counted
    /// against no grant.
    pub(crate) control: bool,
}

/// Where a message goes next.
pub(crate) enum Hop {
    /// Down, into the mailbox of this child.
    Down(Arc<Shared>),
    /// Up, to this process's parent.
    Up,
}

impl Hop {
    /// The same receiver: messages to it keep their order.
    fn same(&self, other: &Hop) -> bool {
        match (self, other) {
            (Hop::Down(a), Hop::Down(b)) => Arc::ptr_eq(a, b),
            (Hop::Up, Hop::Up) => true,
            _ => false,
        }
    }
}

/// How often messages that found a mailbox full are tried again.
const RETRY: Duration = Duration::from_millis(1);

static ROUTER: OnceLock<Option<Mutex<Sender<Job>>>> = OnceLock::new();

/// Jobs pushed and not yet handed on or dropped.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// Waits until everything pushed so far is handed on, for at most `limit`: a child
/// does so before its report, so that the ends of its own children reach the root
/// before its own.
pub(crate) fn flush(limit: Duration) {
    let deadline = Instant::now() + limit;
    while PENDING.load(SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Hands `job` to the router; dropped (its credit given back) when the router cannot
/// be started.
///
/// Always through the router thread, even when the receiver has room: writing on the
/// pushing thread (the event loop, for what a parent relays) would save a thread
/// wake-up per hop, but the write is a blocking one, and may also wait for a lock that
/// a sender holds across its own blocking write to the same child; the event loop must
/// never wait for a child.
pub(crate) fn push(job: Job) {
    let router = ROUTER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("process-runtime-router".into())
            .stack_size(128 * 1024)
            .spawn(move || run(&rx));
        match started {
            Ok(_) => Some(Mutex::new(tx)),
            Err(e) => {
                tracing::error!("cannot start the node's router thread: {e}");
                None
            }
        }
    });
    if let Some(tx) = router {
        PENDING.fetch_add(1, SeqCst);
        let sent = tx.lock().unwrap_or_else(PoisonError::into_inner).send(job);
        if sent.is_err() {
            PENDING.fetch_sub(1, SeqCst);
        }
    }
}

fn run(rx: &mpsc::Receiver<Job>) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    loop {
        let next = if waiting.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(RETRY)
        };
        match next {
            Ok(job) => waiting.push_back(job),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(job) = rx.try_recv() {
            waiting.push_back(job);
        }
        let mut blocked: Vec<Hop> = Vec::new();
        let mut kept = VecDeque::with_capacity(waiting.len());
        for job in waiting.drain(..) {
            if blocked.iter().any(|b| b.same(&job.to)) {
                kept.push_back(job);
                continue;
            }
            match hand_on(job) {
                None => {
                    PENDING.fetch_sub(1, SeqCst);
                }
                Some(job) => {
                    blocked.push(match &job.to {
                        Hop::Down(s) => Hop::Down(Arc::clone(s)),
                        Hop::Up => Hop::Up,
                    });
                    kept.push_back(job);
                }
            }
        }
        waiting = kept;
    }
}

/// Tries to hand `job` on; gives it back when the receiver's mailbox is full. A
/// receiver that has ended drops it.
fn hand_on(job: Job) -> Option<Job> {
    let Job {
        to,
        frame,
        fds,
        credit,
        control,
    } = job;
    let port = crate::child::port::port;
    let sent = match (&to, control) {
        (Hop::Down(shared), false) => mailbox::tell_frame(shared, frame, fds, false),
        (Hop::Down(shared), true) => {
            mailbox::write_control(shared, &frame);
            Ok(())
        }
        (Hop::Up, false) => port().map_or(Ok(()), |port| {
            port.send_frame(frame, &fds, false)
                .map_err(|(e, frame)| (e, frame, fds))
        }),
        (Hop::Up, true) => {
            if let Some(port) = port() {
                port.send_control(&frame);
            }
            Ok(())
        }
    };
    match sent {
        Err((SendError::Full, frame, fds)) => Some(Job {
            to,
            frame,
            fds,
            credit,
            control,
        }),
        _ => None,
    }
}
