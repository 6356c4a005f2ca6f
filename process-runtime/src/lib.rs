#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod beacon;
mod call;
mod child;
#[cfg(feature = "fault-injection")]
mod fault;
mod future;
mod handle;
mod many;
pub mod node;
mod parent;
mod pool;
mod process;
mod registry;
mod shutdown;
mod spawn;
mod spin;
mod supervisor;
mod sys;
mod timeline;
mod transfer;
mod wire;

#[doc(hidden)]
pub mod __private;

// The runtime's own entry constructor, so that a binary with no `#[derive(Process)]`
// of its own (one that will start only functions and pools) is taken over in the child
// too. (Rust keeps a library's constructors in the final link: they are `#[used]`
// statics.)
crate::__auto_entry!();

/// Hooks for the transport's own tests: start a real child that misbehaves in a
/// chosen way (a bad handshake, a garbage or truncated frame). Only with the
/// `fault-injection` feature; not for use outside this project's tests.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod __testing {
    pub use crate::fault::Fault;
    use crate::{Handle, Process, ProcessConfig, ProcessError};

    /// The process ids of the warm children ready now, oldest first.
    #[must_use]
    pub fn warm_pids() -> Vec<u32> {
        crate::parent::warm::ready_pids()
    }

    /// Starts `obj` with the child told to commit `fault`.
    ///
    /// # Errors
    /// As `Process::start_with`.
    pub fn start_with_fault<T: Process>(
        obj: &T,
        config: ProcessConfig,
        fault: Fault,
    ) -> Result<Handle<T::Output>, ProcessError> {
        let options = crate::parent::attempt::StartOptions {
            fault: Some(fault),
            ..Default::default()
        };
        crate::parent::start::start(obj, config, options).map(Handle::new)
    }

    /// Starts `obj` with the child told to send one frame whose payload is `payload`
    /// (the length prefix is added) right after it receives its start frame, before
    /// its lifecycle runs; then it runs as usual. Every attempt sends it.
    ///
    /// # Errors
    /// As `Process::start_with`.
    pub fn start_with_raw_frame<T: Process>(
        obj: &T,
        config: ProcessConfig,
        payload: &[u8],
    ) -> Result<Handle<T::Output>, ProcessError> {
        let options = crate::parent::attempt::StartOptions {
            fault: Some(Fault::RawFrameAfterStart),
            raw_frame: payload.to_vec(),
            ..Default::default()
        };
        crate::parent::start::start(obj, config, options).map(Handle::new)
    }

    /// Starts `obj` with the child told to commit `fault`, one of the faults that send
    /// a frame of given bytes after the start frame, with `payload` as that frame's.
    ///
    /// # Errors
    /// As `Process::start_with`.
    pub fn start_with_fault_frame<T: Process>(
        obj: &T,
        config: ProcessConfig,
        fault: Fault,
        payload: &[u8],
    ) -> Result<Handle<T::Output>, ProcessError> {
        let options = crate::parent::attempt::StartOptions {
            fault: Some(fault),
            raw_frame: payload.to_vec(),
            ..Default::default()
        };
        crate::parent::start::start(obj, config, options).map(Handle::new)
    }

    /// What waits on `handle`'s process without blocking a thread: the wakers
    /// registered with it (futures, `wait_any`, `as_completed`), and the callers
    /// counted as waiting for its messages (`listen` and `listen_async`).
    #[must_use]
    pub fn async_waiters<T>(handle: &Handle<T>) -> (usize, u32) {
        let shared = handle.shared();
        let listeners = crate::parent::mailbox::waiters(&shared.lock());
        (shared.wakers.len(), listeners)
    }

    /// The `node::receive_async` futures registered with this process's mailbox.
    #[must_use]
    pub fn node_async_waiters() -> usize {
        crate::node::mailbox::async_waiters()
    }

    /// Starts (`true`) or stops recording the marks of a supervised restart's steps;
    /// either way the marks so far are dropped.
    pub fn record_timeline(on: bool) {
        crate::timeline::record(on);
    }

    /// The marks recorded since the last call, oldest first: each step's name and
    /// when it happened.
    #[must_use]
    pub fn timeline() -> Vec<(&'static str, std::time::Instant)> {
        crate::timeline::take()
    }

    /// The type tag a message of type `T` carries on the wire.
    #[must_use]
    pub fn tag_of<T: ?Sized + 'static>() -> u64 {
        process_core::__tag_of::<T>()
    }
}

pub use handle::Handle;
pub use many::{as_completed, wait_any, AsCompleted, AsProcess};
pub use pool::{Imap, ImapStream, ImapUnordered, Pool, PoolBuilder};
pub use process::Process;
pub use process_core::{
    BoxError, Context, Exit, Lifecycle, Outcome, Pid, ProcessConfig, ProcessError, ProcessTimers,
    RecvError, RemoteError, Section, SendError, TimeThis, Timeouts, Timer,
};
pub use process_macros::{main, timethis, Process};
pub use shutdown::{
    shutdown, shutdown_on_signals, shutdown_requested, wait_for_shutdown, wait_for_shutdown_async,
};
pub use spawn::{spawn, Spawn};
pub use supervisor::{
    ChildInfo, ChildSpec, Restart, Strategy, Supervisor, SupervisorError, SupervisorHandle,
};
pub use transfer::Transfer;

use process_core::__set_signal_names;

/// Keeps `n` children of this binary started, authenticated and waiting for a start
/// frame, so that `start()` of any process type (and a restart after a failure) skips
/// the cold start: the kernel loading the binary, the dynamic linker, the runtime's
/// own start. A start takes a ready one and a replacement is started in the
/// background; with none ready it starts cold, and never waits for one.
///
/// A warm child obeys the rules a cold one does (it dies with the program, lives in its
/// own process group, proves its secret before it is used); one that dies while it
/// waits is replaced, not handed out. Idle, it costs its memory and no wake-up at all.
/// `keep_warm(0)` ends the idle ones. Without a call, nothing is kept warm.
///
/// # Errors
/// [`ProcessError::Io`] when the thread that starts warm children cannot be started.
pub fn keep_warm(n: usize) -> Result<(), ProcessError> {
    parent::warm::keep(n)
}

/// Everything a user needs in scope: `use process_runtime::prelude::*;`.
pub mod prelude {
    pub use crate::{
        timethis, BoxError, Context, Handle, Lifecycle, Outcome, Pool, Process, ProcessConfig,
        ProcessError, ProcessTimers, RecvError, Section, SendError, TimeThis, Timer, Transfer,
    };
}
