//! Async handles and waiting on many processes, end to end: real children, real
//! sockets.
//!
//! Every async scenario runs on three executors: tokio's multi-thread runtime, tokio's
//! current-thread runtime, and `futures::executor::block_on`. None of them lends the
//! runtime a timer or a reactor: a future that was not woken by the runtime itself
//! would hang. The scenarios use no executor-specific API.
//!
//! `result_async` of a value, an error and a crash; `wait_async`; `listen_async` of an
//! echo child, its time limits, `Ended` after a crash, a stream through a full mailbox;
//! dropping pending futures (no waker and no listener left registered), then using the
//! handle as usual; a blocking `result()` beside a `result_async`; processes awaited
//! together (100 on each executor, 1,000 on tokio's two runtimes), started so that a
//! future that blocked its thread would deadlock. Then, polled by hand: pending futures
//! are woken by events only, never by a timer; and the futures are `Send`. Then
//! `wait_any` and `as_completed` over processes of different durations, of different
//! output types, and dropped midway. Last, `node::receive_async` in the root (on the
//! three executors; woken by messages only; a drop loses nothing) and in a child
//! without children, each executor run inside the child.
//!
//! Every process here has a section timeout, so that a test that fails by waiting for
//! ever ends as a failure instead of a hang.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures::future::join_all;
use process_runtime::__testing::async_waiters;
use process_runtime::prelude::*;
use process_runtime::{as_completed, wait_any, AsProcess, Exit};
use process_runtime_tests::no_core_dumps;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------
// Processes.

/// Returns twice its number.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "60s")]
struct Double {
    n: u64,
}

impl Lifecycle for Double {
    type Output = u64;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        self.n *= 2;
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<u64, BoxError> {
        Ok(self.n)
    }
}

/// Its `main_loop` fails.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "60s")]
struct Fails;

impl Lifecycle for Fails {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        "x".parse::<u32>()?;
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Aborts in `main_loop`.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "60s")]
struct Aborts;

impl Lifecycle for Aborts {
    type Output = ();
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        no_core_dumps();
        std::process::abort();
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Sleeps for `ms` milliseconds, then returns them.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "60s")]
struct Sleeper {
    ms: u64,
}

impl Lifecycle for Sleeper {
    type Output = u64;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(self.ms));
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<u64, BoxError> {
        Ok(self.ms)
    }
}

/// A job for [`Echo`].
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    n: u64,
}

/// [`Echo`]'s answer to a job.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Done {
    n: u64,
}

/// No more jobs.
#[derive(Debug, Serialize, Deserialize)]
struct Quit;

/// Doubles every job until told to quit (as `examples/echo.rs`); returns how many it
/// answered.
#[derive(Process, Serialize, Deserialize, Default)]
#[process(timeout.loop = "60s")]
struct Echo {
    answered: u64,
}

impl Lifecycle for Echo {
    type Output = u64;
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        match cx.listen::<Job>(Duration::from_millis(50)) {
            Ok(job) => {
                cx.tell(&Done { n: job.n * 2 })?;
                self.answered += 1;
            }
            Err(RecvError::Timeout) => {}
            Err(e) => return Err(e.into()),
        }
        if cx.listen::<Quit>(Duration::ZERO).is_ok() {
            cx.stop();
        }
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<u64, BoxError> {
        Ok(self.answered)
    }
}

/// Tells `Done { n: 7 }`, waits a little, then aborts.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "60s")]
struct TellsThenAborts;

impl Lifecycle for TellsThenAborts {
    type Output = ();
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        no_core_dumps();
        cx.tell(&Done { n: 7 })?;
        std::thread::sleep(Duration::from_millis(100));
        std::process::abort();
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// A numbered message.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Seq(u64);

/// Tells `Seq(0)` to `Seq(count - 1)` through a mailbox of 8, so that it waits for
/// room again and again; returns `count`.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, mailbox = 8, timeout.loop = "60s")]
struct Streams {
    count: u64,
}

impl Lifecycle for Streams {
    type Output = u64;
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        for n in 0..self.count {
            cx.tell(&Seq(n))?;
        }
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<u64, BoxError> {
        Ok(self.count)
    }
}

/// The signal for [`AwaitsGo`].
#[derive(Debug, Serialize, Deserialize)]
struct Go;

/// Waits for `Go` (for at most a minute: then it fails), then returns its number.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "120s")]
struct AwaitsGo {
    i: u32,
}

impl Lifecycle for AwaitsGo {
    type Output = u32;
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        cx.listen::<Go>(Duration::from_secs(60))?;
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<u32, BoxError> {
        Ok(self.i)
    }
}

// ---------------------------------------------------------------------------------
// Executors.

fn tokio_multi_thread<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

fn tokio_current_thread<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// A module per scenario, with a test per executor.
macro_rules! on_every_executor {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn tokio_multi_thread() {
                super::tokio_multi_thread(super::$scenario());
            }
            #[test]
            fn tokio_current_thread() {
                super::tokio_current_thread(super::$scenario());
            }
            #[test]
            fn futures_block_on() {
                futures::executor::block_on(super::$scenario());
            }
        }
    )*};
}

on_every_executor!(
    result_async_of_a_value,
    result_async_of_an_error,
    result_async_of_a_crash,
    wait_async_until_the_end,
    listen_async_with_an_echo,
    listen_async_time_limits,
    listen_async_ended_after_a_crash,
    listen_async_streams_past_a_full_mailbox,
    dropped_futures_leave_the_handle_as_it_was,
    blocking_and_async_waiters_together,
    a_hundred_awaited_together,
);

// ---------------------------------------------------------------------------------
// Scenarios.

async fn result_async_of_a_value() {
    let h = Double { n: 21 }.start().unwrap();
    assert_eq!(h.result_async().await.unwrap(), 42);
    // Ended as `result()` means it: reaped, exit known; and the same value again.
    assert!(!h.is_alive());
    assert_eq!(h.exit_code(), Some(0));
    assert_eq!(h.result_async().await.unwrap(), 42);
    assert_eq!(h.result().unwrap(), 42);
    assert_eq!(async_waiters(&h), (0, 0));
}

async fn result_async_of_an_error() {
    let h = Fails.start().unwrap();
    let error = h.result_async().await.unwrap_err();
    assert!(matches!(error, ProcessError::MainLoop(_)), "{error:?}");
    assert!(error.to_string().contains("ParseIntError"), "{error}");
    // A child that reports a failure exits with 1.
    assert_eq!(h.exit_code(), Some(1));
    assert_eq!(h.result().unwrap_err().to_string(), error.to_string());
}

async fn result_async_of_a_crash() {
    let h = Aborts.start().unwrap();
    let error = h.result_async().await.unwrap_err();
    assert!(
        matches!(
            error,
            ProcessError::Crashed {
                exit: Exit::Signal(6),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(h.exit_code(), Some(-6));
    assert!(!h.is_alive());
}

async fn wait_async_until_the_end() {
    let started = Instant::now();
    let h = Sleeper { ms: 200 }.start().unwrap();
    h.wait_async().await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(!h.is_alive());
    assert_eq!(h.exit_code(), Some(0));
    assert!(h.wait_timeout(Duration::ZERO));
    // Ready at once on a process that has ended.
    h.wait_async().await;
    assert_eq!(h.take_result().unwrap(), 200);
}

async fn listen_async_with_an_echo() {
    let h = Echo::default().start().unwrap();
    for n in 1..=3 {
        h.tell(&Job { n }).unwrap();
        let done: Done = h
            .listen_async_timeout(Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(done, Done { n: 2 * n });
    }
    // No time limit.
    h.tell(&Job { n: 10 }).unwrap();
    assert_eq!(h.listen_async::<Done>().await.unwrap(), Done { n: 20 });
    // Several at once, in order.
    for n in 11..=15 {
        h.tell(&Job { n }).unwrap();
    }
    for n in 11..=15 {
        let done: Done = h.listen_async().await.unwrap();
        assert_eq!(done.n, 2 * n);
    }
    h.tell(&Quit).unwrap();
    assert_eq!(h.result_async().await.unwrap(), 9);
    // Nothing more will come.
    assert!(matches!(
        h.listen_async::<Done>().await,
        Err(RecvError::Ended)
    ));
    assert_eq!(async_waiters(&h), (0, 0));
}

async fn listen_async_time_limits() {
    let h = Echo::default().start().unwrap();
    // Nothing comes: the deadline is the only wake-up, from the runtime's event loop.
    let started = Instant::now();
    let waited = h
        .listen_async_timeout::<Done>(Duration::from_millis(150))
        .await;
    let elapsed = started.elapsed();
    assert!(matches!(waited, Err(RecvError::Timeout)), "{waited:?}");
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    // `ZERO` only looks.
    let started = Instant::now();
    assert!(matches!(
        h.listen_async_timeout::<Done>(Duration::ZERO).await,
        Err(RecvError::Timeout)
    ));
    assert!(started.elapsed() < Duration::from_secs(1));
    // A reply that comes before the deadline ends the wait.
    h.tell(&Job { n: 4 }).unwrap();
    let started = Instant::now();
    let done: Done = h
        .listen_async_timeout(Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done.n, 8);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(async_waiters(&h), (0, 0));
    h.tell(&Quit).unwrap();
    assert_eq!(h.result_async().await.unwrap(), 1);
}

async fn listen_async_ended_after_a_crash() {
    let h = TellsThenAborts.start().unwrap();
    // What it told before it crashed is there, then `Ended`, at once.
    let done: Done = h.listen_async().await.unwrap();
    assert_eq!(done.n, 7);
    assert!(matches!(
        h.listen_async::<Done>().await,
        Err(RecvError::Ended)
    ));
    assert!(matches!(
        h.result_async().await,
        Err(ProcessError::Crashed { .. })
    ));
    assert_eq!(h.exit_code(), Some(-6));
}

/// The child fills the parent's mailbox of 8 and waits for room many times; the
/// future owes it room notices, which must reach it without blocking the executor.
async fn listen_async_streams_past_a_full_mailbox() {
    let h = Streams { count: 2000 }.start().unwrap();
    for n in 0..2000 {
        let seq: Seq = h
            .listen_async_timeout(Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(seq, Seq(n));
    }
    assert_eq!(h.result_async().await.unwrap(), 2000);
    assert!(matches!(
        h.listen_async::<Seq>().await,
        Err(RecvError::Ended)
    ));
}

async fn dropped_futures_leave_the_handle_as_it_was() {
    let h = Echo::default().start().unwrap();
    {
        let mut listening = pin!(h.listen_async_timeout::<Done>(Duration::from_secs(60)));
        let mut ending = pin!(h.result_async());
        assert!(futures::poll!(listening.as_mut()).is_pending());
        assert!(futures::poll!(ending.as_mut()).is_pending());
        // A waker each; the listener counts as one.
        assert_eq!(async_waiters(&h), (2, 1));
    }
    // Dropped: nothing registered, nothing counted.
    assert_eq!(async_waiters(&h), (0, 0));
    // A future dropped before it was polled registered nothing.
    drop(h.listen_async::<Done>());
    drop(h.result_async());
    assert_eq!(async_waiters(&h), (0, 0));
    // The handle works as before, blocking calls included; no message was lost.
    h.tell(&Job { n: 5 }).unwrap();
    assert_eq!(h.listen::<Done>(Duration::from_secs(30)).unwrap().n, 10);
    h.tell(&Job { n: 6 }).unwrap();
    assert_eq!(
        h.listen_async_timeout::<Done>(Duration::from_secs(30))
            .await
            .unwrap()
            .n,
        12
    );
    h.tell(&Quit).unwrap();
    assert_eq!(h.result().unwrap(), 2);
    assert_eq!(async_waiters(&h), (0, 0));
}

/// The futures can go to any task of a multi-thread executor.
#[test]
fn the_futures_are_send() {
    fn send<F: Future + Send>(future: F) -> F {
        future
    }
    let h = Double { n: 1 }.start().unwrap();
    drop(send(h.wait_async()));
    drop(send(h.listen_async::<Done>()));
    assert_eq!(
        futures::executor::block_on(send(h.result_async())).unwrap(),
        2
    );
}

/// A waker that counts its wakes.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counting_waker() -> (Arc<Counter>, Waker) {
    let counter = Arc::new(Counter::default());
    (Arc::clone(&counter), Waker::from(counter))
}

/// Pending futures are woken by what happens to their process, and by nothing else:
/// no timer polls them.
#[test]
fn pending_futures_are_woken_by_events_not_by_a_timer() {
    let h = Echo::default().start().unwrap();
    let (ended, ended_waker) = counting_waker();
    let (heard, heard_waker) = counting_waker();
    let mut ending = pin!(h.result_async());
    let mut listening = pin!(h.listen_async::<Done>());
    let mut cx = TaskContext::from_waker(&ended_waker);
    assert!(ending.as_mut().poll(&mut cx).is_pending());
    let mut cx = TaskContext::from_waker(&heard_waker);
    assert!(listening.as_mut().poll(&mut cx).is_pending());
    // The child runs and listens, but sends nothing: no wake-up.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(heard.0.load(SeqCst), 0);
    assert_eq!(ended.0.load(SeqCst), 0);
    // Its answer wakes the listener.
    h.tell(&Job { n: 1 }).unwrap();
    let started = Instant::now();
    while heard.0.load(SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "never woken");
        std::thread::sleep(Duration::from_millis(1));
    }
    match listening.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(done)) => assert_eq!(done.n, 2),
        other => panic!("{other:?}"),
    }
    // A time limit: one wake-up, at the deadline, from the runtime's event loop.
    let armed = Instant::now();
    let mut limited = pin!(h.listen_async_timeout::<Done>(Duration::from_millis(200)));
    let (rang, rang_waker) = counting_waker();
    let mut cx = TaskContext::from_waker(&rang_waker);
    assert!(limited.as_mut().poll(&mut cx).is_pending());
    std::thread::sleep(Duration::from_millis(50));
    // Read before the clock: on a loaded machine the sleep may pass the deadline.
    let early = rang.0.load(SeqCst);
    if armed.elapsed() < Duration::from_millis(200) {
        assert_eq!(early, 0, "rang before its time");
    }
    std::thread::sleep(Duration::from_millis(450));
    assert_eq!(rang.0.load(SeqCst), 1);
    assert!(matches!(
        limited.as_mut().poll(&mut cx),
        Poll::Ready(Err(RecvError::Timeout))
    ));
    // The end wakes the other.
    h.tell(&Quit).unwrap();
    h.wait();
    assert!(ended.0.load(SeqCst) >= 1);
    let mut cx = TaskContext::from_waker(&ended_waker);
    assert!(matches!(ending.as_mut().poll(&mut cx), Poll::Ready(Ok(1))));
}

/// A caller blocked in `result()` is handed the reaping of the decided child; the
/// future is woken when that caller publishes the end.
async fn blocking_and_async_waiters_together() {
    let h = Arc::new(Sleeper { ms: 300 }.start().unwrap());
    let blocking = {
        let h = Arc::clone(&h);
        std::thread::spawn(move || h.result())
    };
    assert_eq!(h.result_async().await.unwrap(), 300);
    assert_eq!(blocking.join().unwrap().unwrap(), 300);
    assert_eq!(h.exit_code(), Some(0));
}

/// Every future of a `join_all` must be pending before the next task part runs: the
/// processes wait for `Go`, told only after the futures were polled. A future that
/// blocked its thread until its process ended would never let `Go` out.
async fn a_hundred_awaited_together() {
    awaited_together(100).await;
}

async fn awaited_together(n: u32) {
    let handles: Vec<_> = (0..n).map(|i| AwaitsGo { i }.start().unwrap()).collect();
    let results = join_all(handles.iter().map(Handle::result_async));
    let go = async {
        for h in &handles {
            h.tell(&Go).unwrap();
        }
    };
    // `join!` polls `results` first, then `go`, in the same task.
    let (results, ()) = futures::join!(results, go);
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap(), i as u32);
    }
    for h in &handles {
        assert!(!h.is_alive());
        assert_eq!(async_waiters(h), (0, 0));
    }
}

/// 1,000 processes alive at once, awaited together on one thread.
#[test]
fn a_thousand_awaited_together_on_a_current_thread_runtime() {
    let started = Instant::now();
    tokio_current_thread(awaited_together(1000));
    eprintln!("1,000 awaited together: {:?}", started.elapsed());
}

/// The same on tokio's multi-thread runtime, each future in a task of its own.
#[test]
fn a_thousand_awaited_in_tasks_on_a_multi_thread_runtime() {
    let started = Instant::now();
    tokio_multi_thread(async {
        let handles: Vec<_> = (0..1000u32)
            .map(|i| Arc::new(AwaitsGo { i }.start().unwrap()))
            .collect();
        let tasks: Vec<_> = handles
            .iter()
            .map(|h| {
                let h = Arc::clone(h);
                tokio::spawn(async move { h.result_async().await })
            })
            .collect();
        for h in &handles {
            h.tell(&Go).unwrap();
        }
        for (i, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.unwrap().unwrap(), i as u32);
        }
    });
    eprintln!("1,000 awaited in tasks: {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------
// Waiting on many.

fn sleepers(ms: &[u64]) -> Vec<Handle<u64>> {
    ms.iter()
        .map(|&ms| Sleeper { ms }.start().unwrap())
        .collect()
}

#[test]
fn wait_any_returns_the_first_to_end() {
    let handles = sleepers(&[1500, 100, 800]);
    assert_eq!(wait_any(&handles, None), Some(1));
    assert!(!handles[1].is_alive());
    assert_eq!(handles[1].exit_code(), Some(0));
    assert!(handles[0].is_alive());
    assert_eq!(handles[1].result().unwrap(), 100);
    // Once several have ended, the lowest index; no waker left behind.
    for h in &handles {
        h.wait();
    }
    assert_eq!(wait_any(&handles, Duration::from_secs(1)), Some(0));
    for h in &handles {
        assert_eq!(async_waiters(h), (0, 0));
    }
}

#[test]
fn wait_any_time_limits() {
    let handles = sleepers(&[1000]);
    let started = Instant::now();
    assert_eq!(wait_any(&handles, Duration::from_millis(100)), None);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(900), "{elapsed:?}");
    assert_eq!(wait_any(&handles, Duration::ZERO), None);
    assert_eq!(async_waiters(&handles[0]), (0, 0));
    assert_eq!(wait_any(&handles, Duration::from_secs(30)), Some(0));
    assert_eq!(wait_any(&handles, Duration::ZERO), Some(0));
    let none: [Handle<u64>; 0] = [];
    assert_eq!(wait_any(&none, None), None);
}

#[test]
fn as_completed_yields_in_the_order_processes_end() {
    let handles = sleepers(&[2000, 0, 1000, 500, 1500]);
    let order: Vec<usize> = as_completed(&handles)
        .inspect(|&i| assert!(!handles[i].is_alive()))
        .collect();
    assert_eq!(order, [1, 3, 2, 4, 0]);
    for h in &handles {
        assert_eq!(async_waiters(h), (0, 0));
    }
    // Every process had ended: index order.
    let again: Vec<usize> = as_completed(&handles).collect();
    assert_eq!(again, [0, 1, 2, 3, 4]);
}

#[test]
fn waiting_on_handles_of_different_output_types() {
    let slow = Sleeper { ms: 1000 }.start().unwrap();
    let failing = Fails.start().unwrap();
    let both: [&dyn AsProcess; 2] = [&slow, &failing];
    assert_eq!(wait_any(&both, None), Some(1));
    assert!(failing.result().is_err());
    let mut rest = as_completed(&both);
    assert_eq!(rest.len(), 2);
    assert_eq!(rest.next(), Some(1));
    assert_eq!(rest.next(), Some(0));
    assert_eq!(rest.next(), None);
    assert_eq!(slow.result().unwrap(), 1000);
    // Shared handles too.
    let shared: Vec<Arc<Handle<u64>>> = sleepers(&[0]).into_iter().map(Arc::new).collect();
    assert_eq!(wait_any(&shared, None), Some(0));
}

#[test]
fn as_completed_dropped_midway() {
    let handles = sleepers(&[0, 800]);
    let mut completed = as_completed(&handles);
    assert_eq!(completed.next(), Some(0));
    assert_eq!(async_waiters(&handles[1]), (1, 0));
    drop(completed);
    assert_eq!(async_waiters(&handles[1]), (0, 0));
    assert_eq!(handles[1].result().unwrap(), 800);
}

#[test]
fn as_completed_over_a_hundred() {
    let handles: Vec<_> = (0..100).map(|n| Double { n }.start().unwrap()).collect();
    let mut seen = vec![false; handles.len()];
    let mut completed = as_completed(&handles);
    assert_eq!(completed.len(), 100);
    for i in completed.by_ref() {
        assert!(!std::mem::replace(&mut seen[i], true), "{i} twice");
        assert_eq!(handles[i].exit_code(), Some(0));
    }
    assert_eq!(completed.next(), None);
    assert!(seen.iter().all(|&s| s));
    for (n, h) in (0..).zip(&handles) {
        assert_eq!(h.result().unwrap(), 2 * n);
        assert_eq!(async_waiters(h), (0, 0));
    }
}

// ---------------------------------------------------------------------------------
// `node::receive_async`, in the root and in a child.
//
// The root's mailbox is one for the whole test binary: the tests that receive from it
// take [`root_mailbox`], so that none takes another's messages.

static ROOT_MAILBOX: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn root_mailbox() -> std::sync::MutexGuard<'static, ()> {
    ROOT_MAILBOX
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A note sent with `node::send`.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Note(u64);

/// A message nobody sends.
#[derive(Debug, Serialize, Deserialize)]
struct Never;

/// Sends `count` notes to its parent with `node::send`, `gap_ms` apart.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "60s")]
struct SendsNotes {
    count: u64,
    gap_ms: u64,
}

impl Lifecycle for SendsNotes {
    type Output = ();
    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        for n in 0..self.count {
            std::thread::sleep(Duration::from_millis(self.gap_ms));
            process_runtime::node::send(cx.parent_id(), &Note(n))?;
        }
        Ok(())
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

async fn receive_async_in_the_root() {
    // Notes that arrive while the future waits, and one filed before it is polled.
    let h = SendsNotes {
        count: 3,
        gap_ms: 50,
    }
    .start()
    .unwrap();
    let first: Note = process_runtime::node::receive_async_timeout(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(first, Note(0));
    let (from, second) =
        process_runtime::node::receive_from_async_timeout::<Note>(Duration::from_secs(30))
            .await
            .unwrap();
    assert_eq!((from, second), (h.id(), Note(1)));
    h.wait();
    let third: Note = process_runtime::node::receive_async().await.unwrap();
    assert_eq!(third, Note(2));
    assert_eq!(process_runtime::__testing::node_async_waiters(), 0);
}

async fn receive_async_time_limits() {
    let started = Instant::now();
    assert!(matches!(
        process_runtime::node::receive_async_timeout::<Never>(Duration::ZERO).await,
        Err(RecvError::Timeout)
    ));
    let limit = Duration::from_millis(150);
    let started_wait = Instant::now();
    assert!(matches!(
        process_runtime::node::receive_async_timeout::<Never>(limit).await,
        Err(RecvError::Timeout)
    ));
    assert!(started_wait.elapsed() >= limit);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(process_runtime::__testing::node_async_waiters(), 0);
}

/// [`on_every_executor`], each test holding [`root_mailbox`].
macro_rules! on_every_executor_with_the_root_mailbox {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn tokio_multi_thread() {
                let _g = super::root_mailbox();
                super::tokio_multi_thread(super::$scenario());
            }
            #[test]
            fn tokio_current_thread() {
                let _g = super::root_mailbox();
                super::tokio_current_thread(super::$scenario());
            }
            #[test]
            fn futures_block_on() {
                let _g = super::root_mailbox();
                futures::executor::block_on(super::$scenario());
            }
        }
    )*};
}

on_every_executor_with_the_root_mailbox!(receive_async_in_the_root, receive_async_time_limits);

/// A pending `receive_async` is woken by a message, and by nothing else; dropped, it
/// leaves the message for the next receive.
#[test]
fn receive_async_is_woken_by_messages_not_by_a_timer_and_a_drop_loses_nothing() {
    let _g = root_mailbox();
    let (woken, waker) = counting_waker();
    let mut cx = TaskContext::from_waker(&waker);
    let h = {
        let mut receiving = pin!(process_runtime::node::receive_async::<Note>());
        assert!(receiving.as_mut().poll(&mut cx).is_pending());
        assert_eq!(process_runtime::__testing::node_async_waiters(), 1);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(woken.0.load(SeqCst), 0, "woken with nothing filed");
        let h = SendsNotes {
            count: 1,
            gap_ms: 0,
        }
        .start()
        .unwrap();
        let started = Instant::now();
        while woken.0.load(SeqCst) == 0 {
            assert!(started.elapsed() < Duration::from_secs(30), "never woken");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Dropped after its wake-up, before the poll that would take the note.
        h
    };
    assert_eq!(process_runtime::__testing::node_async_waiters(), 0);
    assert_eq!(
        process_runtime::node::receive::<Note>(Duration::from_secs(30)),
        Ok(Note(0))
    );
    h.wait();
}

/// How a child runs its async receives.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Executor {
    TokioMultiThread,
    TokioCurrentThread,
    FuturesBlockOn,
}

/// Awaits `node::receive_async` in a child without children: a note the parent sent
/// before the first poll, one sent while it waits, then a time limit that passes. Its
/// output is the notes and whether the limit passed as `Timeout`.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, timeout.loop = "60s")]
struct ReceivesAsync {
    executor: Executor,
}

impl ReceivesAsync {
    async fn receive_all(cx_parent: process_runtime::node::Pid) -> (Vec<u64>, bool) {
        use process_runtime::node;
        let first: Note = node::receive_async_timeout(Duration::from_secs(30))
            .await
            .unwrap();
        // Asks for the second only now: it arrives while the future waits.
        node::send(cx_parent, &Note(100)).unwrap();
        let (from, second) = node::receive_from_async_timeout::<Note>(Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(from, cx_parent);
        let limited = node::receive_async_timeout::<Never>(Duration::from_millis(100)).await;
        (
            vec![first.0, second.0],
            matches!(limited, Err(RecvError::Timeout)),
        )
    }
}

impl Lifecycle for ReceivesAsync {
    type Output = (Vec<u64>, bool);
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }
    fn result(&mut self, cx: &mut Context) -> Result<(Vec<u64>, bool), BoxError> {
        // The first note is sent before this receives: let it arrive first.
        std::thread::sleep(Duration::from_millis(100));
        let parent = cx.parent_id();
        Ok(match self.executor {
            Executor::TokioMultiThread => tokio_multi_thread(Self::receive_all(parent)),
            Executor::TokioCurrentThread => tokio_current_thread(Self::receive_all(parent)),
            Executor::FuturesBlockOn => futures::executor::block_on(Self::receive_all(parent)),
        })
    }
}

fn receive_async_in_a_child(executor: Executor) {
    let _g = root_mailbox();
    let h = ReceivesAsync { executor }.start().unwrap();
    process_runtime::node::send(h.id(), &Note(1)).unwrap();
    // The child asks for the second note by sending one.
    assert_eq!(
        process_runtime::node::receive::<Note>(Duration::from_secs(30)),
        Ok(Note(100))
    );
    process_runtime::node::send(h.id(), &Note(2)).unwrap();
    assert_eq!(h.result().unwrap(), (vec![1, 2], true));
}

#[test]
fn receive_async_in_a_child_on_tokio_multi_thread() {
    receive_async_in_a_child(Executor::TokioMultiThread);
}

#[test]
fn receive_async_in_a_child_on_tokio_current_thread() {
    receive_async_in_a_child(Executor::TokioCurrentThread);
}

#[test]
fn receive_async_in_a_child_on_futures_block_on() {
    receive_async_in_a_child(Executor::FuturesBlockOn);
}

#[test]
fn receive_async_is_send_and_static() {
    fn send_static<F: Future + Send + 'static>(future: F) -> F {
        future
    }
    drop(send_static(process_runtime::node::receive_async_timeout::<
        Note,
    >(None)));
    drop(send_static(
        process_runtime::node::receive_from_async::<Note>(),
    ));
}
