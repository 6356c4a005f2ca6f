//! `spawn(arg, f)`: a function run as a process, with the same [`Handle`] a process
//! type gets.
//!
//! The function runs in an internal process type, [`FnCall`], whose state is the
//! argument's bytes and the function's code offset (see `call.rs`), and whose one
//! `main_loop` is the call: a panic reads `MainLoopError: panic: ...`, `timeout` is the
//! limit of `main_loop`, and a crash is `Crashed` in `main_loop`, as for any process.
//! Its report carries the result's own postcard bytes, so `Handle<R>` decodes an `R`
//! from it as it decodes any output.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::call::{self, CallError};
use crate::child::{run_with, ChildRun};
use crate::parent::attempt::StartOptions;
use crate::registry::{Registration, REGISTRY};
use crate::wire::protocol::POSTCARD_LIMITS;
use crate::{
    BoxError, Context, Handle, Lifecycle, Outcome, Process, ProcessConfig, ProcessError,
    RemoteError, Section,
};

/// Runs `f(arg)` in a child process and returns its handle at once; `result()` is what
/// `f` returned.
///
/// `f` is a fn item or a closure that captures nothing: it runs in another process,
/// where values captured here do not exist, so pass what it needs in `arg`. A closure
/// that captures is a compile error (at build time: `cargo check` does not see it).
/// `arg` and the result cross the process boundary with postcard, as a process's state
/// and output do.
///
/// The call is the process's `main_loop`: a panic is
/// [`ProcessError::MainLoop`] with the panic's message (`MainLoopError: panic: boom`), a
/// crash is [`ProcessError::Crashed`], and the call has `main_loop`'s default limit of
/// 300 s. [`Spawn`] sets the name, lives, limit and daemon flag.
///
/// ```
/// let h = process_runtime::spawn(21u64, |x| x * 2)?;
/// assert_eq!(h.result()?, 42);
/// # Ok::<(), process_runtime::ProcessError>(())
/// ```
///
/// # Errors
/// [`ProcessError::State`] when `arg` does not survive a postcard round trip (no child
/// is started then), [`ProcessError::Io`] when the child cannot be spawned.
pub fn spawn<A, R, F>(arg: A, f: F) -> Result<Handle<R>, ProcessError>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
    F: Fn(A) -> R,
{
    Spawn::new().spawn(arg, f)
}

/// The settings of a function run as a process, for [`spawn`] when the defaults do not
/// fit: `Spawn::new().lives(3).timeout(Duration::from_secs(10)).spawn(arg, f)`.
///
/// ```
/// use std::time::Duration;
/// use process_runtime::Spawn;
///
/// let h = Spawn::new()
///     .name("square")
///     .lives(2)                             // one retry after a failure
///     .timeout(Duration::from_secs(10))     // or None: no limit
///     .spawn(12u32, |x| x * x)?;
/// assert_eq!(h.name(), "square");
/// assert_eq!(h.result()?, 144);
/// # Ok::<(), process_runtime::ProcessError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Spawn {
    name: Option<String>,
    lives: u32,
    timeout: Option<Duration>,
    daemon: bool,
}

impl Default for Spawn {
    fn default() -> Self {
        Self::new()
    }
}

impl Spawn {
    /// The defaults: named after the function's type, one life, the call limited to
    /// 300 s (`main_loop`'s default), not a daemon.
    pub fn new() -> Self {
        Self {
            name: None,
            lives: 1,
            timeout: Some(crate::Timeouts::DEFAULT_MAIN_LOOP),
            daemon: false,
        }
    }

    /// The process's name, shown in errors and logs (by default the function's type
    /// name, such as `my_crate::parse` or `my_crate::main::{{closure}}`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Attempts before the failure is the result: with `lives(3)`, a call that panics,
    /// crashes or runs past its limit is made again, from the same argument, in a fresh
    /// child, up to three times in all. At least 1.
    pub fn lives(mut self, lives: u32) -> Self {
        self.lives = lives;
        self
    }

    /// The limit of the call: a `Duration`, or `None` to let it run for ever. Past it
    /// the child is killed and the result is [`ProcessError::Timeout`].
    pub fn timeout(mut self, limit: impl Into<Option<Duration>>) -> Self {
        self.timeout = limit.into();
        self
    }

    /// A daemon is killed when its handle is dropped. Otherwise dropping the handle
    /// waits for the call to end, for at most 60 s (the `on_finish` limit), then kills
    /// it; see [`Handle`].
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// Runs `f(arg)` in a child process with these settings; see [`spawn`].
    ///
    /// # Errors
    /// As [`spawn`], and [`ProcessError::Config`] for `lives(0)` or an empty name.
    pub fn spawn<A, R, F>(&self, arg: A, f: F) -> Result<Handle<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        F: Fn(A) -> R,
    {
        let call = call::offset_of::<A, R, F>(&f);
        let arg = encode_checked(&arg)?;
        let name = match &self.name {
            Some(name) => name.clone(),
            None => std::any::type_name::<F>().to_owned(),
        };
        let config = ProcessConfig::new(name)
            .with_num_loops(Some(1))
            .with_lives(self.lives)
            .with_timeout(Section::MainLoop, self.timeout)
            .with_daemon(self.daemon);
        let options = StartOptions::default().with_default_error();
        let state = FnCall {
            call,
            arg,
            result: None,
        };
        let shared = crate::parent::start::start(&state, config, options)?;
        Ok(Handle::new(shared))
    }
}

/// `arg`'s postcard bytes, once they are known to decode back: a type postcard can
/// encode but not decode is refused here, before any child is started.
fn encode_checked<A: Serialize + DeserializeOwned>(arg: &A) -> Result<Vec<u8>, ProcessError> {
    let bytes = call::encode_arg(arg)?;
    postcard::from_bytes::<A>(&bytes).map_err(|e| {
        ProcessError::State(format!(
            "the argument, a `{}`, serializes but does not deserialize back ({e}); \
             {POSTCARD_LIMITS}",
            std::any::type_name::<A>()
        ))
    })?;
    Ok(bytes)
}

/// A function call as a process: one lap, whose `main_loop` is the call.
#[derive(Serialize, Deserialize)]
pub(crate) struct FnCall {
    /// The trampoline, as an offset from the anchor (see `call.rs`).
    call: i64,
    /// The argument's postcard bytes.
    arg: Vec<u8>,
    /// What the call gave: the result's postcard bytes, or why there are none.
    #[serde(skip)]
    result: Option<Result<Vec<u8>, ProcessError>>,
}

impl Lifecycle for FnCall {
    /// The result's own postcard bytes, reported as they are (see [`run_call`]).
    type Output = Result<Vec<u8>, ProcessError>;

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        // SAFETY: `call` is the offset the parent computed with `offset_of` and sent in
        // the start frame, on the authenticated channel to this re-executed copy of
        // its own executable; see `trampoline_at`.
        let call = unsafe { call::trampoline_at(self.call) };
        let mut bytes = Vec::new();
        self.result = Some(
            call(&self.arg, &mut bytes)
                .map(|()| bytes)
                .map_err(|e: CallError| e.into()),
        );
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<Self::Output, BoxError> {
        Ok(self.result.take().unwrap_or_else(|| {
            Err(ProcessError::Custom(RemoteError::msg(
                "the process was stopped before the function was called",
            )))
        }))
    }
}

impl Process for FnCall {
    fn config() -> ProcessConfig {
        ProcessConfig::new("function").with_num_loops(Some(1))
    }

    fn __registration() -> &'static Registration {
        &FN_CALL
    }
}

#[linkme::distributed_slice(REGISTRY)]
static FN_CALL: Registration =
    Registration::internal::<FnCall>(concat!(module_path!(), "::FnCall"), run_call);

/// The child's entry point of a function call: the engine as for any process, with the
/// report carrying the result's bytes as they are (the parent decodes an `R` from
/// them), or the call's error as the outcome.
fn run_call(run: ChildRun) -> ! {
    run_with::<FnCall>(run, |output| output)
}
