//! One child process and its channel, as an explicit state machine.
//!
//! An attempt is `Handshake` (spawned; waiting for the child to prove who it is), then
//! `Running` (started; control frames may flow; waiting for the report), then ended
//! with an [`AttemptEnd`]. Events move it on: a frame, end-of-file, a broken read, or a
//! tick on which the deadlines are checked. The attempt never blocks: the event loop
//! calls [`Attempt::poll_event`] when its socket is readable, which reads what has
//! arrived and nothing more, and [`Attempt::flush_start`] when a large start frame has
//! room to go on.

use std::os::fd::OwnedFd;
use std::process::Child;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::deadline::{Overdue, Watch};
use super::mailbox;
use super::reading::Reading;
use super::shared::{Output, Shared};
use super::spawn;
use super::tells;
use super::warm;
use crate::beacon::{self, Beacon};
use crate::pool::ring::RingReader;
use crate::wire::channel::{Conn, Frame, FrameReader, ParentRead, ReadError};
use crate::wire::descriptors::{self, write_frame_with};
use crate::wire::handoff::{new_secret, SECRET_LEN};
use crate::wire::protocol::{self, Kind, ReportTimers, ToParent};
use crate::{registry, sys, ProcessError, Section};

/// How a process is started beyond its configuration: what the child is told besides
/// the marker (only fault injection, for now), and what the supervisor knows of the type.
#[derive(Debug, Default, Clone)]
pub(crate) struct StartOptions {
    #[cfg(feature = "fault-injection")]
    pub(crate) fault: Option<crate::fault::Fault>,
    /// The payload of the frame that `Fault::RawFrameAfterStart` sends.
    #[cfg(feature = "fault-injection")]
    pub(crate) raw_frame: Vec<u8>,
    /// When no life is left after a crash, a kill or a timeout, that error is the
    /// outcome as it is, and no fresh child is spawned only to run `error`. Set for
    /// the runtime's own types, whose `error` is the default and would only hand the
    /// error on, and for the children of an OTP supervisor, whose failures its
    /// restarts handle (see `crate::supervisor`).
    pub(crate) no_error_child: bool,
    /// The thread that starts the process outlives it (a supervisor's own thread,
    /// which stops its children before it ends), so its first attempt is spawned on
    /// that thread, without the hand-off to the spawner thread (see `spawn`). The
    /// event loop spawns later attempts as usual.
    pub(crate) first_spawn_in_place: bool,
    /// A message frame (see `handle::frame_to_child`) told to the child, without
    /// waiting, whenever a stop is requested: for the runtime's own processes that wait
    /// for work in a `listen` without a limit (pool workers), which the stop flag alone
    /// would not reach.
    pub(crate) stop_message: Option<Vec<u8>>,
}

impl StartOptions {
    /// Whether the child needs nothing besides the marker, so that a warm one will do.
    fn is_plain(&self) -> bool {
        self.child_env().is_empty()
    }

    /// The options of a type whose `error` is the default (see `no_error_child`).
    pub(crate) fn with_default_error(mut self) -> Self {
        self.no_error_child = true;
        self
    }

    /// The options of a child of an OTP supervisor (see `no_error_child`); `in_place`
    /// when it is started from the supervisor's own thread (see
    /// `first_spawn_in_place`).
    pub(crate) fn supervised(mut self, in_place: bool) -> Self {
        self.no_error_child = true;
        self.first_spawn_in_place = in_place;
        self
    }

    /// The environment the child gets besides the marker.
    fn child_env(&self) -> Vec<(String, String)> {
        #[cfg(feature = "fault-injection")]
        if let Some(fault) = self.fault {
            use crate::fault::{to_hex, Fault};
            let mut env = vec![(Fault::ENV.to_owned(), fault.name().to_owned())];
            if fault.sends_frame() {
                env.push((Fault::FRAME_ENV.to_owned(), to_hex(&self.raw_frame)));
            }
            return env;
        }
        Vec::new()
    }
}

/// How an attempt ended.
#[derive(Debug)]
pub(crate) enum AttemptEnd {
    /// The child reported an output.
    Done(Output, ReportTimers),
    /// The child reported an error; `last` when it is the process's final outcome.
    Failed {
        error: ProcessError,
        last: bool,
        timers: ReportTimers,
    },
    /// End-of-file without a report: the child crashed or was killed.
    Vanished,
    /// The child broke the protocol; it was killed.
    Refused(ProcessError),
    /// A section ran past its limit; the child was killed.
    TimedOut { section: Section, limit: Duration },
}

/// Something that happened on an attempt's channel.
#[derive(Debug)]
pub(crate) enum Event {
    /// A whole frame arrived.
    Frame(Frame),
    /// The child closed its end between frames (it exited or died).
    Closed,
    /// The channel broke: closed inside a frame, an oversized prefix, an I/O error.
    Broken(ReadError),
    /// Nothing arrived within a tick; time to check the deadlines.
    Tick,
    /// The child broke the protocol elsewhere than in a frame (its tells ring).
    Refused(ProcessError),
}

/// Where an attempt is.
#[derive(Debug)]
enum Phase {
    /// Spawned, waiting for the handshake. `late_start` is the start frame when it is
    /// too large to send before the child is known to read.
    Handshake { late_start: Option<Vec<u8>> },
    /// Started; the report ends it.
    Running,
}

/// A start frame this small fits in the socket's buffer, so writing it cannot block on
/// a child that is not reading yet: it is sent at spawn, before the handshake arrives,
/// which saves a round trip. Only this child holds the other end of the socket pair, so
/// nobody else can read it, and nothing the child sends is trusted before its handshake
/// is checked. A larger one waits for the handshake.
const EARLY_START_MAX: usize = 64 * 1024;

/// One child process and its channel.
pub(crate) struct Attempt {
    pub(crate) child: Child,
    pub(crate) beacon: Arc<Beacon>,
    writer: Conn,
    secret: [u8; SECRET_LEN],
    /// 1 for the first attempt; the child that only runs `error` keeps the number of
    /// the attempt that failed before it.
    pub(crate) number: u32,
    watch: Watch,
    phase: Phase,
    /// A large start frame being written, and how much of it is out.
    late: Option<(Vec<u8>, usize)>,
    /// The descriptors the start frame carries (the supervisor's, sent as duplicates).
    start_fds: Arc<[OwnedFd]>,
}

/// Gets a process ready for its next attempt on `conn`: the reader, the room the
/// child may use, the page where a stop is stored; the mailbox is attached when the
/// start frame is out already (`attach`), and messages left by the last attempt follow
/// it.
fn prepare(shared: &Arc<Shared>, conn: &Conn, beacon: &Arc<Beacon>, attach: bool) {
    {
        // The previous attempt's reader was given back before its end was handled
        // (see `reading`), so this lock is free.
        let mut reading = shared.lock_reading();
        *reading = Reading {
            reader: Some(FrameReader::new(ParentRead {
                conn: conn.clone(),
                wait: false,
            })),
            ring: Some(RingReader::tells(Arc::clone(beacon))),
            ..Reading::default()
        };
    }
    shared.retire_reader.store(false, Ordering::SeqCst);
    {
        let mut inner = shared.lock();
        mailbox::grant_initial(&mut inner, beacon, shared.config.mailbox);
        if attach {
            mailbox::attach(&mut inner, conn.clone());
        }
        // A stop requested before this child existed applies to it (a stopped process
        // is not restarted, but `error` may still run, and should stop at once).
        if inner.stop_requested {
            beacon.request_stop();
        }
        inner.beacon = Some(Arc::clone(beacon));
        // A caller of `listen` that waits already raised the waiting flag of the last
        // attempt's page, or of none (between two attempts there is no page): the
        // new child would commit what it tells to its fresh ring unannounced, and the
        // caller would sleep until its deadline. Raised here, under the lock the
        // waiters are counted under; records committed already (a warm child runs
        // from its start frame on) are drained by the loop.
        if mailbox::has_waiters(&inner) {
            tells::before_waiting(shared, &inner);
        }
    }
    if attach {
        mailbox::resend_backlog(shared);
    }
}

impl Attempt {
    /// Starts a child that is to run `start`: a warm one when there is one (see
    /// [`warm`]), a new one otherwise. `new_life` is false for the child that only runs
    /// `error` after every life was spent: it is not an attempt of its own. `in_place`
    /// spawns a cold child on the calling thread, which must outlive it.
    pub(crate) fn spawn(
        shared: &Arc<Shared>,
        options: &StartOptions,
        new_life: bool,
        start: Vec<u8>,
        start_fds: Arc<[OwnedFd]>,
        in_place: bool,
    ) -> Result<Self, ProcessError> {
        if options.is_plain() {
            while let Some(warm) = warm::take() {
                let early = start.len() <= EARLY_START_MAX;
                // The child runs the moment its start frame arrives: its room to send
                // is granted first, or a message sent from its first section would
                // find none and wait for a notice that never comes (`prepare` grants
                // the same room again below).
                mailbox::grant_initial(&mut shared.lock(), warm.beacon(), shared.config.mailbox);
                // A small start frame is written now; one that fails to go means the
                // warm child died since it was checked: the next one is tried.
                if early && write_frame_with(&warm.conn, &start, &start_fds).is_err() {
                    warm.discard();
                    continue;
                }
                let (child, conn, beacon, secret) = warm.into_parts();
                // Its handshake was checked already; a large start frame goes out as
                // the child reads it, and the mailbox is attached once it is out.
                let late = (!early).then_some((start, 0));
                prepare(shared, &conn, &beacon, early);
                return Ok(Self::finish(
                    shared,
                    new_life,
                    child,
                    conn,
                    beacon,
                    secret,
                    Phase::Running,
                    late,
                    start_fds,
                ));
            }
        }
        let io = |what: &str, e: std::io::Error| ProcessError::Io(format!("{what}: {e}"));
        let (parent_end, child_end) =
            sys::socket_pair().map_err(|e| io("creating the socket pair", e))?;
        let secret = new_secret().map_err(|e| io("generating the secret", e))?;
        let (beacon, beacon_fd) =
            Beacon::create(shared.config.mailbox).map_err(|e| io("creating the beacon", e))?;
        let beacon = Arc::new(beacon);
        let conn = Conn::from_fd(parent_end);
        let early = start.len() <= EARLY_START_MAX;
        // The start frame goes first, before any message can: the child reads
        // nothing else before it. A small one is written now, into the socket's
        // buffer; the mailbox is attached now too, so that the child finds its room
        // granted from its first instruction.
        if early {
            write_frame_with(&conn, &start, &start_fds)?;
        }
        prepare(shared, &conn, &beacon, early);
        let spawned = if in_place {
            spawn::spawn_on_this_thread(child_end, beacon_fd, secret, options.child_env())
        } else {
            spawn::spawn_child(child_end, beacon_fd, secret, options.child_env())
        };
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                mailbox::detach(&mut shared.lock());
                return Err(io("spawning the child", e));
            }
        };
        let phase = Phase::Handshake {
            late_start: (!early).then_some(start),
        };
        Ok(Self::finish(
            shared, new_life, child, conn, beacon, secret, phase, None, start_fds,
        ))
    }

    /// Publishes the new child's pid and counts the attempt.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        shared: &Arc<Shared>,
        new_life: bool,
        child: Child,
        conn: Conn,
        beacon: Arc<Beacon>,
        secret: [u8; SECRET_LEN],
        phase: Phase,
        late: Option<(Vec<u8>, usize)>,
        start_fds: Arc<[OwnedFd]>,
    ) -> Self {
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
        if inner.kill_requested || inner.signal.is_some() {
            let _ = sys::kill_group(child.id());
        }
        drop(inner);
        tracing::debug!(process = %shared.config.name, pid = child.id(), attempt = number, "child started");
        Self {
            child,
            beacon,
            writer: conn,
            secret,
            number,
            watch: Watch::new(shared.config.timeouts),
            phase,
            late,
            start_fds,
        }
    }

    /// Closes the attempt's socket and keeps only its child, to be reaped.
    pub(crate) fn into_child(self) -> Child {
        let Self { child, .. } = self;
        child
    }

    /// The next event among what has arrived: a frame, an end-of-file or a broken
    /// read; `None` when nothing more has arrived.
    pub(crate) fn poll_event(&mut self, reading: &mut Reading) -> Option<Event> {
        if let Some(event) = reading.pending.pop_front() {
            return Some(event);
        }
        let max = match self.phase {
            Phase::Handshake { .. } => protocol::MAX_HELLO_FRAME,
            Phase::Running => protocol::MAX_FRAME,
        };
        match reading.reader.as_mut()?.read_frame(max) {
            Ok(Some(frame)) => Some(Event::Frame(frame)),
            Ok(None) => None,
            Err(ReadError::Closed { partial: false }) => Some(Event::Closed),
            Err(e) => Some(Event::Broken(e)),
        }
    }

    /// Files what the child committed to its tells ring (see [`tells`]); `Some` when
    /// the ring breaks the protocol, which ends the attempt.
    pub(crate) fn drain_tells(
        &mut self,
        shared: &Arc<Shared>,
        reading: &mut Reading,
    ) -> Option<AttemptEnd> {
        match tells::drain(shared, reading, None) {
            Ok(_) => None,
            Err(e) => Some(self.refuse(shared, e)),
        }
    }

    /// The socket, to watch for readiness.
    pub(crate) fn socket(&self) -> std::os::fd::BorrowedFd<'_> {
        sys::stream_fd(self.writer.stream())
    }

    /// Whether a caller of `listen` may read this attempt's socket: once its
    /// handshake is done and its start frame is out (see `reading`).
    pub(crate) fn lendable(&self) -> bool {
        matches!(self.phase, Phase::Running) && self.late.is_none()
    }

    /// Shuts the socket down, so that a caller reading it wakes up and gives the reader
    /// back.
    pub(crate) fn shut_down(&self) {
        let _ = sys::shutdown(self.writer.stream());
    }

    /// Whether a large start frame is still being written: then the socket is watched
    /// for room to write too.
    pub(crate) fn writing(&self) -> bool {
        self.late.is_some()
    }

    /// Writes what fits of a large start frame without waiting. Once it is all out,
    /// the mailbox is attached: messages may follow it.
    pub(crate) fn flush_start(&mut self, shared: &Arc<Shared>) -> Option<AttemptEnd> {
        let (frame, written) = self.late.as_mut()?;
        while *written < descriptors::wire_len(frame, &self.start_fds) {
            match descriptors::send_some(&self.writer, frame, &self.start_fds, *written, true) {
                Ok(n) => *written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // The child is gone: its end-of-file tells the rest.
                Err(_) => {
                    self.late = None;
                    return None;
                }
            }
        }
        self.late = None;
        mailbox::attach(&mut shared.lock(), self.writer.clone());
        mailbox::resend_backlog(shared);
        shared.notify();
        None
    }

    /// Moves the attempt on; `Some` when it has ended.
    pub(crate) fn on_event(&mut self, event: Event, shared: &Arc<Shared>) -> Option<AttemptEnd> {
        let end = match event {
            Event::Frame(frame) => self.on_frame(frame, shared),
            Event::Closed => Some(AttemptEnd::Vanished),
            Event::Broken(e) => {
                let what = self.frame_kind();
                Some(self.refuse(shared, e.into_process_error(what)))
            }
            Event::Tick => None,
            Event::Refused(e) => Some(self.refuse(shared, e)),
        };
        // Deadlines are held on every event, so that a child that keeps sending cannot
        // starve the check.
        end.or_else(|| self.check_deadlines(shared, Instant::now()))
    }

    fn frame_kind(&self) -> &'static str {
        match self.phase {
            Phase::Handshake { .. } => "handshake",
            Phase::Running => "report",
        }
    }

    fn on_frame(&mut self, frame: Frame, shared: &Arc<Shared>) -> Option<AttemptEnd> {
        match &mut self.phase {
            Phase::Handshake { late_start, .. } => {
                let late_start = late_start.take();
                if let Err(e) =
                    protocol::check_hello(frame.payload(), &self.secret, registry::fingerprint())
                {
                    return Some(self.refuse(shared, e));
                }
                crate::timeline::mark("handshake checked");
                self.phase = Phase::Running;
                // A large start frame is written as the child reads it, between the
                // other events, never blocking the event loop.
                if let Some(start) = late_start {
                    self.late = Some((start, 0));
                    return self.flush_start(shared);
                }
                None
            }
            Phase::Running => self.on_running_frame(frame, shared),
        }
    }

    /// A message, a room notice, or the report.
    fn on_running_frame(&mut self, frame: Frame, shared: &Arc<Shared>) -> Option<AttemptEnd> {
        let kind = protocol::kind_of(frame.payload(), &protocol::TO_PARENT);
        if let Ok(Kind::Other) = kind {
            return Some(self.on_report(frame, shared));
        }
        let mut inner = shared.lock();
        if let Ok(Kind::Routed(tag)) = kind {
            crate::timeline::mark("a message read from the child");
            // Counted against the grant like any message: the router gives the room
            // back once it is handed on, or the receiver once it is taken here.
            let routed = mailbox::count_received(&mut inner);
            drop(inner);
            let handled =
                routed.and_then(|()| crate::node::route::from_child(shared, tag, frame, false));
            // Handled after the ring was drained (see `drain_tells`): the child may use
            // the ring again once it has seen all it sent on the socket handled.
            tells::read_from_socket(Some(&self.beacon));
            return match handled {
                Ok(()) => None,
                Err(e) => Some(self.refuse(shared, e)),
            };
        }
        if let Ok(Kind::Control(tag)) = kind {
            // Not counted: control never waits behind messages.
            drop(inner);
            let handled = crate::node::route::from_child(shared, tag, frame, true);
            tells::read_from_socket(Some(&self.beacon));
            return match handled {
                Ok(()) => None,
                Err(e) => Some(self.refuse(shared, e)),
            };
        }
        let delivered = match kind {
            Ok(Kind::Message(tag)) => {
                // The ring was drained before this frame was handled (see
                // `drain_tells`): the child may use it again.
                tells::read_from_socket(Some(&self.beacon));
                mailbox::on_message(&mut inner, tag, frame)
            }
            // Drained already, before this frame was handled.
            Ok(Kind::Ready) => Ok(()),
            Ok(_) => {
                mailbox::on_room(&mut inner);
                Ok(())
            }
            Err(e) => Err(e),
        };
        // Nobody waits: nobody to wake (a condition variable's wake is a system call
        // even then).
        let wake = mailbox::has_waiters(&inner);
        drop(inner);
        match delivered {
            Ok(()) => {
                if wake {
                    shared.notify();
                }
                None
            }
            Err(e) => Some(self.refuse(shared, e)),
        }
    }

    fn on_report(&mut self, frame: Frame, shared: &Shared) -> AttemptEnd {
        let report = match protocol::decode::<ToParent<'_>>(frame.payload(), "report") {
            Ok(ToParent::Done { output, timers }) => {
                let start = output.as_ptr() as usize - frame.payload().as_ptr() as usize;
                Ok((start, output.len(), timers))
            }
            Ok(ToParent::Failed {
                error,
                timers,
                last,
            }) => Err((error, timers, last)),
            Err(e) => return self.refuse(shared, e),
        };
        match report {
            Ok((start, len, timers)) => AttemptEnd::Done(Output::new(frame, start, len), timers),
            Err((error, timers, last)) => AttemptEnd::Failed {
                error,
                last,
                timers,
            },
        }
    }

    /// A section running past its limit, or a child that never completes its
    /// handshake, is killed with its process group.
    fn check_deadlines(&mut self, shared: &Shared, now: Instant) -> Option<AttemptEnd> {
        let word = self.beacon.word().load(Ordering::Relaxed);
        match self.watch.check(word, now) {
            Overdue::No => None,
            Overdue::Section(section, limit) => {
                tracing::warn!(
                    process = %shared.config.name,
                    pid = self.child.id(),
                    %section,
                    ?limit,
                    "section timed out; killing the child"
                );
                let _ = sys::kill_group(self.child.id());
                Some(AttemptEnd::TimedOut { section, limit })
            }
            Overdue::Startup(limit) => Some(self.refuse(
                shared,
                ProcessError::Protocol(format!(
                    "the child did not complete its handshake within {limit:?}"
                )),
            )),
        }
    }

    /// Kills the child for breaking the protocol.
    pub(crate) fn refuse(&self, shared: &Shared, error: ProcessError) -> AttemptEnd {
        tracing::warn!(process = %shared.config.name, pid = self.child.id(), "{error}");
        if let Err(e) = sys::kill_group(self.child.id()) {
            tracing::warn!(process = %shared.config.name, "kill failed: {e}");
        }
        AttemptEnd::Refused(error)
    }

    /// The section the child was in when it last told the beacon.
    pub(crate) fn last_section(&self) -> Option<Section> {
        beacon::section_of(self.beacon.word().load(Ordering::Relaxed))
    }
}
