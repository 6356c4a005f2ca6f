//! The configuration of a process: what `#[process(...)]` expands to, and what
//! `start_with` accepts when a value is only known at run time.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ProcessError, Section};

/// Per-section time limits. `None` means the section may run for ever.
///
/// The defaults are the Python design's: 30 s for `preloop`, 300 s for `main_loop`,
/// 60 s for `postloop` and 60 s for `on_finish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Timeouts {
    /// Limit for each call of `preloop`.
    pub preloop: Option<Duration>,
    /// Limit for each call of `main_loop` (`timeout.loop` in the attribute).
    pub main_loop: Option<Duration>,
    /// Limit for each call of `postloop`.
    pub postloop: Option<Duration>,
    /// Limit for `on_finish` (`timeout.onfinish`); past it the child is killed.
    pub on_finish: Option<Duration>,
}

impl Timeouts {
    /// Default limit of `preloop`.
    pub const DEFAULT_PRELOOP: Duration = Duration::from_secs(30);
    /// Default limit of `main_loop`.
    pub const DEFAULT_MAIN_LOOP: Duration = Duration::from_secs(300);
    /// Default limit of `postloop`.
    pub const DEFAULT_POSTLOOP: Duration = Duration::from_secs(60);
    /// Default limit of `on_finish`.
    pub const DEFAULT_ON_FINISH: Duration = Duration::from_secs(60);

    /// The limit of `section`, or `None` when it has none (or is not a timed section).
    #[must_use]
    pub fn get(&self, section: Section) -> Option<Duration> {
        match section {
            Section::Preloop => self.preloop,
            Section::MainLoop => self.main_loop,
            Section::Postloop => self.postloop,
            Section::OnFinish => self.on_finish,
            _ => None,
        }
    }

    /// Sets the limit of `section`. Sections without a limit (`result`, `error`) are
    /// left alone.
    pub fn set(&mut self, section: Section, limit: Option<Duration>) {
        match section {
            Section::Preloop => self.preloop = limit,
            Section::MainLoop => self.main_loop = limit,
            Section::Postloop => self.postloop = limit,
            Section::OnFinish => self.on_finish = limit,
            _ => {}
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            preloop: Some(Self::DEFAULT_PRELOOP),
            main_loop: Some(Self::DEFAULT_MAIN_LOOP),
            postloop: Some(Self::DEFAULT_POSTLOOP),
            on_finish: Some(Self::DEFAULT_ON_FINISH),
        }
    }
}

/// Everything that decides how a process runs, apart from its state.
///
/// Normally produced by `#[derive(Process)]` from the `#[process(...)]` attribute; build
/// one by hand with [`ProcessConfig::new`] and the `with_*` methods when a value is only
/// known at run time, and pass it to `start_with`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessConfig {
    /// Shown in errors, logs and listings. Defaults to the type's name.
    pub name: String,
    /// Laps before the engine stops by itself; `None` runs until stopped.
    pub num_loops: Option<u64>,
    /// Wall time before the engine stops by itself; `None` for no limit.
    pub join_in: Option<Duration>,
    /// Attempts before `error` is called; at least 1.
    pub lives: u32,
    /// Per-section time limits.
    pub timeouts: Timeouts,
    /// A daemon is killed, not stopped, when its handle is dropped.
    pub daemon: bool,
    /// Messages this process's mailbox holds unread before a sender waits (`tell`) or
    /// is refused (`try_tell`); at least 1.
    pub mailbox: u32,
}

impl ProcessConfig {
    /// Default size of the mailbox.
    pub const DEFAULT_MAILBOX: u32 = 100;
    /// Largest size of the mailbox [`validate`](Self::validate) accepts.
    pub const MAX_MAILBOX: u32 = 1_000_000;

    /// A configuration with the given name and every other value at its default:
    /// no lap or time limit, one life, default timeouts, not a daemon, a mailbox of
    /// [`DEFAULT_MAILBOX`](Self::DEFAULT_MAILBOX) messages.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            num_loops: None,
            join_in: None,
            lives: 1,
            timeouts: Timeouts::default(),
            daemon: false,
            mailbox: Self::DEFAULT_MAILBOX,
        }
    }

    /// Sets the name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the number of laps (`None`: until stopped).
    #[must_use]
    pub fn with_num_loops(mut self, num_loops: Option<u64>) -> Self {
        self.num_loops = num_loops;
        self
    }

    /// Sets the wall-time limit (`None`: no limit).
    #[must_use]
    pub fn with_join_in(mut self, join_in: Option<Duration>) -> Self {
        self.join_in = join_in;
        self
    }

    /// Sets the number of attempts.
    #[must_use]
    pub fn with_lives(mut self, lives: u32) -> Self {
        self.lives = lives;
        self
    }

    /// Sets the time limit of one section (`None`: no limit).
    #[must_use]
    pub fn with_timeout(mut self, section: Section, limit: Option<Duration>) -> Self {
        self.timeouts.set(section, limit);
        self
    }

    /// Makes the process a daemon or not.
    #[must_use]
    pub fn with_daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// Sets the number of messages the mailbox holds unread.
    #[must_use]
    pub fn with_mailbox(mut self, mailbox: u32) -> Self {
        self.mailbox = mailbox;
        self
    }

    /// Checks the values the attribute checks at compile time, for configurations
    /// built at run time.
    ///
    /// # Errors
    /// [`ProcessError::Config`] naming the first bad value.
    pub fn validate(&self) -> Result<(), ProcessError> {
        if self.lives == 0 {
            return Err(ProcessError::Config(
                "`lives` must be at least 1 (1 means a single attempt)".into(),
            ));
        }
        if self.num_loops == Some(0) {
            return Err(ProcessError::Config(
                "`num_loops` must be at least 1; use `None` to run until stopped".into(),
            ));
        }
        if self.mailbox == 0 {
            return Err(ProcessError::Config(
                "`mailbox` must be at least 1 (1 holds a single unread message)".into(),
            ));
        }
        if self.mailbox > Self::MAX_MAILBOX {
            return Err(ProcessError::Config(format!(
                "`mailbox` is too large: the maximum is {}",
                Self::MAX_MAILBOX
            )));
        }
        if self.name.is_empty() {
            return Err(ProcessError::Config("`name` must not be empty".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_python_designs() {
        let c = ProcessConfig::new("p");
        assert_eq!(c.lives, 1);
        assert_eq!(c.num_loops, None);
        assert_eq!(c.join_in, None);
        assert_eq!(c.timeouts.preloop, Some(Duration::from_secs(30)));
        assert_eq!(c.timeouts.main_loop, Some(Duration::from_secs(300)));
        assert_eq!(c.timeouts.postloop, Some(Duration::from_secs(60)));
        assert_eq!(c.timeouts.on_finish, Some(Duration::from_secs(60)));
        assert!(!c.daemon);
        assert_eq!(c.mailbox, 100);
        assert_eq!(c.mailbox, ProcessConfig::DEFAULT_MAILBOX);
    }

    #[test]
    fn validate_rejects_zero_lives_and_loops() {
        let e = ProcessConfig::new("p")
            .with_lives(0)
            .validate()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: `lives` must be at least 1 (1 means a single attempt)"
        );
        let e = ProcessConfig::new("p")
            .with_num_loops(Some(0))
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("`num_loops` must be at least 1"));
        assert!(ProcessConfig::new("").validate().is_err());
        assert!(ProcessConfig::new("p").with_lives(3).validate().is_ok());
    }

    #[test]
    fn validate_bounds_the_mailbox() {
        let e = ProcessConfig::new("p")
            .with_mailbox(0)
            .validate()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: `mailbox` must be at least 1 (1 holds a single unread message)"
        );
        let e = ProcessConfig::new("p")
            .with_mailbox(ProcessConfig::MAX_MAILBOX + 1)
            .validate()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: `mailbox` is too large: the maximum is 1000000"
        );
        for n in [1, 7, ProcessConfig::MAX_MAILBOX] {
            let c = ProcessConfig::new("p").with_mailbox(n);
            assert_eq!(c.mailbox, n);
            assert!(c.validate().is_ok());
        }
    }

    #[test]
    fn timeouts_by_section() {
        let c = ProcessConfig::new("p")
            .with_timeout(Section::MainLoop, None)
            .with_timeout(Section::OnFinish, Some(Duration::from_millis(5)));
        assert_eq!(c.timeouts.get(Section::MainLoop), None);
        assert_eq!(
            c.timeouts.get(Section::OnFinish),
            Some(Duration::from_millis(5))
        );
        assert_eq!(c.timeouts.get(Section::Result), None);
    }
}
