//! Every key of `#[process(...)]`, every kind of struct, and `#[timethis]` in all its
//! places compile; the configuration is what the attribute says.
use std::time::Duration;

use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Process, Serialize, Deserialize)]
#[process(
    num_loops = 10,
    join_in = "1.5s",
    lives = 3,
    name = "counter",
    daemon = true,
    mailbox = 1_000_000
)]
#[process(timeout.preloop = "250ms", timeout.loop = "none", timeout.postloop = 2)]
#[process(timeout(onfinish = "1m"))]
struct Counter {
    counter: u32,
}

impl Lifecycle for Counter {
    type Output = u32;

    #[timethis]
    fn preloop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    #[timethis]
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        self.step(cx)?;
        Ok(())
    }

    #[timethis]
    fn postloop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    #[timethis]
    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    #[timethis]
    fn result(&mut self, _cx: &mut Context) -> Result<u32, BoxError> {
        Ok(self.counter)
    }
}

impl Counter {
    #[timethis]
    fn step(&mut self, cx: &mut Context) -> Outcome {
        if cx.lap() > 100 {
            return Err("too many laps".into());
        }
        let n: u32 = "1".parse()?;
        self.counter += n;
        Ok(())
    }

    #[timethis]
    fn name<'a>(&'a self, context: &mut process_runtime::Context) -> &'a str {
        let _ = context.lap();
        "counter"
    }

    #[timethis]
    fn iter(&self, cx: &mut Context) -> impl Iterator<Item = u32> {
        let _ = cx;
        0..self.counter
    }

    #[timethis]
    async fn fetch(&mut self, cx: &mut Context) -> Result<u32, std::num::ParseIntError> {
        let _ = cx.lap();
        let n: u32 = "2".parse()?;
        Ok(self.counter + n)
    }
}

#[derive(Process, Serialize, Deserialize)]
struct Pair(u8, u16);

impl Lifecycle for Pair {
    type Output = u8;

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<u8, BoxError> {
        Ok(self.0)
    }
}

#[derive(Process, Serialize, Deserialize)]
#[process(timeout(loop = 0.5, preloop = "none"), join_in = 2.5)]
struct Unit;

impl Lifecycle for Unit {
    type Output = ();

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[process_runtime::main]
fn main() {
    let c = Counter::config();
    assert_eq!(c.name, "counter");
    assert_eq!(c.num_loops, Some(10));
    assert_eq!(c.join_in, Some(Duration::from_millis(1500)));
    assert_eq!(c.lives, 3);
    assert!(c.daemon);
    // The largest mailbox the attribute accepts is the largest `start_with` accepts.
    assert_eq!(c.mailbox, ProcessConfig::MAX_MAILBOX);
    c.validate().unwrap();
    assert_eq!(c.timeouts.preloop, Some(Duration::from_millis(250)));
    assert_eq!(c.timeouts.main_loop, None);
    assert_eq!(c.timeouts.postloop, Some(Duration::from_secs(2)));
    assert_eq!(c.timeouts.on_finish, Some(Duration::from_secs(60)));
    assert!(<Counter as Lifecycle>::__TIMETHIS_PRELOOP);
    assert!(<Counter as Lifecycle>::__TIMETHIS_MAIN_LOOP);
    assert!(<Counter as Lifecycle>::__TIMETHIS_POSTLOOP);
    assert!(<Counter as Lifecycle>::__TIMETHIS_ON_FINISH);

    assert_eq!(Pair::config(), ProcessConfig::new("Pair"));

    let u = Unit::config();
    assert_eq!(u.name, "Unit");
    assert_eq!(u.join_in, Some(Duration::from_millis(2500)));
    assert_eq!(u.timeouts.main_loop, Some(Duration::from_millis(500)));
    assert_eq!(u.timeouts.preloop, None);

    let _ = (Counter::name, Counter::iter, Counter::fetch);
}
