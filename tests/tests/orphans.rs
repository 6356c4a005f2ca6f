//! No orphans: a child dies with its parent however the parent dies (SIGKILL
//! included), and whatever a child leaves in its process group (a grandchild) is killed
//! when the child ends, is killed, or times out.

use std::time::{Duration, Instant};

use process_runtime::prelude::*;
use process_runtime::Exit;
use process_runtime_tests::{
    gone_within, process_running, reaped, sleep_forever, wait_for_file, write_atomically, Scratch,
};
use serde::{Deserialize, Serialize};

/// Sleeps for ever in `main_loop`.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "none")]
struct Inner;

impl Lifecycle for Inner {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        sleep_forever()
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Starts an [`Inner`] of its own, writes its pid to `inner_pid`, then sleeps for ever.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "none")]
struct Outer {
    inner_pid: String,
}

impl Lifecycle for Outer {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        let inner = Inner.start()?;
        write_atomically(&self.inner_pid, &inner.pid().to_string())?;
        sleep_forever()
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn a_nested_child_dies_within_a_second_when_its_parent_is_sigkilled() {
    let dir = Scratch::new("nested");
    let file = dir.file("inner-pid");
    let a = Outer {
        inner_pid: file.to_string_lossy().into_owned(),
    }
    .start()
    .unwrap();
    let a_pid = a.pid();
    let b_pid: u32 = wait_for_file(&file, Duration::from_secs(20))
        .expect("the outer process started the inner one")
        .parse()
        .unwrap();
    assert!(process_running(b_pid), "the inner process runs");
    assert_ne!(b_pid, a_pid);
    // B leads a process group of its own: killing A cannot reach it by group.
    // SAFETY: kill only sends a signal, to our own child.
    assert_eq!(
        unsafe { libc::kill(a_pid as libc::pid_t, libc::SIGKILL) },
        0
    );
    let killed_at = Instant::now();
    assert!(
        gone_within(b_pid, Duration::from_secs(1)),
        "the inner process outlived its SIGKILLed parent"
    );
    let gone_after = killed_at.elapsed();
    assert_eq!(
        a.result(),
        Err(ProcessError::Crashed {
            section: Some(Section::MainLoop),
            exit: Exit::Signal(libc::SIGKILL)
        })
    );
    a.wait();
    assert_eq!(a.exit_code(), Some(-9));
    assert!(reaped(a_pid));
    eprintln!("the inner process was gone {gone_after:?} after its parent was killed");
}

/// Starts `sleep 30` in `main_loop` and never waits for it. Returns its pid as the
/// result; with `hang`, writes it to `pid_file` and hangs instead.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1)]
struct Abandoner {
    hang: bool,
    pid_file: String,
    grandchild: u32,
}

impl Lifecycle for Abandoner {
    type Output = u32;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        let child = std::process::Command::new("sleep").arg("30").spawn()?;
        self.grandchild = child.id();
        // Dropping a `Child` neither waits for nor kills it.
        drop(child);
        if self.hang {
            write_atomically(&self.pid_file, &self.grandchild.to_string())?;
            sleep_forever();
        }
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<u32, BoxError> {
        Ok(self.grandchild)
    }
}

#[test]
fn a_grandchild_left_by_a_child_that_ended_is_gone_within_a_second() {
    let h = Abandoner {
        hang: false,
        pid_file: String::new(),
        grandchild: 0,
    }
    .start()
    .unwrap();
    let grandchild = h.result().unwrap();
    assert_ne!(grandchild, 0);
    h.wait();
    assert_eq!(h.exit_code(), Some(0), "the child's own status is kept");
    assert!(
        gone_within(grandchild, Duration::from_secs(1)),
        "`sleep 30` outlived the child that started it"
    );
}

fn hanging_abandoner(dir: &Scratch) -> Abandoner {
    Abandoner {
        hang: true,
        pid_file: dir.file("grandchild").to_string_lossy().into_owned(),
        grandchild: 0,
    }
}

fn grandchild_of(dir: &Scratch) -> u32 {
    let pid = wait_for_file(&dir.file("grandchild"), Duration::from_secs(20))
        .expect("the child started its grandchild")
        .parse()
        .unwrap();
    assert!(process_running(pid), "the grandchild runs");
    pid
}

#[test]
fn kill_takes_the_grandchildren_too() {
    let dir = Scratch::new("kill-grandchild");
    let h = hanging_abandoner(&dir).start().unwrap();
    let grandchild = grandchild_of(&dir);
    h.kill();
    assert_eq!(h.result(), Err(ProcessError::Killed));
    h.wait();
    assert_eq!(h.exit_code(), Some(-9));
    assert!(
        gone_within(grandchild, Duration::from_secs(1)),
        "the grandchild outlived kill()"
    );
}

#[test]
fn a_timeout_takes_the_grandchildren_too() {
    let dir = Scratch::new("timeout-grandchild");
    let limit = Duration::from_millis(300);
    let h = hanging_abandoner(&dir)
        .start_with(Abandoner::config().with_timeout(Section::MainLoop, Some(limit)))
        .unwrap();
    let grandchild = grandchild_of(&dir);
    assert_eq!(
        h.result(),
        Err(ProcessError::Timeout {
            section: Section::MainLoop,
            limit
        })
    );
    h.wait();
    assert_eq!(h.exit_code(), Some(-9));
    assert!(
        gone_within(grandchild, Duration::from_secs(1)),
        "the grandchild outlived the timeout"
    );
}
