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

use process_runtime::node::{self, Pid};
use process_runtime::prelude::*;
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
