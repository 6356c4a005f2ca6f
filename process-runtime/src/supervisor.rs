//! The parent side: starts attempts, authenticates them, collects their reports, reaps
//! them, and decides what happens next (deliver, retry from the original state, or run
//! `error` in a fresh child).
//!
//! Each process has one supervisor thread, which owns the child's read half and its
//! `std::process::Child`. The [`Handle`] talks to it through [`Shared`]: a mutex-held
//! [`Inner`] and a condition variable signalled at every change. The vocabulary is
//! small: an attempt ends `Done` or `Failed` (the child reported an output or an
//! error), `Vanished` (end of file without a report: a crash or a kill), `TimedOut` (a
//! section passed its limit and the child was killed) or `Refused` (the channel
//! carried something invalid); the process ends when a report is final or no life is
//! left.

use std::process::Child;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::beacon::{self, Beacon};
use crate::channel::{write_frame, Conn, Frame, FrameReader, ReadError};
use crate::handle::Handle;
use crate::protocol::{self, Mode, ToChild, ToParent, SECRET_LEN};
use crate::{
    spawn, sys, Exit, Process, ProcessConfig, ProcessError, ProcessTimers, Section, Timeouts,
};

/// The output bytes of a finished process, kept inside the frame they arrived in.
#[derive(Debug)]
pub(crate) struct Output {
    frame: Frame,
    start: usize,
    len: usize,
}

impl Output {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.frame.payload()[self.start..self.start + self.len]
    }
}

/// What the handle and the supervisor share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ProcessConfig,
    pub(crate) timers: OnceLock<ProcessTimers>,
    inner: Mutex<Inner>,
    changed: Condvar,
}

/// The mutable part of [`Shared`].
#[derive(Debug, Default)]
pub(crate) struct Inner {
    /// The current attempt's process id.
    pub(crate) pid: u32,
    /// The process id while it may be signalled: from the spawn until just before the
    /// child is reaped (after that the id may belong to someone else).
    pub(crate) live_pid: Option<u32>,
    /// The current attempt's write half, while it runs.
    pub(crate) writer: Option<Conn>,
    /// The final outcome, once known.
    pub(crate) report: Option<Result<Output, ProcessError>>,
    /// How the attempt that decided the outcome ended.
    pub(crate) exit: Option<Exit>,
    /// Every child of this process has been reaped; nothing runs any more.
    pub(crate) finished: bool,
    pub(crate) stop_requested: bool,
    pub(crate) kill_requested: bool,
    /// Attempts started so far.
    pub(crate) attempts: u32,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `done` holds or `deadline` passes; returns whether it holds.
    pub(crate) fn wait_until(
        &self,
        deadline: Option<Instant>,
        mut done: impl FnMut(&Inner) -> bool,
    ) -> (MutexGuard<'_, Inner>, bool) {
        let mut inner = self.lock();
        loop {
            if done(&inner) {
                return (inner, true);
            }
            match deadline {
                None => {
                    inner = self
                        .changed
                        .wait(inner)
                        .unwrap_or_else(PoisonError::into_inner)
                }
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return (inner, false);
                    }
                    inner = self
                        .changed
                        .wait_timeout(inner, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }

    fn update(&self, f: impl FnOnce(&mut Inner)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    /// Asks the running attempt to stop (and remembers it for later attempts).
    pub(crate) fn request_stop(&self) {
        let writer = {
            let mut inner = self.lock();
            inner.stop_requested = true;
            inner.writer.clone()
        };
        if let Some(w) = writer {
            send_stop(&w);
        }
    }

    /// Kills the running attempt's process group, unless the outcome is already known.
    pub(crate) fn request_kill(&self) {
        let mut inner = self.lock();
        if inner.finished || inner.report.is_some() {
            return;
        }
        inner.kill_requested = true;
        if let Some(pid) = inner.live_pid {
            if let Err(e) = sys::kill_group(pid) {
                tracing::warn!(process = %self.config.name, pid, "kill failed: {e}");
            }
        }
    }
}

fn send_stop(writer: &Conn) {
    // A child that already ended cannot be stopped; that is not an error.
    if let Ok(frame) = protocol::encode(&ToChild::Stop) {
        let _ = write_frame(writer, &frame);
    }
}

/// Options the transport's own tests use to make a real child misbehave.
#[derive(Debug, Default, Clone)]
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub(crate) struct StartOptions {
    pub(crate) fault: Option<String>,
}

impl StartOptions {
    /// The environment the child gets besides the marker.
    fn child_env(&self) -> Vec<(String, String)> {
        #[cfg(feature = "fault-injection")]
        if let Some(fault) = &self.fault {
            return vec![(crate::child::FAULT.to_owned(), fault.clone())];
        }
        Vec::new()
    }
}

const POSTCARD_LIMITS: &str = "postcard, the state's format, does not support \
     #[serde(flatten)], untagged enums, skip_serializing_if or other self-describing shapes";

/// `Process::start_with`: checks, serializes, spawns the first attempt and the
/// supervisor thread.
pub(crate) fn start<T: Process>(
    obj: &T,
    config: ProcessConfig,
) -> Result<Handle<T::Output>, ProcessError> {
    start_with_options(obj, config, StartOptions::default())
}

pub(crate) fn start_with_options<T: Process>(
    obj: &T,
    config: ProcessConfig,
    options: StartOptions,
) -> Result<Handle<T::Output>, ProcessError> {
    config.validate()?;
    if std::env::var_os(spawn::MARKER).is_some() {
        // We are a re-executed child, yet the child entry never ran: without this check
        // the child would run the user's main again and start children of its own.
        eprintln!(
            "process-runtime: this binary was re-executed as a child but its entry point \
             never ran; mark `main` with #[process_runtime::main]"
        );
        sys::exit_now(crate::child::exit_code::BAD_START);
    }
    let state = postcard::to_allocvec(obj).map_err(|e| {
        ProcessError::State(format!("it does not serialize ({e}); {POSTCARD_LIMITS}"))
    })?;
    // Postcard cannot decode some serde shapes it can encode (`flatten`, untagged
    // enums, `skip_serializing_if`): find out here, not in the child.
    postcard::from_bytes::<T>(&state).map_err(|e| {
        ProcessError::State(format!(
            "it serializes but does not deserialize back ({e}); {POSTCARD_LIMITS}"
        ))
    })?;
    let shared = Arc::new(Shared {
        config,
        timers: OnceLock::new(),
        inner: Mutex::new(Inner::default()),
        changed: Condvar::new(),
    });
    let first = Attempt::spawn(&shared, &options, true)?;
    let supervisor = Supervisor {
        shared: Arc::clone(&shared),
        tag: T::__registration().tag,
        state,
        options,
    };
    std::thread::Builder::new()
        .name(format!("process-runtime:{}", shared.config.name))
        .stack_size(256 * 1024)
        .spawn(move || supervisor.run(first))
        .map_err(|e| {
            shared.request_kill();
            ProcessError::Io(format!("cannot start the supervisor thread: {e}"))
        })?;
    Ok(Handle::new(shared))
}

/// One child process and its channel.
struct Attempt {
    child: Child,
    beacon: Beacon,
    reader: FrameReader<Conn>,
    writer: Conn,
    secret: [u8; SECRET_LEN],
    number: u32,
}

impl Attempt {
    /// Spawns a child. `new_life` is false for the child that only runs `error`
    /// after every life was spent: it is not an attempt of its own.
    fn spawn(
        shared: &Shared,
        options: &StartOptions,
        new_life: bool,
    ) -> Result<Self, ProcessError> {
        let io = |what: &str, e: std::io::Error| ProcessError::Io(format!("{what}: {e}"));
        let (parent_end, child_end) =
            sys::socket_pair().map_err(|e| io("creating the socket pair", e))?;
        let mut secret = [0u8; SECRET_LEN];
        getrandom::fill(&mut secret)
            .map_err(|e| ProcessError::Io(format!("generating the secret: {e}")))?;
        let env = options.child_env();
        let (beacon, beacon_fd) = Beacon::create().map_err(|e| io("creating the beacon", e))?;
        let conn = Conn::from_fd(parent_end);
        conn.set_read_timeout(Some(Watch::tick(&shared.config.timeouts)))
            .map_err(|e| io("setting the socket's read timeout", e))?;
        let child = spawn::spawn_child(child_end, beacon_fd, secret, env)
            .map_err(|e| io("spawning the child", e))?;
        let writer = conn.clone();
        let mut inner = shared.lock();
        if new_life {
            inner.attempts += 1;
        }
        inner.pid = child.id();
        inner.live_pid = Some(child.id());
        let number = inner.attempts;
        // A kill requested while this child was being spawned was aimed at the
        // previous one: it applies to this one. Checked under the lock that publishes
        // the new pid, so no request can fall between the two.
        if inner.kill_requested {
            let _ = sys::kill_group(child.id());
        }
        drop(inner);
        tracing::debug!(process = %shared.config.name, pid = child.id(), attempt = number, "child started");
        Ok(Self {
            child,
            beacon,
            reader: FrameReader::new(conn),
            writer,
            secret,
            number,
        })
    }
}

/// How an attempt ended.
enum AttemptEnd {
    /// The child reported an output.
    Done(Output, Box<ProcessTimers>),
    /// The child reported an error; `last` when it is the process's final outcome.
    Failed {
        error: ProcessError,
        last: bool,
        timers: Box<ProcessTimers>,
    },
    /// End-of-file without a report: the child crashed or was killed.
    Vanished,
    /// The child broke the protocol; it was killed.
    Refused(ProcessError),
    /// A section ran past its limit; the child was killed.
    TimedOut { section: Section, limit: Duration },
}

/// What a tick of the deadline check found.
#[derive(Debug, PartialEq)]
enum Overdue {
    No,
    Section(Section, Duration),
    Startup(Duration),
}

/// Holds the deadlines of one attempt from the beacon's samples.
///
/// The parent cannot see when a section started, only when it first saw the beacon
/// word change; that is at most one tick late, so a timeout fires between its limit
/// and its limit plus two ticks, with the tick a tenth of the shortest limit (between
/// 1 ms and 250 ms).
#[derive(Debug)]
struct Watch {
    timeouts: Timeouts,
    started: Instant,
    word: u64,
    since: Instant,
}

impl Watch {
    /// How long a child may take from spawn to a completed handshake.
    const STARTUP_LIMIT: Duration = Duration::from_secs(30);

    fn new(timeouts: Timeouts) -> Self {
        let now = Instant::now();
        Self {
            timeouts,
            started: now,
            word: beacon::NOT_STARTED,
            since: now,
        }
    }

    /// The socket read timeout: how often the deadlines are checked.
    fn tick(timeouts: &Timeouts) -> Duration {
        let shortest = [
            timeouts.preloop,
            timeouts.main_loop,
            timeouts.postloop,
            timeouts.on_finish,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Duration::MAX);
        (shortest / 10).clamp(Duration::from_millis(1), Duration::from_millis(250))
    }

    fn check(&mut self, word: u64, now: Instant) -> Overdue {
        if word != self.word {
            self.word = word;
            self.since = now;
            return Overdue::No;
        }
        if word == beacon::NOT_STARTED {
            // Before the first section: only the start-up limit applies (a child
            // that has not even sent its handshake, or is decoding a large state).
            return if now.duration_since(self.started) > Self::STARTUP_LIMIT {
                Overdue::Startup(Self::STARTUP_LIMIT)
            } else {
                Overdue::No
            };
        }
        match beacon::section_of(word).and_then(|s| Some((s, self.timeouts.get(s)?))) {
            Some((section, limit)) if now.duration_since(self.since) >= limit => {
                Overdue::Section(section, limit)
            }
            _ => Overdue::No,
        }
    }
}

struct Supervisor {
    shared: Arc<Shared>,
    tag: &'static str,
    state: Vec<u8>,
    options: StartOptions,
}

impl Supervisor {
    fn run(self, first: Attempt) {
        let lives = self.shared.config.lives;
        let mut attempt = first;
        let mut mode = Mode::Run {
            last_life: lives <= 1,
        };
        // When `error` runs in a fresh child, the outcome was decided by the attempt
        // that failed before it: its exit status is the one `exit_code` reports.
        let mut failed_exit: Option<Exit> = None;
        // The timers of the latest attempt that reported any. A child that only runs
        // `error` has timed nothing, so it keeps the failed attempt's timers.
        let mut timers: Option<ProcessTimers> = None;
        loop {
            let handling_error = matches!(mode, Mode::HandleError(_));
            let mut end = self.run_attempt(&mut attempt, mode);
            if let AttemptEnd::Done(_, reported)
            | AttemptEnd::Failed {
                timers: reported, ..
            } = &mut end
            {
                if !handling_error || timers.is_none() {
                    timers = Some(std::mem::take(&mut **reported));
                }
            }
            // A final report is published before the child is reaped: `result()` need
            // not wait for the exit.
            match end {
                AttemptEnd::Done(output, _) => {
                    self.publish(Ok(output), timers);
                    let exit = self.reap(&mut attempt.child);
                    return self.finish(attempt, failed_exit.unwrap_or(exit));
                }
                AttemptEnd::Failed {
                    error, last: true, ..
                }
                | AttemptEnd::Refused(error) => {
                    self.log_failure(&attempt, &error, "process failed");
                    self.publish(Err(error), timers);
                    let exit = self.reap(&mut attempt.child);
                    return self.finish(attempt, failed_exit.unwrap_or(exit));
                }
                AttemptEnd::Failed { .. } | AttemptEnd::Vanished | AttemptEnd::TimedOut { .. } => {}
            }
            let exit = self.reap(&mut attempt.child);
            let killed = self.shared.lock().kill_requested;
            let failure = match end {
                _ if killed => ProcessError::Killed,
                AttemptEnd::Failed { error, .. } => error,
                AttemptEnd::TimedOut { section, limit } => ProcessError::Timeout { section, limit },
                _ => ProcessError::Crashed {
                    section: beacon::section_of(attempt.beacon.word().load(Ordering::Relaxed)),
                    exit,
                },
            };
            if handling_error || killed {
                self.log_failure(&attempt, &failure, "process failed");
                self.publish(Err(failure), timers);
                return self.finish(attempt, failed_exit.unwrap_or(exit));
            }
            self.log_failure(&attempt, &failure, "attempt failed");
            // A life is lost: retry from the original bytes while lives remain; when
            // none do, run `error` in a fresh child (the failed one is gone). A
            // process asked to stop is not restarted: its failure goes to `error`.
            let stopping = self.shared.lock().stop_requested;
            mode = if attempt.number < lives && !stopping {
                Mode::Run {
                    last_life: attempt.number + 1 >= lives,
                }
            } else {
                failed_exit = Some(exit);
                Mode::HandleError(if attempt.number == lives {
                    ProcessError::exhausted(attempt.number, failure)
                } else {
                    failure
                })
            };
            let new_life = matches!(mode, Mode::Run { .. });
            attempt = match Attempt::spawn(&self.shared, &self.options, new_life) {
                Ok(next) => next,
                Err(e) => {
                    self.publish(Err(e), timers);
                    return self.finish(attempt, exit);
                }
            };
        }
    }

    /// Handshake, start frame, then wait for the report.
    fn run_attempt(&self, attempt: &mut Attempt, mode: Mode) -> AttemptEnd {
        /// A start frame this small fits in the socket's buffer, so writing it cannot
        /// block on a child that is not reading yet.
        const EARLY_START_MAX: usize = 64 * 1024;
        let mut watch = Watch::new(self.shared.config.timeouts);
        let start = ToChild::Start {
            tag: self.tag,
            config: self.shared.config.clone(),
            attempt: attempt.number,
            mode,
            state: &self.state,
        };
        let start = match protocol::encode(&start) {
            Ok(frame) => frame,
            Err(e) => return self.refuse(attempt, e),
        };
        // A small start frame goes out before the handshake arrives, saving a round
        // trip: only this child holds the other end of the socket pair, so nobody
        // else can read it, and nothing the child sends is trusted before its
        // handshake is checked. A large one waits, so that the write never blocks on a
        // child that is still starting (the deadline checks run between reads).
        let early = start.len() <= EARLY_START_MAX;
        if early && write_frame(&attempt.writer, &start).is_err() {
            // The child died already; its exit status tells why.
            return AttemptEnd::Vanished;
        }
        if let Err(end) = self.handshake(attempt, &mut watch) {
            return end;
        }
        if !early && write_frame(&attempt.writer, &start).is_err() {
            return AttemptEnd::Vanished;
        }
        // Stop requests reach the child only once it has its start frame; one made
        // earlier was recorded and is sent now.
        let stop_early = {
            let mut inner = self.shared.lock();
            inner.writer = Some(attempt.writer.clone());
            inner.stop_requested
        };
        if stop_early {
            send_stop(&attempt.writer);
        }
        let frame = match self.next_frame(attempt, &mut watch, protocol::MAX_FRAME, "report") {
            Ok(frame) => frame,
            Err(end) => return end,
        };
        let report = match protocol::decode::<ToParent<'_>>(frame.payload(), "report") {
            Ok(ToParent::Done { output, timers }) => {
                let start = output.as_ptr() as usize - frame.payload().as_ptr() as usize;
                Ok((start, output.len(), Box::new(timers)))
            }
            Ok(ToParent::Failed {
                error,
                timers,
                last,
            }) => Err((error, timers, last)),
            Err(e) => return self.refuse(attempt, e),
        };
        match report {
            Ok((start, len, timers)) => AttemptEnd::Done(Output { frame, start, len }, timers),
            Err((error, timers, last)) => AttemptEnd::Failed {
                error,
                last,
                timers: Box::new(timers),
            },
        }
    }

    fn handshake(&self, attempt: &mut Attempt, watch: &mut Watch) -> Result<(), AttemptEnd> {
        let frame = self.next_frame(attempt, watch, protocol::MAX_HELLO_FRAME, "handshake")?;
        match protocol::check_hello(frame.payload(), &attempt.secret) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.refuse(attempt, e)),
        }
    }

    /// Reads the next frame, waking on every tick to hold the deadlines: a section
    /// running past its limit, or a child that never completes its handshake, is
    /// killed with its process group.
    fn next_frame(
        &self,
        attempt: &mut Attempt,
        watch: &mut Watch,
        max: usize,
        what: &str,
    ) -> Result<Frame, AttemptEnd> {
        loop {
            match attempt.reader.read_frame(max) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(ReadError::Closed { partial: false }) => return Err(AttemptEnd::Vanished),
                Err(e) => return Err(self.refuse(attempt, e.into_process_error(what))),
            }
            let word = attempt.beacon.word().load(Ordering::Relaxed);
            match watch.check(word, Instant::now()) {
                Overdue::No => {}
                Overdue::Section(section, limit) => {
                    tracing::warn!(
                        process = %self.shared.config.name,
                        pid = attempt.child.id(),
                        %section,
                        ?limit,
                        "section timed out; killing the child"
                    );
                    let _ = sys::kill_group(attempt.child.id());
                    return Err(AttemptEnd::TimedOut { section, limit });
                }
                Overdue::Startup(limit) => {
                    return Err(self.refuse(
                        attempt,
                        ProcessError::Protocol(format!(
                            "the child did not complete its handshake within {limit:?}"
                        )),
                    ))
                }
            }
        }
    }

    fn refuse(&self, attempt: &mut Attempt, error: ProcessError) -> AttemptEnd {
        tracing::warn!(process = %self.shared.config.name, pid = attempt.child.id(), "{error}");
        if let Err(e) = sys::kill_group(attempt.child.id()) {
            tracing::warn!(process = %self.shared.config.name, "kill failed: {e}");
        }
        AttemptEnd::Refused(error)
    }

    /// Waits for the child to exit, then kills whatever is left in its process group
    /// (grandchildren it started and left behind), then reaps it.
    ///
    /// The child closed its socket, so it is exiting: it gets a moment so that its own
    /// exit status (a panic's 101, `exit(7)`) is what we record, and only then is its
    /// group killed. The group is signalled while the child is still an unreaped
    /// zombie, so its id cannot have been reused by an unrelated process.
    fn reap(&self, child: &mut Child) -> Exit {
        const GRACE: Duration = Duration::from_secs(2);
        match sys::wait_exited(child.id(), GRACE) {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                process = %self.shared.config.name,
                pid = child.id(),
                "the child closed its channel but did not exit; killing it"
            ),
            Err(e) => tracing::error!(
                process = %self.shared.config.name,
                "waiting for the child failed: {e}"
            ),
        }
        if let Err(e) = sys::kill_group(child.id()) {
            tracing::warn!(process = %self.shared.config.name, "cleaning up the process group failed: {e}");
        }
        {
            let mut inner = self.shared.lock();
            inner.live_pid = None;
            inner.writer = None;
        }
        child
            .wait()
            .map_or(Exit::Signal(libc::SIGKILL), sys::exit_of)
    }

    fn log_failure(&self, attempt: &Attempt, error: &ProcessError, what: &str) {
        tracing::warn!(
            process = %self.shared.config.name,
            pid = attempt.child.id(),
            attempt = attempt.number,
            lives = self.shared.config.lives,
            "{what}: {error}"
        );
    }

    fn publish(&self, report: Result<Output, ProcessError>, timers: Option<ProcessTimers>) {
        if let Some(t) = timers {
            let _ = self.shared.timers.set(t);
        }
        self.shared.update(|inner| inner.report = Some(report));
    }

    /// Records the end. The attempt's socket is closed first, so that a caller woken by
    /// `wait()` finds no descriptor of this process still open.
    fn finish(&self, attempt: Attempt, exit: Exit) {
        drop(attempt);
        self.shared.update(|inner| {
            inner.exit = Some(exit);
            inner.writer = None;
            inner.finished = true;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts(main_loop: Option<Duration>) -> Timeouts {
        ProcessConfig::new("t")
            .with_timeout(Section::MainLoop, main_loop)
            .timeouts
    }

    #[test]
    fn the_tick_is_a_tenth_of_the_shortest_limit_within_bounds() {
        assert_eq!(
            Watch::tick(&timeouts(Some(Duration::from_millis(200)))),
            Duration::from_millis(20)
        );
        assert_eq!(
            Watch::tick(&timeouts(Some(Duration::from_micros(10)))),
            Duration::from_millis(1)
        );
        assert_eq!(
            Watch::tick(&Timeouts::default()),
            Duration::from_millis(250)
        );
        let none = ProcessConfig::new("t")
            .with_timeout(Section::Preloop, None)
            .with_timeout(Section::MainLoop, None)
            .with_timeout(Section::Postloop, None)
            .with_timeout(Section::OnFinish, None)
            .timeouts;
        assert_eq!(Watch::tick(&none), Duration::from_millis(250));
    }

    #[test]
    fn a_word_that_stays_the_same_past_its_limit_is_overdue() {
        let limit = Duration::from_millis(100);
        let mut w = Watch::new(timeouts(Some(limit)));
        let t0 = w.started;
        let word = beacon::encode(2, Section::MainLoop);
        assert_eq!(
            w.check(word, t0),
            Overdue::No,
            "first sight starts the clock"
        );
        assert_eq!(w.check(word, t0 + Duration::from_millis(99)), Overdue::No);
        assert_eq!(
            w.check(word, t0 + limit),
            Overdue::Section(Section::MainLoop, limit)
        );
        // The next lap's main_loop is a new word: the clock restarts.
        let next = beacon::encode(5, Section::MainLoop);
        assert_eq!(w.check(next, t0 + limit), Overdue::No);
        assert_eq!(
            w.check(next, t0 + limit + Duration::from_millis(50)),
            Overdue::No
        );
    }

    #[test]
    fn sections_without_a_limit_never_time_out_but_start_up_does() {
        let mut w = Watch::new(timeouts(None));
        let t0 = w.started;
        let word = beacon::encode(2, Section::MainLoop);
        w.check(word, t0);
        assert_eq!(w.check(word, t0 + Duration::from_secs(3600)), Overdue::No);
        let result = beacon::encode(3, Section::Result);
        w.check(result, t0);
        assert_eq!(w.check(result, t0 + Duration::from_secs(3600)), Overdue::No);

        let mut w = Watch::new(Timeouts::default());
        let t0 = w.started;
        assert_eq!(
            w.check(beacon::NOT_STARTED, t0 + Duration::from_secs(29)),
            Overdue::No
        );
        assert_eq!(
            w.check(beacon::NOT_STARTED, t0 + Duration::from_secs(31)),
            Overdue::Startup(Watch::STARTUP_LIMIT)
        );
    }
}
