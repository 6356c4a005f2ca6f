//! What the parent learns when a process does not end with a result.
//!
//! Errors cross a process boundary, so they are plain data: the child turns its
//! `Box<dyn Error>` or panic payload into a [`RemoteError`] (type name, message, source
//! chain), wraps it by the [`Section`] it came from, and sends the [`ProcessError`] over
//! the channel. Everything here is `Serialize + Deserialize + Clone`, so that
//! `Handle::result` can return the same error on every call and `Lifecycle::error` can
//! hand one back to the parent.

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pid::Pid;

/// A part of the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Section {
    /// `Lifecycle::preloop`, before each lap's main loop.
    Preloop,
    /// `Lifecycle::main_loop`, the body of each lap (`loop` in the attribute).
    MainLoop,
    /// `Lifecycle::postloop`, after each lap's main loop.
    Postloop,
    /// `Lifecycle::on_finish`, once, after the last lap.
    OnFinish,
    /// `Lifecycle::result`, once, after `on_finish`.
    Result,
    /// `Lifecycle::error`, once, when every life is spent.
    Error,
}

impl Section {
    /// The method's name, as the user wrote it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Section::Preloop => "preloop",
            Section::MainLoop => "main_loop",
            Section::Postloop => "postloop",
            Section::OnFinish => "on_finish",
            Section::Result => "result",
            Section::Error => "error",
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a child process ended, as the operating system reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Exit {
    /// It exited with this code (a Rust panic that was not caught exits with 101).
    Code(i32),
    /// It was ended by this signal number (Unix).
    Signal(i32),
}

impl Exit {
    /// The code in the convention of Python's `Process.exitcode`: the exit code, or
    /// the negated signal number (`-9` for SIGKILL).
    #[must_use]
    pub const fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => -s,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => match signal_name(s) {
                Some(name) => write!(f, "signal {s} ({name})"),
                None => write!(f, "signal {s}"),
            },
        }
    }
}

/// How signal numbers are named. Numbers differ between systems (7 is SIGBUS on Linux
/// and SIGEMT on macOS), and this crate knows no platform, so the runtime installs the
/// platform's names when it starts; until then a signal is shown by number alone.
static SIGNAL_NAMES: OnceLock<fn(i32) -> Option<&'static str>> = OnceLock::new();

/// Installs the platform's signal names; the first call wins. Used by the runtime.
#[doc(hidden)]
pub fn __set_signal_names(names: fn(i32) -> Option<&'static str>) {
    let _ = SIGNAL_NAMES.set(names);
}

fn signal_name(signal: i32) -> Option<&'static str> {
    SIGNAL_NAMES.get().and_then(|names| names(signal))
}

/// An error or panic that happened in a child, carried to the parent as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    type_name: Option<String>,
    message: String,
    sources: Vec<String>,
    panic: Option<PanicInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PanicInfo {
    location: Option<String>,
}

impl RemoteError {
    /// An error with only a message, as a user builds for `ProcessError::Custom`.
    #[must_use]
    pub fn msg(message: impl Into<String>) -> Self {
        Self {
            type_name: None,
            message: message.into(),
            sources: Vec::new(),
            panic: None,
        }
    }

    /// Captures an error: its type name (see [`RemoteError::type_name`]), its
    /// `Display` text and the `Display` text of each of its sources.
    #[must_use]
    pub fn from_error(error: &(dyn StdError + 'static)) -> Self {
        let mut sources = Vec::new();
        let mut next = error.source();
        while let Some(source) = next {
            sources.push(source.to_string());
            next = source.source();
        }
        Self {
            type_name: type_name_of(error),
            message: error.to_string(),
            sources,
            panic: None,
        }
    }

    /// Captures a panic from the payload `catch_unwind` returned and, when known, the
    /// `file:line:column` it was raised at.
    #[must_use]
    pub fn from_panic(payload: &(dyn Any + Send), location: Option<String>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "Box<dyn Any>".to_owned()
        };
        Self {
            type_name: None,
            message,
            sources: Vec::new(),
            panic: Some(PanicInfo { location }),
        }
    }

    /// The error's type name, when it could be recovered.
    ///
    /// A boxed error has lost its concrete type at run time, so the name is read off
    /// the leading identifier of its `Debug` text (`ParseIntError { kind: InvalidDigit }`
    /// gives `ParseIntError`), which is what a derived `Debug` prints. Errors whose
    /// `Debug` text does not start that way (a plain string turned into a `BoxError`,
    /// `anyhow::Error`) have none.
    #[must_use]
    pub fn type_name(&self) -> Option<&str> {
        self.type_name.as_deref()
    }

    /// The error's `Display` text, or the panic message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `Display` text of each error in the source chain, nearest first.
    #[must_use]
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// Whether this was a panic rather than a returned error.
    #[must_use]
    pub fn is_panic(&self) -> bool {
        self.panic.is_some()
    }

    /// Where the panic was raised (`file:line:column`), for panics.
    #[must_use]
    pub fn panic_location(&self) -> Option<&str> {
        self.panic.as_ref().and_then(|p| p.location.as_deref())
    }
}

/// `Type: message`, `panic: message`, or the bare message. The alternate form
/// (`{:#}`) appends the source chain, each as `: caused by: ...`.
impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.panic.is_some() {
            write!(f, "panic: {}", self.message)?;
        } else if let Some(name) = &self.type_name {
            write!(f, "{name}: {}", self.message)?;
        } else {
            f.write_str(&self.message)?;
        }
        if f.alternate() {
            for source in &self.sources {
                write!(f, ": caused by: {source}")?;
            }
        }
        Ok(())
    }
}

impl StdError for RemoteError {}

/// The leading type name of an error's `Debug` text, if it has the shape of one.
fn type_name_of(error: &(dyn StdError + 'static)) -> Option<String> {
    // io::Error's Debug starts with a variant of its private representation
    // (`Custom {`, `Os {`, `Kind(`), which would be a misleading name.
    if error.is::<std::io::Error>() {
        return Some("io::Error".to_owned());
    }
    let debug = format!("{error:?}");
    let ident_len = debug
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
        .map_or(debug.len(), |(i, _)| i);
    let ident = &debug[..ident_len];
    let rest = &debug[ident_len..];
    let starts_like_a_type = ident.chars().next().is_some_and(char::is_uppercase);
    // A type's Debug is `Name`, `Name { .. }` or `Name(..)`; anything else (`Connection
    // refused`, a quoted string) is a message that happens to start with a word.
    let shaped_like_a_type = rest.is_empty() || rest.starts_with(" {") || rest.starts_with('(');
    (starts_like_a_type && shaped_like_a_type).then(|| ident.to_owned())
}

/// Why a process ended without a result. `Display` names the section first, in the
/// Python design's words: `MainLoopError: ParseIntError: invalid digit found in string`.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ProcessError {
    /// `preloop` returned an error or panicked.
    #[error("PreloopError: {0}")]
    Preloop(RemoteError),
    /// `main_loop` returned an error or panicked.
    #[error("MainLoopError: {0}")]
    MainLoop(RemoteError),
    /// `postloop` returned an error or panicked.
    #[error("PostloopError: {0}")]
    Postloop(RemoteError),
    /// `on_finish` returned an error or panicked.
    #[error("OnFinishError: {0}")]
    OnFinish(RemoteError),
    /// `result` returned an error or panicked.
    #[error("ResultError: {0}")]
    Result(RemoteError),
    /// `error` panicked (an error it returns is delivered as it is).
    #[error("ErrorHandlerError: {0}")]
    ErrorHandler(RemoteError),
    /// A section ran longer than its limit.
    #[error("TimeoutError: {section} ran longer than its limit of {limit:?}")]
    Timeout {
        /// The section that was running.
        section: Section,
        /// Its limit.
        limit: Duration,
    },
    /// `kill()` ended the process.
    #[error("the process was killed")]
    Killed,
    /// The child died without reporting (abort, segfault, a signal from outside, the
    /// OOM killer, `exit` called by user code).
    #[error("the process crashed{} with {exit}", fmt_section(*.section))]
    Crashed {
        /// The section it was in, when known.
        section: Option<Section>,
        /// How it ended.
        exit: Exit,
    },
    /// The state does not survive a postcard round trip, so no child was started.
    #[error("the process state cannot be sent to a child: {0}")]
    State(String),
    /// The output returned by `result` could not be encoded or decoded.
    #[error("the process output cannot be sent to the parent: {0}")]
    Output(String),
    /// The configuration given to `start_with` is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The channel carried something that is not a valid frame, or the two sides
    /// disagree on protocol version or build.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The operating system refused an operation (spawning, a socket).
    #[error("I/O error: {0}")]
    Io(String),
    /// The result was already moved out by `Handle::take_result`.
    #[error("the result was already taken from this handle")]
    ResultTaken,
    /// An error made by the user's `Lifecycle::error`.
    #[error("{0}")]
    Custom(RemoteError),
    /// The program is shutting down (`process_runtime::shutdown()`, or the graceful
    /// phase after SIGTERM or SIGINT): no process starts until every process it is
    /// stopping has ended.
    #[error("the program is shutting down: no process starts until its processes have ended")]
    ShuttingDown,
    /// A process linked to this one (`node::link`) ended with `reason`, and this one
    /// does not trap exits: it was ended at once. It counts as a failure (lives apply).
    #[error("the linked process {from} ended ({reason})")]
    Linked {
        /// The linked process that ended.
        from: Pid,
        /// How it ended.
        reason: Box<ExitReason>,
    },
    /// `node::exit(pid, reason)` from another process ended this one, which does not
    /// trap exits. It counts as a failure (lives apply).
    #[error("ended by an exit signal from {from} ({reason})")]
    Exited {
        /// The process that sent the signal.
        from: Pid,
        /// The reason it gave.
        reason: Box<ExitReason>,
    },
}

/// Why a process ended, as the node tells it (in a `node::Down` notice, a
/// `node::Exit` message, a [`ProcessError::Linked`] error).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ExitReason {
    /// It delivered its result (its handle's `result()` is `Ok`).
    Normal,
    /// It failed: the error its handle's `result()` returns (a section error, a
    /// timeout, [`ProcessError::Crashed`] for a crash or a kill from outside,
    /// [`ProcessError::Killed`] for `Handle::kill`). A process below one that ended
    /// without saying how its own children ended is reported as `Killed`: they died
    /// with it.
    Error(ProcessError),
    /// It did not exist when it was monitored or linked: it had ended already, or
    /// never existed.
    NoProc,
    /// It was stopped by the node: `node::exit(pid, ExitReason::Shutdown)`, a
    /// supervisor.
    Shutdown,
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Error(e) => write!(f, "error: {e}"),
            ExitReason::NoProc => f.write_str("noproc"),
            ExitReason::Shutdown => f.write_str("shutdown"),
        }
    }
}

fn fmt_section(section: Option<Section>) -> String {
    section.map_or_else(String::new, |s| format!(" in {s}"))
}

impl ProcessError {
    /// Wraps an error from a section in that section's variant.
    #[must_use]
    pub fn in_section(section: Section, error: RemoteError) -> Self {
        match section {
            Section::Preloop => ProcessError::Preloop(error),
            Section::MainLoop => ProcessError::MainLoop(error),
            Section::Postloop => ProcessError::Postloop(error),
            Section::OnFinish => ProcessError::OnFinish(error),
            Section::Result => ProcessError::Result(error),
            Section::Error => ProcessError::ErrorHandler(error),
        }
    }

    /// A user-made error, for `Lifecycle::error` implementations.
    #[must_use]
    pub fn custom(error: &(dyn StdError + 'static)) -> Self {
        ProcessError::Custom(RemoteError::from_error(error))
    }

    /// The section the error came from, when it came from one.
    #[must_use]
    pub fn section(&self) -> Option<Section> {
        match self {
            ProcessError::Preloop(_) => Some(Section::Preloop),
            ProcessError::MainLoop(_) => Some(Section::MainLoop),
            ProcessError::Postloop(_) => Some(Section::Postloop),
            ProcessError::OnFinish(_) => Some(Section::OnFinish),
            ProcessError::Result(_) => Some(Section::Result),
            ProcessError::ErrorHandler(_) => Some(Section::Error),
            ProcessError::Timeout { section, .. } => Some(*section),
            ProcessError::Crashed { section, .. } => *section,
            _ => None,
        }
    }

    /// The error or panic raised by user code, for the section variants.
    #[must_use]
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            ProcessError::Preloop(e)
            | ProcessError::MainLoop(e)
            | ProcessError::Postloop(e)
            | ProcessError::OnFinish(e)
            | ProcessError::Result(e)
            | ProcessError::ErrorHandler(e)
            | ProcessError::Custom(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::num::ParseIntError);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("could not read the count")
        }
    }
    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn display_names_section_then_type() {
        let err = "x".parse::<u32>().unwrap_err();
        let e = ProcessError::MainLoop(RemoteError::from_error(&err));
        assert_eq!(
            e.to_string(),
            "MainLoopError: ParseIntError: invalid digit found in string"
        );
        assert_eq!(e.section(), Some(Section::MainLoop));
    }

    #[test]
    fn plain_string_errors_have_no_type_name() {
        let boxed: Box<dyn StdError + Send + Sync> = "disk on fire".into();
        let r = RemoteError::from_error(boxed.as_ref());
        assert_eq!(r.type_name(), None);
        assert_eq!(
            ProcessError::Preloop(r).to_string(),
            "PreloopError: disk on fire"
        );
    }

    #[test]
    fn messages_starting_with_a_word_are_not_type_names() {
        #[derive(Debug)]
        struct Wrapper;
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("w")
            }
        }
        impl StdError for Wrapper {}
        assert_eq!(type_name_of(&Wrapper).as_deref(), Some("Wrapper"));
        let io = std::io::Error::other("Connection refused");
        assert_eq!(type_name_of(&io).as_deref(), Some("io::Error"));
    }

    #[test]
    fn source_chain_is_kept() {
        let err = Outer("x".parse::<u32>().unwrap_err());
        let r = RemoteError::from_error(&err);
        assert_eq!(r.type_name(), Some("Outer"));
        assert_eq!(r.sources(), ["invalid digit found in string"]);
        assert_eq!(
            format!("{r:#}"),
            "Outer: could not read the count: caused by: invalid digit found in string"
        );
    }

    #[test]
    fn panics_carry_their_message_and_location() {
        let p = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        let r = RemoteError::from_panic(p.as_ref(), Some("src/x.rs:1:2".into()));
        assert!(r.is_panic());
        assert_eq!(r.panic_location(), Some("src/x.rs:1:2"));
        assert_eq!(
            ProcessError::Postloop(r).to_string(),
            "PostloopError: panic: boom 7"
        );
        let p = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(
            RemoteError::from_panic(p.as_ref(), None).message(),
            "static"
        );
    }

    /// A stand-in for a platform's names, with numbers no real platform uses for
    /// these signals, so the test shows that names come from the installed table.
    fn names(signal: i32) -> Option<&'static str> {
        match signal {
            60 => Some("SIGABRT"),
            61 => Some("SIGSEGV"),
            _ => None,
        }
    }

    #[test]
    fn exit_codes_follow_python_and_signals_take_the_platform_names() {
        assert_eq!(Exit::Signal(9).code(), -9);
        assert_eq!(Exit::Code(101).code(), 101);
        __set_signal_names(names);
        assert_eq!(Exit::Signal(60).to_string(), "signal 60 (SIGABRT)");
        assert_eq!(Exit::Signal(6).to_string(), "signal 6");
        let e = ProcessError::Crashed {
            section: Some(Section::MainLoop),
            exit: Exit::Signal(61),
        };
        assert_eq!(
            e.to_string(),
            "the process crashed in main_loop with signal 61 (SIGSEGV)"
        );
        let e = ProcessError::Crashed {
            section: None,
            exit: Exit::Code(7),
        };
        assert_eq!(e.to_string(), "the process crashed with exit code 7");
    }

    #[test]
    fn errors_survive_postcard() {
        let e = ProcessError::Timeout {
            section: Section::Postloop,
            limit: Duration::from_millis(1500),
        };
        let bytes = postcard::to_allocvec(&e).unwrap();
        assert_eq!(postcard::from_bytes::<ProcessError>(&bytes).unwrap(), e);
        assert_eq!(
            e.to_string(),
            "TimeoutError: postloop ran longer than its limit of 1.5s"
        );
    }
}
