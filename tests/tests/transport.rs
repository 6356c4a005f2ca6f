//! The channel between parent and child: large states both ways, states that cannot
//! be sent, many children at once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// Returns its payload reversed, so both directions carry the full size.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1)]
struct Echo {
    payload: Vec<u8>,
}

impl Lifecycle for Echo {
    type Output = Vec<u8>;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        self.payload.reverse();
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<Vec<u8>, BoxError> {
        Ok(std::mem::take(&mut self.payload))
    }
}

#[test]
fn a_ten_megabyte_state_travels_both_ways() {
    let payload: Vec<u8> = (0..10 * 1024 * 1024)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    let h = Echo {
        payload: payload.clone(),
    }
    .start()
    .unwrap();
    let back = h.take_result().unwrap();
    assert_eq!(back.len(), payload.len());
    assert!(back.iter().eq(payload.iter().rev()));
}

#[derive(Serialize, Deserialize)]
struct Inner {
    a: u32,
}

/// `flatten` serializes with postcard but cannot be deserialized by it.
#[derive(Process, Serialize, Deserialize)]
struct Flattened {
    #[serde(flatten)]
    inner: Inner,
    extra: BTreeMap<String, u32>,
}

impl Lifecycle for Flattened {
    type Output = u32;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<u32, BoxError> {
        Ok(self.inner.a)
    }
}

/// `skip_serializing_if` serializes fine but leaves postcard short of a field when
/// deserializing.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1)]
struct Skipping {
    #[serde(skip_serializing_if = "Option::is_none")]
    maybe: Option<u32>,
    after: u32,
}

impl Lifecycle for Skipping {
    type Output = u32;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<u32, BoxError> {
        Ok(self.after)
    }
}

#[test]
fn a_state_that_cannot_be_sent_is_refused_before_spawning() {
    let e = Flattened {
        inner: Inner { a: 1 },
        extra: BTreeMap::new(),
    }
    .start()
    .unwrap_err();
    let ProcessError::State(msg) = &e else {
        panic!("{e:?}")
    };
    assert!(
        msg.starts_with("it does not serialize (The length of a sequence must be known)"),
        "{msg}"
    );
    assert!(msg.contains("#[serde(flatten)]"), "{msg}");
    assert!(
        e.to_string()
            .starts_with("the process state cannot be sent to a child:"),
        "{e}"
    );

    let e = Skipping {
        maybe: None,
        after: 3,
    }
    .start()
    .unwrap_err();
    let ProcessError::State(msg) = &e else {
        panic!("{e:?}")
    };
    assert!(
        msg.starts_with("it serializes but does not deserialize back"),
        "{msg}"
    );
    // With the field present, the same type round-trips and runs.
    assert_eq!(
        Skipping {
            maybe: Some(1),
            after: 3
        }
        .start()
        .unwrap()
        .result()
        .unwrap(),
        3
    );
}

#[test]
fn an_invalid_run_time_configuration_is_refused() {
    let e = Echo { payload: vec![] }
        .start_with(Echo::config().with_lives(0))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid configuration: `lives` must be at least 1 (1 means a single attempt)"
    );
}

#[test]
fn a_run_time_mailbox_out_of_range_is_refused() {
    let e = Echo { payload: vec![] }
        .start_with(ProcessConfig::new("x").with_mailbox(0))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid configuration: `mailbox` must be at least 1 (1 holds a single unread message)"
    );
    let e = Echo { payload: vec![] }
        .start_with(ProcessConfig::new("x").with_mailbox(ProcessConfig::MAX_MAILBOX + 1))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid configuration: `mailbox` is too large: the maximum is 1000000"
    );
}

/// Sleeps for a while, then reports its index.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1)]
struct Nap {
    index: usize,
    ms: u64,
}

impl Lifecycle for Nap {
    type Output = usize;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(self.ms));
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<usize, BoxError> {
        Ok(self.index)
    }
}

#[test]
fn sixteen_processes_at_once_cost_the_slowest_not_the_sum() {
    let started = Instant::now();
    let mut handles: Vec<_> = (0..16)
        .map(|index| Nap { index, ms: 400 }.start().unwrap())
        .collect();
    let results: Vec<usize> = handles.iter_mut().map(|h| h.result().unwrap()).collect();
    for h in &mut handles {
        h.wait();
        assert_eq!(h.exit_code(), Some(0));
    }
    assert_eq!(results, (0..16).collect::<Vec<_>>());
    let took = started.elapsed();
    // Run one after another they would take 6.4 s; together, one nap plus start-up.
    assert!(
        took < Duration::from_millis(3200),
        "16 naps of 400 ms took {took:?}"
    );
}
