//! Functions and pools: `spawn(arg, f)` and `Pool`, with real worker processes.
//!
//! The pool tests port the applicable cases of CPython's `_TestPool` and
//! `_TestPoolWorkerErrors` (`Lib/test/_test_multiprocessing.py`), named after the case
//! they port, and the broken-pool cases of `concurrent.futures`
//! (`Lib/test/test_concurrent_futures/test_deadlock.py` and `test_process_pool.py`),
//! where a worker that dies breaks the whole executor. Here it must not: each of those
//! deaths costs its own item, and the same pool serves the next call.
//!
//! `Pool::run` runs process types on the workers: the same cases again with a
//! process's lifecycle, lives and section limits in place of a function. The runtime's
//! own entry constructor is what takes the re-executed workers over.
//!
//! Most tests run in parallel; the one that counts this process's children and
//! descriptors takes [`exclusive`], every other test [`shared`].

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use process_runtime::prelude::*;
use process_runtime::{Exit, Spawn};
use process_runtime_tests::{
    child_processes, describe_descriptors, no_core_dumps, open_descriptors, reaped, sleep_forever,
    wait_for_file, write_atomically, Scratch,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

static PROCESSES: RwLock<()> = RwLock::new(());

/// For a test that only needs its own processes.
fn shared() -> RwLockReadGuard<'static, ()> {
    PROCESSES.read().unwrap_or_else(PoisonError::into_inner)
}

/// For a test that counts every child and descriptor of this process.
fn exclusive() -> RwLockWriteGuard<'static, ()> {
    PROCESSES.write().unwrap_or_else(PoisonError::into_inner)
}

fn sqr(x: u64) -> u64 {
    x * x
}

fn pool(workers: usize) -> Pool {
    Pool::new(workers).expect("the workers start")
}

/// A write to an address no process can map: a real SIGSEGV, raised by the MMU.
fn segfault() -> ! {
    no_core_dumps();
    let unmapped = 16usize as *mut u8;
    // SAFETY: not safe at all, on purpose: the write faults and the process dies.
    unsafe { std::ptr::write_volatile(unmapped, 1) };
    unreachable!("a write to an unmapped address did not fault")
}

fn abort() -> ! {
    no_core_dumps();
    std::process::abort()
}

fn crashed(exit: Exit) -> ProcessError {
    ProcessError::Crashed {
        section: Some(Section::MainLoop),
        exit,
    }
}

fn panic_message(e: &ProcessError) -> &str {
    match e {
        ProcessError::MainLoop(remote) if remote.is_panic() => remote.message(),
        other => panic!("not a panic in the function: {other:?}"),
    }
}

/// The payload of a panic caught in the caller, as text.
fn caught_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

// --- spawn ---------------------------------------------------------------------------

#[test]
fn spawn_returns_the_value_of_a_closure() {
    let _g = shared();
    let h = process_runtime::spawn(21u64, |x| x * 2).unwrap();
    assert_eq!(h.result(), Ok(42));
    assert_eq!(h.exit_code(), Some(0));
    assert_ne!(h.pid(), std::process::id());
}

#[test]
fn spawn_runs_a_fn_item_named_after_it() {
    let _g = shared();
    let h = process_runtime::spawn(12, sqr).unwrap();
    assert_eq!(h.result(), Ok(144));
    assert_eq!(h.name(), "pool::sqr");
    let h = process_runtime::spawn("four".to_owned(), |s: String| s.len()).unwrap();
    assert_eq!(h.take_result(), Ok(4));
}

#[test]
fn spawn_of_a_panicking_function_is_a_main_loop_error_with_the_message() {
    let _g = shared();
    let h = process_runtime::spawn(7u32, |x: u32| -> u32 { panic!("no luck with {x}") }).unwrap();
    let e = h.result().unwrap_err();
    assert_eq!(panic_message(&e), "no luck with 7");
    assert_eq!(e.to_string(), "MainLoopError: panic: no luck with 7");
    assert!(e
        .remote()
        .unwrap()
        .panic_location()
        .unwrap()
        .contains("pool.rs"));
    assert_eq!(h.exit_code(), Some(1));
}

#[test]
fn spawn_of_a_function_that_aborts_is_a_crash_with_the_signal() {
    let _g = shared();
    let h = process_runtime::spawn((), |()| -> u8 { abort() }).unwrap();
    assert_eq!(h.result(), Err(crashed(Exit::Signal(libc::SIGABRT))));
}

/// Writes this process's pid to `path`, then aborts.
fn abort_after_writing_pid(path: String) -> u8 {
    write_atomically(&path, &std::process::id().to_string()).unwrap();
    abort()
}

#[test]
fn spawn_of_a_crashing_call_spawns_no_child_only_to_run_error() {
    let _g = shared();
    let dir = Scratch::new("spawn-crash");
    let path = dir.file("pid").to_string_lossy().into_owned();
    let h = process_runtime::spawn(path.clone(), abort_after_writing_pid).unwrap();
    assert_eq!(h.result(), Err(crashed(Exit::Signal(libc::SIGABRT))));
    let crashed_pid: u32 = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    assert_eq!(
        h.pid(),
        crashed_pid,
        "the last child is the one that crashed"
    );
    assert_eq!(h.lives_used(), 1);
}

/// Fails its first attempt: creates `path`, then panics; finds it the second time.
fn fail_once(path: String) -> String {
    if std::path::Path::new(&path).exists() {
        return "second time lucky".into();
    }
    write_atomically(&path, "tried").unwrap();
    panic!("first attempt")
}

#[test]
fn spawn_with_lives_from_the_builder_retries_a_failed_call() {
    let _g = shared();
    let dir = Scratch::new("spawn-lives");
    let path = dir.file("tried").to_string_lossy().into_owned();
    let h = Spawn::new()
        .lives(2)
        .spawn(path.clone(), fail_once)
        .unwrap();
    assert_eq!(h.result().as_deref(), Ok("second time lucky"));
    assert_eq!(h.lives_used(), 2);

    std::fs::remove_file(&path).unwrap();
    let h = Spawn::new().name("once").spawn(path, fail_once).unwrap();
    assert_eq!(h.name(), "once");
    assert_eq!(panic_message(&h.result().unwrap_err()), "first attempt");
    assert_eq!(h.lives_used(), 1);
}

#[test]
fn spawn_with_a_timeout_from_the_builder_kills_a_hung_call() {
    let _g = shared();
    let limit = Duration::from_millis(200);
    let started = Instant::now();
    let h = Spawn::new()
        .timeout(limit)
        .spawn((), |()| -> u8 { sleep_forever() })
        .unwrap();
    assert_eq!(
        h.result(),
        Err(ProcessError::Timeout {
            section: Section::MainLoop,
            limit
        })
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(h.exit_code(), Some(-libc::SIGKILL));
}

/// Serializes to nothing postcard can read back as itself.
#[derive(Debug)]
struct Undecodable;

impl Serialize for Undecodable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for Undecodable {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("Undecodable never decodes"))
    }
}

#[test]
fn spawn_refuses_an_argument_that_does_not_come_back_before_starting_a_child() {
    let _g = shared();
    let e = process_runtime::spawn(Undecodable, |_: Undecodable| 1u8).unwrap_err();
    assert!(
        matches!(&e, ProcessError::State(m)
            if m.contains("`pool::Undecodable`, serializes but does not deserialize back")),
        "{e}"
    );
}

// --- _TestPool ------------------------------------------------------------------------

#[test]
fn test_apply() {
    let _g = shared();
    let pool = pool(2);
    assert_eq!(pool.apply(sqr, 5), Ok(25));
    assert_eq!(pool.apply(|(x, y): (u64, u64)| x * y, (3, 4)), Ok(12));
}

#[test]
fn test_map() {
    let _g = shared();
    let pool = pool(4);
    let want: Vec<Result<u64, ProcessError>> = (0..10).map(|x| Ok(sqr(x))).collect();
    assert_eq!(pool.map(sqr, 0..10), want);
    let chunked = Pool::builder().workers(4).chunk_size(20).build().unwrap();
    let want: Vec<Result<u64, ProcessError>> = (0..100).map(|x| Ok(sqr(x))).collect();
    assert_eq!(chunked.map(sqr, 0..100), want);
}

#[test]
fn test_starmap() {
    let _g = shared();
    let pool = pool(2);
    let pairs: Vec<(u64, u64)> = (0..100).zip((0..100).rev()).collect();
    let want: Vec<Result<u64, ProcessError>> = pairs.iter().map(|&(x, y)| Ok(x * y)).collect();
    assert_eq!(pool.map(|(x, y): (u64, u64)| x * y, pairs), want);
}

/// Serializes to an error: it never leaves the parent.
#[derive(Debug, Deserialize)]
struct Unserializable;

impl Serialize for Unserializable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("Unserializable never serializes"))
    }
}

#[test]
fn test_map_unplicklable() {
    let _g = shared();
    // Issue #19425: failure to serialize must not hang; here each item gets its error.
    let pool = pool(2);
    let results = pool.map(|_: Unserializable| 1u8, (0..10).map(|_| Unserializable));
    assert_eq!(results.len(), 10);
    for r in results {
        assert!(
            matches!(&r, Err(ProcessError::State(m))
                if m.contains("the argument, a `pool::Unserializable`, does not serialize")),
            "{r:?}"
        );
    }
    assert_eq!(pool.map(sqr, [3]), [Ok(9)]);
}

#[test]
fn test_map_chunksize() {
    let _g = shared();
    // pool.map with a chunk size must not stall on an empty input.
    let pool = Pool::builder().workers(2).chunk_size(1).build().unwrap();
    let started = Instant::now();
    assert_eq!(pool.map(sqr, []), []);
    assert!(started.elapsed() < Duration::from_millis(100));
}

/// Yields `0..total`, panicking instead of yielding `when`.
fn panicking_input(total: u64, when: u64) -> impl Iterator<Item = u64> {
    (0..total).inspect(move |&i| {
        if i == when {
            panic!("Somebody said when");
        }
    })
}

#[test]
fn test_map_handle_iterable_exception() {
    let _g = shared();
    let pool = pool(2);
    for (total, when) in [(1, 0), (1, 0), (10, 3)] {
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.map(sqr, panicking_input(total, when))
        }))
        .unwrap_err();
        assert_eq!(caught_message(caught.as_ref()), "Somebody said when");
    }
    // The pool is untouched.
    assert_eq!(pool.map(sqr, 0..3), [Ok(0), Ok(1), Ok(4)]);
}

#[test]
fn test_imap() {
    let _g = shared();
    let pool = pool(4);
    let all: Vec<u64> = pool.imap(sqr, 0..10).map(Result::unwrap).collect();
    assert_eq!(all, (0..10).map(sqr).collect::<Vec<_>>());

    let mut it = pool.imap(sqr, 0..10);
    for i in 0..10 {
        assert_eq!(it.next(), Some(Ok(i * i)));
    }
    assert_eq!(it.next(), None);

    let chunked = Pool::builder().workers(4).chunk_size(100).build().unwrap();
    let mut it = chunked.imap(sqr, 0..1000);
    for i in 0..1000 {
        assert_eq!(it.next(), Some(Ok(i * i)));
    }
    assert_eq!(it.next(), None);
}

#[test]
fn test_imap_handle_iterable_exception() {
    let _g = shared();
    for chunk in [1, 2, 4] {
        let pool = Pool::builder()
            .workers(2)
            .chunk_size(chunk)
            .build()
            .unwrap();
        // At the very first item, and again (reentrant).
        for _ in 0..2 {
            let mut it = pool.imap(sqr, panicking_input(1, 0));
            let caught = panic::catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
            assert_eq!(caught_message(caught.as_ref()), "Somebody said when");
        }
        // Every item before it first, in order, then the panic, whatever the chunk.
        let mut it = pool.imap(sqr, panicking_input(20, 7));
        for i in 0..7 {
            assert_eq!(it.next(), Some(Ok(i * i)), "chunk {chunk}");
        }
        let caught = panic::catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
        assert_eq!(caught_message(caught.as_ref()), "Somebody said when");
    }
}

#[test]
fn test_imap_unordered() {
    let _g = shared();
    let pool = pool(4);
    let mut all: Vec<u64> = pool
        .imap_unordered(sqr, 0..10)
        .map(Result::unwrap)
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..10).map(sqr).collect::<Vec<_>>());

    let chunked = Pool::builder().workers(4).chunk_size(100).build().unwrap();
    let mut all: Vec<u64> = chunked
        .imap_unordered(sqr, 0..1000)
        .map(Result::unwrap)
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..1000).map(sqr).collect::<Vec<_>>());
}

#[test]
fn test_imap_unordered_handle_iterable_exception() {
    let _g = shared();
    let pool = Pool::builder().workers(2).chunk_size(2).build().unwrap();
    let mut it = pool.imap_unordered(sqr, panicking_input(1, 0));
    assert!(panic::catch_unwind(AssertUnwindSafe(|| it.next())).is_err());
    drop(it);
    // Every item read before the panic is handed back first, in some order.
    let mut it = pool.imap_unordered(sqr, panicking_input(20, 7));
    let mut seen: Vec<u64> = (0..7).map(|_| it.next().unwrap().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..7).map(sqr).collect::<Vec<_>>());
    let caught = panic::catch_unwind(AssertUnwindSafe(|| it.next())).unwrap_err();
    assert_eq!(caught_message(caught.as_ref()), "Somebody said when");
}

/// Sleeps `ms` milliseconds, then returns it.
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn imap_unordered_yields_each_result_as_its_item_finishes() {
    let _g = shared();
    let pool = Pool::builder().workers(2).chunk_size(1).build().unwrap();
    let order: Vec<u64> = pool
        .imap_unordered(nap, [600, 0, 0, 0, 0])
        .map(Result::unwrap)
        .collect();
    assert_eq!(order.last(), Some(&600), "{order:?}");
    // In order, the slow first item holds the others back.
    let started = Instant::now();
    let mut it = pool.imap(nap, [600, 0, 0]);
    assert_eq!(it.next(), Some(Ok(600)));
    assert!(started.elapsed() >= Duration::from_millis(600));
}

#[test]
fn test_make_pool() {
    let _g = shared();
    assert!(matches!(Pool::new(0), Err(ProcessError::Config(_))));
    assert!(matches!(
        Pool::builder().workers(1).item_lives(0).build(),
        Err(ProcessError::Config(_))
    ));
    assert!(matches!(
        Pool::builder().workers(1).chunk_size(0).build(),
        Err(ProcessError::Config(_))
    ));
    let pool = pool(3);
    assert_eq!(pool.workers(), 3);
    let pids = std::collections::BTreeSet::from_iter(
        pool.map(|_: u64| std::process::id(), 0..300)
            .into_iter()
            .map(Result::unwrap),
    );
    assert!(!pids.is_empty() && pids.len() <= 3, "{pids:?}");
    assert!(!pids.contains(&std::process::id()));
}

#[test]
fn pool_default_has_one_worker_per_core() {
    let _g = shared();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(Pool::default().workers(), cores);
}

#[test]
fn test_terminate() {
    let _g = shared();
    // Items that take for ever: dropping the pool does not wait for them.
    let pool = Pool::builder()
        .workers(3)
        .chunk_size(1)
        .item_timeout(None)
        .build()
        .unwrap();
    let it = pool.imap_unordered(
        |()| -> u8 { sleep_forever() },
        std::iter::repeat_n((), 10_000),
    );
    assert!(it.size_hint().0 > 0);
    std::thread::sleep(Duration::from_millis(200)); // some items start
    let started = Instant::now();
    drop(it);
    drop(pool);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn dropping_an_imap_iterator_frees_the_workers_of_its_running_items() {
    let _g = shared();
    let pool = Pool::builder()
        .workers(1)
        .chunk_size(1)
        .item_timeout(None)
        .build()
        .unwrap();
    let mut it = pool.imap(|x: u64| if x == 1 { sleep_forever() } else { x }, [0, 1, 2]);
    assert_eq!(it.next(), Some(Ok(0)));
    std::thread::sleep(Duration::from_millis(100)); // item 1 runs, for ever
    assert_eq!(it.size_hint(), (2, Some(2)));
    drop(it);
    let started = Instant::now();
    assert_eq!(pool.apply(sqr, 3), Ok(9));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn test_empty_iterable() {
    let _g = shared();
    let pool = pool(1);
    assert_eq!(pool.map(sqr, []), []);
    assert_eq!(pool.imap(sqr, []).count(), 0);
    assert_eq!(pool.imap_unordered(sqr, []).count(), 0);
}

#[test]
fn test_traceback() {
    let _g = shared();
    // The error names what the function raised, and where.
    let pool = pool(1);
    let e = pool
        .apply(
            |x: u32| -> u32 { panic!("RuntimeError({x}) # some comment") },
            123,
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "MainLoopError: panic: RuntimeError(123) # some comment"
    );
    assert!(e
        .remote()
        .unwrap()
        .panic_location()
        .unwrap()
        .contains("pool.rs"));
    // The worker lives on: the next item runs in the same process.
    let pids = pool.map(|_: u8| std::process::id(), [0, 1]);
    assert_eq!(pids[0], pids[1]);
}

fn raise_large_value_error(x: u64) -> u64 {
    if x == 0 {
        // The default hook would print the whole message.
        std::panic::set_hook(Box::new(|_| {}));
        panic!("{}", "x".repeat(1 << 20));
    }
    x
}

#[test]
fn test_map_no_failfast() {
    let _g = shared();
    // Issue #23992: an error does not stop the other items; each gets its result.
    let pool = pool(2);
    let results = pool.map(raise_large_value_error, 0..4);
    assert_eq!(
        panic_message(results[0].as_ref().unwrap_err()).len(),
        1 << 20
    );
    assert_eq!(results[1..], [Ok(1), Ok(2), Ok(3)]);
}

/// Serializes with an error: in the worker, as a result.
#[derive(Debug)]
struct UnpicklableResult;

impl Serialize for UnpicklableResult {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("cannot pickle"))
    }
}

impl<'de> Deserialize<'de> for UnpicklableResult {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|()| UnpicklableResult)
    }
}

/// The pids of a pool's workers: with items that each hold a worker for a while, every
/// worker takes one.
fn worker_pids(pool: &Pool) -> std::collections::BTreeSet<u32> {
    pool.map(
        |ms: u64| {
            std::thread::sleep(Duration::from_millis(ms));
            std::process::id()
        },
        vec![100; pool.workers() * 2],
    )
    .into_iter()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn test_unpickleable_result() {
    let _g = shared();
    // _TestPoolWorkerErrors: encoding errors must not cost the pool its workers.
    let pool = Pool::builder().workers(2).chunk_size(1).build().unwrap();
    let pids = worker_pids(&pool);
    assert_eq!(pids.len(), 2);
    for _ in 0..20 {
        let e = pool.apply(|()| UnpicklableResult, ()).unwrap_err();
        assert!(
            matches!(&e, ProcessError::Output(m)
                if m.contains("the child cannot encode the result, a `pool::UnpicklableResult`")),
            "{e}"
        );
    }
    assert_eq!(worker_pids(&pool), pids, "a worker was replaced");
}

// --- concurrent.futures: deaths that break a ProcessPoolExecutor ---------------------

/// Runs `f` on 0..8 in chunks of 4 on two workers: only item 2 dies. Checks every other
/// result, then that the same pool still serves a call with every worker.
fn only_item_two_dies(f: impl Fn(u64) -> u64) -> ProcessError {
    let pool = Pool::builder().workers(2).chunk_size(4).build().unwrap();
    let mut results = pool.map(f, 0..8);
    let died = results.remove(2).unwrap_err();
    assert_eq!(results, [0, 1, 3, 4, 5, 6, 7].map(Ok));
    assert_eq!(
        pool.map(sqr, 0..100)
            .into_iter()
            .filter(Result::is_ok)
            .count(),
        100
    );
    died
}

#[test]
fn test_crash_during_func_exec_on_worker() {
    let _g = shared();
    let died = only_item_two_dies(|x| if x == 2 { segfault() } else { x });
    assert_eq!(died, crashed(Exit::Signal(libc::SIGSEGV)));
    assert_eq!(
        died.to_string(),
        "the process crashed in main_loop with signal 11 (SIGSEGV)"
    );
}

#[test]
fn test_abort_during_func_exec_on_worker() {
    let _g = shared();
    let died = only_item_two_dies(|x| if x == 2 { abort() } else { x });
    assert_eq!(died, crashed(Exit::Signal(libc::SIGABRT)));
}

#[test]
fn test_exit_during_func_exec_on_worker() {
    let _g = shared();
    let died = only_item_two_dies(|x| if x == 2 { std::process::exit(1) } else { x });
    assert_eq!(died, crashed(Exit::Code(1)));
}

#[test]
fn test_traceback_when_child_process_terminates_abruptly() {
    let _g = shared();
    // gh-139462: the error says how the worker ended (os._exit(99)).
    let pool = pool(1);
    let e = pool
        .apply(|code: i32| -> u8 { std::process::exit(code) }, 99)
        .unwrap_err();
    assert_eq!(e, crashed(Exit::Code(99)));
    assert!(e.to_string().contains("exit code 99"), "{e}");
    assert_eq!(pool.apply(sqr, 3), Ok(9));
}

#[test]
fn test_error_during_func_exec_on_worker() {
    let _g = shared();
    let pool = Pool::builder().workers(2).chunk_size(4).build().unwrap();
    let pids = pool.map(
        |x: u64| {
            if x == 2 {
                panic!("RuntimeError")
            } else {
                std::process::id()
            }
        },
        0..4,
    );
    assert_eq!(panic_message(pids[2].as_ref().unwrap_err()), "RuntimeError");
    // A panic is caught around its item: the rest of the chunk ran in the same worker.
    assert_eq!(pids[0], pids[3]);
}

/// Decodes only in the parent; in a worker, decoding it crashes the worker.
#[derive(Debug)]
struct CrashAtUnpickle;

impl Serialize for CrashAtUnpickle {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for CrashAtUnpickle {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        abort()
    }
}

#[test]
fn test_crash_at_task_unpickle() {
    let _g = shared();
    let pool = pool(2);
    let e = pool
        .apply(|_: CrashAtUnpickle| 0u8, CrashAtUnpickle)
        .unwrap_err();
    assert_eq!(e, crashed(Exit::Signal(libc::SIGABRT)));
    assert_eq!(pool.apply(sqr, 4), Ok(16));
}

#[test]
fn test_error_at_task_unpickle() {
    let _g = shared();
    let pool = pool(2);
    let e = pool.apply(|_: Undecodable| 0u8, Undecodable).unwrap_err();
    assert!(
        matches!(&e, ProcessError::State(m)
            if m.contains("the child cannot decode the argument, a `pool::Undecodable`")),
        "{e}"
    );
    assert_eq!(pool.apply(sqr, 4), Ok(16));
}

/// Encoding it (a worker's result) crashes the worker.
#[derive(Debug)]
struct CrashAtPickle;

impl Serialize for CrashAtPickle {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        segfault()
    }
}

impl<'de> Deserialize<'de> for CrashAtPickle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|()| CrashAtPickle)
    }
}

#[test]
fn test_crash_during_result_pickle_on_worker() {
    let _g = shared();
    let pool = pool(2);
    let e = pool.apply(|()| CrashAtPickle, ()).unwrap_err();
    assert_eq!(e, crashed(Exit::Signal(libc::SIGSEGV)));
    assert_eq!(pool.apply(sqr, 5), Ok(25));
}

#[test]
fn test_error_during_result_unpickle_in_result_handler() {
    let _g = shared();
    // The result encodes in the worker but does not decode in the parent.
    let pool = pool(2);
    let e = pool.apply(|()| Undecodable, ()).unwrap_err();
    assert!(
        matches!(&e, ProcessError::Output(m) if m.contains("the parent cannot decode `pool::Undecodable`")),
        "{e}"
    );
    assert_eq!(pool.apply(sqr, 5), Ok(25));
}

/// Writes this worker's pid to `path`, then waits to be killed.
fn wait_for_kill(path: String) -> u8 {
    write_atomically(&path, &std::process::id().to_string()).unwrap();
    sleep_forever()
}

#[test]
fn test_killed_child() {
    let _g = shared();
    // A worker killed from outside while it runs an item costs that item only.
    let dir = Scratch::new("killed-child");
    let file = dir.file("pid");
    let path = file.to_string_lossy().into_owned();
    let pool = Pool::builder().workers(2).chunk_size(1).build().unwrap();
    let killer = std::thread::spawn(move || {
        let pid: i32 = wait_for_file(&file, Duration::from_secs(20))
            .unwrap()
            .parse()
            .unwrap();
        // SAFETY: kill only sends a signal, to a worker of ours.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    });
    let inputs = ["a".to_owned(), path, "b".to_owned()];
    let results = pool.map(
        |s: String| if s.len() > 1 { wait_for_kill(s) } else { 1 },
        inputs,
    );
    killer.join().unwrap();
    assert_eq!(
        results,
        [Ok(1), Err(crashed(Exit::Signal(libc::SIGKILL))), Ok(1)]
    );
    // Submitting other jobs works.
    assert_eq!(pool.apply(|(x, y): (u64, u32)| x.pow(y), (2, 8)), Ok(256));
}

#[test]
fn test_crash_big_data() {
    let _g = shared();
    // gh-94777: workers crash while big arguments are on the way to them.
    let pool = pool(2);
    let data = "a".repeat(1 << 20);
    let results = pool.map(
        |s: String| -> usize {
            if s.is_empty() {
                0
            } else {
                segfault()
            }
        },
        std::iter::repeat_n(data, 10),
    );
    assert_eq!(results, vec![Err(crashed(Exit::Signal(libc::SIGSEGV))); 10]);
    assert_eq!(pool.map(sqr, [1, 2]), [Ok(1), Ok(4)]);
}

#[test]
fn test_shutdown_deadlock() {
    let _g = shared();
    // A worker that fails while the pool is being dropped does not hang the drop.
    let pool = pool(2);
    let it = pool.imap(
        |ms: u64| -> u8 {
            std::thread::sleep(Duration::from_millis(ms));
            segfault()
        },
        [100, 100],
    );
    assert!(it.size_hint().1.is_some());
    std::thread::sleep(Duration::from_millis(20));
    let started = Instant::now();
    drop(it);
    drop(pool);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

// --- what the pool adds ---------------------------------------------------------------

#[test]
fn the_rest_of_a_dead_workers_chunk_runs_on_another_worker() {
    let _g = shared();
    let pool = Pool::builder().workers(2).chunk_size(8).build().unwrap();
    let results = pool.map(
        |x: u64| if x == 3 { abort() } else { std::process::id() },
        0..8,
    );
    let before = results[0].clone().unwrap();
    assert_eq!(results[1], Ok(before));
    assert_eq!(results[2], Ok(before));
    assert_eq!(results[3], Err(crashed(Exit::Signal(libc::SIGABRT))));
    for r in &results[4..] {
        assert_ne!(r.clone().unwrap(), before, "the dead worker ran it");
    }
}

/// The pids of `results`, which are `Ok((x, pid))`, from `from` to `to`.
fn pids_of(
    results: &[Result<(u64, u32), ProcessError>],
    range: std::ops::Range<usize>,
) -> Vec<u32> {
    results[range]
        .iter()
        .map(|r| r.as_ref().expect("a result").1)
        .collect()
}

#[test]
fn a_worker_that_dies_in_a_batch_costs_only_the_item_it_was_running() {
    let _g = shared();
    // Fast items come back in batches (see `ring.rs`): whatever the worker finished
    // before it died is kept, from that worker, whether or not it had told the parent.
    let pool = Pool::builder().workers(2).chunk_size(500).build().unwrap();
    for round in 0..3 {
        let results = pool.map(
            |x: u64| {
                if x == 250 {
                    abort()
                }
                (x, std::process::id())
            },
            0..1000,
        );
        assert_eq!(results[250], Err(crashed(Exit::Signal(libc::SIGABRT))));
        let before = pids_of(&results, 0..250);
        let dead = before[0];
        assert!(
            before.iter().all(|&p| p == dead),
            "round {round}: an item before the death ran again elsewhere"
        );
        let after = pids_of(&results, 251..500);
        assert!(
            after.iter().all(|&p| p != dead),
            "round {round}: the dead worker answered an item after its death"
        );
        for (x, r) in (0..1000u64).zip(&results) {
            if x != 250 {
                assert_eq!(r.as_ref().unwrap().0, x);
            }
        }
    }
}

/// Item `path`: writes this worker's pid there and waits to be killed; any other
/// item: its number and this worker's pid.
fn killed_at_path((x, path): (u64, String)) -> (u64, u32) {
    if !path.is_empty() {
        wait_for_kill(path);
    }
    (x, std::process::id())
}

#[test]
fn a_worker_killed_from_outside_in_a_batch_costs_only_the_item_it_was_running() {
    let _g = shared();
    let dir = Scratch::new("killed-in-batch");
    let file = dir.file("pid");
    let path = file.to_string_lossy().into_owned();
    let pool = Pool::builder().workers(1).chunk_size(200).build().unwrap();
    let killer = std::thread::spawn(move || {
        let pid: i32 = wait_for_file(&file, Duration::from_secs(20))
            .unwrap()
            .parse()
            .unwrap();
        // SAFETY: kill only sends a signal, to a worker of ours.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        pid
    });
    let items = (0..200u64).map(|x| {
        (
            x,
            if x == 120 {
                path.clone()
            } else {
                String::new()
            },
        )
    });
    let results = pool.map(killed_at_path, items);
    let killed = u32::try_from(killer.join().unwrap()).unwrap();
    assert_eq!(results[120], Err(crashed(Exit::Signal(libc::SIGKILL))));
    let to_u32 = |r: &Result<(u64, u32), ProcessError>| r.as_ref().unwrap().1;
    assert!(results[..120].iter().all(|r| to_u32(r) == killed));
    assert!(results[121..].iter().all(|r| to_u32(r) != killed));
    assert_eq!(pool.apply(sqr, 6), Ok(36));
}

#[test]
fn fast_results_do_not_wait_for_a_slow_item_after_them() {
    let _g = shared();
    // One chunk of four: the three fast results come back while the slow item runs.
    let pool = Pool::builder().workers(1).chunk_size(4).build().unwrap();
    let started = Instant::now();
    let mut it = pool.imap(nap, [0, 0, 0, 1500]);
    for _ in 0..3 {
        assert_eq!(it.next(), Some(Ok(0)));
    }
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(it.next(), Some(Ok(1500)));
}

#[test]
fn large_results_and_a_full_ring_keep_their_order() {
    let _g = shared();
    // Results too large for the results ring go as messages, and a chunk whose results
    // fill the ring sends the rest so too: all in input order, none lost.
    let pool = Pool::builder().workers(2).chunk_size(64).build().unwrap();
    let sizes: Vec<usize> = (0..256)
        .map(|n| match n % 4 {
            0 => 100_000,
            1 => 1,
            2 => 20_000,
            _ => 3000,
        })
        .collect();
    let results = pool.map(|n: usize| "x".repeat(n), sizes.clone());
    for (n, r) in sizes.iter().zip(results) {
        assert_eq!(r.map(|s| s.len()), Ok(*n));
    }
    // And a death after such results blames its own item only.
    let results = pool.map(
        |n: usize| if n == 7 { abort() } else { "y".repeat(n) },
        [50_000, 40_000, 7, 30_000],
    );
    assert_eq!(results[0].as_ref().map(String::len), Ok(50_000));
    assert_eq!(results[1].as_ref().map(String::len), Ok(40_000));
    assert_eq!(results[2], Err(crashed(Exit::Signal(libc::SIGABRT))));
    assert_eq!(results[3].as_ref().map(String::len), Ok(30_000));
}

#[test]
fn a_pool_never_breaks_whatever_its_items_do() {
    let _g = shared();
    // Every kind of death, mixed with good items, twice over on the same pool.
    let pool = Pool::builder().workers(2).chunk_size(3).build().unwrap();
    for _ in 0..2 {
        let results = pool.map(
            |x: u64| match x % 5 {
                1 => abort(),
                2 => segfault(),
                3 => panic!("item {x}"),
                4 => std::process::exit(7),
                _ => x,
            },
            0..20,
        );
        for (x, r) in (0..20u64).zip(results) {
            match x % 5 {
                1 => assert_eq!(r, Err(crashed(Exit::Signal(libc::SIGABRT)))),
                2 => assert_eq!(r, Err(crashed(Exit::Signal(libc::SIGSEGV)))),
                3 => assert_eq!(panic_message(r.as_ref().unwrap_err()), format!("item {x}")),
                4 => assert_eq!(r, Err(crashed(Exit::Code(7)))),
                _ => assert_eq!(r, Ok(x)),
            }
        }
    }
}

#[test]
fn an_item_past_its_timeout_is_killed_and_costs_only_itself() {
    let _g = shared();
    let limit = Duration::from_millis(300);
    let pool = Pool::builder()
        .workers(2)
        .chunk_size(4)
        .item_timeout(limit)
        .build()
        .unwrap();
    let started = Instant::now();
    let results = pool.map(|x: u64| if x == 1 { sleep_forever() } else { x }, 0..6);
    assert_eq!(
        results,
        [
            Ok(0),
            Err(ProcessError::Timeout {
                section: Section::MainLoop,
                limit
            }),
            Ok(2),
            Ok(3),
            Ok(4),
            Ok(5)
        ]
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Appends a line to `path` for each attempt; fails (aborts, or panics when `panics`)
/// until the `succeed_at`th attempt.
fn fails_until((path, succeed_at, panics): (String, usize, bool)) -> usize {
    let mut tries = std::fs::read_to_string(&path).unwrap_or_default();
    tries.push('x');
    std::fs::write(&path, &tries).unwrap();
    if tries.len() < succeed_at {
        if panics {
            panic!("attempt {}", tries.len());
        }
        abort();
    }
    tries.len()
}

#[test]
fn item_lives_retry_a_failed_item_in_a_fresh_attempt() {
    let _g = shared();
    let dir = Scratch::new("item-lives");
    let file = |name: &str| dir.file(name).to_string_lossy().into_owned();
    let pool = Pool::builder()
        .workers(2)
        .chunk_size(2)
        .item_lives(3)
        .build()
        .unwrap();
    let results = pool.map(
        fails_until,
        [
            (file("crashes-once"), 2, false),
            (file("fine"), 0, false),
            (file("panics-twice"), 3, true),
            (file("panics-always"), 9, true),
        ],
    );
    assert_eq!(results[0], Ok(2));
    assert_eq!(results[1], Ok(1));
    assert_eq!(results[2], Ok(3));
    assert_eq!(
        panic_message(results[3].as_ref().unwrap_err()),
        "attempt 3",
        "the last attempt's own error"
    );
    assert_eq!(
        std::fs::read_to_string(file("panics-always")).unwrap(),
        "xxx"
    );
}

#[test]
fn imap_reads_its_input_lazily_and_runs_an_endless_input_in_bounded_memory() {
    let _g = shared();
    let pool = pool(2);
    let read = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&read);
    let endless = (0u64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let mut it = pool.imap(|x: u64| x + 1, endless);
    assert_eq!(it.next(), Some(Ok(1)));
    let first = read.load(Ordering::Relaxed);
    assert!(first < 100, "read {first} items for the first result");
    // Results taken as they come keep what was read ahead bounded.
    let mut most_ahead = 0;
    for taken in 2..=50_000 {
        assert_eq!(it.next(), Some(Ok(taken)));
        most_ahead = most_ahead.max(read.load(Ordering::Relaxed) - taken);
    }
    assert!(
        most_ahead <= 5 * 1024,
        "read up to {most_ahead} items ahead"
    );
}

#[test]
fn one_pool_serves_different_functions_from_several_threads() {
    let _g = shared();
    let pool = pool(2);
    std::thread::scope(|s| {
        let squares = s.spawn(|| pool.map(sqr, 0..2000));
        let lengths = s.spawn(|| {
            pool.imap(|s: String| s.len(), (0..2000).map(|n| "x".repeat(n % 7)))
                .collect::<Vec<_>>()
        });
        assert_eq!(
            squares.join().unwrap(),
            (0..2000).map(|x| Ok(sqr(x))).collect::<Vec<_>>()
        );
        assert_eq!(
            lengths.join().unwrap(),
            (0..2000).map(|n| Ok(n % 7)).collect::<Vec<_>>()
        );
    });
}

#[test]
fn calls_of_one_item_from_more_threads_than_workers_share_them() {
    let _g = shared();
    // A caller that waits for one item runs it on an idle worker itself; with more
    // callers than workers, and a map keeping the drivers busy meanwhile, the others
    // go through the queue. Deaths on the callers' threads cost their item only.
    let pool = pool(2);
    std::thread::scope(|s| {
        let callers: Vec<_> = (0..4u64)
            .map(|t| {
                let pool = &pool;
                s.spawn(move || {
                    for x in 0..150u64 {
                        let r = pool.apply(
                            |x: u64| if x % 50 == 49 { abort() } else { x + 1 },
                            t * 1000 + x,
                        );
                        if x % 50 == 49 {
                            assert_eq!(r, Err(crashed(Exit::Signal(libc::SIGABRT))));
                        } else {
                            assert_eq!(r, Ok(t * 1000 + x + 1));
                        }
                    }
                })
            })
            .collect();
        let squares = pool.map(sqr, 0..3000);
        assert_eq!(squares, (0..3000).map(|x| Ok(sqr(x))).collect::<Vec<_>>());
        for caller in callers {
            caller.join().unwrap();
        }
    });
    assert_eq!(pool.apply(sqr, 7), Ok(49));
}

#[test]
fn pools_and_their_iterators_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Pool>();
    send::<process_runtime::Imap<'static, std::ops::Range<u64>, u64>>();
    send::<process_runtime::ImapUnordered<'static, std::vec::IntoIter<String>, usize>>();
}

#[test]
fn dropping_a_pool_leaves_no_process_zombie_or_descriptor() {
    let _g = exclusive();
    // A first pool starts what lives for the whole process (the spawner thread).
    drop(pool(1).map(sqr, [1]));
    let fds_before = open_descriptors();
    let pool = Pool::builder().workers(3).chunk_size(2).build().unwrap();
    let mut pids: Vec<u32> = pool
        .map(|_: u8| std::process::id(), 0..30)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    // A death and its replacement, too.
    assert_eq!(
        pool.apply(|()| -> u8 { abort() }, ()),
        Err(crashed(Exit::Signal(libc::SIGABRT)))
    );
    pids.extend(
        pool.map(|_: u8| std::process::id(), 0..30)
            .into_iter()
            .map(Result::unwrap),
    );
    pids.sort_unstable();
    pids.dedup();
    drop(pool);
    for pid in pids {
        assert!(reaped(pid), "worker {pid} is still there");
    }
    assert_eq!(child_processes(), [], "a child is left");
    assert_eq!(
        open_descriptors(),
        fds_before,
        "a descriptor leaked; open now: {}",
        describe_descriptors()
    );
}

// --- run: processes with their whole lifecycle, on the pool's workers -------------------

/// What a pooled process does wrong, in which section, on which attempts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Fault {
    Panic,
    Fail,
    Abort,
    Segfault,
    Exit,
    Hang,
}

impl Fault {
    fn strike(self, section: &str) -> Outcome {
        match self {
            Fault::Panic => panic!("{section} gave up"),
            Fault::Fail => Err(format!("{section} failed").into()),
            Fault::Abort => abort(),
            Fault::Segfault => segfault(),
            Fault::Exit => std::process::exit(7),
            Fault::Hang => sleep_forever(),
        }
    }
}

/// Counts its sections over three laps; `fault` strikes in the section named `at` on
/// the attempts before `until` (every attempt when `until` is 0). Its output is its
/// count, the attempt that produced it, and the worker's pid.
#[derive(Process, Serialize, Deserialize, Clone)]
#[process(num_loops = 3, lives = 3, name = "tally", timeout.postloop = "400ms")]
struct Tally {
    n: u64,
    fault: Option<(Fault, String, u32)>,
    /// Attempts seen by this copy of the state: a retry must start from the original.
    seen: Vec<u32>,
}

impl Tally {
    fn fine(n: u64) -> Self {
        Tally {
            n,
            fault: None,
            seen: Vec::new(),
        }
    }

    fn faulty(n: u64, fault: Fault, at: &str, until: u32) -> Self {
        Tally {
            fault: Some((fault, at.to_owned(), until)),
            ..Tally::fine(n)
        }
    }

    fn visit(&mut self, section: &str, cx: &Context) -> Outcome {
        self.n += 1;
        match &self.fault {
            Some((fault, at, until)) if at == section && (*until == 0 || cx.attempt() < *until) => {
                fault.strike(section)
            }
            _ => Ok(()),
        }
    }
}

impl Lifecycle for Tally {
    type Output = (u64, u32, Vec<u32>, u32);

    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        if cx.lap() == 0 {
            self.seen.push(cx.attempt());
        }
        self.visit("preloop", cx)
    }

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        self.visit("main_loop", cx)
    }

    fn postloop(&mut self, cx: &mut Context) -> Outcome {
        self.visit("postloop", cx)
    }

    fn on_finish(&mut self, cx: &mut Context) -> Outcome {
        self.visit("on_finish", cx)
    }

    fn result(&mut self, cx: &mut Context) -> Result<Self::Output, BoxError> {
        Ok((self.n, cx.attempt(), self.seen.clone(), std::process::id()))
    }
}

/// A clean run of three laps: three sections a lap and `on_finish`.
const TALLY_CLEAN: u64 = 10;

fn tally_value(r: &Result<(u64, u32, Vec<u32>, u32), ProcessError>) -> Result<u64, ProcessError> {
    r.as_ref().map(|(n, ..)| *n).map_err(Clone::clone)
}

#[test]
fn run_test_map() {
    let _g = shared();
    // `_TestPool.test_map`, with processes: outcomes in input order, on warm workers.
    let pool = pool(2);
    let workers = worker_pids(&pool);
    let outcomes = pool.run((0..40).map(Tally::fine));
    assert_eq!(outcomes.len(), 40);
    let mut pids = std::collections::BTreeSet::new();
    for (n, r) in (0..40u64).zip(&outcomes) {
        let (count, attempt, seen, pid) = r.as_ref().unwrap();
        assert_eq!(*count, n + TALLY_CLEAN);
        assert_eq!((*attempt, seen.as_slice()), (1, &[1][..]));
        pids.insert(*pid);
    }
    assert!(
        pids.is_subset(&workers),
        "{pids:?} ran on the pool's workers {workers:?}"
    );
    assert_eq!(worker_pids(&pool), workers, "no worker was replaced");
}

#[test]
fn run_test_empty_iterable() {
    let _g = shared();
    let pool = pool(1);
    assert_eq!(pool.run(std::iter::empty::<Tally>()), []);
}

#[test]
fn run_test_traceback() {
    let _g = shared();
    // The error names the section, what it raised, and where; each attempt failed the
    // same way, and the last one's error is the outcome, as for a started process.
    let pool = pool(1);
    let outcomes = pool.run([
        Tally::faulty(0, Fault::Panic, "main_loop", 0),
        Tally::faulty(0, Fault::Fail, "on_finish", 0),
    ]);
    let e = outcomes[0].as_ref().unwrap_err();
    assert_eq!(e.to_string(), "MainLoopError: panic: main_loop gave up");
    assert!(e
        .remote()
        .unwrap()
        .panic_location()
        .unwrap()
        .contains("pool.rs"));
    assert_eq!(
        outcomes[1].as_ref().unwrap_err().to_string(),
        "OnFinishError: on_finish failed"
    );
    // A panic or an error costs no worker.
    let pids = pool.map(|_: u8| std::process::id(), [0, 1]);
    assert_eq!(pids[0], pids[1]);
}

#[test]
fn run_test_map_no_failfast() {
    let _g = shared();
    // A failing process does not stop the others, before or after it.
    let pool = Pool::builder().workers(2).chunk_size(4).build().unwrap();
    let states = (0..12).map(|n| {
        if n == 5 {
            Tally::faulty(n, Fault::Abort, "postloop", 0)
        } else {
            Tally::fine(n)
        }
    });
    let outcomes = pool.run(states);
    for (n, r) in (0..12u64).zip(&outcomes) {
        if n == 5 {
            assert_eq!(
                r.as_ref().unwrap_err(),
                &ProcessError::Crashed {
                    section: Some(Section::Postloop),
                    exit: Exit::Signal(libc::SIGABRT)
                }
            );
        } else {
            assert_eq!(tally_value(r), Ok(n + TALLY_CLEAN));
        }
    }
}

#[test]
fn run_a_death_in_any_section_costs_only_that_process_named_after_its_section() {
    let _g = shared();
    // `_TestPoolWorkerErrors.test_{crash,abort,exit}_during_func_exec_on_worker`, with
    // the death in each section of a process whose lives are all spent.
    let pool = Pool::builder().workers(2).chunk_size(3).build().unwrap();
    let cases = [
        (
            "preloop",
            Fault::Abort,
            Exit::Signal(libc::SIGABRT),
            Section::Preloop,
        ),
        (
            "main_loop",
            Fault::Segfault,
            Exit::Signal(libc::SIGSEGV),
            Section::MainLoop,
        ),
        ("postloop", Fault::Exit, Exit::Code(7), Section::Postloop),
        (
            "on_finish",
            Fault::Abort,
            Exit::Signal(libc::SIGABRT),
            Section::OnFinish,
        ),
    ];
    for _ in 0..2 {
        let mut states = Vec::new();
        for (at, fault, ..) in cases {
            states.push(Tally::fine(1));
            states.push(Tally::faulty(2, fault, at, 0));
        }
        states.push(Tally::fine(3));
        let outcomes = pool.run(states);
        for (i, (_, _, exit, section)) in cases.into_iter().enumerate() {
            assert_eq!(tally_value(&outcomes[2 * i]), Ok(1 + TALLY_CLEAN));
            assert_eq!(
                outcomes[2 * i + 1],
                Err(ProcessError::Crashed {
                    section: Some(section),
                    exit
                })
            );
        }
        assert_eq!(tally_value(&outcomes[8]), Ok(3 + TALLY_CLEAN));
    }
    // The same pool keeps serving functions too.
    assert_eq!(pool.apply(sqr, 9), Ok(81));
}

#[test]
fn run_lives_restart_a_process_from_its_original_state() {
    let _g = shared();
    // Lives are the type's (3): each failure, a panic caught in the worker or a crash
    // that kills it, costs one, and each retry starts from the original state.
    let pool = Pool::builder().workers(2).chunk_size(2).build().unwrap();
    let outcomes = pool.run([
        Tally::faulty(0, Fault::Abort, "main_loop", 2),
        Tally::faulty(0, Fault::Panic, "postloop", 3),
        Tally::faulty(0, Fault::Segfault, "preloop", 3),
        Tally::faulty(0, Fault::Fail, "on_finish", 2),
        Tally::fine(0),
    ]);
    let attempts: Vec<_> = outcomes
        .iter()
        .map(|r| {
            let (n, attempt, seen, _) = r.as_ref().unwrap();
            assert_eq!(*n, TALLY_CLEAN, "a clean run from the original state");
            assert_eq!(seen, &[*attempt], "nothing of an earlier attempt");
            *attempt
        })
        .collect();
    assert_eq!(attempts, [2, 3, 3, 2, 1]);
}

/// Fails in `main_loop` every time: its last attempt's error reaches `error`, which
/// turns it into an output when asked to.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1, lives = 2)]
struct Recovers {
    fault: Fault,
    recover: bool,
}

impl Lifecycle for Recovers {
    type Output = String;

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        self.fault.strike("main_loop")
    }

    fn result(&mut self, _cx: &mut Context) -> Result<String, BoxError> {
        Ok("finished".into())
    }

    fn error(&mut self, error: ProcessError, cx: &mut Context) -> Result<String, ProcessError> {
        if self.recover {
            Ok(format!("attempt {}: recovered from {error}", cx.attempt()))
        } else {
            Err(error)
        }
    }
}

#[test]
fn run_error_gets_the_last_attempts_own_error_and_may_recover() {
    let _g = shared();
    let pool = pool(2);
    let outcomes = pool.run([
        Recovers {
            fault: Fault::Abort,
            recover: true,
        },
        Recovers {
            fault: Fault::Fail,
            recover: true,
        },
        Recovers {
            fault: Fault::Abort,
            recover: false,
        },
    ]);
    let crash = ProcessError::Crashed {
        section: Some(Section::MainLoop),
        exit: Exit::Signal(libc::SIGABRT),
    };
    assert_eq!(
        outcomes[0],
        Ok(format!("attempt 2: recovered from {crash}"))
    );
    assert_eq!(
        outcomes[1],
        Ok("attempt 2: recovered from MainLoopError: main_loop failed".to_owned())
    );
    assert_eq!(outcomes[2], Err(crash));
}

#[test]
fn run_a_section_past_its_own_limit_is_killed_and_costs_a_life() {
    let _g = shared();
    // `timeout.postloop = "400ms"` is Tally's; the pool's item_timeout is for functions.
    let limit = Duration::from_millis(400);
    let pool = Pool::builder()
        .workers(2)
        .item_timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let started = Instant::now();
    let outcomes = pool.run([
        Tally::faulty(0, Fault::Hang, "postloop", 2),
        Tally::faulty(0, Fault::Hang, "postloop", 0),
        Tally::fine(5),
    ]);
    assert_eq!(outcomes[0].as_ref().map(|(_, attempt, ..)| *attempt), Ok(2));
    assert_eq!(
        outcomes[1],
        Err(ProcessError::Timeout {
            section: Section::Postloop,
            limit
        })
    );
    assert_eq!(tally_value(&outcomes[2]), Ok(5 + TALLY_CLEAN));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// Sleeps `ms` in each of its `main_loop`s, well within its limit.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 4, timeout.loop = "5s")]
struct Slow {
    ms: u64,
}

impl Lifecycle for Slow {
    type Output = u64;

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(self.ms));
        Ok(())
    }

    fn result(&mut self, cx: &mut Context) -> Result<u64, BoxError> {
        Ok(cx.lap())
    }
}

#[test]
fn run_holds_the_limit_of_each_section_not_of_the_whole_process() {
    let _g = shared();
    // Four laps of 150 ms each: past the pool's item_timeout as a whole, each section
    // well within its own limit.
    let pool = Pool::builder()
        .workers(1)
        .item_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    assert_eq!(pool.run([Slow { ms: 150 }]), [Ok(4)]);
    // The pool's limit still holds for functions.
    assert_eq!(
        pool.apply(nap, 5000),
        Err(ProcessError::Timeout {
            section: Section::MainLoop,
            limit: Duration::from_millis(300)
        })
    );
}

/// Leaves its worker's pid in `path` in its first `main_loop`, then waits to be
/// killed; runs clean when `path` is empty.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 2)]
struct WaitsForKill {
    path: String,
}

impl Lifecycle for WaitsForKill {
    type Output = u64;

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        if !self.path.is_empty() {
            write_atomically(&self.path, &std::process::id().to_string())?;
            sleep_forever();
        }
        Ok(())
    }

    fn result(&mut self, cx: &mut Context) -> Result<u64, BoxError> {
        Ok(cx.lap())
    }
}

#[test]
fn run_test_killed_child() {
    let _g = shared();
    // A worker killed from outside while it runs a process costs that process only.
    let dir = Scratch::new("run-killed-child");
    let file = dir.file("pid");
    let path = file.to_string_lossy().into_owned();
    let pool = Pool::builder().workers(2).chunk_size(1).build().unwrap();
    let killer = std::thread::spawn(move || {
        let pid: i32 = wait_for_file(&file, Duration::from_secs(20))
            .unwrap()
            .parse()
            .unwrap();
        // SAFETY: kill only sends a signal, to a worker of ours.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    });
    let outcomes = pool.run([
        WaitsForKill {
            path: String::new(),
        },
        WaitsForKill { path },
        WaitsForKill {
            path: String::new(),
        },
    ]);
    killer.join().unwrap();
    assert_eq!(
        outcomes,
        [
            Ok(2),
            Err(ProcessError::Crashed {
                section: Some(Section::MainLoop),
                exit: Exit::Signal(libc::SIGKILL)
            }),
            Ok(2)
        ]
    );
    assert_eq!(
        pool.run([WaitsForKill {
            path: String::new()
        }]),
        [Ok(2)]
    );
}

/// Stops itself at lap `at`, and says whether it could tell anyone.
#[derive(Process, Serialize, Deserialize)]
struct StopsItself {
    at: u64,
}

impl Lifecycle for StopsItself {
    type Output = (u64, bool);

    fn main_loop(&mut self, cx: &mut Context) -> Outcome {
        if cx.lap() + 1 == self.at {
            cx.stop();
        }
        Ok(())
    }

    fn result(&mut self, cx: &mut Context) -> Result<(u64, bool), BoxError> {
        let told = cx.tell(&1u8);
        Ok((cx.lap(), matches!(told, Err(SendError::Ended))))
    }
}

#[test]
fn run_cx_stop_ends_the_process_not_its_worker_and_there_is_nobody_to_tell() {
    let _g = shared();
    let pool = pool(1);
    let before = worker_pids(&pool);
    // The stop lets the lap's `main_loop` finish, then ends: `postloop` is skipped.
    assert_eq!(
        pool.run([StopsItself { at: 3 }, StopsItself { at: 1 }]),
        [Ok((2, true)), Ok((0, true))]
    );
    assert_eq!(worker_pids(&pool), before);
}

/// A state that encodes here and does not decode in the worker.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1)]
struct UndecodableState {
    field: Undecodable,
}

impl Lifecycle for UndecodableState {
    type Output = ();

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn run_test_error_at_task_unpickle() {
    let _g = shared();
    let pool = pool(1);
    let outcomes = pool.run([UndecodableState { field: Undecodable }]);
    assert!(
        matches!(&outcomes[0], Err(ProcessError::State(m))
            if m.contains("the worker cannot decode the state, a `pool::UndecodableState`")),
        "{outcomes:?}"
    );
    assert_eq!(pool.run([Tally::fine(1)]).len(), 1);
}

// --- imap as a Stream ----------------------------------------------------------------

/// Collects `imap` and `imap_unordered` as streams, on the executor that runs it.
async fn imap_streams(pool: &Pool) {
    use futures::StreamExt;
    let squares: Vec<_> = pool.imap(sqr, 0..300u64).into_stream().collect().await;
    assert_eq!(squares, (0..300u64).map(|x| Ok(x * x)).collect::<Vec<_>>());
    // As they finish: the slow first item comes last.
    let naps: Vec<_> = pool
        .imap_unordered(nap, [400, 1, 2, 3])
        .into_stream()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(naps.last(), Some(&400), "{naps:?}");
    // A failed item is its own result here too.
    let mut results = pool
        .imap(|x: u64| if x == 1 { abort() } else { x }, 0..3u64)
        .into_stream();
    assert_eq!(results.next().await, Some(Ok(0)));
    assert_eq!(
        results.next().await,
        Some(Err(crashed(Exit::Signal(libc::SIGABRT))))
    );
    assert_eq!(results.next().await, Some(Ok(2)));
    assert_eq!(results.next().await, None);
}

#[test]
fn imap_as_a_stream_on_tokio_multi_thread() {
    let _g = shared();
    let pool = Pool::builder().workers(2).chunk_size(1).build().unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
        .block_on(imap_streams(&pool));
}

#[test]
fn imap_as_a_stream_on_tokio_current_thread() {
    let _g = shared();
    let pool = Pool::builder().workers(2).chunk_size(1).build().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(imap_streams(&pool));
}

#[test]
fn imap_as_a_stream_on_futures_block_on() {
    let _g = shared();
    let pool = Pool::builder().workers(2).chunk_size(1).build().unwrap();
    futures::executor::block_on(imap_streams(&pool));
}

/// A waker that counts its wakes.
#[derive(Default)]
struct WakeCount(AtomicU64);

impl std::task::Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_pending_imap_stream_is_woken_by_its_results_not_by_a_timer() {
    use futures::Stream;
    let _g = shared();
    let pool = pool(1);
    let count = Arc::new(WakeCount::default());
    let waker = std::task::Waker::from(Arc::clone(&count));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut stream = pool.imap(nap, [600u64]).into_stream();
    // Pending at once: the poll does not wait for the item.
    let polled = Instant::now();
    assert!(std::pin::Pin::new(&mut stream)
        .poll_next(&mut cx)
        .is_pending());
    assert!(polled.elapsed() < Duration::from_millis(300));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count.0.load(Ordering::SeqCst), 0, "woken with no result");
    let started = Instant::now();
    while count.0.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "never woken");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(matches!(
        std::pin::Pin::new(&mut stream).poll_next(&mut cx),
        std::task::Poll::Ready(Some(Ok(600)))
    ));
    assert!(matches!(
        std::pin::Pin::new(&mut stream).poll_next(&mut cx),
        std::task::Poll::Ready(None)
    ));
}

/// Its output encodes in the worker and does not decode in the parent.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1)]
struct UndecodableOutput;

impl Lifecycle for UndecodableOutput {
    type Output = Undecodable;

    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<Undecodable, BoxError> {
        Ok(Undecodable)
    }
}

#[test]
fn run_test_error_during_result_unpickle_in_result_handler() {
    let _g = shared();
    let pool = pool(1);
    let outcomes = pool.run([UndecodableOutput, UndecodableOutput]);
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Err(ProcessError::Output(m))
                if m.contains("the parent cannot decode `pool::Undecodable`")),
            "{outcome:?}"
        );
    }
    assert_eq!(pool.apply(sqr, 6), Ok(36));
}

#[test]
fn run_and_map_share_one_pool_from_several_threads() {
    let _g = shared();
    let pool = Pool::builder().workers(2).chunk_size(3).build().unwrap();
    std::thread::scope(|s| {
        let runs = s.spawn(|| {
            for _ in 0..5 {
                let outcomes = pool.run((0..30).map(|n| {
                    if n == 7 {
                        Tally::faulty(n, Fault::Abort, "main_loop", 2)
                    } else {
                        Tally::fine(n)
                    }
                }));
                for (n, r) in (0..30u64).zip(&outcomes) {
                    assert_eq!(tally_value(r), Ok(n + TALLY_CLEAN));
                }
            }
        });
        for _ in 0..5 {
            let squares = pool.map(sqr, 0..200);
            assert!(squares.iter().zip(0..200u64).all(|(r, x)| *r == Ok(x * x)));
        }
        runs.join().unwrap();
    });
}
