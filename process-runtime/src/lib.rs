#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod beacon;
mod child;
#[cfg(feature = "fault-injection")]
mod fault;
mod future;
mod handle;
mod many;
mod parent;
mod process;
mod registry;
mod sys;
mod wire;

#[doc(hidden)]
pub mod __private;

/// Hooks for the transport's own tests: start a real child that misbehaves in a
/// chosen way (a bad handshake, a garbage or truncated frame). Only with the
/// `fault-injection` feature; not for use outside this project's tests.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod __testing {
    pub use crate::fault::Fault;
    use crate::{Handle, Process, ProcessConfig, ProcessError};

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

    /// The type tag a message of type `T` carries on the wire.
    #[must_use]
    pub fn tag_of<T: ?Sized + 'static>() -> u64 {
        process_core::__tag_of::<T>()
    }
}

pub use handle::Handle;
pub use many::{as_completed, wait_any, AsCompleted, AsProcess};
pub use process::Process;
pub use process_core::{
    BoxError, Context, Exit, Lifecycle, Outcome, ProcessConfig, ProcessError, ProcessTimers,
    RecvError, RemoteError, Section, SendError, TimeThis, Timeouts, Timer,
};
pub use process_macros::{main, timethis, Process};

use process_core::__set_signal_names;

/// Everything a user needs in scope: `use process_runtime::prelude::*;`.
pub mod prelude {
    pub use crate::{
        timethis, BoxError, Context, Handle, Lifecycle, Outcome, Process, ProcessConfig,
        ProcessError, ProcessTimers, RecvError, Section, SendError, TimeThis, Timer,
    };
}
