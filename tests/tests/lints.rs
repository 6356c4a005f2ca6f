//! The generated code must be clean under the strictest lints a user may enable:
//! `cargo clippy --all-targets -- -D warnings` compiles this file.
#![deny(clippy::pedantic, missing_docs)]

use std::time::Duration;

use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// A process that uses several keys of the attribute.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 10, lives = 3, join_in = "1.5s", timeout.loop = "none")]
#[process(
    timeout(preloop = 5, onfinish = "250ms"),
    name = "linted",
    daemon = true,
    mailbox = 7
)]
pub struct Linted {
    counter: u32,
}

impl Lifecycle for Linted {
    type Output = u32;

    #[timethis]
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        self.step(cx)?;
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<u32, BoxError> {
        Ok(self.counter)
    }
}

impl Linted {
    /// One step, timed in the timer named `step`.
    ///
    /// # Errors
    /// Never.
    #[timethis]
    pub fn step(&mut self, cx: &mut Context) -> Outcome {
        self.counter += 1;
        if cx.lap() > 1_000 {
            return Err("too many laps".into());
        }
        Ok(())
    }

    /// A timed method that returns a borrow-free value.
    #[timethis]
    fn doubled(&self, cx: &mut Context) -> u32 {
        let _ = cx.lap();
        self.counter * 2
    }
}

/// A tuple struct with the defaults.
#[derive(Process, Serialize, Deserialize)]
pub struct Tuple(u8);

impl Lifecycle for Tuple {
    type Output = u8;

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<u8, BoxError> {
        Ok(self.0)
    }
}

#[test]
fn config_follows_the_attribute() {
    let config = <Linted as Process>::config();
    assert_eq!(config.name, "linted");
    assert_eq!(config.num_loops, Some(10));
    assert_eq!(config.lives, 3);
    assert_eq!(config.join_in, Some(Duration::from_millis(1500)));
    assert_eq!(config.timeouts.main_loop, None);
    assert_eq!(config.timeouts.preloop, Some(Duration::from_secs(5)));
    assert_eq!(config.timeouts.postloop, Some(Duration::from_secs(60)));
    assert_eq!(config.timeouts.on_finish, Some(Duration::from_millis(250)));
    assert!(config.daemon);
    assert_eq!(config.mailbox, 7);
    const { assert!(<Linted as Lifecycle>::__TIMETHIS_MAIN_LOOP) };
    const { assert!(!<Linted as Lifecycle>::__TIMETHIS_PRELOOP) };
    let _ = Linted::doubled;

    let config = <Tuple as Process>::config();
    assert_eq!(config, ProcessConfig::new("Tuple"));
    assert_eq!(config.mailbox, 100);
}
