//! `#[timethis]`, section timers, `full_loop`, named and user-made timers, and the
//! section spans, observed from the parent after real child processes ended.

use std::sync::Mutex;
use std::time::Duration;

use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

const LAPS: u64 = 5;

/// A known workload: timed preloop (2 ms) and main_loop (10 ms), untimed postloop.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 5)]
struct Workload {
    fetch_timer: Timer,
    fail_on_lap: Option<u64>,
}

impl Workload {
    #[timethis]
    fn fetch(&mut self, _cx: &mut Context) -> Result<u32, BoxError> {
        std::thread::sleep(Duration::from_millis(1));
        Ok(1)
    }
}

impl Lifecycle for Workload {
    type Output = (usize, usize);

    #[timethis]
    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(2));
        Ok(())
    }

    #[timethis]
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        if self.fail_on_lap == Some(cx.lap()) {
            return Err("lap failed".into());
        }
        self.fetch(cx)?;
        self.fetch(cx)?;
        let _t = self.fetch_timer.time();
        std::thread::sleep(Duration::from_millis(8));
        Ok(())
    }

    fn postloop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(2));
        Ok(())
    }

    #[timethis]
    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(3));
        Ok(())
    }

    fn result(&mut self, cx: &mut Context) -> Result<Self::Output, BoxError> {
        Ok((
            self.fetch_timer.num_times(),
            cx.timers().main_loop.num_times(),
        ))
    }
}

#[test]
fn marked_sections_are_timed_and_unmarked_ones_are_not() {
    let h = Workload::default().start().unwrap();
    let (user_timer_count, seen_in_child) = h.result().unwrap();
    let t = h.timers();
    let laps = usize::try_from(LAPS).unwrap();
    assert_eq!(t.main_loop.num_times(), laps);
    assert_eq!(t.preloop.num_times(), laps);
    assert_eq!(t.postloop.num_times(), 0, "postloop is not marked");
    assert_eq!(t.on_finish.num_times(), 1);
    assert_eq!(t.full_loop.num_times(), laps);
    assert!(t.main_loop.min().unwrap() >= Duration::from_millis(10));
    assert!(t.preloop.min().unwrap() >= Duration::from_millis(2));
    assert!(t.on_finish.total() >= Duration::from_millis(3));
    assert!(t.main_loop.total() < Duration::from_secs(10));
    // full_loop adds up each lap's timed sections, and only those.
    assert_eq!(t.full_loop.total(), t.preloop.total() + t.main_loop.total());
    let fetch = t
        .named("fetch")
        .expect("a named timer for the marked method");
    assert_eq!(fetch.num_times(), 2 * laps);
    assert!(fetch.min().unwrap() >= Duration::from_millis(1));
    assert_eq!(
        user_timer_count, laps,
        "a user-made timer lives in the state"
    );
    assert_eq!(seen_in_child, laps, "cx.timers() inside the child");
    assert_eq!(t.attempt(), 1);
    assert!(!t.from_failed_attempt());
}

#[test]
fn timers_are_delivered_after_an_error_and_say_so() {
    let h = Workload {
        fail_on_lap: Some(3),
        ..Workload::default()
    }
    .start()
    .unwrap();
    let e = h.result().unwrap_err();
    assert_eq!(e.to_string(), "MainLoopError: lap failed");
    let t = h.timers();
    assert_eq!(
        t.main_loop.num_times(),
        4,
        "laps 0..=3, the failing call included"
    );
    assert_eq!(t.full_loop.num_times(), 3, "only completed laps");
    assert!(t.from_failed_attempt());
    assert_eq!(t.attempt(), 1);
}

/// No section marked: every section timer stays empty.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 3)]
struct Untimed;

impl Lifecycle for Untimed {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn without_timethis_nothing_is_timed() {
    let h = Untimed.start().unwrap();
    h.result().unwrap();
    let t = h.timers();
    for timer in [
        &t.preloop,
        &t.main_loop,
        &t.postloop,
        &t.on_finish,
        &t.full_loop,
    ] {
        assert_eq!(timer.num_times(), 0);
    }
    assert_eq!(t.names().count(), 0);
}

/// Records the spans the engine opens, as `section@lap`.
struct Capture;

static SPANS: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _cx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        #[derive(Default)]
        struct Fields(Vec<String>);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push(format!("{}={value:?}", field.name()));
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.push(format!("{}={value}", field.name()));
            }
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        SPANS.lock().unwrap().push(format!(
            "{} {}",
            attrs.metadata().name(),
            fields.0.join(" ")
        ));
    }
}

/// Installs a subscriber in the child (the child never runs `main`) and returns the
/// spans it saw.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 2, name = "traced")]
struct Traced;

impl Lifecycle for Traced {
    type Output = (Vec<String>, u32);
    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        if cx.lap() == 0 {
            use tracing_subscriber::layer::SubscriberExt;
            let subscriber = tracing_subscriber::registry().with(Capture);
            tracing::subscriber::set_global_default(subscriber)?;
        }
        Ok(())
    }
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<Self::Output, BoxError> {
        Ok((SPANS.lock().unwrap().clone(), cx.pid()))
    }
}

#[test]
fn each_section_call_is_a_span_with_process_section_lap_and_pid() {
    let (spans, pid) = Traced.start().unwrap().result().unwrap();
    let expected: Vec<String> = [
        ("main_loop", 0),
        ("postloop", 0),
        ("preloop", 1),
        ("main_loop", 1),
        ("postloop", 1),
        ("on_finish", 2),
    ]
    .iter()
    .map(|(s, lap)| format!("section process=traced section={s} lap={lap} pid={pid}"))
    .collect();
    assert_eq!(spans, expected);
}

/// How [`Doomed`] ends on lap `at_lap`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Doom {
    /// Hangs in `main_loop` past `timeout.loop`.
    Hang,
    /// Aborts in `main_loop`.
    Abort,
    /// Writes `ready`, then waits in `main_loop` for the parent's `kill()`.
    AwaitKill,
}

/// Timed laps (`preloop` and `main_loop` marked) that end without a report on lap
/// `at_lap` of attempt `doomed_attempt`, and otherwise run to `num_loops`.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "300ms")]
struct Doomed {
    doom: Doom,
    at_lap: u64,
    doomed_attempt: u32,
    ready: String,
}

impl Doomed {
    fn new(doom: Doom, at_lap: u64) -> Self {
        Self {
            doom,
            at_lap,
            doomed_attempt: 1,
            ready: String::new(),
        }
    }
}

impl Lifecycle for Doomed {
    type Output = u64;

    #[timethis]
    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    #[timethis]
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        // A named timer: it reaches the parent only with a report.
        cx.timers_mut()
            .named_mut("user")
            .add_time(Duration::from_micros(1));
        if cx.lap() == self.at_lap && cx.attempt() == self.doomed_attempt {
            match self.doom {
                Doom::Hang => process_runtime_tests::sleep_forever(),
                Doom::Abort => {
                    process_runtime_tests::no_core_dumps();
                    std::process::abort()
                }
                Doom::AwaitKill => {
                    process_runtime_tests::write_atomically(&self.ready, "ready")?;
                    process_runtime_tests::sleep_forever()
                }
            }
        }
        Ok(())
    }

    fn result(&mut self, cx: &mut Context) -> Result<u64, BoxError> {
        Ok(cx.lap())
    }
}

/// The section timers of an attempt that ended on lap `lap` without a report: every
/// call that completed, none of the call in progress, and no named timer.
fn assert_laps_before_the_end(t: &ProcessTimers, lap: usize) {
    assert_eq!(t.main_loop.num_times(), lap, "main_loop calls completed");
    assert_eq!(
        t.preloop.num_times(),
        lap + 1,
        "lap {lap}'s preloop completed"
    );
    assert_eq!(t.full_loop.num_times(), lap, "laps completed");
    assert_eq!(t.postloop.num_times(), 0, "postloop is not marked");
    assert!(t.main_loop.max().unwrap() < Duration::from_millis(300));
    assert!(t.main_loop.median().is_some());
    assert!(
        t.named("user").is_none(),
        "named timers come with a report only"
    );
    assert!(t.from_failed_attempt());
    assert_eq!(t.attempt(), 1);
}

#[test]
fn section_timers_survive_a_timeout() {
    let h = Doomed::new(Doom::Hang, 5).start().unwrap();
    let e = h.result().unwrap_err();
    assert!(matches!(e, ProcessError::Timeout { .. }), "{e}");
    assert_laps_before_the_end(h.timers(), 5);
}

#[test]
fn section_timers_survive_a_crash() {
    let h = Doomed::new(Doom::Abort, 7).start().unwrap();
    let e = h.result().unwrap_err();
    assert!(matches!(e, ProcessError::Crashed { .. }), "{e}");
    // `error` then ran in a fresh child, which timed nothing: the timers stay the
    // crashed attempt's.
    assert_laps_before_the_end(h.timers(), 7);
}

#[test]
fn section_timers_survive_a_kill() {
    let scratch = process_runtime_tests::Scratch::new("timers-kill");
    let ready = scratch.file("ready");
    let h = Doomed {
        ready: ready.to_string_lossy().into_owned(),
        ..Doomed::new(Doom::AwaitKill, 3)
    }
    .start()
    .unwrap();
    process_runtime_tests::wait_for_file(&ready, Duration::from_secs(30))
        .expect("the child reached lap 3");
    h.kill();
    let e = h.result().unwrap_err();
    assert!(matches!(e, ProcessError::Killed), "{e}");
    assert_laps_before_the_end(h.timers(), 3);
}

#[test]
fn a_retry_brings_its_own_timers() {
    let config = Doomed::config().with_lives(2).with_num_loops(Some(4));
    let h = Doomed::new(Doom::Hang, 2).start_with(config).unwrap();
    assert_eq!(h.result().unwrap(), 4);
    let t = h.timers();
    assert_eq!(t.main_loop.num_times(), 4, "the second attempt's laps only");
    assert_eq!(t.full_loop.num_times(), 4);
    assert_eq!(t.named("user").unwrap().num_times(), 4);
    assert_eq!(t.attempt(), 2);
    assert!(!t.from_failed_attempt());
}
