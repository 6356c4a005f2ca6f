//! Section timers: `#[timethis]` on sections and on a helper method, a user-made timer,
//! and the statistics the parent reads once the process ended.
//!
//! `cargo run --example timers`

use std::time::Duration;

use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// Pretends to crawl: each lap "fetches" twice and "parses" once.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(num_loops = 20, name = "crawler")]
struct Crawler {
    pages: usize,
    parse_timer: Timer,
}

impl Crawler {
    /// Timed into `cx.timers().named("fetch")`.
    #[timethis]
    fn fetch(&mut self, cx: &mut Context) -> Result<usize, BoxError> {
        // Later laps are slower, to give the statistics something to show.
        let lap = u32::try_from(cx.lap())?;
        std::thread::sleep(Duration::from_micros(500 + 100 * u64::from(lap)));
        Ok(1)
    }
}

impl Lifecycle for Crawler {
    type Output = (usize, Timer);

    #[timethis]
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        self.pages += self.fetch(cx)? + self.fetch(cx)?;
        let _parse = self.parse_timer.time(); // a user-made timer: the guard times the rest
        std::thread::sleep(Duration::from_micros(300));
        Ok(())
    }

    #[timethis]
    fn postloop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_micros(100));
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<Self::Output, BoxError> {
        Ok((self.pages, self.parse_timer.clone()))
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.3} ms", d.as_secs_f64() * 1e3),
    )
}

#[process_runtime::main]
fn main() -> Result<(), ProcessError> {
    let handle = Crawler::default().start()?;
    let (pages, parse) = handle.result()?;
    let t = handle.timers();
    println!("{pages} pages in {} laps", t.main_loop.num_times());
    let fetch = t.named("fetch").expect("fetch is marked with #[timethis]");
    for (name, timer) in [
        ("main_loop", &t.main_loop),
        ("postloop", &t.postloop),
        ("full_loop", &t.full_loop),
        ("fetch", fetch),
        ("parse (user timer)", &parse),
    ] {
        println!(
            "{name:>18}: n={:<3} mean {}  median {}  p95 {}  min {}  max {}  stdev {}",
            timer.num_times(),
            ms(timer.mean()),
            ms(timer.median()),
            ms(timer.percentile(95.0)),
            ms(timer.min()),
            ms(timer.max()),
            ms(timer.stdev()),
        );
    }
    println!(
        "preloop is not marked: {} calls timed",
        t.preloop.num_times()
    );
    Ok(())
}
