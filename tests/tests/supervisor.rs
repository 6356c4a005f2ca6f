//! Supervisors, tested against the scenarios of Erlang/OTP's supervisor suite
//! (`lib/stdlib/test/supervisor_SUITE.erl`) that apply to supervised OS processes:
//! each test is named after the case it ports. "Abnormal" ends are a SIGKILL from
//! outside or an error returned by the child; "shutdown" ends are `node::exit` with
//! `ExitReason::Shutdown`; "normal" ends deliver a result.
//!
//! Tests of one binary share one node, so every child name starts with its test's name.

use std::io::Write;
use std::time::{Duration, Instant};

use process_runtime::node::{self, ExitReason};
use process_runtime::prelude::*;
use process_runtime::{
    ChildInfo, ChildSpec, Restart, Strategy, Supervisor, SupervisorError, SupervisorHandle,
};
use process_runtime_tests::{gone_within, reaped, sleep_forever, Scratch};
use serde::{Deserialize, Serialize};

/// What a test tells a worker through its node mailbox.
#[derive(Serialize, Deserialize, Debug)]
enum Cmd {
    /// Deliver the result: a normal end.
    Finish,
    /// Return an error from `main_loop`: an abnormal end.
    Fail,
}

/// A worker that logs its starts and stops to `dir/log`, one line each
/// (`start <name> <os pid> <runs>`, `stop <name>`), and obeys [`Cmd`]s.
#[derive(Process, Serialize, Deserialize, Clone, Default)]
#[process(timeout.onfinish = "10s")]
struct Worker {
    dir: String,
    name: String,
    /// Counts the runs this state has seen: 1 in every run, since each starts from the
    /// original state.
    runs: u32,
    /// `preloop` fails: a child that can never start.
    fail_at_start: bool,
}

impl Worker {
    fn new(dir: &Scratch, name: &str) -> Self {
        Self {
            dir: dir.path(),
            name: name.to_owned(),
            ..Self::default()
        }
    }

    fn log(&self, line: &str) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{}/log", self.dir))?;
        // One write per line: appends of a few bytes do not interleave.
        f.write_all(format!("{line}\n").as_bytes())
    }
}

impl Lifecycle for Worker {
    type Output = ();

    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        if cx.lap() > 0 {
            return Ok(());
        }
        self.runs += 1;
        self.log(&format!(
            "start {} {} {}",
            self.name,
            std::process::id(),
            self.runs
        ))?;
        if self.fail_at_start {
            return Err("refuses to start".into());
        }
        Ok(())
    }

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        match node::receive::<Cmd>(Duration::from_millis(20)) {
            Ok(Cmd::Finish) => cx.stop(),
            Ok(Cmd::Fail) => return Err("told to fail".into()),
            Err(RecvError::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        self.log(&format!("stop {}", self.name))?;
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// A child that ignores stops, with a short `on_finish` limit: stopping it ends in a
/// kill once the limit has passed.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.onfinish = "300ms")]
struct Stubborn;

impl Lifecycle for Stubborn {
    type Output = ();

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        sleep_forever();
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// A [`Worker`] whose `error` logs `error <name> <os pid>` and recovers: it delivers
/// its result in place of the failure.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.onfinish = "10s")]
struct Recovers {
    worker: Worker,
}

impl Lifecycle for Recovers {
    type Output = ();

    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        self.worker.preloop(cx)
    }

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        self.worker.main_loop(cx)
    }

    fn result(&mut self, cx: &mut Context) -> Result<(), BoxError> {
        self.worker.result(cx)
    }

    fn error(&mut self, _err: ProcessError, _cx: &mut Context) -> Result<(), ProcessError> {
        let line = format!("error {} {}", self.worker.name, std::process::id());
        self.worker
            .log(&line)
            .map_err(|e| ProcessError::Io(e.to_string()))
    }
}

/// The OS pids logged by `error` runs of `name`, in order.
fn error_pids(dir: &Scratch, name: &str) -> Vec<u32> {
    log_lines(dir)
        .iter()
        .filter_map(|l| {
            let mut f = l.split(' ');
            (f.next() == Some("error") && f.next() == Some(name))
                .then(|| f.next().unwrap().parse().unwrap())
        })
        .collect()
}

fn log_lines(dir: &Scratch) -> Vec<String> {
    std::fs::read_to_string(dir.file("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The OS pids logged by starts of `name`, in order.
fn started_pids(dir: &Scratch, name: &str) -> Vec<u32> {
    log_lines(dir)
        .iter()
        .filter_map(|l| {
            let mut f = l.split(' ');
            (f.next() == Some("start") && f.next() == Some(name))
                .then(|| f.next().unwrap().parse().unwrap())
        })
        .collect()
}

/// Polls `cond` until it holds; panics after a generous limit.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until `name` has logged `count` starts.
fn await_starts(dir: &Scratch, name: &str, count: usize) {
    eventually(&format!("{count} starts of {name}"), || {
        started_pids(dir, name).len() >= count
    });
}

/// The workers' names in the order of the start lines of the log.
fn start_lines(dir: &Scratch) -> Vec<String> {
    log_lines(dir)
        .iter()
        .filter(|l| l.starts_with("start"))
        .map(|l| l.split(' ').nth(1).unwrap().to_owned())
        .collect()
}

fn child<'a>(children: &'a [ChildInfo], name: &str) -> &'a ChildInfo {
    children
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no child `{name}` in {children:?}"))
}

fn info(sup: &SupervisorHandle, name: &str) -> ChildInfo {
    child(&sup.which_children(), name).clone()
}

fn sigkill(os_pid: u32) {
    let pid = i32::try_from(os_pid).unwrap();
    // SAFETY: a plain signal to a process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
}

/// Waits until the worker running as `os_pid` has logged its start (so that a kill
/// from now on finds it past its `preloop`).
fn await_logged(dir: &Scratch, os_pid: u32) {
    let tag = format!(" {os_pid} ");
    eventually(&format!("{os_pid} logged its start"), || {
        log_lines(dir)
            .iter()
            .any(|l| l.starts_with("start") && l.contains(&tag))
    });
}

/// SIGKILLs the running worker `name` and waits until it runs again under a new pid
/// and has logged its start; returns its new info.
fn kill_and_await_restart(sup: &SupervisorHandle, dir: &Scratch, name: &str) -> ChildInfo {
    await_logged(dir, info(sup, name).os_pid.expect("the child runs"));
    let restarted = kill_and_await_new_pid(sup, name);
    await_logged(dir, restarted.os_pid.unwrap());
    restarted
}

/// SIGKILLs the running child `name` and waits until it runs again under a new pid;
/// returns its new info.
fn kill_and_await_new_pid(sup: &SupervisorHandle, name: &str) -> ChildInfo {
    let before = info(sup, name);
    sigkill(before.os_pid.expect("the child runs"));
    await_new_pid(sup, name, &before)
}

/// Waits until the child `name` runs under another pid than `before`'s; returns its
/// new info.
fn await_new_pid(sup: &SupervisorHandle, name: &str, before: &ChildInfo) -> ChildInfo {
    let mut after = None;
    eventually(&format!("`{name}` restarted"), || {
        let now = info(sup, name);
        let restarted = now.pid.is_some() && now.pid != before.pid;
        after = Some(now);
        restarted
    });
    after.unwrap()
}

/// A supervisor of one worker, logging as `c` in its own directory and named
/// `<test>.c`, restarted as `restart` says: the set-up of the restart-type cases.
fn one_child(test: &str, restart: Restart) -> (Scratch, String, SupervisorHandle) {
    let dir = Scratch::new(test);
    let name = format!("{test}.c");
    let sup = quick(Strategy::OneForOne)
        .child(ChildSpec::new(name.clone(), Worker::new(&dir, "c")).restart(restart))
        .start()
        .unwrap();
    (dir, name, sup)
}

/// Waits until the child `name` no longer runs.
fn await_down(sup: &SupervisorHandle, name: &str) {
    eventually(&format!("`{name}` down"), || {
        sup.which_children()
            .iter()
            .find(|c| c.name == name)
            .is_none_or(|c| c.pid.is_none())
    });
}

fn quick(strategy: Strategy) -> Supervisor {
    Supervisor::new(strategy)
        .intensity(2, Duration::from_secs(3600))
        .backoff(Duration::from_millis(1), Duration::from_millis(20))
}

#[test]
fn sup_start_normal() {
    let dir = Scratch::new("sup_start_normal");
    let sup = quick(Strategy::OneForOne)
        .child(ChildSpec::new("sup_start_normal.a", Worker::new(&dir, "a")))
        .child(ChildSpec::new("sup_start_normal.b", Worker::new(&dir, "b")))
        .start()
        .unwrap();
    let children = sup.which_children();
    let names: Vec<&str> = children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["sup_start_normal.a", "sup_start_normal.b"]);
    for c in &children {
        assert!(c.pid.is_some() && c.os_pid.is_some(), "{c:?}");
        assert_eq!(c.restarts, 0);
        // Registered in the node under its name while it runs.
        assert_eq!(node::whereis(&c.name), c.pid);
    }
    sup.stop();
    assert_eq!(sup.wait(), Ok(()));
    for c in &children {
        assert!(reaped(c.os_pid.unwrap()));
        assert_eq!(node::whereis(&c.name), None);
    }
    assert!(sup.which_children().iter().all(|c| c.pid.is_none()));
}

#[test]
fn sup_start_map_faulty_specs() {
    let dir = Scratch::new("sup_start_faulty");
    let e = quick(Strategy::OneForOne)
        .child(ChildSpec::new("sup_start_faulty.a", Worker::new(&dir, "a")))
        .child(ChildSpec::new("sup_start_faulty.a", Worker::new(&dir, "b")))
        .start()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid configuration: two children of the supervisor are named `sup_start_faulty.a`"
    );
    // Nothing was started.
    assert!(log_lines(&dir).is_empty());

    let holder = quick(Strategy::OneForOne)
        .child(ChildSpec::new(
            "sup_start_faulty.held",
            Worker::new(&dir, "h"),
        ))
        .start()
        .unwrap();
    let e = quick(Strategy::OneForOne)
        .child(ChildSpec::new(
            "sup_start_faulty.held",
            Worker::new(&dir, "x"),
        ))
        .start()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid configuration: child `sup_start_faulty.held` of the supervisor: the name \
         is registered in the node already"
    );
    holder.stop();
}

#[test]
fn sup_start_fail() {
    // The second child cannot start: the first is stopped again, and `start` fails
    // with the child's error.
    let dir = Scratch::new("sup_start_fail");
    let bad = Worker {
        fail_at_start: true,
        ..Worker::new(&dir, "bad")
    };
    let e = quick(Strategy::OneForOne)
        .child(ChildSpec::new(
            "sup_start_fail.good",
            Worker::new(&dir, "good"),
        ))
        .child(ChildSpec::new("sup_start_fail.bad", bad))
        .start();
    // The bad child starts (its process runs) and then fails: that is a restart, not
    // a failed start, as for an OTP child whose init succeeded and that exits at once.
    let sup = e.expect("both children start");
    let err = sup.wait().unwrap_err();
    assert!(
        err.to_string().contains("child `sup_start_fail.bad`"),
        "{err}"
    );
    let good = started_pids(&dir, "good");
    assert!(good.iter().all(|&p| reaped(p)), "{good:?}");
}

#[test]
fn sup_stop_infinity() {
    // Stopped in reverse start order, each after the one started after it ended.
    let dir = Scratch::new("sup_stop_infinity");
    let names = ["a", "b", "c"];
    let mut sup = quick(Strategy::OneForOne);
    for n in names {
        sup = sup.child(ChildSpec::new(
            format!("sup_stop_infinity.{n}"),
            Worker::new(&dir, n),
        ));
    }
    let sup = sup.start().unwrap();
    let pids: Vec<u32> = sup
        .which_children()
        .iter()
        .map(|c| c.os_pid.unwrap())
        .collect();
    sup.stop();
    let stops: Vec<String> = log_lines(&dir)
        .into_iter()
        .filter(|l| l.starts_with("stop"))
        .collect();
    assert_eq!(stops, ["stop c", "stop b", "stop a"]);
    assert!(pids.iter().all(|&p| reaped(p)));
}

#[test]
fn sup_stop_timeout() {
    // A child that ignores the stop is killed once its `on_finish` limit has passed;
    // the others still stop cleanly, and nothing outlives the supervisor.
    let dir = Scratch::new("sup_stop_timeout");
    let sup = quick(Strategy::OneForOne)
        .child(ChildSpec::new(
            "sup_stop_timeout.ok",
            Worker::new(&dir, "ok"),
        ))
        .child(ChildSpec::new("sup_stop_timeout.stubborn", Stubborn))
        .start()
        .unwrap();
    await_starts(&dir, "ok", 1);
    let pids: Vec<u32> = sup
        .which_children()
        .iter()
        .map(|c| c.os_pid.unwrap())
        .collect();
    sup.stop();
    assert_eq!(sup.wait(), Ok(()));
    let stops: Vec<String> = log_lines(&dir)
        .into_iter()
        .filter(|l| l.starts_with("stop"))
        .collect();
    // The stubborn one did not block the others' stop.
    assert_eq!(stops, ["stop ok"]);
    assert!(pids.iter().all(|&p| reaped(p)));
}

#[test]
fn permanent_normal() {
    let (_dir, name, sup) = one_child("permanent_normal", Restart::Permanent);
    let name = name.as_str();
    let before = info(&sup, name);
    node::send(before.pid.unwrap(), &Cmd::Finish).unwrap();
    await_new_pid(&sup, name, &before);
    assert_eq!(info(&sup, name).restarts, 1);
    // The name follows the new process.
    assert_eq!(node::whereis(name), info(&sup, name).pid);
}

#[test]
fn transient_normal() {
    let (dir, name, sup) = one_child("transient_normal", Restart::Transient);
    let name = name.as_str();
    let pid = info(&sup, name).pid.unwrap();
    node::send(pid, &Cmd::Finish).unwrap();
    await_down(&sup, name);
    // Listed, not running, not restarted.
    let c = info(&sup, name);
    assert_eq!((c.pid, c.restarts), (None, 0));
    assert_eq!(node::whereis(name), None);
    assert_eq!(started_pids(&dir, "c").len(), 1);
    assert!(
        sup.wait_timeout(Duration::ZERO).is_none(),
        "still supervising"
    );
}

#[test]
fn temporary_normal() {
    let (dir, name, sup) = one_child("temporary_normal", Restart::Temporary);
    let name = name.as_str();
    node::send(info(&sup, name).pid.unwrap(), &Cmd::Finish).unwrap();
    eventually("forgotten", || sup.which_children().is_empty());
    assert_eq!(started_pids(&dir, "c").len(), 1);
}

/// Ends the child `name` with `node::exit(pid, Shutdown)`.
fn shut_down(sup: &SupervisorHandle, name: &str) -> ChildInfo {
    let before = info(sup, name);
    node::exit(before.pid.unwrap(), ExitReason::Shutdown);
    before
}

#[test]
fn permanent_shutdown() {
    let (_dir, name, sup) = one_child("permanent_shutdown", Restart::Permanent);
    let name = name.as_str();
    let before = shut_down(&sup, name);
    await_new_pid(&sup, name, &before);
    assert_eq!(info(&sup, name).restarts, 1);
}

#[test]
fn transient_shutdown() {
    let (dir, name, sup) = one_child("transient_shutdown", Restart::Transient);
    let name = name.as_str();
    await_starts(&dir, "c", 1);
    shut_down(&sup, name);
    await_down(&sup, name);
    assert_eq!(info(&sup, name).restarts, 0);
    assert_eq!(started_pids(&dir, "c").len(), 1);
}

#[test]
fn temporary_shutdown() {
    let (_dir, name, sup) = one_child("temporary_shutdown", Restart::Temporary);
    let name = name.as_str();
    shut_down(&sup, name);
    eventually("forgotten", || sup.which_children().is_empty());
}

#[test]
fn permanent_abnormal() {
    let (dir, name, sup) = one_child("permanent_abnormal", Restart::Permanent);
    let name = name.as_str();
    let old = info(&sup, name);
    let new = kill_and_await_restart(&sup, &dir, name);
    assert_eq!(new.restarts, 1);
    assert!(reaped(old.os_pid.unwrap()));
    // `whereis` finds the new process, which started from the original state.
    assert_eq!(node::whereis(name), new.pid);
    await_starts(&dir, "c", 2);
    let runs: Vec<String> = log_lines(&dir)
        .iter()
        .filter_map(|l| {
            l.strip_prefix("start c ")
                .map(|r| r.split(' ').nth(1).unwrap().into())
        })
        .collect();
    assert_eq!(runs, ["1", "1"]);
}

#[test]
fn transient_abnormal() {
    let (_dir, name, sup) = one_child("transient_abnormal", Restart::Transient);
    let name = name.as_str();
    // A failure by error this time (the SIGKILL case is `permanent_abnormal`).
    let before = info(&sup, name);
    node::send(before.pid.unwrap(), &Cmd::Fail).unwrap();
    await_new_pid(&sup, name, &before);
    assert_eq!(info(&sup, name).restarts, 1);
}

#[test]
fn supervised_error_hook_not_run_after_sigkill() {
    // A supervised child killed on its last life is restarted at once: no fresh child
    // runs its `error` first (which here would recover, so that this transient child
    // would count as delivered and stay down).
    let test = "supervised_error_hook_not_run_after_sigkill";
    let dir = Scratch::new(test);
    let name = format!("{test}.c");
    let sup = quick(Strategy::OneForOne)
        .child(
            ChildSpec::new(
                name.clone(),
                Recovers {
                    worker: Worker::new(&dir, "c"),
                },
            )
            .restart(Restart::Transient),
        )
        .start()
        .unwrap();
    let restarted = kill_and_await_restart(&sup, &dir, &name);
    assert_eq!(restarted.restarts, 1);
    assert_eq!(started_pids(&dir, "c").len(), 2);
    assert_eq!(error_pids(&dir, "c"), Vec::<u32>::new());
}

#[test]
fn supervised_error_hook_runs_after_an_error() {
    // A section's error on the last life: `error` runs in the same child before it
    // reports, as for any process, and its answer is the child's end.
    let test = "supervised_error_hook_runs_after_an_error";
    let dir = Scratch::new(test);
    let name = format!("{test}.c");
    let sup = quick(Strategy::OneForOne)
        .child(ChildSpec::new(
            name.clone(),
            Recovers {
                worker: Worker::new(&dir, "c"),
            },
        ))
        .start()
        .unwrap();
    let before = info(&sup, &name);
    await_logged(&dir, before.os_pid.unwrap());
    node::send(before.pid.unwrap(), &Cmd::Fail).unwrap();
    await_new_pid(&sup, &name, &before);
    assert_eq!(error_pids(&dir, "c"), [before.os_pid.unwrap()]);
}

#[test]
fn temporary_abnormal() {
    let (dir, name, sup) = one_child("temporary_abnormal", Restart::Temporary);
    let name = name.as_str();
    await_starts(&dir, "c", 1);
    sigkill(info(&sup, name).os_pid.unwrap());
    eventually("forgotten", || sup.which_children().is_empty());
    assert_eq!(started_pids(&dir, "c").len(), 1);
}

#[test]
fn temporary_bystander() {
    // A temporary child stopped because a sibling restarted is not started again.
    for (strategy, label) in [
        (Strategy::OneForAll, "temporary_bystander.all"),
        (Strategy::RestForOne, "temporary_bystander.rest"),
    ] {
        let dir = Scratch::new(label);
        let first = format!("{label}.c1");
        let sup = quick(strategy)
            .child(ChildSpec::new(first.as_str(), Worker::new(&dir, "c1")))
            .child(
                ChildSpec::new(format!("{label}.c2"), Worker::new(&dir, "c2"))
                    .restart(Restart::Temporary),
            )
            .start()
            .unwrap();
        await_starts(&dir, "c2", 1);
        let bystander = info(&sup, &format!("{label}.c2")).os_pid.unwrap();
        node::send(info(&sup, &first).pid.unwrap(), &Cmd::Finish).unwrap();
        eventually("only c1 left, running", || {
            let children = sup.which_children();
            children.len() == 1 && children[0].name == first && children[0].pid.is_some()
        });
        assert!(reaped(bystander));
        assert_eq!(started_pids(&dir, "c2").len(), 1);
        assert!(
            sup.wait_timeout(Duration::ZERO).is_none(),
            "still supervising"
        );
    }
}

#[test]
fn multiple_restarts() {
    // Restarts spaced wider than the period never trip an intensity of 1.
    let dir = Scratch::new("multiple_restarts");
    let name = "multiple_restarts.c";
    let sup = Supervisor::new(Strategy::OneForOne)
        .intensity(1, Duration::from_millis(200))
        .child(ChildSpec::new(name, Worker::new(&dir, "c")))
        .start()
        .unwrap();
    for n in 1..=4 {
        assert_eq!(kill_and_await_restart(&sup, &dir, name).restarts, n);
        std::thread::sleep(Duration::from_millis(600));
    }
    assert!(
        sup.wait_timeout(Duration::ZERO).is_none(),
        "still supervising"
    );
}

#[test]
fn one_for_one() {
    let dir = Scratch::new("one_for_one");
    let (c1, c2) = ("one_for_one.c1", "one_for_one.c2");
    let sup = quick(Strategy::OneForOne)
        .child(ChildSpec::new(c1, Worker::new(&dir, "c1")))
        .child(ChildSpec::new(c2, Worker::new(&dir, "c2")))
        .start()
        .unwrap();
    let other = info(&sup, c2);
    kill_and_await_restart(&sup, &dir, c1);
    // The sibling was left alone.
    assert_eq!(info(&sup, c2), other);

    // The restart intensity: 2 restarts allowed, the third gives up.
    kill_and_await_restart(&sup, &dir, c2);
    sigkill(info(&sup, c1).os_pid.unwrap());
    let err = sup.wait().unwrap_err();
    assert!(
        matches!(&err, SupervisorError::Intensity { child, restarts: 3, max: 2, .. } if child == c1),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the supervisor gave up: 3 restarts within 3600s (at most 2 allowed), the last of \
         child `one_for_one.c1`, which ended with error: the process crashed in main_loop \
         with signal 9 (SIGKILL)"
    );
    // Every child was stopped.
    await_starts(&dir, "c1", 2);
    await_starts(&dir, "c2", 2);
    let all: Vec<u32> = ["c1", "c2"]
        .iter()
        .flat_map(|n| started_pids(&dir, n))
        .collect();
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|&p| reaped(p)), "{all:?}");
    assert!(sup.which_children().iter().all(|c| c.pid.is_none()));
}

#[test]
fn one_for_one_escalation() {
    // A child that can never start exhausts the intensity; its sibling is stopped.
    let dir = Scratch::new("one_for_one_escalation");
    let bad = Worker {
        fail_at_start: true,
        ..Worker::new(&dir, "c1")
    };
    let sup = Supervisor::new(Strategy::OneForOne)
        .intensity(4, Duration::from_secs(3600))
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .child(ChildSpec::new("one_for_one_escalation.c1", bad))
        .child(ChildSpec::new(
            "one_for_one_escalation.c2",
            Worker::new(&dir, "c2"),
        ))
        .start()
        .unwrap();
    let err = sup.wait().unwrap_err();
    assert_eq!(
        err.to_string(),
        "the supervisor gave up: 5 restarts within 3600s (at most 4 allowed), the last of \
         child `one_for_one_escalation.c1`, which ended with error: PreloopError: refuses \
         to start"
    );
    assert_eq!(started_pids(&dir, "c1").len(), 5);
    let c2 = started_pids(&dir, "c2");
    assert_eq!(c2.len(), 1);
    assert!(reaped(c2[0]));
}

#[test]
fn one_for_all() {
    let dir = Scratch::new("one_for_all");
    let (c1, c2) = ("one_for_all.c1", "one_for_all.c2");
    let sup = quick(Strategy::OneForAll)
        .child(ChildSpec::new(c1, Worker::new(&dir, "c1")))
        .child(ChildSpec::new(c2, Worker::new(&dir, "c2")))
        .start()
        .unwrap();
    let old2 = info(&sup, c2);
    kill_and_await_restart(&sup, &dir, c1);
    eventually("c2 restarted too", || {
        let now = info(&sup, c2);
        now.pid.is_some() && now.pid != old2.pid
    });
    assert!(reaped(old2.os_pid.unwrap()));
    assert_eq!(info(&sup, c2).restarts, 1);
    // The sibling was stopped (its on_finish ran), not killed.
    assert!(log_lines(&dir).contains(&"stop c2".to_owned()));
    await_starts(&dir, "c1", 2);
    await_starts(&dir, "c2", 2);

    kill_and_await_restart(&sup, &dir, c2);
    let c1_now = info(&sup, c1).os_pid.unwrap();
    await_logged(&dir, c1_now);
    sigkill(c1_now);
    assert!(matches!(
        sup.wait(),
        Err(SupervisorError::Intensity { restarts: 3, .. })
    ));
}

#[test]
fn one_for_all_escalation() {
    // c2 can never start: each of its failures restarts both (c1 first), until the
    // supervisor gives up and stops c1.
    let dir = Scratch::new("one_for_all_escalation");
    let c2 = Worker::new(&dir, "c2");
    let sup = Supervisor::new(Strategy::OneForAll)
        .intensity(4, Duration::from_secs(3600))
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .child(ChildSpec::new(
            "one_for_all_escalation.c1",
            Worker::new(&dir, "c1"),
        ))
        .child(ChildSpec::new(
            "one_for_all_escalation.c2",
            Worker {
                fail_at_start: true,
                ..c2
            },
        ))
        .start()
        .unwrap();
    let err = sup.wait().unwrap_err();
    assert!(
        err.to_string()
            .contains("child `one_for_all_escalation.c2`, which ended with error: PreloopError"),
        "{err}"
    );
    let pids: Vec<u32> = ["c1", "c2"]
        .iter()
        .flat_map(|n| started_pids(&dir, n))
        .collect();
    assert!(pids.iter().all(|&p| reaped(p)));
    // c1 was restarted along with c2 each time. (Its log may show fewer starts: a run
    // stopped before its `preloop` logs nothing.)
    let restarts: Vec<u32> = sup.which_children().iter().map(|c| c.restarts).collect();
    assert_eq!(restarts, [4, 4]);
}

#[test]
fn rest_for_one() {
    let dir = Scratch::new("rest_for_one");
    let names = ["rest_for_one.c1", "rest_for_one.c2", "rest_for_one.c3"];
    let mut sup = quick(Strategy::RestForOne);
    for (i, n) in names.iter().enumerate() {
        sup = sup.child(ChildSpec::new(
            *n,
            Worker::new(&dir, &format!("c{}", i + 1)),
        ));
    }
    let sup = sup.start().unwrap();
    await_starts(&dir, "c3", 1);
    let before = sup.which_children();
    kill_and_await_restart(&sup, &dir, names[1]);
    eventually("c3 restarted", || {
        let now = info(&sup, names[2]);
        now.pid.is_some() && now.pid != before[2].pid
    });
    let after = sup.which_children();
    // c1, started before the failed one, kept running; c2 and c3 are new.
    assert_eq!(after[0], before[0]);
    assert_eq!(
        after.iter().map(|c| c.restarts).collect::<Vec<_>>(),
        [0, 1, 1]
    );
    await_starts(&dir, "c2", 2);
    await_starts(&dir, "c3", 2);
    let mut starts = start_lines(&dir);
    starts.sort();
    assert_eq!(starts, ["c1", "c2", "c2", "c3", "c3"]);
    // Only c3 was stopped (c2 was killed).
    let stops: Vec<String> = log_lines(&dir)
        .into_iter()
        .filter(|l| l.starts_with("stop"))
        .collect();
    assert_eq!(stops, ["stop c3"]);
}

#[test]
fn rest_for_one_escalation() {
    let dir = Scratch::new("rest_for_one_escalation");
    let sup = Supervisor::new(Strategy::RestForOne)
        .intensity(4, Duration::from_secs(3600))
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .child(ChildSpec::new(
            "rest_for_one_escalation.c1",
            Worker::new(&dir, "c1"),
        ))
        .child(ChildSpec::new(
            "rest_for_one_escalation.c2",
            Worker {
                fail_at_start: true,
                ..Worker::new(&dir, "c2")
            },
        ))
        .start()
        .unwrap();
    let err = sup.wait().unwrap_err();
    assert!(
        err.to_string()
            .contains("child `rest_for_one_escalation.c2`"),
        "{err}"
    );
    // c1 came before the failing child: never restarted, stopped at the end.
    let c1 = started_pids(&dir, "c1");
    assert_eq!(c1.len(), 1);
    assert!(reaped(c1[0]));
}

#[test]
fn hanging_restart_loop() {
    // A child that fails at once, under a large intensity: the backoff spaces its
    // restarts (10 ms, 20, 40, then 80 at most), so the supervisor never spins.
    let dir = Scratch::new("hanging_restart_loop");
    let sup = Supervisor::new(Strategy::OneForOne)
        .intensity(10_000, Duration::from_secs(3600))
        .backoff(Duration::from_millis(10), Duration::from_millis(80))
        .child(ChildSpec::new(
            "hanging_restart_loop.c",
            Worker {
                fail_at_start: true,
                ..Worker::new(&dir, "c")
            },
        ))
        .start()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    sup.stop();
    // The starts may begin at 0 ms (the first), 0 (the restart after a quiet
    // period), 10, 30, 70, then every 80 ms: 14 within 800 ms.
    let starts = started_pids(&dir, "c").len();
    assert!((2..=14).contains(&starts), "{starts} starts");
}

/// A worker's node mailbox test: the `which_children` list keeps the restart counts.
#[test]
fn count_children() {
    let dir = Scratch::new("count_children");
    let sup = quick(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(3600))
        .child(ChildSpec::new("count_children.a", Worker::new(&dir, "a")))
        .child(
            ChildSpec::new("count_children.b", Worker::new(&dir, "b")).restart(Restart::Transient),
        )
        .start()
        .unwrap();
    kill_and_await_restart(&sup, &dir, "count_children.a");
    kill_and_await_restart(&sup, &dir, "count_children.a");
    node::send(info(&sup, "count_children.b").pid.unwrap(), &Cmd::Finish).unwrap();
    await_down(&sup, "count_children.b");
    let counts: Vec<(String, bool, u32)> = sup
        .which_children()
        .into_iter()
        .map(|c| (c.name, c.pid.is_some(), c.restarts))
        .collect();
    assert_eq!(
        counts,
        [
            ("count_children.a".to_owned(), true, 2),
            ("count_children.b".to_owned(), false, 0)
        ]
    );
}

/// The supervision tree across OS processes: a supervisor running in a child process,
/// under a supervisor in this one.
fn tree_sup(dir: &Scratch, label: &str, workers: &[&str]) -> Supervisor {
    let mut inner = quick(Strategy::OneForOne).intensity(10, Duration::from_secs(3600));
    for w in workers {
        inner = inner.child(ChildSpec::new(format!("{label}.{w}"), Worker::new(dir, w)));
    }
    quick(Strategy::OneForOne).child(ChildSpec::supervisor(format!("{label}.sub"), inner))
}

#[test]
fn tree() {
    let dir = Scratch::new("tree");
    let sup = tree_sup(&dir, "tree", &["w1", "w2"]).start().unwrap();
    eventually("both workers registered", || {
        node::whereis("tree.w1").is_some() && node::whereis("tree.w2").is_some()
    });
    let first_w1 = node::whereis("tree.w1").unwrap();
    await_starts(&dir, "w1", 1);
    await_starts(&dir, "w2", 1);
    let workers: Vec<u32> = ["w1", "w2"]
        .iter()
        .flat_map(|n| started_pids(&dir, n))
        .collect();
    assert_eq!(workers.len(), 2);

    // SIGKILL of the middle supervisor's process from outside: its children die with
    // it, and the top supervisor restarts the whole subtree.
    let sub = kill_and_await_new_pid(&sup, "tree.sub");
    assert_eq!(sub.restarts, 1);
    for &w in &workers {
        assert!(
            gone_within(w, Duration::from_secs(10)),
            "worker {w} outlived its supervisor"
        );
    }
    eventually("workers restarted", || {
        started_pids(&dir, "w1").len() == 2 && started_pids(&dir, "w2").len() == 2
    });
    eventually("w1 registered again", || {
        node::whereis("tree.w1").is_some_and(|p| p != first_w1)
    });

    // Stopping the top stops everything below.
    let all: Vec<u32> = ["w1", "w2"]
        .iter()
        .flat_map(|n| started_pids(&dir, n))
        .collect();
    sup.stop();
    assert!(reaped(sub.os_pid.unwrap()));
    for w in all {
        assert!(
            gone_within(w, Duration::from_secs(10)),
            "worker {w} outlived the tree"
        );
    }
    assert_eq!(node::whereis("tree.w1"), None);
}

#[test]
fn tree_escalation() {
    // The child supervisor gives up (its worker cannot start): its process fails with
    // that error, and the top supervisor restarts the subtree, until it gives up too.
    let dir = Scratch::new("tree_escalation");
    let inner = Supervisor::new(Strategy::OneForOne)
        .intensity(1, Duration::from_secs(3600))
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .child(ChildSpec::new(
            "tree_escalation.w",
            Worker {
                fail_at_start: true,
                ..Worker::new(&dir, "w")
            },
        ));
    let sup = Supervisor::new(Strategy::OneForOne)
        .intensity(1, Duration::from_secs(3600))
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .child(ChildSpec::supervisor("tree_escalation.sub", inner))
        .start()
        .unwrap();
    let err = sup.wait().unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "the supervisor gave up: 2 restarts within 3600s (at most 1 allowed), the last \
             of child `tree_escalation.sub`, which ended with error: MainLoopError: "
        ) && text.contains("child `tree_escalation.w`"),
        "{text}"
    );
    // Two runs of the subtree, each starting the worker twice.
    assert_eq!(started_pids(&dir, "w").len(), 4);
}

#[test]
fn tree_under_fire() {
    // A shorter run of the bench's tree figure: 3 supervisors and 12 workers, one
    // worker killed every 50 ms for 2 s. No restart is missed, no worker outlives the
    // tree, and no supervisor gives up at a rate under its limit (at most 20 kills in
    // any second, against 25 allowed).
    let dir = Scratch::new("tree_under_fire");
    let sub = |s: usize| {
        let mut sup = Supervisor::new(Strategy::OneForOne).intensity(25, Duration::from_secs(1));
        for w in 0..6 {
            sup = sup.child(ChildSpec::new(
                format!("tree_under_fire.{s}.{w}"),
                Worker::new(&dir, &format!("w{s}.{w}")),
            ));
        }
        sup
    };
    let root = Supervisor::new(Strategy::OneForOne)
        .intensity(0, Duration::from_secs(1))
        .child(ChildSpec::supervisor("tree_under_fire.sub0", sub(0)))
        .child(ChildSpec::supervisor("tree_under_fire.sub1", sub(1)))
        .start()
        .unwrap();
    let names: Vec<String> = (0..2)
        .flat_map(|s| (0..6).map(move |w| format!("w{s}.{w}")))
        .collect();
    for n in &names {
        await_starts(&dir, n, 1);
    }
    let mut killed = std::collections::HashSet::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64 ^ u64::from(std::process::id());
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let name = &names[usize::try_from(seed % names.len() as u64).unwrap()];
        let latest = *started_pids(&dir, name).last().unwrap();
        // Its replacement has not logged its start yet: nothing to kill this tick.
        if killed.insert(latest) {
            sigkill(latest);
        }
    }
    // Every killed worker came back.
    eventually("every worker running again", || {
        names.iter().all(|n| {
            let pids = started_pids(&dir, n);
            !killed.contains(pids.last().unwrap())
        })
    });
    assert!(
        root.wait_timeout(Duration::ZERO).is_none(),
        "the top gave up"
    );
    assert!(
        root.which_children()
            .iter()
            .all(|c| c.restarts == 0 && c.pid.is_some()),
        "a child supervisor gave up: {:?}",
        root.which_children()
    );
    let all: Vec<u32> = names.iter().flat_map(|n| started_pids(&dir, n)).collect();
    assert_eq!(
        all.len(),
        names.len() + killed.len(),
        "every kill made one restart"
    );
    root.stop();
    for pid in all {
        assert!(
            gone_within(pid, Duration::from_secs(10)),
            "worker {pid} outlived the tree"
        );
    }
}

#[test]
fn sigterm_stops_a_supervision_tree() {
    // SIGTERM to a program whose `main` waits on a supervisor: the graceful shutdown
    // stops every process of the tree (each runs its `on_finish`), the supervisors
    // restart none of them, and the program exits with 143.
    let dir = Scratch::new("supervised_term");
    let mut program = std::process::Command::new(env!("CARGO_BIN_EXE_supervised_term"))
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = process_runtime_tests::wait_for_file(&dir.file("ready"), Duration::from_secs(30));
    if ready.is_none() {
        let _ = program.kill();
        panic!("the program never got ready");
    }
    let pid = libc::pid_t::try_from(program.id()).unwrap();
    // SAFETY: a plain signal to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = program.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = program.kill();
            panic!("the program did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(status.code(), Some(143));
    assert!(!dir.file("main.returned").exists());
    let starts = std::fs::read_to_string(dir.file("starts")).unwrap();
    let runs: Vec<(&str, &str)> = starts.lines().map(|l| l.split_once(' ').unwrap()).collect();
    // Nobody was restarted, every worker ran its on_finish and is gone.
    assert_eq!(runs.len(), 2, "{starts}");
    for (name, pid) in runs {
        assert!(
            dir.file(&format!("{name}.{pid}.finished")).exists(),
            "{name} was not stopped gracefully"
        );
        assert!(gone_within(pid.parse().unwrap(), Duration::from_secs(10)));
    }
}
