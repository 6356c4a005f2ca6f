//! How failures in a child reach the parent: wrapped by section, with the error's type
//! name and message or the panic's text; `error()` recovering; crashes and kills.

use process_runtime::prelude::*;
use process_runtime::{Exit, RemoteError};
use process_runtime_tests::Scratch;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Fault {
    None,
    ParseError,
    Message,
    Panic,
    Abort,
    Exit7,
}

/// Fails in `section` the way `fault` says; `recover` makes `error()` return a value.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 2, name = "faulty")]
struct Faulty {
    section: Section,
    fault: Fault,
    recover: bool,
}

impl Faulty {
    fn maybe_fail(&self, here: Section) -> Outcome {
        if here != self.section {
            return Ok(());
        }
        match self.fault {
            Fault::None => Ok(()),
            Fault::ParseError => {
                let _: u32 = "x1".parse()?;
                Ok(())
            }
            Fault::Message => Err(format!("{here} gave up").into()),
            Fault::Panic => panic!("{here} exploded"),
            Fault::Abort => std::process::abort(),
            Fault::Exit7 => std::process::exit(7),
        }
    }
}

impl Lifecycle for Faulty {
    type Output = String;

    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
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
        Ok("fine".into())
    }
    fn error(&mut self, err: ProcessError, _cx: &mut Context) -> Result<String, ProcessError> {
        if self.recover {
            Ok(format!("recovered from {err}"))
        } else {
            Err(err)
        }
    }
}

fn run(
    section: Section,
    fault: Fault,
    recover: bool,
) -> (Result<String, ProcessError>, Option<i32>) {
    let h = Faulty {
        section,
        fault,
        recover,
    }
    .start()
    .unwrap();
    let r = h.result();
    h.wait();
    (r, h.exit_code())
}

const SECTIONS: [(Section, &str); 5] = [
    (Section::Preloop, "PreloopError"),
    (Section::MainLoop, "MainLoopError"),
    (Section::Postloop, "PostloopError"),
    (Section::OnFinish, "OnFinishError"),
    (Section::Result, "ResultError"),
];

#[test]
fn a_returned_error_is_wrapped_by_its_section_with_its_type_name() {
    for (section, prefix) in SECTIONS {
        let (r, code) = run(section, Fault::ParseError, false);
        let e = r.unwrap_err();
        assert_eq!(e.section(), Some(section));
        assert_eq!(
            e.to_string(),
            format!("{prefix}: ParseIntError: invalid digit found in string")
        );
        assert_eq!(
            e.remote().and_then(RemoteError::type_name),
            Some("ParseIntError")
        );
        assert_eq!(
            code,
            Some(1),
            "a process that ends in an error exits with 1"
        );
    }
}

#[test]
fn a_string_error_has_no_type_name() {
    let (r, _) = run(Section::MainLoop, Fault::Message, false);
    assert_eq!(
        r.unwrap_err().to_string(),
        "MainLoopError: main_loop gave up"
    );
}

#[test]
fn a_panic_is_wrapped_by_its_section_with_its_message() {
    for (section, prefix) in SECTIONS {
        let (r, code) = run(section, Fault::Panic, false);
        let e = r.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{prefix}: panic: {section} exploded")
        );
        let remote = e.remote().unwrap();
        assert!(remote.is_panic());
        let location = remote.panic_location().unwrap();
        assert!(location.contains("errors.rs:"), "{location}");
        assert_eq!(code, Some(1));
    }
}

#[test]
fn error_can_recover_to_a_value() {
    let (r, code) = run(Section::Postloop, Fault::Message, true);
    assert_eq!(r.unwrap(), "recovered from PostloopError: postloop gave up");
    assert_eq!(code, Some(0));
}

#[test]
fn an_abort_is_a_crash_with_the_signal() {
    let (r, code) = run(Section::MainLoop, Fault::Abort, false);
    assert_eq!(
        r.unwrap_err(),
        ProcessError::Crashed {
            section: Some(Section::MainLoop),
            exit: Exit::Signal(6)
        }
    );
    assert_eq!(code, Some(-6));
}

#[test]
fn an_exit_without_a_report_keeps_its_code() {
    let (r, code) = run(Section::Preloop, Fault::Exit7, false);
    assert_eq!(
        r.unwrap_err(),
        ProcessError::Crashed {
            section: Some(Section::Preloop),
            exit: Exit::Code(7)
        }
    );
    assert_eq!(code, Some(7));
}

#[test]
fn a_crash_on_the_last_life_still_runs_error_in_a_fresh_child() {
    let (r, code) = run(Section::MainLoop, Fault::Abort, true);
    assert_eq!(
        r.unwrap(),
        "recovered from the process crashed in main_loop with signal 6 (SIGABRT)"
    );
    assert_eq!(code, Some(-6), "the exit code is the crashed attempt's");
}

/// Sleeps in every lap; `on_finish` leaves a file, so a test can tell it did not run.
#[derive(Process, Serialize, Deserialize)]
struct Sleeper {
    marker: String,
}

impl Lifecycle for Sleeper {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(std::time::Duration::from_millis(10));
        Ok(())
    }
    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        std::fs::write(&self.marker, b"ran")?;
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn kill_ends_the_child_at_once_without_on_finish() {
    let dir = Scratch::new("kill");
    let marker = dir.file("on_finish");
    let h = Sleeper {
        marker: marker.to_string_lossy().into_owned(),
    }
    .start()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let pid = h.pid();
    h.kill();
    assert_eq!(h.result().unwrap_err(), ProcessError::Killed);
    h.wait();
    assert_eq!(h.exit_code(), Some(-9));
    assert!(!marker.exists(), "on_finish must not run after kill");
    assert!(!process_runtime_tests::process_running(pid));
    // Killing a finished process changes nothing.
    h.kill();
    assert_eq!(h.result().unwrap_err(), ProcessError::Killed);
}

#[test]
fn stop_runs_on_finish_where_kill_does_not() {
    let dir = Scratch::new("stop");
    let marker = dir.file("on_finish");
    let h = Sleeper {
        marker: marker.to_string_lossy().into_owned(),
    }
    .start()
    .unwrap();
    h.stop();
    h.result().unwrap();
    assert!(marker.exists());
}

#[test]
fn dropping_a_daemon_handle_kills_it_and_a_normal_one_stops_it() {
    let dir = Scratch::new("drop");
    let marker = dir.file("on_finish");
    let s = Sleeper {
        marker: marker.to_string_lossy().into_owned(),
    };
    let h = s.start_with(Sleeper::config().with_daemon(true)).unwrap();
    let pid = h.pid();
    drop(h);
    assert!(
        !process_runtime_tests::process_running(pid),
        "the daemon is gone after drop"
    );
    assert!(!marker.exists(), "a daemon is killed, not stopped");

    let h = s.start().unwrap();
    let pid = h.pid();
    drop(h);
    assert!(
        !process_runtime_tests::process_running(pid),
        "the process is gone after drop"
    );
    assert!(marker.exists(), "a non-daemon is stopped: on_finish ran");
}
