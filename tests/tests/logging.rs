//! Every failure of every attempt is logged through `tracing` in the parent, with the
//! process's name and the failed child's pid.
//!
//! One test in this file: it installs the global subscriber of this test binary.

use std::sync::Mutex;

use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// Records every event as `LEVEL message field=value ...`.
struct Capture;

static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _cx: tracing_subscriber::layer::Context<'_, S>) {
        #[derive(Default)]
        struct Fields(Vec<String>);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push(format!("{}={value:?}", field.name()));
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        EVENTS.lock().unwrap().push(format!(
            "{} {}",
            event.metadata().level(),
            fields.0.join(" ")
        ));
    }
}

/// Fails its main loop on every attempt, leaving its pid in the error.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, lives = 2, name = "flaky")]
struct Flaky;

impl Lifecycle for Flaky {
    type Output = ();
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        Err(format!("pid {} gave up", cx.pid()).into())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn each_failed_attempt_is_a_warning_with_name_and_pid() {
    use tracing_subscriber::layer::SubscriberExt;
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture)).unwrap();
    let e = Flaky.start().unwrap().result().unwrap_err();
    let warnings: Vec<String> = EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.starts_with("WARN"))
        .cloned()
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    let pid_of = |w: &str| -> String {
        let at = w.find("pid=").expect("a pid field") + 4;
        w[at..].split_whitespace().next().unwrap().to_owned()
    };
    for (w, (what, attempt)) in warnings
        .iter()
        .zip([("attempt failed", 1), ("process failed", 2)])
    {
        assert!(
            w.contains(&format!("message={what}: MainLoopError: pid ")),
            "{w}"
        );
        assert!(w.contains("process=flaky"), "{w}");
        assert!(w.contains(&format!("attempt={attempt}")), "{w}");
        assert!(
            w.contains(&format!("pid {} gave up", pid_of(w))),
            "the logged pid is the failed child's: {w}"
        );
    }
    // The error is the last attempt's own; the log lines (attempt=, lives=) say how
    // many attempts there were.
    assert!(matches!(e, ProcessError::MainLoop(_)), "{e:?}");
    assert!(warnings[1].contains("lives=2"), "{}", warnings[1]);
}
