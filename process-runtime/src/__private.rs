//! Items that generated code names. Not public API: nothing here is covered by semver.

pub use ctor;
pub use linkme;

pub use crate::registry::{Registration, REGISTRY};

/// The bytes `value` takes serialized as the runtime serializes it (postcard); for the
/// benchmark.
pub fn serialized_len<T: serde::Serialize>(value: &T) -> usize {
    postcard::to_allocvec(value).map_or(0, |bytes| bytes.len())
}

/// Takes over this process if it was started as a child by `process-runtime`, and
/// returns otherwise. Called at the top of a `#[process_runtime::main]` function and
/// by the constructor the derive emits.
pub fn child_entry() {
    crate::__set_signal_names(crate::sys::signal_name);
    crate::node::local::install();
    crate::child::enter_if_marked(crate::registry::entry_of, crate::registry::fingerprint);
}

/// Called at the top of a `#[process_runtime::main]` function, after [`child_entry`]
/// (so never in a child): installs the signal handlers unless `signals = false`. The
/// guard it returns is the function's first local, dropped after every other: when
/// `main` returns (or unwinds) while a signal's graceful shutdown runs, it waits there
/// for the exit instead of ending the processes still stopping.
pub fn main_entered(signals: bool) -> MainGuard {
    if signals {
        if let Err(e) = crate::shutdown_on_signals() {
            eprintln!("process-runtime: SIGTERM and SIGINT keep their default action: {e}");
        }
    }
    MainGuard(())
}

/// See [`main_entered`].
#[must_use]
#[derive(Debug)]
pub struct MainGuard(());

impl Drop for MainGuard {
    fn drop(&mut self) {
        crate::shutdown::hold();
    }
}

/// Emits the constructor that enters a re-executed child before `main` runs, so that
/// tests, examples and doc tests need no setup of their own.
#[macro_export]
#[doc(hidden)]
macro_rules! __auto_entry {
    () => {
        #[$crate::__private::ctor::ctor(crate_path = $crate::__private::ctor)]
        unsafe fn __process_runtime_auto_entry() {
            $crate::__private::child_entry();
        }
    };
}
pub use crate::__auto_entry as auto_entry;

/// The supertraits of [`Process`](crate::Process), as one trait: the stub impl that
/// `derive(Process)` emits next to its compile errors requires it behind a
/// higher-ranked bound, so that the stub adds no error of its own.
pub trait ProcessBounds:
    crate::Lifecycle + serde::Serialize + serde::de::DeserializeOwned + 'static
{
}

impl<T> ProcessBounds for T where
    T: crate::Lifecycle + serde::Serialize + serde::de::DeserializeOwned + 'static
{
}
