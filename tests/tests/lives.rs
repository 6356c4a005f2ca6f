//! Lives: every failure (crash, section error, timeout) costs one; each retry starts in
//! a fresh child from the ORIGINAL bytes; when none are left, `error` gets
//! the last attempt's own error and may recover; many failing children at once are all reaped.

use std::time::Duration;

use process_runtime::prelude::*;
use process_runtime::{Exit, RemoteError};
use process_runtime_tests::{
    no_core_dumps, process_running, reaped, sleep_forever, wait_for_file, write_atomically, Scratch,
};
use serde::{Deserialize, Serialize};

/// Records every attempt in `seen` (its own copy of the state), leaves its pid in
/// `dir/attempt-N`, and aborts in `preloop` on attempts below `succeed_on`.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, lives = 3, name = "phoenix")]
struct Phoenix {
    seen: Vec<u32>,
    succeed_on: u32,
    dir: String,
}

impl Lifecycle for Phoenix {
    type Output = (Vec<u32>, u32);

    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        let n = cx.attempt();
        write_atomically(
            &format!("{}/attempt-{n}", self.dir),
            &std::process::id().to_string(),
        )?;
        // Mutate the state before dying: a retry must not see this.
        self.seen.push(n);
        if n < self.succeed_on {
            no_core_dumps();
            std::process::abort();
        }
        Ok(())
    }
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        self.seen.push(100 + cx.attempt());
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<Self::Output, BoxError> {
        Ok((self.seen.clone(), cx.attempt()))
    }
    fn error(&mut self, err: ProcessError, cx: &mut Context) -> Result<Self::Output, ProcessError> {
        // Recovers to a value that says what it was given and what state it saw.
        // The last attempt's own error, as it is: no wrapper names the lives.
        let expected = ProcessError::Crashed {
            section: Some(Section::Preloop),
            exit: Exit::Signal(6),
        };
        if err != expected {
            return Err(err);
        }
        if err.to_string() != "the process crashed in preloop with signal 6 (SIGABRT)" {
            return Err(err);
        }
        let _ = cx;
        self.seen.push(999);
        Ok((self.seen.clone(), 0))
    }
}

fn attempt_pids(dir: &Scratch, attempts: u32) -> Vec<u32> {
    (1..=attempts)
        .map(|n| {
            wait_for_file(&dir.file(&format!("attempt-{n}")), Duration::from_secs(5))
                .unwrap_or_else(|| panic!("attempt {n} ran"))
                .parse()
                .unwrap()
        })
        .collect()
}

#[test]
fn crash_crash_success_and_the_third_attempt_sees_the_original_state() {
    let dir = Scratch::new("phoenix");
    let mut p = Phoenix {
        seen: vec![42],
        succeed_on: 3,
        dir: dir.path(),
    };
    let h = p.start().unwrap();
    // The parent's own value changes after start: the retries must not see it either,
    // they start from the bytes taken at start.
    p.seen.push(7);
    let (seen, attempt) = h.result().unwrap();
    assert_eq!(attempt, 3, "cx.attempt() on the successful attempt");
    assert_eq!(
        seen,
        [42, 3, 103],
        "only the original state and the third attempt's own mutations"
    );
    h.wait();
    assert_eq!(h.lives_used(), 3);
    assert_eq!(h.exit_code(), Some(0), "the successful attempt decided");
    let pids = attempt_pids(&dir, 3);
    assert_eq!(pids[2], h.pid(), "the handle names the latest attempt");
    assert!(
        pids[0] != pids[1] && pids[1] != pids[2],
        "a fresh child each time"
    );
    for pid in pids {
        assert!(reaped(pid), "attempt {pid} is gone and reaped");
    }
}

#[test]
fn lives_exhausted_then_error_recovers_to_a_value() {
    let dir = Scratch::new("exhausted");
    let h = Phoenix {
        seen: vec![42],
        succeed_on: u32::MAX,
        dir: dir.path(),
    }
    .start()
    .unwrap();
    // `error` returns Ok only if it got exactly Crashed in preloop with SIGABRT, with
    // that Display text; otherwise it hands the
    // error back and this unwrap shows it. It ran in a fresh child, from the original
    // state (the failed ones are gone).
    let (seen, _) = h.result().unwrap();
    assert_eq!(seen, [42, 999]);
    h.wait();
    assert_eq!(
        h.exit_code(),
        Some(-6),
        "the exit code is the crashed attempt's, not the error handler's"
    );
    for pid in attempt_pids(&dir, 3) {
        assert!(reaped(pid));
    }
    assert!(reaped(h.pid()));
    assert!(
        !dir.file("attempt-4").exists(),
        "no fourth attempt ran the lifecycle"
    );
}

#[test]
fn lives_used_counts_attempts_not_the_error_handlers_child() {
    let dir = Scratch::new("lives-used");
    let h = Phoenix {
        seen: vec![],
        succeed_on: u32::MAX,
        dir: dir.path(),
    }
    .start()
    .unwrap();
    h.result().unwrap();
    h.wait();
    // Three attempts were made; the handle says so (the error itself does not).
    assert_eq!(h.lives_used(), 3);

    // With a single life, a crash is one attempt too, and `error` receives the very
    // same `Crashed` it received after three lives, so it recovers the same way.
    let h = Phoenix {
        seen: vec![],
        succeed_on: 2,
        dir: dir.path(),
    }
    .start_with(Phoenix::config().with_lives(1))
    .unwrap();
    assert_eq!(h.result(), Ok((vec![999], 0)));
    h.wait();
    assert_eq!(h.lives_used(), 1, "README: 1 unless lives were used");
}

/// Fails in `main_loop` (an error, or a hang past its 300 ms limit) on the attempts
/// listed in `fail_on`.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, lives = 2, timeout.loop = "300ms")]
struct Flaky {
    fail_on: Vec<u32>,
    hang: bool,
}

impl Lifecycle for Flaky {
    type Output = u32;
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        if self.fail_on.contains(&cx.attempt()) {
            if self.hang {
                sleep_forever();
            }
            return Err(format!("attempt {} failed", cx.attempt()).into());
        }
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<u32, BoxError> {
        Ok(cx.attempt())
    }
}

#[test]
fn a_section_error_with_two_lives_is_retried_once() {
    let h = Flaky {
        fail_on: vec![1],
        hang: false,
    }
    .start()
    .unwrap();
    assert_eq!(h.result(), Ok(2));
    h.wait();
    assert_eq!(h.lives_used(), 2);
    assert_eq!(h.exit_code(), Some(0));

    // Failing on both: the default `error` hands back the last attempt's error as it
    // is, from the second attempt's own child (it is still alive).
    let h = Flaky {
        fail_on: vec![1, 2],
        hang: false,
    }
    .start()
    .unwrap();
    let e = h.result().unwrap_err();
    assert_eq!(
        e,
        ProcessError::MainLoop(RemoteError::msg("attempt 2 failed"))
    );
    assert_eq!(e.to_string(), "MainLoopError: attempt 2 failed");
    h.wait();
    assert_eq!(h.lives_used(), 2);
    assert_eq!(h.exit_code(), Some(1));
}

#[test]
fn a_timeout_consumes_a_life() {
    let limit = Duration::from_millis(300);
    let h = Flaky {
        fail_on: vec![1],
        hang: true,
    }
    .start()
    .unwrap();
    let first = h.pid();
    assert_eq!(h.result(), Ok(2), "the second attempt succeeded");
    h.wait();
    assert_eq!(h.lives_used(), 2);
    assert_eq!(h.exit_code(), Some(0));
    assert!(reaped(first), "the hung attempt was killed and reaped");

    // Hanging on every attempt: the last timeout is what `error` gets.
    let h = Flaky {
        fail_on: vec![1, 2],
        hang: true,
    }
    .start()
    .unwrap();
    assert_eq!(
        h.result(),
        Err(ProcessError::Timeout {
            section: Section::MainLoop,
            limit
        })
    );
    h.wait();
    assert_eq!(
        h.exit_code(),
        Some(-9),
        "the timed-out attempt was SIGKILLed"
    );
}

/// Aborts in its first `main_loop`.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, lives = 1)]
struct Doomed;

impl Lifecycle for Doomed {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        no_core_dumps();
        std::process::abort()
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn sixty_four_children_failing_at_once_all_report_and_are_all_reaped() {
    let mut handles: Vec<_> = (0..64).map(|_| Doomed.start().unwrap()).collect();
    let first_pids: Vec<u32> = handles.iter().map(Handle::pid).collect();
    for h in &mut handles {
        assert_eq!(
            h.result(),
            Err(ProcessError::Crashed {
                section: Some(Section::MainLoop),
                exit: Exit::Signal(6)
            })
        );
    }
    for h in &mut handles {
        h.wait();
        assert_eq!(h.exit_code(), Some(-6));
        assert!(!h.is_alive());
    }
    for (h, first) in handles.iter().zip(first_pids) {
        for pid in [first, h.pid()] {
            assert!(!process_running(pid), "{pid} still runs");
            assert!(reaped(pid), "{pid} is an unreaped zombie of ours");
        }
    }
}

/// Aborts in its first attempt once `dir/die` exists; hangs in every later one.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, lives = 2, timeout.loop = "none")]
struct TwoFaced {
    dir: String,
}

impl Lifecycle for TwoFaced {
    type Output = ();
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        if cx.attempt() > 1 {
            sleep_forever();
        }
        write_atomically(
            &format!("{}/ready", self.dir),
            &std::process::id().to_string(),
        )?;
        while !std::path::Path::new(&format!("{}/die", self.dir)).exists() {
            std::thread::sleep(Duration::from_millis(1));
        }
        no_core_dumps();
        std::process::abort()
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn kill_while_the_next_attempt_is_spawned_ends_the_process() {
    let dir = Scratch::new("kill-respawn");
    let h = TwoFaced { dir: dir.path() }.start().unwrap();
    let first: u32 = wait_for_file(&dir.file("ready"), Duration::from_secs(20))
        .expect("the first attempt runs")
        .parse()
        .unwrap();
    // Keep the runtime's one spawner thread busy, so that the respawn waits in its
    // queue for a few tens of milliseconds: kill() lands in that window.
    let burst: Vec<_> = (0..40)
        .map(|_| {
            std::thread::spawn(|| {
                let d = Doomed.start_with(Doomed::config()).unwrap();
                d.wait();
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(3));
    std::fs::write(dir.file("die"), b"").unwrap();
    while process_runtime_tests::proc_info(first).is_some() {
        std::thread::sleep(Duration::from_micros(50));
    }
    std::thread::sleep(Duration::from_millis(1));
    h.kill();
    let ended = h.wait_timeout(Duration::from_secs(3));
    if !ended {
        h.kill(); // clean up before failing
        h.wait();
    }
    for b in burst {
        b.join().unwrap();
    }
    assert!(ended, "kill() did not end the process: attempt 2 ran on");
    assert_eq!(h.result(), Err(ProcessError::Killed));
}
