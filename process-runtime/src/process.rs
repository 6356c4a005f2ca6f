//! The `Process` trait: what `#[derive(Process)]` implements, and where `start` lives.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::handle::Handle;
use crate::{Lifecycle, ProcessConfig, ProcessError};

/// A type that can run as a supervised OS process.
///
/// Implemented by `#[derive(Process)]`, never by hand: the derive also registers the
/// type so that a re-executed child can find it. The state is serialized with postcard
/// and sent to the child; [`Process::start`] returns a [`Handle`] at once, while the
/// child runs the [`Lifecycle`].
pub trait Process: Lifecycle + Serialize + DeserializeOwned + 'static {
    /// The configuration written in `#[process(...)]`, with defaults filled in.
    fn config() -> ProcessConfig;

    /// The registration that lets a child find this type by its tag.
    #[doc(hidden)]
    fn __registration() -> &'static crate::registry::Registration;

    /// Starts the process in a child OS process, with the attribute's configuration.
    ///
    /// # Errors
    /// [`ProcessError::State`] when the state does not survive a postcard round trip
    /// (no child is started then), [`ProcessError::Io`] when the child cannot be spawned.
    fn start(&self) -> Result<Handle<Self::Output>, ProcessError>
    where
        Self: Sized,
    {
        self.start_with(Self::config())
    }

    /// Starts the process and waits for its outcome: [`Process::start`], then
    /// [`Handle::take_result`].
    ///
    /// # Errors
    /// As [`Process::start`] and [`Handle::result`].
    fn run(&self) -> Result<Self::Output, ProcessError>
    where
        Self: Sized,
    {
        self.start()?.take_result()
    }

    /// Starts the process with a configuration built at run time.
    ///
    /// # Errors
    /// As [`Process::start`], plus [`ProcessError::Config`] for invalid values.
    fn start_with(&self, config: ProcessConfig) -> Result<Handle<Self::Output>, ProcessError>
    where
        Self: Sized,
    {
        let shared = crate::parent::start::start(self, config, Default::default())?;
        Ok(Handle::new(shared))
    }
}
