//! The engine's order of sections, its stop rules and its limits, observed through a
//! real child process's output.

use std::time::{Duration, Instant};

use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// Records every section call; optionally stops itself after some laps.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 3)]
struct Recorder {
    calls: Vec<String>,
    laps_seen: Vec<u64>,
    stop_after_lap: Option<u64>,
}

impl Lifecycle for Recorder {
    type Output = (Vec<String>, Vec<u64>);

    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        self.calls.push("preloop".into());
        self.laps_seen.push(cx.lap());
        Ok(())
    }

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        self.calls.push("main_loop".into());
        Ok(())
    }

    fn postloop(&mut self, cx: &mut Context) -> Outcome {
        self.calls.push("postloop".into());
        if self.stop_after_lap == Some(cx.lap()) {
            cx.stop();
        }
        Ok(())
    }

    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        self.calls.push("on_finish".into());
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<Self::Output, BoxError> {
        self.calls.push("result".into());
        Ok((self.calls.clone(), self.laps_seen.clone()))
    }
}

#[test]
fn sections_run_in_order_for_num_loops_laps() {
    let h = Recorder::default().start().unwrap();
    let (calls, laps) = h.result().unwrap();
    let lap = ["preloop", "main_loop", "postloop"];
    let mut expected: Vec<&str> = lap.iter().chain(&lap).chain(&lap).copied().collect();
    expected.extend(["on_finish", "result"]);
    assert_eq!(calls, expected);
    assert_eq!(laps, [0, 1, 2], "cx.lap() counts completed laps");
    h.wait();
    assert_eq!(h.exit_code(), Some(0));
    assert!(!h.is_alive());
}

#[test]
fn cx_stop_finishes_the_lap_section_then_on_finish() {
    let r = Recorder {
        stop_after_lap: Some(0),
        ..Recorder::default()
    };
    let (calls, _) = r
        .start_with(Recorder::config().with_num_loops(None))
        .unwrap()
        .result()
        .unwrap();
    assert_eq!(
        calls,
        ["preloop", "main_loop", "postloop", "on_finish", "result"]
    );
}

#[test]
fn result_is_the_same_on_every_call_and_can_be_taken_once() {
    let h = Recorder::default().start().unwrap();
    let first = h.result().unwrap();
    assert_eq!(h.result().unwrap(), first);
    assert_eq!(h.take_result().unwrap(), first);
    assert_eq!(h.take_result().unwrap_err(), ProcessError::ResultTaken);
}

#[test]
fn start_does_not_consume_the_value_and_each_start_is_independent() {
    let r = Recorder::default();
    let a = r.start().unwrap();
    let b = r.start().unwrap();
    assert_ne!(a.pid(), b.pid());
    assert_eq!(a.result().unwrap(), b.result().unwrap());
    assert!(r.calls.is_empty(), "the parent's copy is untouched");
}

/// Runs until stopped from outside, counting laps.
#[derive(Process, Serialize, Deserialize)]
#[process(name = "endless")]
struct Endless {
    laps: u64,
    finished: bool,
    pause_ms: u64,
}

impl Lifecycle for Endless {
    type Output = (u64, bool);

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(self.pause_ms));
        self.laps += 1;
        Ok(())
    }

    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        self.finished = true;
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<Self::Output, BoxError> {
        Ok((self.laps, self.finished))
    }
}

#[test]
fn handle_stop_ends_an_endless_loop_through_on_finish() {
    let h = Endless {
        laps: 0,
        finished: false,
        pause_ms: 1,
    }
    .start()
    .unwrap();
    assert_eq!(h.name(), "endless");
    std::thread::sleep(Duration::from_millis(100));
    assert!(h.is_alive());
    assert_eq!(h.exit_code(), None);
    h.stop();
    let (laps, finished) = h.result().unwrap();
    assert!(laps > 0, "it ran before the stop");
    assert!(finished, "on_finish ran");
    h.wait();
    assert_eq!(h.exit_code(), Some(0));
}

#[test]
fn wait_timeout_zero_polls_without_blocking() {
    let h = Endless {
        laps: 0,
        finished: false,
        pause_ms: 1,
    }
    .start()
    .unwrap();
    let started = Instant::now();
    assert!(!h.wait_timeout(Duration::ZERO), "still running");
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "a poll does not block"
    );
    assert!(
        !h.wait_timeout(Duration::from_millis(30)),
        "still running after 30 ms"
    );
    h.stop();
    assert!(h.wait_timeout(Duration::from_secs(10)));
    assert!(h.wait_timeout(Duration::ZERO), "ended, and stays so");
    assert_eq!(h.exit_code(), Some(0));
}

#[test]
fn stop_before_the_first_lap_still_runs_on_finish_and_result() {
    let h = Endless {
        laps: 0,
        finished: false,
        pause_ms: 1,
    }
    .start()
    .unwrap();
    h.stop();
    let (_, finished) = h.result().unwrap();
    assert!(finished);
}

#[test]
fn join_in_stops_after_the_wall_time() {
    let cfg = Endless::config().with_join_in(Some(Duration::from_millis(300)));
    let started = Instant::now();
    let (laps, finished) = Endless {
        laps: 0,
        finished: false,
        pause_ms: 5,
    }
    .start_with(cfg)
    .unwrap()
    .result()
    .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(laps >= 10, "ran laps for 300 ms at 5 ms each: {laps}");
    assert!(finished);
}

#[test]
fn context_reports_identity() {
    #[derive(Process, Serialize, Deserialize)]
    #[process(num_loops = 1, name = "who")]
    struct Who;
    impl Lifecycle for Who {
        type Output = (u32, u32, String, u32);
        fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
            Ok(())
        }
        fn result(&mut self, cx: &mut Context) -> Result<Self::Output, BoxError> {
            Ok((
                cx.pid(),
                cx.parent_pid(),
                cx.name().to_owned(),
                cx.attempt(),
            ))
        }
    }
    let h = Who.start().unwrap();
    let (pid, ppid, name, attempt) = h.result().unwrap();
    assert_eq!(pid, h.pid());
    assert_eq!(ppid, std::process::id());
    assert_eq!(name, "who");
    assert_eq!(attempt, 1);
    assert_eq!(h.lives_used(), 1);
}
