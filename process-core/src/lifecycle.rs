//! The trait a user implements: what each section of a process does.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::context::Context;
use crate::error::ProcessError;

/// Any error, boxed: what sections return, so that `?` works on every error type
/// (`anyhow::Error` included).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a section returns.
pub type Outcome = Result<(), BoxError>;

/// The lifecycle of a process, run by the engine in the child.
///
/// ```text
/// loop { preloop; main_loop; postloop; lap += 1 }   until stopped or a limit is reached
/// on_finish; result                                  -> Handle::result() in the parent
/// error(err)                                         when a section failed and no life is left
/// ```
///
/// The engine checks for a stop request before each section; a stop lets the current
/// section finish, then runs `on_finish` and `result`. Only `Output`, `main_loop` and
/// `result` must be written; the other sections default to doing nothing, and `error`
/// defaults to handing the error to the parent.
pub trait Lifecycle {
    /// What `result` produces and the parent's `Handle::result` returns.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// Runs before each lap's `main_loop`.
    ///
    /// # Errors
    /// An error ends the attempt with `ProcessError::Preloop`.
    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        let _ = cx;
        Ok(())
    }

    /// The work of one lap. The engine does the looping: this should not loop itself.
    ///
    /// # Errors
    /// An error ends the attempt with `ProcessError::MainLoop`.
    fn main_loop(&mut self, cx: &mut Context) -> Outcome;

    /// Runs after each lap's `main_loop`.
    ///
    /// # Errors
    /// An error ends the attempt with `ProcessError::Postloop`.
    fn postloop(&mut self, cx: &mut Context) -> Outcome {
        let _ = cx;
        Ok(())
    }

    /// Runs once, after the last lap (stop requested, `num_loops` reached or `join_in`
    /// elapsed). Not run when the process is killed.
    ///
    /// # Errors
    /// An error ends the attempt with `ProcessError::OnFinish`.
    fn on_finish(&mut self, cx: &mut Context) -> Outcome {
        let _ = cx;
        Ok(())
    }

    /// Produces the output, after `on_finish`.
    ///
    /// # Errors
    /// An error ends the attempt with `ProcessError::Result`.
    fn result(&mut self, cx: &mut Context) -> Result<Self::Output, BoxError>;

    /// Runs when an attempt failed and no life is left, with the wrapped error. `Err`
    /// reaches the parent's `Handle::result`; `Ok` is delivered as a normal result.
    ///
    /// # Errors
    /// By default, `err` itself.
    fn error(&mut self, err: ProcessError, cx: &mut Context) -> Result<Self::Output, ProcessError> {
        let _ = cx;
        Err(err)
    }

    /// Set by `#[timethis]` on `preloop`: the engine then times each call.
    #[doc(hidden)]
    const __TIMETHIS_PRELOOP: bool = false;
    /// Set by `#[timethis]` on `main_loop`.
    #[doc(hidden)]
    const __TIMETHIS_MAIN_LOOP: bool = false;
    /// Set by `#[timethis]` on `postloop`.
    #[doc(hidden)]
    const __TIMETHIS_POSTLOOP: bool = false;
    /// Set by `#[timethis]` on `on_finish`.
    #[doc(hidden)]
    const __TIMETHIS_ON_FINISH: bool = false;
}
