//! Entering a child: before any user code, when the binary was re-executed by a parent.
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

use super::fault::{HelloStep, Injector};
use super::run::{report_fatal, ChildRun};
use crate::beacon::{Beacon, ChildPage};
use crate::wire::channel::{write_frame, Conn, FrameReader};
use crate::wire::handoff::{Marker, MARKER};
use crate::wire::protocol::{self, Hello, ToChild};
use crate::{sys, ProcessError};

/// Finds the entry point of a registered type by its tag.
pub(crate) type EntryOf = fn(&str) -> Option<fn(ChildRun) -> !>;

/// Exit codes of a child that could not run, chosen away from common user codes.
pub(crate) mod exit_code {
    /// The marker or the channel was unusable.
    pub(crate) const BAD_START: i32 = 120;
    /// The parent was gone before the child could start or while it ran.
    pub(crate) const PARENT_GONE: i32 = 121;
    /// The final outcome was an error (reported to the parent), like Python's 1.
    pub(crate) const FAILED: i32 = 1;
}

/// Runs the child if this process is one; returns at once otherwise.
/// `entry_of` finds the registered type the parent names; `fingerprint` is this
/// build's, presented in the handshake.
pub(crate) fn enter_if_marked(entry_of: EntryOf, fingerprint: fn() -> u64) {
    let Some(value) = std::env::var_os(MARKER) else {
        return;
    };
    // Remove the marker (and with it the secret) before anything else can read it, and
    // so that processes this child starts are not mistaken for children themselves.
    std::env::remove_var(MARKER);
    let fault = Injector::from_env().unwrap_or_else(|e| bad_start(&e));
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
    let page = sys::adopt_fd(marker.beacon_fd)
        .and_then(|bfd| Beacon::open(&bfd))
        .unwrap_or_else(|e| bad_start(&format!("the inherited beacon is unusable: {e}")))
        .leak();
    handshake_and_run(fd, page, &marker, fault, entry_of, fingerprint());
}

fn bad_start(why: &str) -> ! {
    eprintln!("process-runtime: this process was started as a child but cannot run: {why}");
    sys::exit_now(exit_code::BAD_START)
}

fn handshake_and_run(
    fd: OwnedFd,
    page: ChildPage,
    marker: &Marker,
    fault: Injector,
    entry_of: EntryOf,
    fingerprint: u64,
) -> ! {
    let send = Conn::from_fd(fd);
    let recv = send.clone();
    let mut hello = Hello {
        magic: protocol::MAGIC,
        version: protocol::PROTOCOL_VERSION,
        fingerprint,
        secret: marker.secret,
    };
    if let HelloStep::Park = fault.before_hello(&mut hello, &send) {
        park_until_parent_gone(recv)
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
        Err(e) => report_fatal(&send, e),
    };
    let Some(entry) = entry_of(&tag) else {
        report_fatal(
            &send,
            ProcessError::Protocol(format!(
                "this binary has no process type registered as `{tag}`"
            )),
        )
    };
    entry(ChildRun {
        frame,
        reader,
        writer: send,
        parent_pid: marker.parent_pid,
        beacon: page.word,
        stop: page.stop,
        parent_stop: page.parent_stop,
        stop_wake: page.stop_wake,
        timers: page.timers,
        mail: page.mail,
        taken: page.taken,
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
