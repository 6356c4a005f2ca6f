//! Warm children (`keep_warm`): started ahead of time, handed to `start()` and to
//! restarts, replaced when taken or when they die idle, never orphaned.
//!
//! The tests of this file share one pool of warm children: each holds [`serial`].

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use process_runtime::__testing::warm_pids;
use process_runtime::prelude::*;
use process_runtime::{ChildSpec, Strategy, Supervisor};
use process_runtime_tests::{
    gone_within, no_core_dumps, process_running, reaped, sleep_forever, wait_for_file,
    write_atomically, zombie_children, Scratch,
};
use serde::{Deserialize, Serialize};

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits until `n` warm children are ready; returns their pids.
fn ready(n: usize) -> Vec<u32> {
    let t0 = Instant::now();
    loop {
        let pids = warm_pids();
        if pids.len() >= n {
            return pids;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{n} warm children ready (have {pids:?})"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Returns its pid.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1)]
struct Pid;

impl Lifecycle for Pid {
    type Output = u32;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<u32, BoxError> {
        Ok(cx.pid())
    }
}

#[test]
fn start_hands_the_state_to_a_warm_child_and_a_replacement_follows() {
    let _serial = serial();
    process_runtime::keep_warm(2).unwrap();
    let before = ready(2);
    let h = Pid.start().unwrap();
    let pid = h.result().unwrap();
    assert!(
        before.contains(&pid),
        "{pid} was one of the warm {before:?}"
    );
    assert_eq!(h.exit_code(), Some(0));
    // The one taken is replaced.
    let after = ready(2);
    assert!(!after.contains(&pid));
    process_runtime::keep_warm(0).unwrap();
    for p in after {
        assert!(
            gone_within(p, Duration::from_secs(5)),
            "idle warm child {p} ended"
        );
    }
    assert_eq!(zombie_children(), Vec::<u32>::new());
}

/// Aborts in its first attempt, returns its pid in the second.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, lives = 2)]
struct CrashOnce;

impl Lifecycle for CrashOnce {
    type Output = u32;
    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        no_core_dumps();
        if cx.attempt() == 1 {
            std::process::abort();
        }
        Ok(())
    }
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<u32, BoxError> {
        Ok(cx.pid())
    }
}

#[test]
fn a_restart_after_a_crash_uses_a_warm_child_and_sees_the_original_state() {
    let _serial = serial();
    process_runtime::keep_warm(2).unwrap();
    let warm = ready(2);
    let h = CrashOnce.start().unwrap();
    let second = h.result().unwrap();
    assert_eq!(h.lives_used(), 2);
    assert!(
        warm.contains(&second),
        "{second} was one of the warm {warm:?}"
    );
    process_runtime::keep_warm(0).unwrap();
}

/// Sleeps until stopped.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "none")]
struct Idle;

impl Lifecycle for Idle {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn a_supervisor_restarts_a_killed_child_in_a_warm_child() {
    let _serial = serial();
    let sup = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::new("warm.supervised", Idle))
        .start()
        .unwrap();
    let first = sup.which_children()[0].os_pid.unwrap();
    process_runtime::keep_warm(1).unwrap();
    let warm = ready(1)[0];
    // SAFETY: kill only sends a signal, to our own supervised child.
    unsafe { libc::kill(i32::try_from(first).unwrap(), libc::SIGKILL) };
    let t0 = Instant::now();
    let replacement = loop {
        match sup.which_children()[0].os_pid {
            Some(pid) if pid != first => break pid,
            _ => {
                assert!(t0.elapsed() < Duration::from_secs(20), "never restarted");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    assert_eq!(replacement, warm, "the replacement is the warm child");
    sup.stop();
    process_runtime::keep_warm(0).unwrap();
}

#[test]
fn a_warm_child_killed_while_idle_is_replaced_not_handed_out() {
    let _serial = serial();
    process_runtime::keep_warm(1).unwrap();
    let victim = ready(1)[0];
    // SAFETY: kill only sends a signal, to our own idle warm child.
    unsafe { libc::kill(i32::try_from(victim).unwrap(), libc::SIGKILL) };
    assert!(gone_within(victim, Duration::from_secs(5)));
    let h = Pid.start().unwrap();
    let pid = h.result().unwrap();
    assert_ne!(pid, victim, "a dead warm child is never handed out");
    let replacement = ready(1)[0];
    assert_ne!(replacement, victim);
    assert!(reaped(victim), "the dead warm child was reaped");
    process_runtime::keep_warm(0).unwrap();
    assert!(gone_within(replacement, Duration::from_secs(5)));
}

/// Keeps two warm children of its own, writes their pids, sleeps for ever.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "none")]
struct Keeper {
    pids: String,
}

impl Lifecycle for Keeper {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        process_runtime::keep_warm(2)?;
        let pids = ready(2);
        let text: Vec<String> = pids.iter().map(u32::to_string).collect();
        write_atomically(&self.pids, &text.join(" "))?;
        sleep_forever()
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn warm_children_die_with_their_parent_even_when_it_is_sigkilled() {
    let _serial = serial();
    let dir = Scratch::new("warm-keeper");
    let file = dir.file("pids");
    let h = Keeper {
        pids: file.to_string_lossy().into_owned(),
    }
    .start()
    .unwrap();
    let pids: Vec<u32> = wait_for_file(&file, Duration::from_secs(20))
        .expect("the keeper's warm children are ready")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| process_running(p)));
    // SAFETY: kill only sends a signal, to our own child.
    unsafe { libc::kill(i32::try_from(h.pid()).unwrap(), libc::SIGKILL) };
    let _ = h.result();
    for p in pids {
        assert!(
            gone_within(p, Duration::from_secs(5)),
            "warm grandchild {p} ended"
        );
    }
}

/// Writes its pid through the socket of its state, which is large enough to be sent
/// after the handshake rather than with the spawn.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1)]
struct Handed {
    peer: Transfer<std::os::unix::net::UnixStream>,
    ballast: Vec<u8>,
}

impl Lifecycle for Handed {
    type Output = u32;
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        use std::io::Write;
        writeln!(&*self.peer, "{} {}", cx.pid(), self.ballast.len())?;
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<u32, BoxError> {
        Ok(cx.pid())
    }
}

/// Sends to the root at once and reports whether `try_send` found room.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1)]
struct FirstSend {
    room: bool,
}

impl Lifecycle for FirstSend {
    type Output = bool;

    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
        self.room = process_runtime::node::try_send(process_runtime::Pid::ROOT, &1u8).is_ok();
        Ok(())
    }

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<bool, BoxError> {
        Ok(self.room)
    }
}

#[test]
fn a_warm_child_receives_the_descriptors_of_its_state_small_or_large() {
    use std::io::Read;
    let _serial = serial();
    process_runtime::keep_warm(1).unwrap();
    for ballast in [0, 200_000] {
        let warm = ready(1);
        let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let h = Handed {
            peer: Transfer::new(theirs),
            ballast: vec![1; ballast],
        }
        .start()
        .unwrap();
        let pid = h.result().unwrap();
        assert!(warm.contains(&pid), "{pid} was one of the warm {warm:?}");
        h.wait();
        mine.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut text = String::new();
        (&mine).read_to_string(&mut text).unwrap();
        assert_eq!(text, format!("{pid} {ballast}\n"));
    }
    process_runtime::keep_warm(0).unwrap();
}

#[test]
fn a_warm_child_has_room_to_send_from_its_first_instruction() {
    // Its room in the parent's mailbox is granted before its start frame goes out:
    // otherwise a child quick enough found none, and its first `node::send` waited
    // for a notice that never came (a second, until its wait timed out and looked
    // again).
    let _serial = serial();
    process_runtime::keep_warm(2).unwrap();
    for _ in 0..30 {
        ready(2);
        let h = FirstSend { room: false }.start().unwrap();
        assert_eq!(h.result(), Ok(true), "the first try_send found no room");
        let _: u8 = process_runtime::node::receive(Duration::from_secs(10)).unwrap();
    }
    process_runtime::keep_warm(0).unwrap();
}
