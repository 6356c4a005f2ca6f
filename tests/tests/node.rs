//! The node, end to end: pids, `node::send`/`node::receive`, the registry and monitors,
//! with real child processes. Where a test ports a case of Erlang/OTP's own suites
//! (`erts/emulator/test/process_SUITE.erl`, `monitor_SUITE.erl`), it has that case's
//! name.
//!
//! Every process here has a section timeout, so that a test that fails by waiting for
//! ever ends as a failure instead of a hang.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use process_runtime::node::{self, Down, Exit, ExitReason, MonitorRef, Pid, RegistryError};
use process_runtime::prelude::*;
use process_runtime::Exit as ExitStatus;
use process_runtime_tests::describe_descriptors;
use serde::{Deserialize, Serialize};

const SECOND: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(20);

/// The root's mailbox is one for the whole test binary: tests that use it take turns.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------
// Pids.

/// What a process knows of its own identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Ids {
    id: Pid,
    parent_id: Pid,
    self_pid: Pid,
    os_pid: Option<u32>,
    parent_os_pid: Option<u32>,
    children: Vec<Ids>,
}

/// Reports its ids, after starting `nest` levels of processes below it.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Whoami {
    nest: u32,
}

impl Lifecycle for Whoami {
    type Output = Ids;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<Ids, BoxError> {
        let mut children = Vec::new();
        if self.nest > 0 {
            let child = Whoami {
                nest: self.nest - 1,
            };
            for _ in 0..2 {
                let h = child.start()?;
                let ids = h.result()?;
                assert_eq!(ids.id, h.id());
                children.push(ids);
            }
        }
        Ok(Ids {
            id: cx.id(),
            parent_id: cx.parent_id(),
            self_pid: node::self_pid(),
            os_pid: node::self_pid().os_pid(),
            parent_os_pid: cx.parent_id().os_pid(),
            children,
        })
    }
}

/// Pids are paths from the root (`<0.0>`), the same in the handle, the context and
/// `node::self_pid()`; a child's parent is the process that started it, at every level;
/// no number is given out twice.
#[test]
fn self_pid_is_a_path_from_the_root() {
    let _serial = serial();
    assert_eq!(node::self_pid(), Pid::ROOT);
    assert_eq!(Pid::ROOT.to_string(), "<0.0>");
    assert_eq!(Pid::ROOT.os_pid(), Some(std::process::id()));
    let h = Whoami { nest: 2 }.start().unwrap();
    let os_pid = h.pid();
    assert_eq!(h.id().os_pid(), Some(os_pid));
    let ids = h.result().unwrap();
    assert_eq!(ids.id, h.id());
    assert_eq!(ids.self_pid, h.id());
    assert_eq!(ids.parent_id, Pid::ROOT);
    assert_eq!(ids.os_pid, Some(os_pid));
    assert_eq!(ids.parent_os_pid, Some(std::process::id()));
    assert!(h.id().to_string().starts_with("<0."), "{}", h.id());
    assert_eq!(h.id().parent(), Some(Pid::ROOT));
    // Ended: its OS pid is no longer known.
    assert_eq!(h.id().os_pid(), None);

    let mut seen = HashSet::new();
    fn walk(ids: &Ids, seen: &mut HashSet<Pid>) {
        assert!(seen.insert(ids.id), "{} given out twice", ids.id);
        assert_eq!(ids.self_pid, ids.id);
        for child in &ids.children {
            assert_eq!(child.parent_id, ids.id);
            assert_eq!(child.id.parent(), Some(ids.id));
            assert_eq!(child.parent_os_pid, ids.os_pid);
            walk(child, seen);
        }
    }
    walk(&ids, &mut seen);
    assert_eq!(seen.len(), 1 + 2 + 4);
    let grandchild = ids.children[1].children[0].id;
    assert_eq!(grandchild.depth(), 3);
    assert_eq!(
        grandchild.to_string(),
        format!("<0.{}.2.1>", h.id().to_string()[3..].trim_end_matches('>'))
    );
}

/// A pid names the process, not an attempt: a restarted process keeps its pid.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, lives = 2, timeout.loop = "30s")]
struct CrashOnce;

impl Lifecycle for CrashOnce {
    type Output = (Pid, u32);
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        if cx.attempt() == 1 {
            std::process::abort();
        }
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<(Pid, u32), BoxError> {
        Ok((node::self_pid(), cx.attempt()))
    }
}

#[test]
fn a_pid_survives_a_restart() {
    let _serial = serial();
    let h = CrashOnce.start().unwrap();
    assert_eq!(h.result().unwrap(), (h.id(), 2));
    let other = CrashOnce.start().unwrap();
    assert_ne!(other.id(), h.id());
    other.result().unwrap();
}

// ---------------------------------------------------------------------------------
// send and receive.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Ping(u64);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Pong(u64, Pid);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Target(Pid);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Quit;

/// Answers `count` pings, each to whoever sent it, then ends.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(timeout.loop = "30s")]
struct Echoer {
    count: u64,
}

impl Lifecycle for Echoer {
    type Output = u64;
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        if self.count == 0 {
            cx.stop();
            return Ok(());
        }
        let (from, Ping(n)) = node::receive_from(LONG)?;
        node::send(from, &Pong(n, node::self_pid()))?;
        self.count -= 1;
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<u64, BoxError> {
        Ok(self.count)
    }
}

/// The root and a child, both ways, in order; the sender is known.
#[test]
fn send_and_receive_between_the_root_and_a_child() {
    let _serial = serial();
    let h = Echoer { count: 50 }.start().unwrap();
    for n in 0..50 {
        node::send(h.id(), &Ping(n)).unwrap();
    }
    for n in 0..50 {
        let (from, pong) = node::receive_from::<Pong>(LONG).unwrap();
        assert_eq!(from, h.id());
        assert_eq!(pong, Pong(n, h.id()));
    }
    assert_eq!(h.result().unwrap(), 0);
}

/// Sends a ping to the pid the root gives it, and tells the root what came back.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Relay;

impl Lifecycle for Relay {
    type Output = Pong;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<Pong, BoxError> {
        let Target(to) = node::receive(LONG)?;
        node::send(to, &Ping(7))?;
        let pong: Pong = node::receive(LONG)?;
        node::send(Pid::ROOT, &pong)?;
        Ok(pong)
    }
}

/// Siblings talk through their parent: a pid travels in a message.
#[test]
fn siblings_talk_through_their_parent() {
    let _serial = serial();
    let echo = Echoer { count: 1 }.start().unwrap();
    let relay = Relay.start().unwrap();
    node::send(relay.id(), &Target(echo.id())).unwrap();
    assert_eq!(relay.result().unwrap(), Pong(7, echo.id()));
    let (from, pong) = node::receive_from::<Pong>(LONG).unwrap();
    assert_eq!((from, pong), (relay.id(), Pong(7, echo.id())));
    assert_eq!(echo.result().unwrap(), 0);
}

/// A process with a child of its own: pings it, and lets the root ping it too
/// (through this process), until the root says it is done.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Middle;

impl Lifecycle for Middle {
    type Output = Pong;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<Pong, BoxError> {
        let child = Echoer { count: 2 }.start()?;
        node::send(child.id(), &Ping(1))?;
        let pong: Pong = node::receive(LONG)?;
        cx.tell(&Target(child.id()))?;
        // The root pings the grandchild meanwhile: this process hands it on.
        let Quit = cx.listen(LONG)?;
        assert_eq!(child.result()?, 0);
        Ok(pong)
    }
}

/// A parent and its child at the next level, and the root with its grandchild, both
/// ways: through the process between them.
#[test]
fn send_and_receive_at_any_depth() {
    let _serial = serial();
    let h = Middle.start().unwrap();
    let Target(grandchild) = h.listen(LONG).unwrap();
    assert_eq!(grandchild.parent(), Some(h.id()));
    node::send(grandchild, &Ping(2)).unwrap();
    let (from, pong) = node::receive_from::<Pong>(LONG).unwrap();
    assert_eq!((from, pong), (grandchild, Pong(2, grandchild)));
    h.tell(&Quit).unwrap();
    assert_eq!(h.result().unwrap(), Pong(1, grandchild));
}

/// Receives nothing: its mailbox fills up.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, mailbox = 2, timeout.loop = "30s")]
struct Deaf;

impl Lifecycle for Deaf {
    type Output = ();
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        let Quit = cx.listen(LONG)?;
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// A full mailbox refuses `try_send` and holds `send` back (the node's messages and the
/// pair's share its bound); a process that has ended is `NoProc`, at once, and so is
/// a pid nobody ever had.
#[test]
fn a_full_mailbox_and_a_process_that_ended() {
    let _serial = serial();
    let h = Deaf.start().unwrap();
    node::try_send(h.id(), &Ping(1)).unwrap();
    node::try_send(h.id(), &Ping(2)).unwrap();
    assert_eq!(node::try_send(h.id(), &Ping(3)), Err(SendError::Full));
    assert_eq!(h.try_tell(&Quit), Err(SendError::Full));
    // `send` waits for room that never comes, until the process is killed.
    let id = h.id();
    let waiter = std::thread::spawn(move || node::send(id, &Ping(3)));
    std::thread::sleep(Duration::from_millis(100));
    assert!(!waiter.is_finished());
    h.kill();
    assert_eq!(waiter.join().unwrap(), Err(SendError::NoProc));
    assert!(h.result().is_err());
    let start = Instant::now();
    assert_eq!(node::send(h.id(), &Ping(4)), Err(SendError::NoProc));
    assert_eq!(node::try_send(h.id(), &Ping(4)), Err(SendError::NoProc));
    assert!(start.elapsed() < SECOND);
    let never = Pid::ROOT.__child(u32::MAX - 1).unwrap();
    assert_eq!(node::send(never, &Ping(5)), Err(SendError::NoProc));
}

/// What the root sends to itself comes back; selective receive leaves other types
/// queued in order; a receive with nothing there times out.
#[test]
fn the_root_has_a_mailbox() {
    let _serial = serial();
    // Types of this test's own, so that no other test's messages are taken.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct First(u32);
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Second(u32);
    let me = node::self_pid();
    node::send(me, &First(1)).unwrap();
    node::send(me, &Second(2)).unwrap();
    node::send(me, &First(3)).unwrap();
    assert_eq!(node::receive::<Second>(Duration::ZERO), Ok(Second(2)));
    assert_eq!(node::receive_from::<First>(None), Ok((me, First(1))));
    assert_eq!(node::receive::<First>(SECOND), Ok(First(3)));
    let start = Instant::now();
    assert_eq!(
        node::receive::<First>(Duration::from_millis(50)),
        Err(RecvError::Timeout)
    );
    assert!(start.elapsed() >= Duration::from_millis(50));
}

// ---------------------------------------------------------------------------------
// The registry.

/// Waits for `Quit` (from the root, with `node::send`), then ends normally; `fail`
/// makes it end with an error instead.
#[derive(Process, Serialize, Deserialize, Default, Clone)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Sleeper {
    fail: bool,
}

impl Lifecycle for Sleeper {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        let Quit = node::receive(LONG)?;
        if self.fail {
            return Err("told to fail".into());
        }
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// SIGKILL from outside the library, as `kill -9` would.
fn kill_9(os_pid: u32) {
    let pid = libc::pid_t::try_from(os_pid).unwrap();
    // SAFETY: a plain system call on a process of ours.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
}

/// register_SUITE's `otp_8099`: register a fresh process under one name, find it, kill
/// it (here with SIGKILL from outside), over and over; the name is free again as soon
/// as the process's end is known.
#[test]
fn otp_8099() {
    let _serial = serial();
    const NAME: &str = "otp_8099_reg_proc";
    for _ in 0..20 {
        let h = Sleeper::default().start().unwrap();
        node::register(NAME, h.id()).unwrap();
        assert_eq!(node::whereis(NAME), Some(h.id()));
        assert!(node::registered().contains(&NAME.to_owned()));
        kill_9(h.pid());
        let e = h.result().unwrap_err();
        assert!(matches!(e, ProcessError::Crashed { .. }), "{e}");
        assert_eq!(node::whereis(NAME), None);
        assert!(!node::is_alive(h.id()));
    }
}

/// One name per process, one process per name, live processes only; `unregister`
/// frees a name.
#[test]
fn register_refuses_what_erlang_refuses() {
    let _serial = serial();
    let a = Sleeper::default().start().unwrap();
    let b = Sleeper::default().start().unwrap();
    node::register("a", a.id()).unwrap();
    assert_eq!(
        node::register("a", b.id()),
        Err(RegistryError::Taken {
            name: "a".into(),
            holder: a.id()
        })
    );
    assert_eq!(
        node::register("another", a.id()),
        Err(RegistryError::AlreadyNamed {
            pid: a.id(),
            name: "a".into()
        })
    );
    assert_eq!(node::register("", b.id()), Err(RegistryError::EmptyName));
    assert_eq!(
        node::unregister("nobody"),
        Err(RegistryError::NotRegistered("nobody".into()))
    );
    node::unregister("a").unwrap();
    assert_eq!(node::whereis("a"), None);
    node::register("a", b.id()).unwrap();
    node::register("root", Pid::ROOT).unwrap();
    assert_eq!(node::whereis("root"), Some(Pid::ROOT));
    for h in [&a, &b] {
        node::send(h.id(), &Quit).unwrap();
        h.result().unwrap();
    }
    assert_eq!(
        node::register("late", a.id()),
        Err(RegistryError::NoProc(a.id()))
    );
    assert_eq!(node::whereis("a"), None);
    node::unregister("root").unwrap();
    assert!(node::registered().is_empty(), "{:?}", node::registered());
}

/// Registers itself, looks a name up, and sends to what it found: the registry from a
/// child.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Named;

impl Lifecycle for Named {
    type Output = (Option<Pid>, Vec<String>);
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(Option<Pid>, Vec<String>), BoxError> {
        node::register("named", node::self_pid())?;
        let taken = node::register("named", node::self_pid());
        assert!(
            matches!(taken, Err(RegistryError::Taken { .. })),
            "{taken:?}"
        );
        let boss = node::whereis("boss");
        if let Some(boss) = boss {
            node::send(boss, &Ping(node::processes().len() as u64))?;
        }
        let Quit = node::receive(LONG)?;
        Ok((boss, node::registered()))
    }
}

#[test]
fn the_registry_from_a_child() {
    let _serial = serial();
    node::register("boss", Pid::ROOT).unwrap();
    let h = Named.start().unwrap();
    let Ping(seen) = node::receive(LONG).unwrap();
    assert!(seen >= 2, "the root and itself at least: {seen}");
    assert_eq!(node::whereis("named"), Some(h.id()));
    assert!(node::is_alive(h.id()));
    node::send(h.id(), &Quit).unwrap();
    let (boss, names) = h.result().unwrap();
    assert_eq!(boss, Some(Pid::ROOT));
    assert_eq!(names, ["boss", "named"]);
    assert_eq!(node::whereis("named"), None);
    node::unregister("boss").unwrap();
}

// ---------------------------------------------------------------------------------
// Monitors.

/// The next `Down` of `mref`, skipping notices of other monitors.
fn expect_down(mref: MonitorRef) -> Down {
    let deadline = Instant::now() + LONG;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let down: Down = node::receive(left).expect("a Down in time");
        if down.monitor == mref {
            return down;
        }
    }
}

/// No `Down` at all within a short while.
fn expect_no_down() {
    if let Ok(down) = node::receive::<Down>(Duration::from_millis(100)) {
        panic!("an unexpected notice: {down:?}");
    }
}

/// monitor_SUITE's `mon_1`: a normal end, an end with an error, a process already
/// dead (`NoProc`, at once), and a registered process found by name.
#[test]
fn mon_1() {
    let _serial = serial();
    // Normal case.
    let p2 = Sleeper::default().start().unwrap();
    let r2 = node::monitor(p2.id());
    assert_eq!(r2.owner(), Pid::ROOT);
    node::send(p2.id(), &Quit).unwrap();
    let down = expect_down(r2);
    assert_eq!(down.pid, p2.id());
    assert_eq!(down.reason, ExitReason::Normal);
    // Its end is known to all by the time the Down comes.
    assert!(!node::is_alive(p2.id()));
    assert!(!node::processes().contains(&p2.id()));
    assert!(p2.result_timeout(Duration::ZERO).is_some());

    // 'DOWN' with other reason.
    let p3 = Sleeper { fail: true }.start().unwrap();
    let r3 = node::monitor(p3.id());
    node::send(p3.id(), &Quit).unwrap();
    let down = expect_down(r3);
    let ExitReason::Error(e) = down.reason else {
        panic!("{:?}", down.reason)
    };
    assert_eq!(e, p3.result().unwrap_err());
    assert!(e.to_string().contains("told to fail"), "{e}");

    // Monitor fails because process is dead.
    let r4 = node::monitor(p3.id());
    assert_ne!(r4, r3);
    let down = expect_down(r4);
    assert_eq!((down.pid, down.reason), (p3.id(), ExitReason::NoProc));
    let never = Pid::ROOT.__child(u32::MAX - 1).unwrap();
    assert_eq!(expect_down(node::monitor(never)).reason, ExitReason::NoProc);

    // Normal case (named process).
    let p5 = Sleeper::default().start().unwrap();
    node::register("jeeves", p5.id()).unwrap();
    let r5 = node::monitor(node::whereis("jeeves").unwrap());
    node::send(p5.id(), &Quit).unwrap();
    assert_eq!(expect_down(r5).reason, ExitReason::Normal);
    assert_eq!(node::whereis("jeeves"), None);
    expect_no_down();
}

/// monitor_SUITE's `demon_2`: a second demonitor is harmless, monitoring oneself (the
/// root) brings nothing, and a demonitor before the end means no `Down`.
#[test]
fn demon_2() {
    let _serial = serial();
    let r1 = node::monitor(node::self_pid());
    assert!(node::demonitor(r1));
    assert!(!node::demonitor(r1));
    expect_no_down();

    let p4 = Sleeper::default().start().unwrap();
    let r4 = node::monitor(p4.id());
    assert!(node::demonitor(r4));
    p4.kill();
    assert_eq!(p4.result(), Err(ProcessError::Killed));
    expect_no_down();
}

/// monitor_SUITE's `demonitor_flush`: four monitors of one process; one taken back
/// before its end, one after its `Down` arrived (the `Down` is removed), one after: of
/// the four, only the untouched ones bring a `Down`. Our `demonitor` always flushes,
/// so `M4` here is taken back like `M3`.
#[test]
fn demonitor_flush() {
    let _serial = serial();
    let p = Sleeper::default().start().unwrap();
    let m1 = node::monitor(p.id());
    let m2 = node::monitor(p.id());
    let m3 = node::monitor(p.id());
    let m4 = node::monitor(p.id());
    assert!(node::demonitor(m1));
    p.kill();
    let down = expect_down(m2);
    assert_eq!(down.reason, ExitReason::Error(ProcessError::Killed));
    std::thread::sleep(Duration::from_millis(100));
    assert!(!node::demonitor(m3), "its Down had arrived");
    assert!(!node::demonitor(m4), "its Down had arrived");
    expect_no_down();
}

/// Monitors stack, each with its own `Down`; a SIGKILL from outside is a crash with
/// the signal, and the process's name is gone by the time the `Down` arrives.
#[test]
fn a_kill_9_from_outside_brings_one_down_per_monitor() {
    let _serial = serial();
    let p = Sleeper::default().start().unwrap();
    node::register("victim", p.id()).unwrap();
    let refs: Vec<MonitorRef> = (0..3).map(|_| node::monitor(p.id())).collect();
    kill_9(p.pid());
    for mref in refs {
        let down = expect_down(mref);
        assert_eq!(down.pid, p.id());
        match down.reason {
            ExitReason::Error(ProcessError::Crashed { exit, .. }) => {
                assert_eq!(exit, ExitStatus::Signal(libc::SIGKILL));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(node::whereis("victim"), None);
    }
    expect_no_down();
}

/// Monitors the pid the root gives it and returns the `Down` it gets.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Watcher;

impl Lifecycle for Watcher {
    type Output = (MonitorRef, Down);
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<(MonitorRef, Down), BoxError> {
        let Target(pid) = node::receive(LONG)?;
        let mref = node::monitor(pid);
        cx.tell(&Quit)?;
        let down: Down = node::receive(LONG)?;
        Ok((mref, down))
    }
}

/// A child monitors its sibling: the `Down` travels from the root to it.
#[test]
fn a_child_monitors_its_sibling() {
    let _serial = serial();
    let sibling = Sleeper::default().start().unwrap();
    let watcher = Watcher.start().unwrap();
    node::send(watcher.id(), &Target(sibling.id())).unwrap();
    // The monitor is made once the watcher says so.
    let Quit = watcher.listen(LONG).unwrap();
    kill_9(sibling.pid());
    let (mref, down) = watcher.result().unwrap();
    assert_eq!(mref.owner(), watcher.id());
    assert_eq!(down.monitor, mref);
    assert_eq!(down.pid, sibling.id());
    assert!(matches!(
        down.reason,
        ExitReason::Error(ProcessError::Crashed { .. })
    ));
    assert!(sibling.result().is_err());
}

/// The root monitors a process below one of its children: the end is told up the
/// tree.
#[test]
fn the_root_monitors_a_grandchild() {
    let _serial = serial();
    let h = Middle.start().unwrap();
    let Target(grandchild) = h.listen(LONG).unwrap();
    let mref = node::monitor(grandchild);
    assert!(node::is_alive(grandchild));
    assert!(node::processes().contains(&grandchild));
    node::send(grandchild, &Ping(3)).unwrap();
    let _: Pong = node::receive(LONG).unwrap();
    let down = expect_down(mref);
    assert_eq!((down.pid, down.reason), (grandchild, ExitReason::Normal));
    assert!(!node::is_alive(grandchild));
    h.tell(&Quit).unwrap();
    h.result().unwrap();
}

/// Starts one child and waits for its result, reading nothing meanwhile: what comes
/// from the root for the child is handed on by this process's event loop.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct BusyParent {
    /// Starts a `Named` instead of an `Echoer`.
    named: bool,
}

impl Lifecycle for BusyParent {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<(), BoxError> {
        if self.named {
            let h = Named.start()?;
            cx.tell(&Target(h.id()))?;
            h.result()?;
        } else {
            let h = Echoer { count: 1 }.start()?;
            cx.tell(&Target(h.id()))?;
            h.result()?;
        }
        Ok(())
    }
}

/// The root's message to a grandchild, and the grandchild's answer, pass through a
/// parent busy waiting for a result.
#[test]
fn a_busy_parent_hands_messages_on() {
    let _serial = serial();
    let h = BusyParent { named: false }.start().unwrap();
    let Target(grandchild) = h.listen(LONG).unwrap();
    node::send(grandchild, &Ping(9)).unwrap();
    let (from, pong) = node::receive_from::<Pong>(LONG).unwrap();
    assert_eq!((from, pong), (grandchild, Pong(9, grandchild)));
    h.result().unwrap();
}

/// A pid that a child tells right after it started that process is known to the root
/// when the message arrives: the announcement of the start goes first, on the socket,
/// and the message, through the shared page, never overtakes it.
#[test]
fn a_pid_told_right_after_its_start_is_known_when_it_arrives() {
    let _serial = serial();
    // A race when it goes wrong: enough rounds to lose it.
    for round in 0..100 {
        let h = BusyParent { named: false }.start().unwrap();
        let Target(grandchild) = h.listen(LONG).unwrap();
        assert!(
            node::is_alive(grandchild),
            "round {round}: the root does not know {grandchild} yet"
        );
        node::send(grandchild, &Ping(round)).unwrap();
        let (from, pong) = node::receive_from::<Pong>(LONG).unwrap();
        assert_eq!((from, pong), (grandchild, Pong(round, grandchild)));
        h.result().unwrap();
    }
}

/// A grandchild uses the registry (the root's answers come down through its busy
/// parent) and is found by name; its name goes with it.
#[test]
fn a_grandchild_uses_the_registry() {
    let _serial = serial();
    node::register("boss", Pid::ROOT).unwrap();
    let h = BusyParent { named: true }.start().unwrap();
    let Target(grandchild) = h.listen(LONG).unwrap();
    let Ping(seen) = node::receive(LONG).unwrap();
    assert!(seen >= 3, "the root, its child and its grandchild: {seen}");
    assert_eq!(node::whereis("named"), Some(grandchild));
    let mref = node::monitor(grandchild);
    node::send(grandchild, &Quit).unwrap();
    assert_eq!(expect_down(mref).reason, ExitReason::Normal);
    assert_eq!(node::whereis("named"), None);
    h.result().unwrap();
    node::unregister("boss").unwrap();
}

// ---------------------------------------------------------------------------------
// Links and exit signals.

/// Turns the root's `trap_exit` on for a test, and off again after it.
struct Trapping;

impl Trapping {
    fn on() -> Self {
        node::trap_exit(true);
        Trapping
    }
}

impl Drop for Trapping {
    fn drop(&mut self) {
        node::trap_exit(false);
    }
}

/// The next `Exit` from `from`, skipping others.
fn expect_exit(from: Pid) -> Exit {
    let deadline = Instant::now() + LONG;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let exit: Exit = node::receive(left).expect("an Exit in time");
        if exit.from == from {
            return exit;
        }
    }
}

/// process_SUITE's `t_exit_2_other`: `exit(Pid, Reason)` ends a linked process that
/// does not trap exits, and the root, which traps them, gets its `Exit` with that
/// reason.
#[test]
fn t_exit_2_other() {
    let _serial = serial();
    let _trapping = Trapping::on();
    for _ in 0..3 {
        let p = Sleeper::default().start().unwrap();
        node::link(p.id()).unwrap();
        node::exit(p.id(), ExitReason::Shutdown);
        let exit = expect_exit(p.id());
        assert_eq!(exit.reason, ExitReason::Shutdown);
        assert_eq!(
            p.result(),
            Err(ProcessError::Exited {
                from: Pid::ROOT,
                reason: Box::new(ExitReason::Shutdown)
            })
        );
    }
}

/// process_SUITE's `t_exit_2_other_normal`: `exit(Pid, normal)` does not end another
/// process; its normal end later reaches a linked process that traps exits.
#[test]
fn t_exit_2_other_normal() {
    let _serial = serial();
    let _trapping = Trapping::on();
    let p = Sleeper::default().start().unwrap();
    node::link(p.id()).unwrap();
    node::exit(p.id(), ExitReason::Normal);
    if let Ok(exit) = node::receive::<Exit>(Duration::from_millis(300)) {
        panic!("process died: {exit:?}");
    }
    assert!(node::is_alive(p.id()));
    node::send(p.id(), &Quit).unwrap();
    assert_eq!(expect_exit(p.id()).reason, ExitReason::Normal);
    p.result().unwrap();
}

/// Links to the pid the root gives it (trapping exits when told to), says so, then
/// waits: for the `Exit` when trapping, for ever otherwise.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Linker {
    trap: bool,
}

impl Lifecycle for Linker {
    type Output = Option<Exit>;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<Option<Exit>, BoxError> {
        node::trap_exit(self.trap);
        let Target(pid) = node::receive(LONG)?;
        node::link(pid)?;
        cx.tell(&Quit)?;
        if self.trap {
            return Ok(Some(node::receive::<Exit>(LONG)?));
        }
        let Quit = node::receive(LONG)?;
        Ok(None)
    }
}

/// Links die together: a SIGKILL from outside ends a process, and the process linked to
/// it ends at once with `Linked`, which its monitors see.
#[test]
fn a_link_ends_the_partner_of_a_process_killed_from_outside() {
    let _serial = serial();
    let victim = Sleeper::default().start().unwrap();
    let partner = Linker { trap: false }.start().unwrap();
    let watch = node::monitor(partner.id());
    node::send(partner.id(), &Target(victim.id())).unwrap();
    let Quit = partner.listen(LONG).unwrap();
    kill_9(victim.pid());
    let crash = victim.result().unwrap_err();
    let e = partner.result().unwrap_err();
    let ProcessError::Linked { from, reason } = &e else {
        panic!("{e}")
    };
    assert_eq!(*from, victim.id());
    assert_eq!(**reason, ExitReason::Error(crash));
    assert_eq!(expect_down(watch).reason, ExitReason::Error(e.clone()));
    assert!(e.to_string().starts_with("the linked process <0."), "{e}");
}

/// A child that traps exits gets an `Exit` when its linked sibling fails, and lives on.
#[test]
fn a_child_traps_the_exit_of_its_sibling() {
    let _serial = serial();
    let failing = Sleeper { fail: true }.start().unwrap();
    let trapper = Linker { trap: true }.start().unwrap();
    node::send(trapper.id(), &Target(failing.id())).unwrap();
    let Quit = trapper.listen(LONG).unwrap();
    node::send(failing.id(), &Quit).unwrap();
    let e = failing.result().unwrap_err();
    let exit = trapper.result().unwrap().expect("an Exit");
    assert_eq!(
        exit,
        Exit {
            from: failing.id(),
            reason: ExitReason::Error(e)
        }
    );
}

/// Linking to a process that has ended fails with `NoProc`; a process that traps exits
/// also gets the `Exit` at once. A normal end does not end a linked process that does
/// not trap exits.
#[test]
fn link_to_a_process_that_ended() {
    let _serial = serial();
    let p = Sleeper::default().start().unwrap();
    let partner = Linker { trap: false }.start().unwrap();
    node::send(partner.id(), &Target(p.id())).unwrap();
    let Quit = partner.listen(LONG).unwrap();
    node::send(p.id(), &Quit).unwrap();
    p.result().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(node::is_alive(partner.id()), "a normal end signals nobody");
    assert_eq!(node::link(p.id()), Err(SendError::NoProc));
    let _trapping = Trapping::on();
    assert_eq!(node::link(p.id()), Err(SendError::NoProc));
    assert_eq!(expect_exit(p.id()).reason, ExitReason::NoProc);
    node::send(partner.id(), &Quit).unwrap();
    assert_eq!(partner.result().unwrap(), None);
}

/// An exit signal is a failure like any other: a process with lives left is restarted
/// (and starts with no links), keeping its pid.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, lives = 2, timeout.loop = "30s")]
struct Phoenix;

impl Lifecycle for Phoenix {
    type Output = u32;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<u32, BoxError> {
        cx.tell(&Quit)?;
        let Quit = node::receive(LONG)?;
        Ok(cx.attempt())
    }
}

#[test]
fn an_exit_signal_costs_a_life() {
    let _serial = serial();
    let p = Phoenix.start().unwrap();
    let Quit = p.listen(LONG).unwrap();
    node::exit(p.id(), ExitReason::Shutdown);
    let Quit = p.listen(LONG).unwrap();
    assert!(node::is_alive(p.id()));
    node::send(p.id(), &Quit).unwrap();
    assert_eq!(p.result().unwrap(), 2);
}

/// A SIGKILL from outside to a process in the middle of the tree: what was below it
/// dies with it, and the root cleans up the whole subtree (names, monitors) at once.
#[test]
fn a_kill_9_in_the_middle_of_the_tree_cleans_up_the_subtree() {
    let _serial = serial();
    node::register("boss", Pid::ROOT).unwrap();
    let h = BusyParent { named: true }.start().unwrap();
    let Target(grandchild) = h.listen(LONG).unwrap();
    let Ping(_) = node::receive(LONG).unwrap();
    assert_eq!(node::whereis("named"), Some(grandchild));
    let below = node::monitor(grandchild);
    let middle = node::monitor(h.id());
    kill_9(h.pid());
    let mut downs: Vec<Down> = (0..2).map(|_| node::receive(LONG).unwrap()).collect();
    downs.sort_by_key(|d| d.monitor != middle);
    assert_eq!(downs[0].monitor, middle);
    assert!(matches!(
        downs[0].reason,
        ExitReason::Error(ProcessError::Crashed { .. })
    ));
    assert_eq!(downs[1].monitor, below);
    assert_eq!(downs[1].reason, ExitReason::Error(ProcessError::Killed));
    assert_eq!(node::whereis("named"), None);
    assert!(!node::is_alive(grandchild));
    assert_eq!(node::send(grandchild, &Quit), Err(SendError::NoProc));
    assert!(h.result().is_err());
    node::unregister("boss").unwrap();
}

/// Streams `n` numbers to the pid the root gives it, as fast as it can.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Streamer {
    n: u64,
}

impl Lifecycle for Streamer {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        let Target(to) = node::receive(LONG)?;
        for i in 0..self.n {
            node::send(to, &Ping(i))?;
        }
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Takes `n` numbers, slowly at first, from whoever sends them; returns them with
/// their senders. Its mailbox is small: the stream waits in the parent's router.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, mailbox = 4, timeout.loop = "30s")]
struct Sink {
    n: u64,
}

impl Lifecycle for Sink {
    type Output = Vec<(Pid, u64)>;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<Vec<(Pid, u64)>, BoxError> {
        std::thread::sleep(Duration::from_millis(200));
        let mut got = Vec::new();
        for _ in 0..self.n {
            let (from, Ping(i)) = node::receive_from(LONG)?;
            got.push((from, i));
        }
        Ok(got)
    }
}

/// Between two siblings, through their parent and a mailbox of 4 that is full most of
/// the time: every message arrives, once, in order.
#[test]
fn siblings_stream_in_order_through_a_full_mailbox() {
    let _serial = serial();
    const N: u64 = 500;
    let sink = Sink { n: N }.start().unwrap();
    let streamers: Vec<_> = (0..2)
        .map(|_| Streamer { n: N / 2 }.start().unwrap())
        .collect();
    for s in &streamers {
        node::send(s.id(), &Target(sink.id())).unwrap();
    }
    let got = sink.result().unwrap();
    assert_eq!(got.len() as u64, N);
    for s in &streamers {
        let from_s: Vec<u64> = got
            .iter()
            .filter(|(from, _)| *from == s.id())
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(from_s, (0..N / 2).collect::<Vec<_>>());
        s.result().unwrap();
    }
}

/// Tries for a name all of them want, and registers under its own name if it lost.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Candidate {
    i: u32,
}

impl Lifecycle for Candidate {
    type Output = bool;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<bool, BoxError> {
        let leader = match node::register("leader", node::self_pid()) {
            Ok(()) => true,
            Err(RegistryError::Taken { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        if !leader {
            node::register(&format!("w{}", self.i), node::self_pid())?;
        }
        cx.tell(&Quit)?;
        let Quit = node::receive(LONG)?;
        Ok(leader)
    }
}

/// Many children use the registry at once: exactly one gets the name they all want,
/// every other its own. Every name goes with its process.
#[test]
fn many_children_register_at_once() {
    let _serial = serial();
    let hs: Vec<_> = (0..20).map(|i| Candidate { i }.start().unwrap()).collect();
    for h in &hs {
        let Quit = h.listen(LONG).unwrap();
    }
    let names = node::registered();
    assert_eq!(names.len(), 20, "{names:?}");
    let leader = node::whereis("leader").expect("a leader");
    for (i, h) in hs.iter().enumerate() {
        let own = node::whereis(&format!("w{i}"));
        assert_eq!(own.is_none(), h.id() == leader, "{i}: {own:?}");
        node::send(h.id(), &Quit).unwrap();
    }
    let leaders: Vec<Pid> = hs
        .iter()
        .filter(|h| h.result().unwrap())
        .map(|h| h.id())
        .collect();
    assert_eq!(leaders, [leader]);
    assert!(node::registered().is_empty());
}

/// Sends itself an exit signal: trapping, it gets its own `Exit`; not trapping, it
/// ends with it.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Suicide {
    trap: bool,
}

impl Lifecycle for Suicide {
    type Output = Exit;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<Exit, BoxError> {
        node::trap_exit(self.trap);
        node::exit(node::self_pid(), ExitReason::Shutdown);
        // Not trapping: this waits for the end.
        Ok(node::receive::<Exit>(LONG)?)
    }
}

/// process_SUITE's `self_exit`: an exit signal a process sends itself, trapped.
#[test]
fn self_exit() {
    let _serial = serial();
    let h = Suicide { trap: true }.start().unwrap();
    assert_eq!(
        h.result().unwrap(),
        Exit {
            from: h.id(),
            reason: ExitReason::Shutdown
        }
    );
    // And in the root.
    let _trapping = Trapping::on();
    node::exit(Pid::ROOT, ExitReason::Shutdown);
    assert_eq!(expect_exit(Pid::ROOT).reason, ExitReason::Shutdown);
}

/// process_SUITE's `abnormal_suicide_exit`: not trapping, the signal ends the process,
/// with the reason it gave.
#[test]
fn abnormal_suicide_exit() {
    let _serial = serial();
    let h = Suicide { trap: false }.start().unwrap();
    let m = node::monitor(h.id());
    assert_eq!(
        h.result(),
        Err(ProcessError::Exited {
            from: h.id(),
            reason: Box::new(ExitReason::Shutdown)
        })
    );
    assert_eq!(expect_down(m).reason, ExitReason::Shutdown);
}

/// Monitors the root, hands the reference to the root, and waits.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct RootWatcher;

impl Lifecycle for RootWatcher {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<(), BoxError> {
        cx.tell(&node::monitor(Pid::ROOT))?;
        let Quit = node::receive(LONG)?;
        Ok(())
    }
}

/// monitor_SUITE's `demon_e_1`: a reference made by another process cannot be taken
/// back here.
#[test]
fn demon_e_1() {
    let _serial = serial();
    let h = RootWatcher.start().unwrap();
    let theirs: MonitorRef = h.listen(LONG).unwrap();
    assert_eq!(theirs.owner(), h.id());
    assert!(!node::demonitor(theirs));
    node::send(h.id(), &Quit).unwrap();
    h.result().unwrap();
    expect_no_down();
}

/// Fails with a large error.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct LargeExit;

impl Lifecycle for LargeExit {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        let Quit = node::receive(LONG)?;
        Err("x".repeat(256 * 1024).into())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// monitor_SUITE's `large_exit`: a large reason reaches the monitor whole, also a
/// monitor in another child (its `Down` travels down to it).
#[test]
fn large_exit() {
    let _serial = serial();
    let p = LargeExit.start().unwrap();
    let watcher = Watcher.start().unwrap();
    node::send(watcher.id(), &Target(p.id())).unwrap();
    let Quit = watcher.listen(LONG).unwrap();
    let m = node::monitor(p.id());
    node::send(p.id(), &Quit).unwrap();
    let e = p.result().unwrap_err();
    assert!(e.to_string().len() > 256 * 1024);
    assert_eq!(expect_down(m).reason, ExitReason::Error(e.clone()));
    let (_, down) = watcher.result().unwrap();
    assert_eq!(down.reason, ExitReason::Error(e));
}

/// Sends `rounds` pings to the pid the root gives it, one at a time.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct ManyRelay {
    rounds: u64,
}

impl Lifecycle for ManyRelay {
    type Output = u64;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<u64, BoxError> {
        let Target(to) = node::receive(LONG)?;
        for n in 0..self.rounds {
            node::send(to, &Ping(n))?;
            let pong: Pong =
                node::receive(Duration::from_secs(5)).map_err(|e| format!("no pong {n}: {e}"))?;
            assert_eq!(pong, Pong(n, to));
        }
        Ok(self.rounds)
    }
}

#[test]
fn siblings_ping_pong_many_times() {
    let _serial = serial();
    let echo = Echoer { count: 100 }.start().unwrap();
    let relay = ManyRelay { rounds: 100 }.start().unwrap();
    node::send(relay.id(), &Target(echo.id())).unwrap();
    assert_eq!(relay.result().unwrap(), 100);
    assert_eq!(echo.result().unwrap(), 0);
}

// ---------------------------------------------------------------------------------
// Restarts: a process with lives left has not ended.

/// What each attempt of [`Restarter`] tells the root once it is set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SetUp {
    attempt: u32,
    /// Its own registration of "restarter" succeeded.
    registered: Result<(), RegistryError>,
    /// The first monitor it made.
    first_monitor: MonitorRef,
}

/// Registers itself, links to and monitors `partner` and traps exits, from inside; its
/// first attempt then fails when told to, its second reports what reached it.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, lives = 2, timeout.loop = "30s")]
struct Restarter {
    partner: Pid,
}

/// What the second attempt of [`Restarter`] saw: any `Down`, any `Exit`.
type Seen = (Option<Down>, Option<Exit>);

impl Lifecycle for Restarter {
    type Output = Seen;
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        let registered = node::register("restarter", cx.id());
        let first_monitor = if cx.attempt() == 1 {
            node::link(self.partner)?;
            node::trap_exit(true);
            node::monitor(self.partner)
        } else {
            // The root never ends: a monitor that never fires.
            node::monitor(Pid::ROOT)
        };
        cx.tell(&SetUp {
            attempt: cx.attempt(),
            registered,
            first_monitor,
        })?;
        let Quit = node::receive(LONG)?;
        if cx.attempt() == 1 {
            return Err("the first attempt fails".into());
        }
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<Seen, BoxError> {
        let short = Duration::from_millis(300);
        Ok((node::receive(short).ok(), node::receive(short).ok()))
    }
}

/// An attempt that fails and is restarted is not the end of the process: its monitors
/// do not fire and a process linked to it gets no signal, and the link another process
/// made to it holds its next attempt. What the failed attempt set up itself (its own
/// name, its link, its monitor, its trapping) is gone from the next one.
#[test]
fn links_and_monitors_across_a_restart() {
    let _serial = serial();
    let _trapping = Trapping::on();
    let partner = Sleeper::default().start().unwrap();
    let r = Restarter {
        partner: partner.id(),
    }
    .start()
    .unwrap();
    let watch = node::monitor(r.id());
    node::link(r.id()).unwrap();
    let first: SetUp = r.listen(LONG).unwrap();
    assert_eq!(first.attempt, 1);
    assert_eq!(first.registered, Ok(()));
    node::send(r.id(), &Quit).unwrap();
    // The second attempt registers the name again: the first one's went with it.
    // Its message wakes this `listen`, which waits since before the restart: the new
    // attempt's page announces what it tells (the limit only guards against a lost
    // wake-up, and a listen that reaches it still takes the message).
    let waiting = Instant::now();
    let second: SetUp = r.listen(LONG).unwrap();
    assert!(
        waiting.elapsed() < LONG / 2,
        "never woken: the restarted attempt's message waited for the time limit"
    );
    assert_eq!((second.attempt, second.registered), (2, Ok(())));
    // Each attempt numbers its monitors apart: a Down still on its way to the first
    // attempt can never pass for one of the second's.
    assert_eq!(first.first_monitor.owner(), second.first_monitor.owner());
    assert_ne!(first.first_monitor, second.first_monitor);
    assert_eq!(node::whereis("restarter"), Some(r.id()));
    expect_no_down();
    if let Ok(exit) = node::receive::<Exit>(Duration::from_millis(100)) {
        panic!("an exit signal for an attempt: {exit:?}");
    }
    // The partner was not signalled, and its end no longer reaches the restarted
    // process (no Down, no Exit: that link and that monitor were the first attempt's).
    assert!(node::is_alive(partner.id()));
    kill_9(partner.pid());
    assert!(partner.result().is_err());
    node::send(r.id(), &Quit).unwrap();
    assert_eq!(r.result().unwrap(), (None, None));
    // The root's link and monitor held the second attempt, and fire once.
    assert_eq!(expect_down(watch).reason, ExitReason::Normal);
    assert_eq!(expect_exit(r.id()).reason, ExitReason::Normal);
    expect_no_down();
    assert_eq!(node::whereis("restarter"), None);
}

/// A name another process gave a process stays across its restart; it goes with the
/// process's end.
#[test]
fn a_name_given_from_outside_survives_a_restart() {
    let _serial = serial();
    let p = Phoenix.start().unwrap();
    node::register("phoenix", p.id()).unwrap();
    let Quit = p.listen(LONG).unwrap();
    node::exit(p.id(), ExitReason::Shutdown);
    let Quit = p.listen(LONG).unwrap();
    assert_eq!(node::whereis("phoenix"), Some(p.id()));
    node::send(p.id(), &Quit).unwrap();
    assert_eq!(p.result().unwrap(), 2);
    assert_eq!(node::whereis("phoenix"), None);
}

// ---------------------------------------------------------------------------------
// Sends to a process that has ended, anywhere in the tree.

/// Sends a ping to each pid the root gives it, when told: what each send returned.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(timeout.loop = "30s")]
struct Sender;

impl Lifecycle for Sender {
    type Output = ();
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        // A short wait, so that a stop is seen between laps.
        let to = match node::receive(Duration::from_millis(50)) {
            Ok(Target(to)) => to,
            Err(RecvError::Timeout) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let text = |r: Result<(), SendError>| r.map_err(|e| e.to_string());
        // Once it has heard of the end (here from `is_alive`), its sends are refused.
        let alive = node::is_alive(to);
        let sent = (
            text(node::send(to, &Ping(1))),
            text(node::try_send(to, &Ping(2))),
            alive,
        );
        cx.tell(&sent)?;
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// What [`Sender`] tells: its `send` and `try_send` (errors as their text), and
/// `is_alive`.
type Sent = (Result<(), String>, Result<(), String>, bool);

/// A child's sends to a sibling that has ended fail with `NoProc` once it has heard of
/// the end (from `is_alive` here, or a `Down`: the root tells it before either),
/// whether it sent to that process before or never did; they neither block nor reach
/// another process. Below a sibling (a grandchild of the root, reached through its
/// parent) too.
#[test]
fn a_send_to_an_ended_process_anywhere_is_noproc() {
    let _serial = serial();
    let sender = Sender.start().unwrap();
    let ask = |to: Pid| -> Sent {
        node::send(sender.id(), &Target(to)).unwrap();
        sender.listen(LONG).unwrap()
    };
    let sibling = Sleeper::default().start().unwrap();
    let never_sent_to = Sleeper::default().start().unwrap();
    assert_eq!(ask(sibling.id()), (Ok(()), Ok(()), true));
    for p in [&sibling, &never_sent_to] {
        node::send(p.id(), &Quit).unwrap();
        p.result().unwrap();
    }
    let gone = Err(SendError::NoProc.to_string());
    assert_eq!(
        gone,
        Err("no such process: it has ended, or never existed".to_owned())
    );
    let noproc: Sent = (gone.clone(), gone, false);
    assert_eq!(ask(sibling.id()), noproc);
    assert_eq!(ask(never_sent_to.id()), noproc);

    // A process below a sibling, killed from outside with its parent.
    let middle = BusyParent { named: true }.start().unwrap();
    let Target(grandchild) = middle.listen(LONG).unwrap();
    assert_eq!(ask(grandchild), (Ok(()), Ok(()), true));
    kill_9(middle.pid());
    assert!(middle.result().is_err());
    assert_eq!(ask(grandchild), noproc);
    sender.stop();
    sender.result().unwrap();
}

// ---------------------------------------------------------------------------------
// Depth.

/// Starts a chain of `levels` more processes below itself; the last one tries to start
/// one more: what that returned, as text, comes back up with the deepest pid.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "60s")]
struct Nester {
    levels: usize,
}

impl Lifecycle for Nester {
    type Output = (Pid, Result<(), String>);
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<(Pid, Result<(), String>), BoxError> {
        if self.levels > 0 {
            return Ok(Nester {
                levels: self.levels - 1,
            }
            .start()?
            .result()?);
        }
        let started = Nester { levels: 0 }
            .start()
            .map(|h| {
                let _ = h.result();
            })
            .map_err(|e| e.to_string());
        Ok((cx.id(), started))
    }
}

/// Processes nest `MAX_DEPTH` levels below the root; the deepest cannot start another,
/// and its `start()` says why.
#[test]
fn processes_nest_max_depth_levels_and_no_deeper() {
    let _serial = serial();
    assert_eq!(node::MAX_DEPTH, 16);
    let h = Nester {
        levels: node::MAX_DEPTH - 1,
    }
    .start()
    .unwrap();
    let (deepest, started) = h.result().unwrap();
    assert_eq!(deepest.depth(), node::MAX_DEPTH);
    assert_eq!(
        started,
        Err(format!(
            "invalid configuration: processes nest at most 16 levels below the root; {deepest} cannot start another"
        ))
    );
    let mut up = Some(deepest);
    for _ in 0..node::MAX_DEPTH {
        up = up.and_then(Pid::parent);
    }
    assert_eq!(up, Some(Pid::ROOT));
}

// ---------------------------------------------------------------------------------
// A chain.

/// One link of a chain: registers itself, links to `prev`, says so, then waits for an
/// exit signal to end it.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "60s")]
struct ChainLink {
    name: String,
    prev: Option<Pid>,
}

impl Lifecycle for ChainLink {
    type Output = ();
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        // Set up on the first lap only: the name is taken once.
        if !self.name.is_empty() {
            node::register(&std::mem::take(&mut self.name), cx.id())?;
            if let Some(prev) = self.prev {
                node::link(prev)?;
            }
            cx.tell(&Quit)?;
        }
        std::thread::sleep(Duration::from_millis(50));
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// `n` processes registered, linked in a chain and monitored by the root; the head is
/// killed from outside. Every monitor fires once, every link once (each process but
/// the head ends with `Linked` from the one before it), and nothing is left: no name,
/// no process.
fn chain_dies_from_its_head(n: usize) {
    let mut chain: Vec<Handle<()>> = Vec::with_capacity(n);
    let mut monitors = std::collections::BTreeMap::new();
    for i in 0..n {
        let h = ChainLink {
            name: format!("chain-{i}"),
            prev: chain.last().map(Handle::id),
        }
        .start()
        .unwrap();
        if let Err(e) = h.listen::<Quit>(LONG) {
            panic!(
                "link {i} of the chain did not set up ({e}): {:?}",
                h.result()
            );
        }
        monitors.insert(node::monitor(h.id()), h.id());
        chain.push(h);
    }
    assert_eq!(node::registered().len(), n);
    assert_eq!(node::processes().len(), n + 1);
    kill_9(chain[0].pid());
    while !monitors.is_empty() {
        let down: Down = node::receive(LONG).unwrap();
        assert_eq!(monitors.remove(&down.monitor), Some(down.pid), "{down:?}");
    }
    expect_no_down();
    for (i, h) in chain.iter().enumerate() {
        match h.result() {
            Err(ProcessError::Crashed { .. }) if i == 0 => {}
            Err(ProcessError::Linked { from, .. }) if i > 0 && from == chain[i - 1].id() => {}
            other => panic!("link {i} ended with {other:?}"),
        }
    }
    drop(chain);
    assert!(node::registered().is_empty(), "{:?}", node::registered());
    assert_eq!(node::processes(), vec![Pid::ROOT]);
}

/// The chain of the benchmark's node figures, a hundred long; no descriptor is left
/// open.
#[test]
fn a_chain_of_100_dies_from_its_head() {
    let _serial = serial();
    // Whatever the runtime opens once for good is open before the count is taken.
    chain_dies_from_its_head(3);
    let fds = descriptors();
    chain_dies_from_its_head(100);
    assert_eq!(descriptors(), fds);
}

// ---------------------------------------------------------------------------------
// More of monitor_SUITE.

/// Sends an exit signal (`Shutdown`) to the pid the root gives it, then ends normally.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Exiter;

impl Lifecycle for Exiter {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        let Target(pid) = node::receive(LONG)?;
        node::exit(pid, ExitReason::Shutdown);
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// monitor_SUITE's `case_1`: A monitors B, B kills A (an exit signal) and then ends.
/// A ends with B's signal; B's end, which A monitored, troubles nobody.
#[test]
fn case_1() {
    let _serial = serial();
    let a = Watcher.start().unwrap();
    let b = Exiter.start().unwrap();
    node::send(a.id(), &Target(b.id())).unwrap();
    let Quit = a.listen(LONG).unwrap();
    node::send(b.id(), &Target(a.id())).unwrap();
    b.result().unwrap();
    assert_eq!(
        a.result(),
        Err(ProcessError::Exited {
            from: b.id(),
            reason: Box::new(ExitReason::Shutdown)
        })
    );
    assert_eq!(node::processes(), vec![Pid::ROOT]);
}

/// Tries to take back the monitor the root gives it (one it did not make), tells the
/// root what `demonitor` returned, then ends.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Demonitorer;

impl Lifecycle for Demonitorer {
    type Output = ();
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        let mref: MonitorRef = node::receive(LONG)?;
        cx.tell(&node::demonitor(mref))?;
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// monitor_SUITE's `case_2`: A monitors B, B tries to take A's monitor back. Only the
/// process that made a monitor can: B's `demonitor` does nothing, and A gets B's
/// `Down`.
#[test]
fn case_2() {
    let _serial = serial();
    let b = Demonitorer.start().unwrap();
    let mref = node::monitor(b.id());
    node::send(b.id(), &mref).unwrap();
    let taken_back: bool = b.listen(LONG).unwrap();
    assert!(!taken_back);
    b.result().unwrap();
    let down = expect_down(mref);
    assert_eq!((down.pid, down.reason), (b.id(), ExitReason::Normal));
    expect_no_down();
}

/// monitor_SUITE's `local_remove_monitor`: monitors of processes that end at once,
/// taken back while their `Down` may be on its way or already here. `demonitor` says
/// which (`true`: it had not come), and either way no `Down` of it is ever received.
#[test]
fn local_remove_monitor() {
    let _serial = serial();
    let handles: Vec<_> = (0..20)
        .map(|_| Whoami { nest: 0 }.start().unwrap())
        .collect();
    let monitors: Vec<MonitorRef> = handles.iter().map(|h| node::monitor(h.id())).collect();
    // Some end before they are taken back, some after.
    let (early, late) = monitors.split_at(10);
    for h in &handles[..10] {
        h.result().unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    let taken_early: Vec<bool> = early.iter().map(|&m| node::demonitor(m)).collect();
    // These may or may not have ended by now: whichever, their Down never comes.
    for &m in late {
        node::demonitor(m);
    }
    for h in &handles[10..] {
        h.result().unwrap();
    }
    // The ones that had ended a while ago had their Down here already.
    assert!(taken_early.iter().all(|&active| !active), "{taken_early:?}");
    expect_no_down();
    // Taking a monitor back twice: the second time, it is not active.
    assert!(monitors.iter().all(|&m| !node::demonitor(m)));
}

// ---------------------------------------------------------------------------------
// From erl_link_SUITE.

/// erl_link_SUITE's `otp_5772_link`: a process that traps exits links a process, sends
/// it an exit signal and unlinks at once. An `Exit` that arrived before the unlink may
/// be in the mailbox; none arrives later.
#[test]
fn otp_5772_link() {
    let _serial = serial();
    let _trapping = Trapping::on();
    for _ in 0..5 {
        let p = Sleeper::default().start().unwrap();
        node::link(p.id()).unwrap();
        node::exit(p.id(), ExitReason::Shutdown);
        node::unlink(p.id());
        let _already_here = node::receive::<Exit>(Duration::ZERO);
        assert_eq!(
            p.result(),
            Err(ProcessError::Exited {
                from: Pid::ROOT,
                reason: Box::new(ExitReason::Shutdown)
            })
        );
        if let Ok(exit) = node::receive::<Exit>(Duration::from_millis(300)) {
            panic!("a late exit message: {exit:?}");
        }
    }
}

/// erl_link_SUITE's `otp_5772_monitor`: monitor a process, send it an exit signal and
/// take the monitor back at once: no `Down` of it is received, then or later.
#[test]
fn otp_5772_monitor() {
    let _serial = serial();
    for _ in 0..5 {
        let p = Sleeper::default().start().unwrap();
        let m = node::monitor(p.id());
        node::exit(p.id(), ExitReason::Shutdown);
        node::demonitor(m);
        assert!(p.result().is_err());
        expect_no_down();
    }
}

// ---------------------------------------------------------------------------------
// Direct links: siblings that talk a lot get a socket pair of their own.

/// A message on its way between siblings, numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Hop(u64);
/// The answer to a [`Hop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct HopBack(u64);
/// A receiver's word that it is ready for what comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Ready;
/// A sender's word that the receiver's mailbox refused a message, after `0` were taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Filled(u64);
/// What nobody sends: a receive of it only reads what has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Never;

/// How many descriptors this process has more than `before`.
fn descriptors_since(before: usize) -> i64 {
    i64::try_from(descriptors()).unwrap() - i64::try_from(before).unwrap()
}

/// Pings `to` `rounds` times, each answer checked in turn; returns how many
/// descriptors it has more at the end than before the first ping.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct LinkPinger {
    to: Pid,
    rounds: u64,
}

impl Lifecycle for LinkPinger {
    type Output = i64;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<i64, BoxError> {
        let before = descriptors();
        for n in 0..self.rounds {
            node::send(self.to, &Hop(n))?;
            let (from, HopBack(m)) = node::receive_from(LONG)?;
            assert_eq!((from, m), (self.to, n), "an answer out of turn");
        }
        Ok(descriptors_since(before))
    }
}

/// Answers `rounds` hops, each to its sender, checking their order; returns how many
/// descriptors it has more at the end than before the first.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct LinkPonger {
    rounds: u64,
}

impl Lifecycle for LinkPonger {
    type Output = i64;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<i64, BoxError> {
        let before = descriptors();
        for n in 0..self.rounds {
            let (from, Hop(m)) = node::receive_from(LONG)?;
            assert_eq!(m, n, "a hop out of order");
            node::send(from, &HopBack(m))?;
        }
        Ok(descriptors_since(before))
    }
}

/// Two siblings that ping-pong many times: each answer comes in turn, and each side
/// holds one more descriptor per direction (the ends of the two direct links: the
/// first messages went through the parent, the rest did not). The root, which handed
/// the links' ends on, holds none of them once both have ended.
#[test]
fn siblings_ping_pong_on_direct_links() {
    let _serial = serial();
    // The runtime's own descriptors (its event loop's) are made at the first start:
    // run alone, this test must not count them.
    LinkPonger { rounds: 0 }.start().unwrap().result().unwrap();
    let before = descriptors();
    let listed = describe_descriptors();
    let ponger = LinkPonger { rounds: 1_000 }.start().unwrap();
    let pinger = LinkPinger {
        to: ponger.id(),
        rounds: 1_000,
    }
    .start()
    .unwrap();
    assert_eq!(pinger.result().unwrap(), 2);
    assert_eq!(ponger.result().unwrap(), 2);
    drop((pinger, ponger));
    let deadline = Instant::now() + 5 * SECOND;
    while descriptors() != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        descriptors(),
        before,
        "open before: {listed}; open now: {}",
        describe_descriptors()
    );
}

/// Answers `rounds` hops as [`LinkPonger`] does, but takes them with
/// `node::receive_from_async`: its event loop reads its parent's socket, and a thread
/// of its own reads each direct link.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct AsyncLinkPonger {
    rounds: u64,
}

impl Lifecycle for AsyncLinkPonger {
    type Output = i64;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<i64, BoxError> {
        // The first wait starts the event loop, with descriptors of its own: counted
        // before the links.
        let nothing =
            futures::executor::block_on(node::receive_async_timeout::<Never>(Duration::ZERO));
        assert_eq!(nothing, Err(RecvError::Timeout));
        let before = descriptors();
        for n in 0..self.rounds {
            let (from, Hop(m)) =
                futures::executor::block_on(node::receive_from_async_timeout(LONG))?;
            assert_eq!(m, n, "a hop out of order");
            node::send(from, &HopBack(m))?;
        }
        Ok(descriptors_since(before))
    }
}

/// The same ping-pong with a receiver whose links are read by threads (it receives
/// without blocking, so its event loop reads its socket): every answer in turn, one
/// link each way.
#[test]
fn siblings_ping_pong_on_direct_links_read_in_the_background() {
    let _serial = serial();
    let ponger = AsyncLinkPonger { rounds: 1_000 }.start().unwrap();
    let pinger = LinkPinger {
        to: ponger.id(),
        rounds: 1_000,
    }
    .start()
    .unwrap();
    assert_eq!(pinger.result().unwrap(), 2);
    assert_eq!(ponger.result().unwrap(), 2);
}

/// Sends hops to `to` until a send fails; tells the root when the link is surely made
/// (after 100). Returns the error's text and how many descriptors it has more than
/// before.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Talker {
    to: Pid,
}

impl Lifecycle for Talker {
    type Output = (String, i64);
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<(String, i64), BoxError> {
        let before = descriptors();
        for n in 0.. {
            if let Err(e) = node::send(self.to, &Hop(n)) {
                return Ok((e.to_string(), descriptors_since(before)));
            }
            if n == 100 {
                cx.tell(&Ready)?;
            }
        }
        unreachable!("a send fails once the receiver is killed")
    }
}

/// Takes hops for ever.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Listener;

impl Lifecycle for Listener {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        let mut next = 0;
        loop {
            let Hop(n) = node::receive(LONG)?;
            assert_eq!(n, next, "a hop out of order");
            next += 1;
        }
    }
}

/// A receiver killed from outside in the middle of a conversation on a direct link:
/// the sender's next sends find it gone (`NoProc`, not a wait for ever), and its end of
/// the link is closed.
#[test]
fn a_sibling_killed_mid_conversation_on_a_direct_link() {
    let _serial = serial();
    let listener = Listener.start().unwrap();
    let talker = Talker { to: listener.id() }.start().unwrap();
    let Ready = talker.listen(LONG).unwrap();
    kill_9(listener.pid());
    let (error, descriptors) = talker.result().unwrap();
    assert_eq!(error, SendError::NoProc.to_string());
    assert_eq!(descriptors, 0, "the sender's end of the link is still open");
    assert!(listener.result().is_err());
}

/// Takes `rounds` hops from whoever sends them after it was told a `Target`, while it
/// monitors that target; once the target's `Down` came, waits until it holds no more
/// descriptors than before. Returns whether it got there, and the `Down`'s reason.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct LinkWatcher {
    rounds: u64,
}

impl Lifecycle for LinkWatcher {
    type Output = (bool, ExitReason);
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<(bool, ExitReason), BoxError> {
        let before = descriptors();
        let Target(talker) = node::receive(LONG)?;
        let m = node::monitor(talker);
        for n in 0..self.rounds {
            let Hop(got) = node::receive(LONG)?;
            assert_eq!(got, n, "a hop out of order");
        }
        cx.tell(&Ready)?;
        let down: Down = node::receive(LONG)?;
        assert_eq!(down.monitor, m);
        // Whatever the talker sent before it died is taken, and the link's end read.
        let deadline = Instant::now() + 10 * SECOND;
        while descriptors() != before && Instant::now() < deadline {
            let _ = node::receive::<Hop>(Duration::from_millis(10));
        }
        Ok((descriptors() == before, down.reason))
    }
}

/// A sender killed from outside in the middle of a conversation on a direct link: the
/// receiver sees the end (its `Down`, and the end of the link, whose descriptor it
/// closes).
#[test]
fn a_sender_killed_mid_conversation_on_a_direct_link() {
    let _serial = serial();
    let watcher = LinkWatcher { rounds: 100 }.start().unwrap();
    let talker = Talker { to: watcher.id() }.start().unwrap();
    node::send(watcher.id(), &Target(talker.id())).unwrap();
    let Ready = watcher.listen(LONG).unwrap();
    kill_9(talker.pid());
    let (closed, reason) = watcher.result().unwrap();
    assert!(
        matches!(reason, ExitReason::Error(ProcessError::Crashed { .. })),
        "{reason:?}"
    );
    assert!(closed, "the receiver's end of the link is still open");
    assert!(talker.result().is_err());
}

/// Sends 8 hops to `to` (through the parent), waits for its [`Ready`], then fills its
/// mailbox with `try_send` (on the link by then), tells the root how many went, and
/// sends 4 more, which wait for room.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "30s")]
struct Filler {
    to: Pid,
}

impl Lifecycle for Filler {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<(), BoxError> {
        for n in 0..8 {
            node::send(self.to, &Hop(n))?;
        }
        let Ready = node::receive(LONG)?;
        let mut n = 8;
        loop {
            match node::try_send(self.to, &Hop(n)) {
                Ok(()) => n += 1,
                Err(SendError::Full) => break,
                Err(e) => return Err(e.into()),
            }
        }
        cx.tell(&Filled(n - 8))?;
        for _ in 0..4 {
            node::send(self.to, &Hop(n))?;
            n += 1;
        }
        Ok(())
    }
}

/// A mailbox of 4: takes 8 hops, waits until the link's hello is in (one descriptor
/// more), says it is ready, and takes the rest only when the root says how many.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, mailbox = 4, timeout.loop = "30s")]
struct SmallMailbox;

impl Lifecycle for SmallMailbox {
    type Output = Vec<u64>;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<Vec<u64>, BoxError> {
        let before = descriptors();
        let mut got = Vec::new();
        let mut from = None;
        for _ in 0..8 {
            let (sender, Hop(n)) = node::receive_from(LONG)?;
            from = Some(sender);
            got.push(n);
        }
        let deadline = Instant::now() + LONG;
        while descriptors() == before && Instant::now() < deadline {
            let _ = node::receive::<Never>(Duration::from_millis(10));
        }
        node::send(from.expect("8 hops came"), &Ready)?;
        let Filled(filled) = cx.listen(LONG)?;
        for _ in 0..filled + 4 {
            let Hop(n) = node::receive(LONG)?;
            got.push(n);
        }
        Ok(got)
    }
}

/// On a direct link the receiver's mailbox still bounds what a sender may leave in it:
/// `try_send` is `Full` once the mailbox (4) holds its messages, `send` waits for room,
/// and everything arrives once, in order, across the switch from the parent to the
/// link.
#[test]
fn a_direct_link_holds_the_mailbox_bound() {
    let _serial = serial();
    let small = SmallMailbox.start().unwrap();
    let filler = Filler { to: small.id() }.start().unwrap();
    let Filled(filled) = filler.listen(LONG).unwrap();
    assert_eq!(filled, 4);
    small.tell(&Filled(filled)).unwrap();
    filler.result().unwrap();
    assert_eq!(small.result().unwrap(), (0..16).collect::<Vec<_>>());
}

/// A long stream on a direct link into a mailbox of 4, full nearly all the time: the
/// sender waits for room at almost every message, woken each time by the receiver's
/// take (a wake-up lost would cost it a tenth of a second, and the stream its time
/// limit). Everything arrives once, in order, and both ends of the link are gone with
/// the two siblings.
#[test]
fn a_long_stream_waits_for_room_on_a_direct_link() {
    let _serial = serial();
    const N: u64 = 5_000;
    // The runtime's own descriptors (its event loop's) are made at the first start.
    Sink { n: 0 }.start().unwrap().result().unwrap();
    let before = descriptors();
    let listed = describe_descriptors();
    let sink = Sink { n: N }.start().unwrap();
    let streamer = Streamer { n: N }.start().unwrap();
    node::send(streamer.id(), &Target(sink.id())).unwrap();
    let got = sink.result().unwrap();
    let expected: Vec<(Pid, u64)> = (0..N).map(|i| (streamer.id(), i)).collect();
    assert!(
        got == expected,
        "the stream arrived out of order or not once"
    );
    streamer.result().unwrap();
    drop((sink, streamer));
    let deadline = Instant::now() + 5 * SECOND;
    while descriptors() != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        descriptors(),
        before,
        "open before: {listed}; open now: {}",
        describe_descriptors()
    );
}
