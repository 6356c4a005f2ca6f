//! The child side: entered before any user code when the binary was re-executed by a
//! parent, it authenticates, receives the state, runs the engine and reports.
//!
//! Entry happens in one of two places, whichever comes first: the constructor each
//! `#[derive(Process)]` emits (it runs before `main`, which is what makes tests,
//! examples and doc tests work without setup), or the call at the top of a
//! `#[process_runtime::main]` function. Either way the user's `main` never runs in a
//! child, so code before the entry point cannot run twice.
//!
//! A child never outlives its parent: the parent-death signal is armed first thing
//! (then checked against the race of a parent that died before it was armed), and a
//! reader thread exits the process as soon as the socket reaches end-of-file.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::beacon::Beacon;
use crate::channel::{write_frame, Conn, FrameReader, ReadError};
use crate::protocol::{self, Hello, Mode, ToChild, ToParent};
use crate::spawn::{Marker, MARKER};
use crate::{engine, sys, Context, Process, ProcessError, ProcessTimers};

/// Exit codes of a child that could not run, chosen away from common user codes.
pub(crate) mod exit_code {
    /// The marker or the channel was unusable.
    pub(crate) const BAD_START: i32 = 120;
    /// The parent was gone before the child could start or while it ran.
    pub(crate) const PARENT_GONE: i32 = 121;
    /// The final outcome was an error (reported to the parent), like Python's 1.
    pub(crate) const FAILED: i32 = 1;
}

/// Environment variable naming a fault to inject, for the transport's own tests.
#[cfg(feature = "fault-injection")]
pub(crate) const FAULT: &str = "__PROCESS_RUNTIME_FAULT";

/// What a registered type's entry point receives.
pub(crate) struct ChildRun {
    frame: crate::channel::Frame,
    reader: FrameReader<Conn>,
    writer: Conn,
    parent_pid: u32,
    beacon: &'static AtomicU64,
    fault: Option<String>,
}

/// Runs the child if this process is one; returns at once otherwise.
pub(crate) fn enter_if_marked() {
    let Some(value) = std::env::var_os(MARKER) else {
        return;
    };
    // Remove the marker (and with it the secret) before anything else can read it, and
    // so that processes this child starts are not mistaken for children themselves.
    std::env::remove_var(MARKER);
    #[cfg(feature = "fault-injection")]
    let fault = {
        let f = std::env::var(FAULT).ok();
        std::env::remove_var(FAULT);
        f
    };
    #[cfg(not(feature = "fault-injection"))]
    let fault = None;
    let marker = match value.to_str().map(Marker::parse) {
        Some(Ok(m)) => m,
        Some(Err(e)) => bad_start(&e),
        None => bad_start(&format!("{MARKER} is not UTF-8")),
    };
    if !sys::child_init(marker.parent_pid) {
        sys::exit_now(exit_code::PARENT_GONE);
    }
    let fd = match sys::adopt_fd(marker.fd) {
        Ok(fd) => fd,
        Err(e) => bad_start(&format!(
            "the inherited socket (descriptor {}) is unusable: {e}",
            marker.fd
        )),
    };
    if let Err(e) = sys::set_cloexec(fd.as_fd(), true) {
        bad_start(&format!(
            "cannot set close-on-exec on the inherited socket: {e}"
        ));
    }
    let beacon = sys::adopt_fd(marker.beacon_fd)
        .and_then(|bfd| Beacon::open(&bfd))
        .unwrap_or_else(|e| bad_start(&format!("the inherited beacon is unusable: {e}")))
        .leak();
    handshake_and_run(fd, beacon, &marker, fault);
}

fn bad_start(why: &str) -> ! {
    eprintln!("process-runtime: this process was started as a child but cannot run: {why}");
    sys::exit_now(exit_code::BAD_START)
}

fn handshake_and_run(
    fd: OwnedFd,
    beacon: &'static AtomicU64,
    marker: &Marker,
    fault: Option<String>,
) -> ! {
    let send = Conn::from_fd(fd);
    let recv = send.clone();
    let mut hello = Hello {
        magic: protocol::MAGIC,
        version: protocol::PROTOCOL_VERSION,
        fingerprint: protocol::build_fingerprint(),
        secret: marker.secret,
    };
    match fault.as_deref() {
        Some("exit-before-hello") => sys::exit_now(7),
        Some("hello-garbage") => {
            let _ = write_frame(&send, &[5, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0xff]);
            park_until_parent_gone(recv)
        }
        Some("hello-oversized") => {
            let _ = write_frame(&send, &u32::MAX.to_le_bytes());
            park_until_parent_gone(recv)
        }
        Some("hello-bad-secret") => hello.secret[0] ^= 1,
        Some("hello-bad-version") => hello.version += 1,
        Some("hello-bad-magic") => hello.magic[0] ^= 1,
        Some("hello-bad-fingerprint") => hello.fingerprint ^= 1,
        _ => {}
    }
    let sent = protocol::encode(&hello).and_then(|f| write_frame(&send, &f));
    if sent.is_err() {
        sys::exit_now(exit_code::PARENT_GONE);
    }
    let mut reader = FrameReader::new(recv);
    let frame = match reader.read_frame(protocol::MAX_FRAME) {
        Ok(Some(frame)) => frame,
        // End-of-file: the parent refused the handshake or died.
        _ => sys::exit_now(exit_code::PARENT_GONE),
    };
    let tag = match protocol::decode::<ToChild<'_>>(frame.payload(), "start") {
        Ok(ToChild::Start { tag, .. }) => tag.to_owned(),
        Ok(_) => report_fatal(
            &send,
            ProcessError::Protocol("the first frame was not a start frame".into()),
        ),
        Err(e) => report_fatal(&send, e),
    };
    let Some(registration) = crate::__private::REGISTRY.iter().find(|r| r.tag == tag) else {
        report_fatal(
            &send,
            ProcessError::Protocol(format!(
                "this binary has no process type registered as `{tag}`"
            )),
        )
    };
    (registration.run)(ChildRun {
        frame,
        reader,
        writer: send,
        parent_pid: marker.parent_pid,
        beacon,
        fault,
    })
}

/// Used by faults that leave the parent to detect a bad handshake: wait until the
/// parent closes the socket.
fn park_until_parent_gone(mut recv: Conn) -> ! {
    let mut buf = [0u8; 64];
    while matches!(recv.read(&mut buf), Ok(n) if n > 0) {}
    sys::exit_now(exit_code::PARENT_GONE)
}

fn report_fatal(send: &Conn, error: ProcessError) -> ! {
    let report = encode_report(&ToParent::Failed {
        error,
        timers: ProcessTimers::default(),
        last: true,
    });
    let _ = write_frame(send, &report);
    sys::exit_now(exit_code::FAILED)
}

/// The entry point registered for `T`: decode the state, run, report, exit.
pub(crate) fn run<T: Process>(run: ChildRun) -> ! {
    let ChildRun {
        frame,
        reader,
        writer,
        parent_pid,
        beacon,
        fault,
    } = run;
    let Ok(ToChild::Start {
        config,
        attempt,
        mode,
        state,
        ..
    }) = protocol::decode::<ToChild<'_>>(frame.payload(), "start")
    else {
        unreachable!("the start frame was decoded before dispatch")
    };
    let mut obj: T = match postcard::from_bytes(state) {
        Ok(obj) => obj,
        Err(e) => report_fatal(
            &writer,
            ProcessError::State(format!("the child cannot decode it: {e}")),
        ),
    };
    drop(frame);
    engine::panic_location::install();
    let stop = Arc::new(AtomicBool::new(false));
    watch_parent(reader, Arc::clone(&stop));
    let mut cx = Context::__new(config, stop, std::process::id(), parent_pid, attempt);
    let mut failed = false;
    let outcome = match mode {
        Mode::Run { last_life } => match engine::run(&mut obj, &mut cx, beacon) {
            Ok(output) => Ok(output),
            Err(error) if last_life => {
                failed = true;
                engine::handle_error(
                    &mut obj,
                    &mut cx,
                    ProcessError::exhausted(attempt, error),
                    beacon,
                )
                .map_err(|e| (e, true))
            }
            Err(error) => {
                failed = true;
                Err((error, false))
            }
        },
        Mode::HandleError(error) => {
            engine::handle_error(&mut obj, &mut cx, error, beacon).map_err(|e| (e, true))
        }
    };
    let mut timers = cx.__take_timers();
    timers.__set_origin(attempt, failed);
    let (report, code) = match outcome {
        Ok(output) => match postcard::to_allocvec(&output) {
            Ok(bytes) => (report_done(&bytes, timers, fault.as_deref()), 0),
            Err(e) => (
                encode_report(&ToParent::Failed {
                    error: ProcessError::Output(e.to_string()),
                    timers,
                    last: true,
                }),
                exit_code::FAILED,
            ),
        },
        Err((error, last)) => (
            encode_report(&ToParent::Failed {
                error,
                timers,
                last,
            }),
            exit_code::FAILED,
        ),
    };
    if write_frame(&writer, &report).is_err() {
        sys::exit_now(exit_code::PARENT_GONE);
    }
    // Exit without running the user's `main` (or returning into the constructor's
    // caller); stdout is flushed so that the user's prints are not lost.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    sys::exit_now(code)
}

fn report_done(output: &[u8], timers: ProcessTimers, fault: Option<&str>) -> Vec<u8> {
    let mut frame = encode_report(&ToParent::Done { output, timers });
    match fault {
        Some("report-trailing") => {
            frame.push(0);
            let len = u32::try_from(frame.len() - 4).expect("frame length");
            frame[..4].copy_from_slice(&len.to_le_bytes());
        }
        Some("report-oversized") => frame = u32::MAX.to_le_bytes().to_vec(),
        Some("report-truncated") => frame.truncate(frame.len() / 2),
        Some("report-garbage") => frame = vec![3, 0, 0, 0, 0xff, 0xff, 0xff],
        _ => {}
    }
    frame
}

fn encode_report(report: &ToParent<'_>) -> Vec<u8> {
    protocol::encode(report).unwrap_or_else(|e| {
        protocol::encode(&ToParent::Failed {
            error: e,
            timers: ProcessTimers::default(),
            last: true,
        })
        .expect("an error report always encodes")
    })
}

/// Reads the parent's frames on a thread of its own: a stop request sets the flag the
/// engine checks; end-of-file (the parent died or dropped us) ends the process at once.
fn watch_parent(mut reader: FrameReader<Conn>, stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("process-runtime-parent-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            match reader.read_frame(1024) {
                Ok(Some(frame)) => {
                    match protocol::decode::<ToChild<'_>>(frame.payload(), "control") {
                        Ok(ToChild::Stop) => stop.store(true, Ordering::Relaxed),
                        Ok(ToChild::Start { .. }) | Err(_) => sys::exit_now(exit_code::BAD_START),
                    }
                }
                Ok(None) => {}
                Err(ReadError::Closed { .. } | ReadError::Io(_) | ReadError::TooLarge { .. }) => {
                    sys::exit_now(exit_code::PARENT_GONE)
                }
            }
        });
    if spawned.is_err() {
        sys::exit_now(exit_code::BAD_START);
    }
}
