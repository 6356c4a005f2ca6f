//! The engine: runs a lifecycle in the child, section by section, lap by lap.
//!
//! The hot path is one lap: a relaxed load of the stop flag before each section, a
//! relaxed store of the current section into the beacon (which the parent watches for
//! timeouts, and which attributes a panic or crash to its section), the three calls,
//! and the lap count. Nothing else is paid unless asked for: `join_in` reads the clock
//! once per lap only when set, and a section is timed only when `#[timethis]` marks it
//! (the `__TIMETHIS_*` constants are known at compile time, so unmarked sections
//! compile to a plain call). Panics are caught once, around the whole run, not per
//! section.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::beacon;
use crate::{BoxError, Context, Lifecycle, ProcessError, RemoteError, Section};

/// Where the panic hook leaves the location of the last panic, for the error report.
pub(crate) mod panic_location {
    use std::sync::Mutex;

    static LAST: Mutex<Option<String>> = Mutex::new(None);

    /// Records panic locations (then runs the previous hook, which prints the message
    /// as usual).
    pub(crate) fn install() {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(loc) = info.location() {
                *LAST
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(format!("{}:{}:{}", loc.file(), loc.line(), loc.column()));
            }
            previous(info);
        }));
    }

    pub(crate) fn take() -> Option<String> {
        LAST.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Runs the lifecycle to its end: laps until stopped or a limit is reached, then
/// `on_finish` and `result`. The first error or panic ends the run, wrapped by section.
/// `before_on_finish` runs once the section is `OnFinish`, before the user's
/// `on_finish` (and outside its timer): a process stopped by its parent stops its own
/// children there, under `on_finish`'s limit.
pub(crate) fn run<T: Lifecycle>(
    obj: &mut T,
    cx: &mut Context,
    beacon: &AtomicU64,
    before_on_finish: fn(),
) -> Result<T::Output, ProcessError> {
    let mut tracker = Tracker {
        beacon,
        entries: 0,
        pid: cx.pid(),
    };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        run_sections(obj, cx, &mut tracker, before_on_finish)
    }));
    match outcome {
        Ok(Ok(output)) => Ok(output),
        Ok(Err((section, error))) => Err(ProcessError::in_section(
            section,
            RemoteError::from_error(error.as_ref()),
        )),
        Err(payload) => Err(ProcessError::in_section(
            beacon::section_of(beacon.load(Ordering::Relaxed)).unwrap_or(Section::Preloop),
            RemoteError::from_panic(payload.as_ref(), panic_location::take()),
        )),
    }
}

/// Publishes section starts to the beacon.
struct Tracker<'a> {
    beacon: &'a AtomicU64,
    entries: u64,
    pid: u32,
}

impl Tracker<'_> {
    #[inline(always)]
    fn enter(&mut self, section: Section) {
        self.entries += 1;
        self.beacon
            .store(beacon::encode(self.entries, section), Ordering::Relaxed);
    }
}

/// Calls `error` with the failure, catching a panic in it.
pub(crate) fn handle_error<T: Lifecycle>(
    obj: &mut T,
    cx: &mut Context,
    error: ProcessError,
    beacon: &AtomicU64,
) -> Result<T::Output, ProcessError> {
    beacon.store(
        beacon::encode(u64::MAX >> 3, Section::Error),
        Ordering::Relaxed,
    );
    match panic::catch_unwind(AssertUnwindSafe(|| obj.error(error, cx))) {
        Ok(result) => result,
        Err(payload) => Err(ProcessError::ErrorHandler(RemoteError::from_panic(
            payload.as_ref(),
            panic_location::take(),
        ))),
    }
}

type SectionFailure = (Section, BoxError);

#[inline(always)]
fn section(
    tracker: &mut Tracker<'_>,
    which: Section,
    timed: bool,
    lap_time: &mut Duration,
    cx: &mut Context,
    call: impl FnOnce(&mut Context) -> Result<(), BoxError>,
) -> Result<(), SectionFailure> {
    tracker.enter(which);
    entered_section(tracker, which, timed, lap_time, cx, call)
}

/// [`section`] once the beacon says `which`.
#[inline(always)]
fn entered_section(
    tracker: &Tracker<'_>,
    which: Section,
    timed: bool,
    lap_time: &mut Duration,
    cx: &mut Context,
    call: impl FnOnce(&mut Context) -> Result<(), BoxError>,
) -> Result<(), SectionFailure> {
    // A disabled TRACE span costs a load and a branch; enabled, it lets a subscriber
    // in the child see every section call.
    let _span = tracing::trace_span!(
        "section",
        process = cx.name(),
        section = which.as_str(),
        lap = cx.lap(),
        pid = tracker.pid,
    )
    .entered();
    let result = if timed {
        let start = Instant::now();
        let result = call(cx);
        let took = start.elapsed();
        *lap_time += took;
        let timers = cx.timers_mut();
        match which {
            Section::Preloop => timers.preloop.add_time(took),
            Section::MainLoop => timers.main_loop.add_time(took),
            Section::Postloop => timers.postloop.add_time(took),
            _ => timers.on_finish.add_time(took),
        }
        result
    } else {
        call(cx)
    };
    result.map_err(|e| (which, e))
}

fn run_sections<T: Lifecycle>(
    obj: &mut T,
    cx: &mut Context,
    tracker: &mut Tracker<'_>,
    before_on_finish: fn(),
) -> Result<T::Output, SectionFailure> {
    let stop = cx.__stop_flag();
    let stopped = || stop.load(Ordering::Relaxed);
    let num_loops = cx.config().num_loops;
    let deadline = cx.config().join_in.map(|d| Instant::now() + d);
    let any_timed = T::__TIMETHIS_PRELOOP || T::__TIMETHIS_MAIN_LOOP || T::__TIMETHIS_POSTLOOP;
    let mut lap: u64 = 0;
    while !stopped() {
        let mut lap_time = Duration::ZERO;
        section(
            tracker,
            Section::Preloop,
            T::__TIMETHIS_PRELOOP,
            &mut lap_time,
            cx,
            |cx| obj.preloop(cx),
        )?;
        if stopped() {
            break;
        }
        section(
            tracker,
            Section::MainLoop,
            T::__TIMETHIS_MAIN_LOOP,
            &mut lap_time,
            cx,
            |cx| obj.main_loop(cx),
        )?;
        if stopped() {
            break;
        }
        section(
            tracker,
            Section::Postloop,
            T::__TIMETHIS_POSTLOOP,
            &mut lap_time,
            cx,
            |cx| obj.postloop(cx),
        )?;
        lap += 1;
        cx.__set_lap(lap);
        if any_timed {
            cx.timers_mut().full_loop.add_time(lap_time);
        }
        if num_loops.is_some_and(|n| lap >= n) {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    let mut unused = Duration::ZERO;
    tracker.enter(Section::OnFinish);
    before_on_finish();
    entered_section(
        tracker,
        Section::OnFinish,
        T::__TIMETHIS_ON_FINISH,
        &mut unused,
        cx,
        |cx| obj.on_finish(cx),
    )?;
    tracker.enter(Section::Result);
    obj.result(cx).map_err(|e| (Section::Result, e))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::ProcessConfig;

    #[derive(Default)]
    struct Recorder {
        calls: Vec<&'static str>,
        fail_in: Option<&'static str>,
        panic_in: Option<&'static str>,
        stop_at_lap: Option<u64>,
    }

    impl Recorder {
        fn visit(&mut self, name: &'static str) -> Result<(), BoxError> {
            self.calls.push(name);
            if self.panic_in == Some(name) {
                panic!("boom in {name}");
            }
            if self.fail_in == Some(name) {
                return Err(format!("failed in {name}").into());
            }
            Ok(())
        }
    }

    impl Lifecycle for Recorder {
        type Output = usize;
        fn preloop(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
            self.visit("preloop")
        }
        fn main_loop(&mut self, cx: &mut Context) -> Result<(), BoxError> {
            if self.stop_at_lap == Some(cx.lap()) {
                cx.stop();
            }
            self.visit("main_loop")
        }
        fn postloop(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
            self.visit("postloop")
        }
        fn on_finish(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
            self.visit("on_finish")
        }
        fn result(&mut self, _cx: &mut Context) -> Result<usize, BoxError> {
            self.visit("result")?;
            Ok(self.calls.len())
        }
    }

    fn cx(config: ProcessConfig) -> Context {
        Context::__new(config, Box::leak(Box::new(AtomicBool::new(false))), 1, 0, 1)
    }

    fn run<T: Lifecycle>(obj: &mut T, cx: &mut Context) -> Result<T::Output, ProcessError> {
        super::run(obj, cx, &AtomicU64::new(beacon::NOT_STARTED), || {})
    }

    #[test]
    fn laps_run_in_order_until_num_loops() {
        let mut r = Recorder::default();
        let mut c = cx(ProcessConfig::new("t").with_num_loops(Some(2)));
        assert_eq!(run(&mut r, &mut c).unwrap(), 8);
        assert_eq!(
            r.calls,
            [
                "preloop",
                "main_loop",
                "postloop",
                "preloop",
                "main_loop",
                "postloop",
                "on_finish",
                "result"
            ]
        );
        assert_eq!(c.lap(), 2);
    }

    #[test]
    fn a_stop_lets_the_current_section_finish() {
        let mut r = Recorder {
            stop_at_lap: Some(1),
            ..Recorder::default()
        };
        let mut c = cx(ProcessConfig::new("t"));
        run(&mut r, &mut c).unwrap();
        assert_eq!(
            r.calls,
            [
                "preloop",
                "main_loop",
                "postloop",
                "preloop",
                "main_loop",
                "on_finish",
                "result"
            ]
        );
        assert_eq!(c.lap(), 1);
    }

    #[test]
    fn errors_and_panics_are_wrapped_by_section() {
        for name in ["preloop", "main_loop", "postloop", "on_finish", "result"] {
            let mut r = Recorder {
                fail_in: Some(name),
                ..Recorder::default()
            };
            let e = run(
                &mut r,
                &mut cx(ProcessConfig::new("t").with_num_loops(Some(1))),
            )
            .unwrap_err();
            assert_eq!(e.section().unwrap().as_str(), name);
            assert!(
                e.to_string().ends_with(&format!(": failed in {name}")),
                "{e}"
            );

            let mut r = Recorder {
                panic_in: Some(name),
                ..Recorder::default()
            };
            let e = run(
                &mut r,
                &mut cx(ProcessConfig::new("t").with_num_loops(Some(1))),
            )
            .unwrap_err();
            assert_eq!(e.section().unwrap().as_str(), name);
            assert!(e.remote().unwrap().is_panic());
            assert!(
                e.to_string().ends_with(&format!("panic: boom in {name}")),
                "{e}"
            );
        }
    }

    #[test]
    fn join_in_ends_an_endless_process() {
        let mut r = Recorder::default();
        let mut c = cx(ProcessConfig::new("t").with_join_in(Some(Duration::from_millis(20))));
        let start = Instant::now();
        run(&mut r, &mut c).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(c.lap() > 0);
        assert_eq!(r.calls.last(), Some(&"result"));
    }
}
