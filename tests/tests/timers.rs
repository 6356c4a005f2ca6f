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
