//! Section timeouts, held by the parent: a child stuck in any section (asleep, spinning,
//! in a blocking system call, ignoring SIGTERM) is killed once its limit passes, the
//! result is `Timeout { section, limit }`, and it ends promptly; `kill()` and `stop()`
//! work on it too. Limits bound each call, not the sum of calls.

use std::time::{Duration, Instant};

use process_runtime::prelude::*;
use process_runtime_tests::{reaped, sleep_forever, wait_for_file, write_atomically, Scratch};
use serde::{Deserialize, Serialize};

/// How a section gets stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Stuck {
    Sleeping,
    Spinning,
    /// Blocked in `pause()`, a system call that only a signal ends.
    Paused,
}

/// Gets stuck in `section`; `preloop` first writes the pid to `ready` (when set) and,
/// with `ignore_sigterm`, ignores SIGTERM.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1)]
struct Hang {
    section: Section,
    stuck: Stuck,
    ignore_sigterm: bool,
    ready: String,
    on_finish_marker: String,
}

impl Hang {
    fn new(section: Section, stuck: Stuck) -> Self {
        Self {
            section,
            stuck,
            ignore_sigterm: false,
            ready: String::new(),
            on_finish_marker: String::new(),
        }
    }

    fn maybe_hang(&self, here: Section) -> Outcome {
        if here != self.section {
            return Ok(());
        }
        if !self.ready.is_empty() {
            write_atomically(&self.ready, &std::process::id().to_string())?;
        }
        match self.stuck {
            Stuck::Sleeping => sleep_forever(),
            Stuck::Spinning => loop {
                std::hint::spin_loop();
            },
            Stuck::Paused => loop {
                // SAFETY: pause only waits for a signal.
                unsafe { libc::pause() };
            },
        }
    }
}

impl Lifecycle for Hang {
    type Output = String;
    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
        if self.ignore_sigterm {
            // SAFETY: plain signal disposition change, then a signal to ourselves that
            // must now be ignored (if it were not, this child would die here).
            unsafe {
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                libc::raise(libc::SIGTERM);
            }
        }
        self.maybe_hang(Section::Preloop)
    }
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        self.maybe_hang(Section::MainLoop)
    }
    fn postloop(&mut self, _cx: &mut Context) -> Outcome {
        self.maybe_hang(Section::Postloop)
    }
    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        if !self.on_finish_marker.is_empty() {
            std::fs::write(&self.on_finish_marker, b"ran")?;
        }
        self.maybe_hang(Section::OnFinish)
    }
    fn result(&mut self, _cx: &mut Context) -> Result<String, BoxError> {
        Ok("not stuck".into())
    }
}

const LIMIT: Duration = Duration::from_millis(300);
/// How late a timeout may end the child: the limit plus this.
const SLACK: Duration = Duration::from_secs(2);

#[test]
fn a_hang_in_each_section_is_a_timeout_and_ends_promptly() {
    let cases = [
        (Section::Preloop, Stuck::Sleeping),
        (Section::MainLoop, Stuck::Spinning),
        (Section::Postloop, Stuck::Paused),
        (Section::OnFinish, Stuck::Sleeping),
    ];
    // All four at once: each is timed from its own start.
    let started = Instant::now();
    let mut handles: Vec<_> = cases
        .iter()
        .map(|&(section, stuck)| {
            let config = Hang::config().with_timeout(section, Some(LIMIT));
            let h = Hang::new(section, stuck).start_with(config).unwrap();
            let pid = h.pid();
            (section, h, pid)
        })
        .collect();
    for (section, h, pid) in &mut handles {
        let section = *section;
        assert_eq!(
            h.result(),
            Err(ProcessError::Timeout {
                section,
                limit: LIMIT
            }),
            "{section}"
        );
        h.wait();
        let elapsed = started.elapsed();
        assert!(
            elapsed < LIMIT + SLACK,
            "{section}: ended {elapsed:?} after start"
        );
        assert!(elapsed >= LIMIT, "{section}: not before its limit");
        assert_eq!(h.exit_code(), Some(-9), "{section}: SIGKILLed");
        assert!(reaped(*pid), "{section}: the stuck child is gone");
        assert!(reaped(h.pid()), "{section}");
        assert_eq!(
            h.result().unwrap_err().to_string(),
            format!("TimeoutError: {section} ran longer than its limit of 300ms")
        );
    }
}

/// The attribute's form of the same limit.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 3, timeout.loop = "250ms", timeout(onfinish = "none"))]
struct SlowLoop {
    nap_ms: u64,
}

impl Lifecycle for SlowLoop {
    type Output = u64;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(self.nap_ms));
        Ok(())
    }
    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        // No limit on on_finish: longer than every other limit, and not killed.
        std::thread::sleep(Duration::from_millis(400));
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<u64, BoxError> {
        Ok(cx.lap())
    }
}

#[test]
fn the_attributes_limit_bounds_each_call_not_their_sum() {
    // Three laps of 100 ms: 300 ms in main_loop in all, more than its 250 ms limit,
    // but no call reaches it; on_finish has no limit.
    let h = SlowLoop { nap_ms: 100 }.start().unwrap();
    assert_eq!(h.result(), Ok(3));
    h.wait();
    assert_eq!(h.exit_code(), Some(0));

    // One call past the limit.
    let started = Instant::now();
    let h = SlowLoop { nap_ms: 60_000 }.start().unwrap();
    assert_eq!(
        h.result(),
        Err(ProcessError::Timeout {
            section: Section::MainLoop,
            limit: Duration::from_millis(250)
        })
    );
    h.wait();
    assert!(started.elapsed() < Duration::from_millis(250) + SLACK);
    assert_eq!(h.exit_code(), Some(-9));
}

fn ready_hang(dir: &Scratch, ignore_sigterm: bool) -> Hang {
    Hang {
        section: Section::MainLoop,
        stuck: Stuck::Sleeping,
        ignore_sigterm,
        ready: dir.file("ready").to_string_lossy().into_owned(),
        on_finish_marker: dir.file("on_finish").to_string_lossy().into_owned(),
    }
}

fn wait_ready(dir: &Scratch) -> u32 {
    wait_for_file(&dir.file("ready"), Duration::from_secs(20))
        .expect("the child reached main_loop")
        .parse()
        .unwrap()
}

#[test]
fn a_child_ignoring_sigterm_is_still_killed_by_kill() {
    let dir = Scratch::new("ignore-term-kill");
    let h = ready_hang(&dir, true)
        .start_with(Hang::config().with_timeout(Section::MainLoop, None))
        .unwrap();
    let pid = wait_ready(&dir);
    assert!(h.is_alive(), "SIGTERM ignored: it survived raise(SIGTERM)");
    let killed_at = Instant::now();
    h.kill();
    assert_eq!(h.result(), Err(ProcessError::Killed));
    h.wait();
    assert!(killed_at.elapsed() < SLACK, "kill is immediate");
    assert_eq!(h.exit_code(), Some(-9));
    assert!(reaped(pid));
    assert!(!dir.file("on_finish").exists(), "no on_finish after kill");
}

#[test]
fn a_child_ignoring_sigterm_is_still_killed_by_its_timeout() {
    let dir = Scratch::new("ignore-term-timeout");
    let started = Instant::now();
    let h = ready_hang(&dir, true)
        .start_with(Hang::config().with_timeout(Section::MainLoop, Some(LIMIT)))
        .unwrap();
    assert_eq!(
        h.result(),
        Err(ProcessError::Timeout {
            section: Section::MainLoop,
            limit: LIMIT
        })
    );
    h.wait();
    assert!(started.elapsed() < LIMIT + SLACK);
    assert_eq!(h.exit_code(), Some(-9));
    assert!(reaped(wait_ready(&dir)));
    assert!(
        !dir.file("on_finish").exists(),
        "no on_finish after a timeout"
    );
}

#[test]
fn stop_on_a_child_stuck_in_a_section_escalates_to_its_timeout() {
    let dir = Scratch::new("stop-escalation");
    let limit = Duration::from_millis(500);
    let h = ready_hang(&dir, false)
        .start_with(Hang::config().with_timeout(Section::MainLoop, Some(limit)))
        .unwrap();
    let pid = wait_ready(&dir);
    let stopped_at = Instant::now();
    h.stop();
    // The stop frame cannot reach a section that never checks: the section's own
    // limit ends it, with the timeout error.
    assert_eq!(
        h.result(),
        Err(ProcessError::Timeout {
            section: Section::MainLoop,
            limit
        })
    );
    h.wait();
    assert!(
        stopped_at.elapsed() < limit + SLACK,
        "{:?}",
        stopped_at.elapsed()
    );
    assert_eq!(h.exit_code(), Some(-9));
    assert!(reaped(pid));
    assert!(
        !dir.file("on_finish").exists(),
        "a timed-out child is killed"
    );
}
