#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(unix))]
compile_error!(
    "process-runtime supports Unix targets only for now: the Windows transport \
     (named local sockets) is not written yet"
);

mod beacon;
mod channel;
mod child;
mod engine;
mod handle;
mod process;
mod protocol;
mod spawn;
mod supervisor;
mod sys;

#[doc(hidden)]
pub mod __private;

/// Hooks for the transport's own tests: start a real child that misbehaves in a
/// chosen way (a bad handshake, a garbage or truncated frame). Only with the
/// `fault-injection` feature; not for use outside this project's tests.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod __testing {
    use crate::{Handle, Process, ProcessConfig, ProcessError};

    /// Starts `obj` with the child told to inject `fault`.
    ///
    /// # Errors
    /// As `Process::start_with`.
    pub fn start_with_fault<T: Process>(
        obj: &T,
        config: ProcessConfig,
        fault: &str,
    ) -> Result<Handle<T::Output>, ProcessError> {
        crate::supervisor::start_with_options(
            obj,
            config,
            crate::supervisor::StartOptions {
                fault: Some(fault.to_owned()),
            },
        )
    }
}

pub use handle::Handle;
pub use process::Process;
pub use process_core::{
    BoxError, Context, Exit, Lifecycle, Outcome, ProcessConfig, ProcessError, ProcessTimers,
    RemoteError, Section, TimeThis, Timeouts, Timer,
};
pub use process_macros::{main, timethis, Process};

/// Everything a user needs in scope: `use process_runtime::prelude::*;`.
pub mod prelude {
    pub use crate::{
        timethis, BoxError, Context, Handle, Lifecycle, Outcome, Process, ProcessConfig,
        ProcessError, ProcessTimers, Section, TimeThis, Timer,
    };
}
