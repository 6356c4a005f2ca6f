//! Stopping a whole program: real programs (`src/bin/shutdown_tree`, `shutdown_off`)
//! that start a tree of processes, and real SIGTERM and SIGINT sent to them.
//!
//! The tree: a worker; a nested process that starts a worker of its own (the leaf,
//! whose `on_finish` takes 300 ms) and waits for it; a daemon; and a process whose
//! `on_finish` hangs past its 1 s limit. Each writes its pid, and a marker when its
//! `on_finish` ran, into the test's scratch directory.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use process_runtime_tests::{gone_within, process_running, wait_for_file, Scratch};

const TREE: &str = env!("CARGO_BIN_EXE_shutdown_tree");
const OFF: &str = env!("CARGO_BIN_EXE_shutdown_off");

/// Every process of the tree the programs start, by the name of its pid file.
const TREE_PROCESSES: [&str; 5] = ["worker", "nested", "leaf", "daemon", "hung"];

/// A program under test, killed if the test fails before it exits.
struct Program {
    dir: Scratch,
    child: Child,
    label: String,
}

impl Program {
    /// Starts `bin` in `mode` and waits until it says it is ready.
    fn ready(bin: &str, mode: &str) -> Self {
        Self::ready_with(bin, &[mode])
    }

    /// [`Program::ready`] with a mode and its arguments.
    fn ready_with(bin: &str, args: &[&str]) -> Self {
        Self::ready_in(bin, args, &[])
    }

    /// [`Program::ready_with`], with `env` added to the program's environment (its
    /// processes inherit it).
    fn ready_in(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mode = args.join("-");
        let dir = Scratch::new(&format!("shutdown-{mode}"));
        let child = Command::new(bin)
            .arg(dir.path())
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .expect("start the program");
        let program = Program {
            dir,
            child,
            label: format!(
                "{} {mode}",
                Path::new(bin).file_name().unwrap().to_string_lossy()
            ),
        };
        assert!(
            wait_for_file(&program.dir.file("ready"), Duration::from_secs(30)).is_some(),
            "{}: never ready",
            program.label
        );
        program
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill only sends a signal, to our own child.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits for the program's exit, for at most `limit`.
    fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the program") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: still running after {limit:?}",
                self.label
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn has(&self, name: &str) -> bool {
        self.dir.file(name).exists()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.file(name))
            .unwrap_or_else(|e| panic!("{}: no {name}: {e}", self.label))
    }

    fn pid(&self, name: &str) -> u32 {
        self.read(&format!("{name}.pid")).parse().unwrap()
    }

    /// Asserts that the on_finish of exactly the processes that should have one ran.
    fn assert_graceful_markers(&self) {
        for name in ["worker", "nested", "leaf"] {
            assert!(
                self.has(&format!("{name}.finished")),
                "{}: the on_finish of {name} did not run",
                self.label
            );
        }
        assert!(
            !self.has("daemon.finished"),
            "{}: the daemon was stopped, not killed",
            self.label
        );
        assert!(
            self.has("hung.on_finish") && !self.has("hung.finished"),
            "{}: the hung process's on_finish did not start, or finished",
            self.label
        );
        // The nested process stopped its leaf, and waited for it, before its own
        // on_finish (the leaf's own on_finish takes 300 ms).
        assert_eq!(
            self.read("nested.finished"),
            r#"leaf alive: false, leaf finished: true, leaf result: Some(Ok("leaf"))"#,
            "{}",
            self.label
        );
    }

    /// Asserts that no process of `names` runs (a zombie would count as running for
    /// its parent only, and the parent is gone).
    fn assert_none_left(&self, names: &[&str]) {
        for name in names {
            let pid = self.pid(name);
            assert!(
                gone_within(pid, Duration::from_secs(1)),
                "{}: {name} (pid {pid}) outlived the program",
                self.label
            );
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends `signal` to a program waiting on its tree; checks the graceful phase and the
/// exit status.
fn graceful_on(signal: libc::c_int) {
    let mut program = Program::ready(TREE, "signal");
    let sent = Instant::now();
    program.signal(signal);
    let status = program.exit_within(Duration::from_secs(20));
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(128 + signal), "{status:?}");
    program.assert_graceful_markers();
    // The hung process held the phase until its on_finish limit (1 s) killed it.
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "the graceful phase took {took:?}"
    );
    assert!(
        !program.has("main.returned"),
        "the program's calls returned during the shutdown: {}",
        program.read("main.returned")
    );
    for name in TREE_PROCESSES {
        let pid = program.pid(name);
        assert!(
            !process_running(pid),
            "{name} (pid {pid}) still ran when the program exited"
        );
    }
    eprintln!("signal {signal}: the program exited {took:?} after it");
}

#[test]
fn sigterm_stops_the_tree_gracefully_then_exits_with_143() {
    graceful_on(libc::SIGTERM);
}

#[test]
fn sigint_stops_the_tree_gracefully_then_exits_with_130() {
    graceful_on(libc::SIGINT);
}

#[test]
fn a_second_signal_kills_the_tree_at_once() {
    // The hung process's on_finish limit is 20 s here, and the leaf's on_finish takes
    // 300 ms: a graceful end would take 20 s.
    let mut program = Program::ready(TREE, "two-signals");
    let sent = Instant::now();
    program.signal(libc::SIGTERM);
    // The phase has begun: the hung process is in its on_finish.
    assert!(
        wait_for_file(&program.dir.file("hung.on_finish"), Duration::from_secs(5)).is_some(),
        "the first signal stopped nothing"
    );
    program.signal(libc::SIGINT);
    let status = program.exit_within(Duration::from_secs(10));
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(!program.has("hung.finished"));
    assert!(!program.has("daemon.finished"));
    assert!(!program.has("main.returned"));
    program.assert_none_left(&TREE_PROCESSES);
    eprintln!("two signals: the program exited {took:?} after the first");
}

#[test]
fn shutdown_runs_the_graceful_phase_on_demand_and_returns() {
    let mut program = Program::ready(TREE, "on-demand");
    let status = program.exit_within(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{status:?}");
    program.assert_graceful_markers();
    let results = program.read("results");
    let expected = "worker: Ok(\"worker\")\n\
                    nested: Ok(\"nested\")\n\
                    daemon: Err(Killed)\n\
                    hung: Err(Timeout { section: OnFinish, limit: 1s })\n\
                    alive after: [false, false, false, false]\n";
    assert!(results.starts_with(expected), "{results}");
    assert!(results.contains("again: Ok(\"again\")\n"), "{results}");
    assert!(results.ends_with("requested: false\n"), "{results}");
    program.assert_none_left(&TREE_PROCESSES);
}

#[test]
fn a_process_run_by_a_pool_is_stopped_gracefully_with_its_worker() {
    // The process runs inside the pool's worker: the worker's stop reaches it, its
    // current section finishes, then its `on_finish` and `result`, and the pool's
    // caller gets its output.
    let mut program = Program::ready(TREE, "pool-run");
    let worker = program.pid("pooled");
    let status = program.exit_within(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(program.has("pooled.finished"), "its on_finish ran");
    assert_eq!(program.read("results"), "[Ok(\"pooled\")]\n");
    assert!(gone_within(worker, Duration::from_secs(5)));
}

/// The pids of the pool workers a `pool-idle` program wrote.
fn pool_workers(program: &Program) -> Vec<u32> {
    let workers: Vec<u32> = program
        .read("workers")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(!workers.is_empty());
    workers
}

#[test]
fn sigterm_ends_a_program_whose_pool_is_idle() {
    // Idle workers wait for work without a limit: the stop reaches them as a quit, so
    // the graceful phase does not wait on them for ever.
    let mut program = Program::ready(TREE, "pool-idle");
    let workers = pool_workers(&program);
    program.signal(libc::SIGTERM);
    let status = program.exit_within(Duration::from_secs(10));
    assert_eq!(status.code(), Some(143), "{status:?}");
    for pid in workers {
        assert!(gone_within(pid, Duration::from_secs(1)), "worker {pid}");
    }
}

#[test]
fn a_pool_serves_again_after_a_shutdown_its_program_was_told_of() {
    let mut program = Program::ready_with(TREE, &["pool-idle", "told"]);
    let workers = pool_workers(&program);
    program.signal(libc::SIGTERM);
    let status = program.exit_within(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status:?}");
    for pid in workers {
        assert!(gone_within(pid, Duration::from_secs(1)), "worker {pid}");
    }
    assert_eq!(
        program.read("results"),
        "[Ok(1), Ok(2), Ok(3), Ok(4), Ok(5), Ok(6), Ok(7), Ok(8), Ok(9), Ok(10)]\n\
         [Ok(0), Ok(2), Ok(4)]\n"
    );
}

#[test]
fn a_pool_told_of_a_shutdown_replaces_a_worker_that_is_still_exiting() {
    // Each worker waits 300 ms after its report before it exits, and the program's
    // next call comes 100 ms after the shutdown began: it finds the workers it quit
    // decided but not gone. Its chunks must go to fresh workers, not wait for answers
    // from the old ones. (The fault reaches the workers through the environment they
    // inherit; the program itself ignores it.)
    let mut program = Program::ready_in(
        TREE,
        &["pool-idle", "told-late"],
        &[("__PROCESS_RUNTIME_FAULT", "linger-after-report")],
    );
    program.signal(libc::SIGTERM);
    let status = program.exit_within(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(
        program.read("results"),
        "[Ok(1), Ok(2), Ok(3), Ok(4), Ok(5), Ok(6), Ok(7), Ok(8), Ok(9), Ok(10)]\n\
         [Ok(0), Ok(2), Ok(4)]\n"
    );
}

/// A program that asked to be told: the same graceful phase, then its calls return as
/// for stopped processes, and `main` finishes its own work and returns.
fn told(mode: &str) {
    let mut program = Program::ready(TREE, mode);
    program.signal(libc::SIGTERM);
    let status = program.exit_within(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{status:?}");
    program.assert_graceful_markers();
    assert_eq!(
        program.read("results"),
        "worker: Ok(\"worker\")\n\
         nested: Ok(\"nested\")\n\
         daemon: Err(Killed)\n\
         hung: Err(Timeout { section: OnFinish, limit: 1s })\n\
         start during the shutdown: Err(ShuttingDown)\n"
    );
    program.assert_none_left(&TREE_PROCESSES);
}

#[test]
fn shutdown_requested_lets_main_finish_its_own_work() {
    told("told");
}

#[test]
fn wait_for_shutdown_async_lets_main_finish_its_own_work() {
    told("told-async");
}

#[test]
fn wait_for_shutdown_lets_main_finish_its_own_work() {
    told("told-wait");
}

#[test]
fn without_signal_handling_sigterm_ends_the_program_and_its_children_at_once() {
    let mut program = Program::ready(OFF, "off");
    program.signal(libc::SIGTERM);
    let status = program.exit_within(Duration::from_secs(10));
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    // The worker dies by the parent-death signal: no on_finish.
    program.assert_none_left(&["worker"]);
    assert!(!program.has("worker.finished"));
    assert!(!program.has("main.returned"));
}

#[test]
fn shutdown_on_signals_without_the_attribute() {
    let mut program = Program::ready(OFF, "explicit");
    program.signal(libc::SIGTERM);
    let status = program.exit_within(Duration::from_secs(10));
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert!(program.has("worker.finished"));
    assert!(!program.has("main.returned"));
    program.assert_none_left(&["worker"]);
}

#[test]
fn a_child_that_gets_sigterm_itself_still_crashes_with_minus_15() {
    let mut program = Program::ready(TREE, "child-term");
    let pid = libc::pid_t::try_from(program.pid("worker")).unwrap();
    // SAFETY: kill only sends a signal, to a process of the program under test.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = program.exit_within(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{status:?}");
    // In whichever section the signal found it (almost always its 20 ms main_loop).
    let results = program.read("results");
    assert!(
        results.starts_with("Err(Crashed { section: Some(")
            && results.ends_with(" exit: Signal(15) })\nexit code: Some(-15)\n"),
        "{results}"
    );
    assert!(!program.has("worker.finished"));
}
