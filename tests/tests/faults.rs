//! The fault matrix: a real child dies every way a child can die (abort in each
//! section, a real segfault, SIGKILL from outside, allocation beyond a memory limit,
//! `exit` before reporting, a broken channel), and each time the parent gets the typed
//! outcome and the exit status, and is left with no process, zombie or descriptor.
//!
//! (Errors and panics in each section are in `errors.rs`; protocol error messages are in
//! `protocol_faults.rs`; hangs are in `timeouts.rs`.)
//!
//! The tests of this file count this process's descriptors and children, which tests
//! running in parallel would disturb: each holds [`serial`] for its whole run.

use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::time::{Duration, Instant};

use process_runtime::__testing::{start_with_fault, Fault as Injected};
use process_runtime::prelude::*;
use process_runtime::Exit;
use process_runtime_tests::{
    child_processes, describe_descriptors, no_core_dumps, open_descriptors, reaped, sleep_forever,
    status_kb, wait_for_file, write_atomically, Scratch,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Fault {
    Abort,
    Segfault,
    /// Writes the child's pid to `ready`, then sleeps until someone kills it.
    WaitForKill,
    /// `preloop` limits the address space; `section` then allocates beyond it.
    OverMemoryLimit,
    Exit7,
}

/// Dies in `section` the way `fault` says.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 2, name = "victim")]
struct Victim {
    section: Section,
    fault: Fault,
    ready: String,
}

/// A write to an address no process can map (below `vm.mmap_min_addr`): a real SIGSEGV,
/// raised by the MMU, not by `raise`.
fn segfault() -> ! {
    let unmapped = 16usize as *mut u8;
    // SAFETY: not safe at all, on purpose: the write faults and the process dies.
    unsafe { std::ptr::write_volatile(unmapped, 1) };
    unreachable!("a write to an unmapped address did not fault")
}

/// Limits the address space to what is mapped now plus 64 MiB.
fn limit_address_space() {
    let now = status_kb("VmSize").expect("VmSize") * 1024;
    let limit = libc::rlimit {
        rlim_cur: now + (64 << 20),
        rlim_max: now + (64 << 20),
    };
    // SAFETY: setrlimit reads the struct we pass.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    assert_eq!(rc, 0, "setrlimit(RLIMIT_AS)");
}

impl Victim {
    fn maybe_fail(&self, here: Section) -> Outcome {
        if here != self.section {
            return Ok(());
        }
        match self.fault {
            Fault::Abort => std::process::abort(),
            Fault::Segfault => segfault(),
            Fault::WaitForKill => {
                write_atomically(&self.ready, &std::process::id().to_string())?;
                sleep_forever()
            }
            Fault::OverMemoryLimit => {
                // 1 GiB, far beyond the limit: the allocation fails and Rust aborts.
                let v = vec![1u8; 1 << 30];
                std::hint::black_box(&v);
                Err("allocated 1 GiB beyond a 64 MiB limit".into())
            }
            Fault::Exit7 => std::process::exit(7),
        }
    }
}

impl Lifecycle for Victim {
    type Output = String;

    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
        no_core_dumps();
        if self.fault == Fault::OverMemoryLimit {
            limit_address_space();
        }
        self.maybe_fail(Section::Preloop)
    }
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        self.maybe_fail(Section::MainLoop)
    }
    fn postloop(&mut self, _cx: &mut Context) -> Outcome {
        self.maybe_fail(Section::Postloop)
    }
    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        self.maybe_fail(Section::OnFinish)
    }
    fn result(&mut self, _cx: &mut Context) -> Result<String, BoxError> {
        self.maybe_fail(Section::Result)?;
        Ok("survived".into())
    }
}

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

/// Runs the tests of this file one at a time, after a warm-up start (so that the
/// runtime's lazily started spawner thread is counted in every baseline).
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    static WARM_UP: Once = Once::new();
    let guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    WARM_UP.call_once(|| {
        let h = Nap.start().unwrap();
        h.result().unwrap();
        h.wait();
    });
    guard
}

/// Asserts nothing is left of a finished process: its pids are neither running nor
/// zombies of ours, this process has no child at all, and no descriptor leaked.
fn assert_nothing_left(what: impl std::fmt::Display, pids: &[u32], fds_before: usize) {
    for &pid in pids {
        assert!(reaped(pid), "{what}: child {pid} is still there");
    }
    assert_eq!(child_processes(), [], "{what}: a child is left");
    assert_eq!(
        open_descriptors(),
        fds_before,
        "{what}: a descriptor leaked; open now: {}",
        describe_descriptors()
    );
}

/// Starts a victim, returns its outcome and exit code, and checks nothing is left.
fn run(section: Section, fault: Fault) -> (Result<String, ProcessError>, Option<i32>) {
    let fds_before = open_descriptors();
    let h = Victim {
        section,
        fault,
        ready: String::new(),
    }
    .start()
    .unwrap();
    let first = h.pid();
    let r = h.result();
    h.wait();
    // (`lives_used()` after a crash on the last life is checked in lives.rs.)
    assert_nothing_left(
        format!("{fault:?} in {section}"),
        &[first, h.pid()],
        fds_before,
    );
    (r, h.exit_code())
}

#[test]
fn an_abort_in_any_section_is_a_crash_in_that_section_with_sigabrt() {
    let _serial = serial();
    // main_loop is in errors.rs.
    for section in [
        Section::Preloop,
        Section::Postloop,
        Section::OnFinish,
        Section::Result,
    ] {
        let (r, code) = run(section, Fault::Abort);
        assert_eq!(
            r,
            Err(ProcessError::Crashed {
                section: Some(section),
                exit: Exit::Signal(libc::SIGABRT)
            }),
            "abort in {section}"
        );
        assert_eq!(code, Some(-6), "abort in {section}");
    }
}

#[test]
fn a_real_segfault_is_a_crash_with_sigsegv() {
    let _serial = serial();
    for section in [Section::MainLoop, Section::OnFinish] {
        let (r, code) = run(section, Fault::Segfault);
        assert_eq!(
            r,
            Err(ProcessError::Crashed {
                section: Some(section),
                exit: Exit::Signal(libc::SIGSEGV)
            }),
            "segfault in {section}"
        );
        assert_eq!(code, Some(-11));
        assert_eq!(
            r.unwrap_err().to_string(),
            format!("the process crashed in {section} with signal 11 (SIGSEGV)")
        );
    }
}

#[test]
fn sigkill_from_outside_is_a_crash_not_a_kill() {
    let _serial = serial();
    let fds_before = open_descriptors();
    let dir = Scratch::new("sigkill");
    let ready = dir.file("ready");
    let h = Victim {
        section: Section::MainLoop,
        fault: Fault::WaitForKill,
        ready: ready.to_string_lossy().into_owned(),
    }
    .start()
    .unwrap();
    let pid: u32 = wait_for_file(&ready, Duration::from_secs(20))
        .expect("the child reached main_loop")
        .parse()
        .unwrap();
    assert_eq!(pid, h.pid());
    assert!(h.is_alive());
    assert_eq!(h.exit_code(), None, "running");
    // SAFETY: kill only sends a signal, to our own child.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
    assert_eq!(
        h.result(),
        Err(ProcessError::Crashed {
            section: Some(Section::MainLoop),
            exit: Exit::Signal(libc::SIGKILL)
        })
    );
    h.wait();
    assert_eq!(h.exit_code(), Some(-9));
    assert!(!h.is_alive());
    drop(dir);
    assert_nothing_left("SIGKILL from outside", &[pid, h.pid()], fds_before);
}

#[test]
fn allocating_beyond_a_memory_limit_is_a_crash_with_sigabrt() {
    let _serial = serial();
    let (r, code) = run(Section::MainLoop, Fault::OverMemoryLimit);
    assert_eq!(
        r,
        Err(ProcessError::Crashed {
            section: Some(Section::MainLoop),
            exit: Exit::Signal(libc::SIGABRT)
        })
    );
    assert_eq!(code, Some(-6));
}

#[test]
fn exit_7_in_result_before_reporting_keeps_its_code() {
    let _serial = serial();
    // exit(7) in preloop is in errors.rs: here, at the last moment before the report.
    let (r, code) = run(Section::Result, Fault::Exit7);
    assert_eq!(
        r,
        Err(ProcessError::Crashed {
            section: Some(Section::Result),
            exit: Exit::Code(7)
        })
    );
    assert_eq!(code, Some(7));
}

#[test]
fn death_before_the_handshake_is_a_crash_without_a_section() {
    let _serial = serial();
    let fds_before = open_descriptors();
    let started = Instant::now();
    let h = start_with_fault(&Nap, Nap::config(), Injected::ExitBeforeHello).unwrap();
    let first = h.pid();
    assert_eq!(
        h.result(),
        Err(ProcessError::Crashed {
            section: None,
            exit: Exit::Code(7)
        })
    );
    h.wait();
    assert_eq!(h.exit_code(), Some(7));
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");
    assert_nothing_left(Injected::ExitBeforeHello, &[first, h.pid()], fds_before);
}

/// A child that breaks the protocol is refused at once: a protocol error, whatever
/// lives remain (the same build would break it the same way again), its group killed,
/// and nothing left. (The messages are checked in `protocol_faults.rs`.)
#[test]
fn a_broken_channel_is_final_and_leaves_no_process_zombie_or_descriptor() {
    let _serial = serial();
    // A child that never reads its start frame is killed when refused: -9. The start
    // frame is sent before the handshake is checked, so a child with a bad handshake
    // may run to the end (0) before it is refused, as may a child with a bad report
    // after writing it: 0 or -9.
    let cases = [
        (Injected::HelloGarbage, &[-9][..]),
        (Injected::HelloOversized, &[-9]),
        (Injected::HelloBadSecret, &[0, -9]),
        (Injected::HelloBadVersion, &[0, -9]),
        (Injected::HelloBadMagic, &[0, -9]),
        (Injected::HelloBadFingerprint, &[0, -9]),
        (Injected::ReportGarbage, &[0, -9]),
        (Injected::ReportTrailing, &[0, -9]),
        (Injected::ReportOversized, &[0, -9]),
        (Injected::ReportTruncated, &[0, -9]),
    ];
    for (fault, codes) in cases {
        let fds_before = open_descriptors();
        let started = Instant::now();
        let h = start_with_fault(&Nap, Nap::config().with_lives(3), fault).unwrap();
        let pid = h.pid();
        let e = h.result().unwrap_err();
        assert!(matches!(e, ProcessError::Protocol(_)), "{fault}: {e:?}");
        h.wait();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{fault}: no hang"
        );
        let code = h.exit_code().expect("finished");
        assert!(codes.contains(&code), "{fault}: exit code {code}");
        assert_eq!(h.lives_used(), 1, "{fault}: a refusal is not retried");
        assert_eq!(h.pid(), pid, "{fault}: no other attempt");
        assert_nothing_left(fault, &[pid], fds_before);
    }
}

/// Stops the child (SIGSTOP) in `main_loop`, sends it a stop frame it cannot read,
/// then SIGKILLs it, from outside or with `kill()`: the frame is left unread in its
/// socket, so the parent's next read fails with ECONNRESET rather than end-of-file.
fn die_with_an_unread_frame(external: bool) -> (Result<String, ProcessError>, Option<i32>) {
    let dir = Scratch::new("unread");
    let ready = dir.file("ready");
    let h = Victim {
        section: Section::MainLoop,
        fault: Fault::WaitForKill,
        ready: ready.to_string_lossy().into_owned(),
    }
    .start()
    .unwrap();
    let pid: libc::pid_t = wait_for_file(&ready, Duration::from_secs(20))
        .expect("the child reached main_loop")
        .parse()
        .unwrap();
    // SAFETY: kill only sends signals, to our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let stopped = Instant::now();
    while process_runtime_tests::proc_info(pid.unsigned_abs()).map(|p| p.state) != Some('T') {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "SIGSTOP took effect"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    h.stop();
    std::thread::sleep(Duration::from_millis(50));
    if external {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    } else {
        h.kill();
    }
    let r = h.result();
    h.wait();
    (r, h.exit_code())
}

#[test]
fn sigkill_from_outside_with_an_unread_frame_is_still_a_crash() {
    let _serial = serial();
    let (r, code) = die_with_an_unread_frame(true);
    assert_eq!(
        r,
        Err(ProcessError::Crashed {
            section: Some(Section::MainLoop),
            exit: Exit::Signal(libc::SIGKILL)
        })
    );
    assert_eq!(code, Some(-9));
}

#[test]
fn kill_with_an_unread_frame_is_still_killed() {
    let _serial = serial();
    let (r, code) = die_with_an_unread_frame(false);
    assert_eq!(r, Err(ProcessError::Killed));
    assert_eq!(code, Some(-9));
}
