//! A real child that breaks the protocol on purpose (the `fault-injection` feature):
//! each fault must give a clear `ProcessError::Protocol` (or a crash, for a child that
//! dies first), never a hang or a panic, and leave no process or descriptor behind.
//!
//! One test in this file on purpose: it counts this process's descriptors, which
//! tests running in parallel threads would disturb.

use std::time::{Duration, Instant};

use process_runtime::__testing::{start_with_fault, Fault};
use process_runtime::prelude::*;
use process_runtime_tests::{describe_descriptors, open_descriptors, process_running};
use serde::{Deserialize, Serialize};

/// Does nothing, once.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1)]
struct Nap;

impl Lifecycle for Nap {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

fn faulty(fault: Fault) -> (ProcessError, u32) {
    let h = start_with_fault(&Nap, Nap::config(), fault).unwrap();
    let pid = h.pid();
    let e = h.result().unwrap_err();
    h.wait();
    (e, pid)
}

#[test]
fn a_broken_channel_is_a_clear_protocol_error_and_leaves_nothing_behind() {
    let cases = [
        (Fault::HelloGarbage, "protocol error: malformed handshake frame"),
        (Fault::HelloOversized, "protocol error: a handshake frame announced 4294967295 bytes, more than the maximum of 1024 bytes"),
        (Fault::HelloBadSecret, "protocol error: handshake refused: the child did not present this parent's secret"),
        (Fault::HelloBadVersion, "protocol error: handshake refused: the child speaks protocol version 5, this parent speaks 4"),
        (Fault::HelloBadMagic, "protocol error: handshake refused: the peer is not a process-runtime child (bad magic)"),
        (Fault::HelloBadFingerprint, "protocol error: handshake refused: the child was built from different code than this parent (build fingerprint mismatch)"),
        (Fault::ReportGarbage, "protocol error: malformed report frame"),
        (Fault::ReportTrailing, "protocol error: 1 unexpected trailing bytes after a report frame"),
        (Fault::ReportOversized, "protocol error: a report frame announced 4294967295 bytes, more than the maximum of 1073741824 bytes"),
        (Fault::ReportTruncated, "protocol error: the connection closed in the middle of a report frame (truncated frame)"),
    ];
    // Warm up once so that lazily opened descriptors (the spawner thread's) are counted.
    faulty(Fault::ReportGarbage);
    let fds_before = open_descriptors();
    for (fault, expected) in cases {
        let started = Instant::now();
        let (e, pid) = faulty(fault);
        assert!(matches!(e, ProcessError::Protocol(_)), "{fault}: {e:?}");
        assert!(e.to_string().starts_with(expected), "{fault}: {e}");
        assert!(!process_running(pid), "{fault}: the child is gone");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{fault}: no hang"
        );
    }
    let (e, _) = faulty(Fault::ExitBeforeHello);
    assert_eq!(
        e,
        ProcessError::Crashed {
            section: None,
            exit: process_runtime::Exit::Code(7)
        }
    );
    assert_eq!(
        open_descriptors(),
        fds_before,
        "no descriptor leaked; open now: {}",
        describe_descriptors()
    );
}
