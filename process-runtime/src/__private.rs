//! Items that generated code names. Not public API: nothing here is covered by semver.

pub use ctor;
pub use linkme;

use crate::Process;

/// How a re-executed child finds the type it must run: one entry per
/// `#[derive(Process)]`, collected by the linker (no code runs to build the table, so
/// it can be read before `main`).
#[linkme::distributed_slice]
pub static REGISTRY: [Registration];

/// One process type, as the child needs it.
#[derive(Debug)]
pub struct Registration {
    pub(crate) tag: &'static str,
    pub(crate) type_name: fn() -> &'static str,
    pub(crate) run: fn(crate::child::ChildRun) -> !,
}

impl Registration {
    /// The registration of `T` under `tag` (the type's module path and name).
    #[must_use]
    pub const fn new<T: Process>(tag: &'static str) -> Self {
        Self {
            tag,
            type_name: std::any::type_name::<T>,
            run: crate::child::run::<T>,
        }
    }
}

/// Takes over this process if it was started as a child by `process-runtime`, and
/// returns otherwise. Called at the top of a `#[process_runtime::main]` function and
/// by the constructor the derive emits.
pub fn child_entry() {
    crate::child::enter_if_marked();
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

/// The supertraits of [`Process`], as one trait: the stub impl that `derive(Process)`
/// emits next to its compile errors requires it behind a higher-ranked bound, so that
/// the stub adds no error of its own.
pub trait ProcessBounds:
    crate::Lifecycle + serde::Serialize + serde::de::DeserializeOwned + 'static
{
}

impl<T> ProcessBounds for T where
    T: crate::Lifecycle + serde::Serialize + serde::de::DeserializeOwned + 'static
{
}
