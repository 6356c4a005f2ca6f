//! Functions and pools: `spawn(arg, f)` and `Pool`, with real child processes.
//!
//! This file has no `#[derive(Process)]`: the runtime's own entry constructor is what
//! takes the re-executed children over.

use std::time::{Duration, Instant};

use process_runtime::prelude::*;
use process_runtime::{Exit, Spawn};
use process_runtime_tests::{no_core_dumps, sleep_forever, write_atomically, Scratch};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

fn sqr(x: u64) -> u64 {
    x * x
}

fn abort() -> ! {
    no_core_dumps();
    std::process::abort()
}

fn crashed(exit: Exit) -> ProcessError {
    ProcessError::Crashed {
        section: Some(Section::MainLoop),
        exit,
    }
}

fn panic_message(e: &ProcessError) -> &str {
    match e {
        ProcessError::MainLoop(remote) if remote.is_panic() => remote.message(),
        other => panic!("not a panic in the function: {other:?}"),
    }
}

// --- spawn ---------------------------------------------------------------------------

#[test]
fn spawn_returns_the_value_of_a_closure() {
    let h = process_runtime::spawn(21u64, |x| x * 2).unwrap();
    assert_eq!(h.result(), Ok(42));
    assert_eq!(h.exit_code(), Some(0));
    assert_ne!(h.pid(), std::process::id());
}

#[test]
fn spawn_runs_a_fn_item_named_after_it() {
    let h = process_runtime::spawn(12, sqr).unwrap();
    assert_eq!(h.result(), Ok(144));
    assert_eq!(h.name(), "pool::sqr");
    let h = process_runtime::spawn("four".to_owned(), |s: String| s.len()).unwrap();
    assert_eq!(h.take_result(), Ok(4));
}

#[test]
fn spawn_of_a_panicking_function_is_a_main_loop_error_with_the_message() {
    let h = process_runtime::spawn(7u32, |x: u32| -> u32 { panic!("no luck with {x}") }).unwrap();
    let e = h.result().unwrap_err();
    assert_eq!(panic_message(&e), "no luck with 7");
    assert_eq!(e.to_string(), "MainLoopError: panic: no luck with 7");
    assert!(e
        .remote()
        .unwrap()
        .panic_location()
        .unwrap()
        .contains("pool.rs"));
    assert_eq!(h.exit_code(), Some(1));
}

#[test]
fn spawn_of_a_function_that_aborts_is_a_crash_with_the_signal() {
    let h = process_runtime::spawn((), |()| -> u8 { abort() }).unwrap();
    assert_eq!(h.result(), Err(crashed(Exit::Signal(libc::SIGABRT))));
}

/// Writes this process's pid to `path`, then aborts.
fn abort_after_writing_pid(path: String) -> u8 {
    write_atomically(&path, &std::process::id().to_string()).unwrap();
    abort()
}

#[test]
fn spawn_of_a_crashing_call_spawns_no_child_only_to_run_error() {
    let dir = Scratch::new("spawn-crash");
    let path = dir.file("pid").to_string_lossy().into_owned();
    let h = process_runtime::spawn(path.clone(), abort_after_writing_pid).unwrap();
    assert_eq!(h.result(), Err(crashed(Exit::Signal(libc::SIGABRT))));
    let crashed_pid: u32 = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    assert_eq!(
        h.pid(),
        crashed_pid,
        "the last child is the one that crashed"
    );
    assert_eq!(h.lives_used(), 1);
}

/// Fails its first attempt: creates `path`, then panics; finds it the second time.
fn fail_once(path: String) -> String {
    if std::path::Path::new(&path).exists() {
        return "second time lucky".into();
    }
    write_atomically(&path, "tried").unwrap();
    panic!("first attempt")
}

#[test]
fn spawn_with_lives_from_the_builder_retries_a_failed_call() {
    let dir = Scratch::new("spawn-lives");
    let path = dir.file("tried").to_string_lossy().into_owned();
    let h = Spawn::new()
        .lives(2)
        .spawn(path.clone(), fail_once)
        .unwrap();
    assert_eq!(h.result().as_deref(), Ok("second time lucky"));
    assert_eq!(h.lives_used(), 2);

    std::fs::remove_file(&path).unwrap();
    let h = Spawn::new().name("once").spawn(path, fail_once).unwrap();
    assert_eq!(h.name(), "once");
    assert_eq!(panic_message(&h.result().unwrap_err()), "first attempt");
    assert_eq!(h.lives_used(), 1);
}

#[test]
fn spawn_with_a_timeout_from_the_builder_kills_a_hung_call() {
    let limit = Duration::from_millis(200);
    let started = Instant::now();
    let h = Spawn::new()
        .timeout(limit)
        .spawn((), |()| -> u8 { sleep_forever() })
        .unwrap();
    assert_eq!(
        h.result(),
        Err(ProcessError::Timeout {
            section: Section::MainLoop,
            limit
        })
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(h.exit_code(), Some(-libc::SIGKILL));
}

/// Serializes to nothing postcard can read back as itself.
#[derive(Debug)]
struct Undecodable;

impl Serialize for Undecodable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for Undecodable {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("Undecodable never decodes"))
    }
}

#[test]
fn spawn_refuses_an_argument_that_does_not_come_back_before_starting_a_child() {
    let e = process_runtime::spawn(Undecodable, |_: Undecodable| 1u8).unwrap_err();
    assert!(
        matches!(&e, ProcessError::State(m)
            if m.contains("`pool::Undecodable`, serializes but does not deserialize back")),
        "{e}"
    );
}
