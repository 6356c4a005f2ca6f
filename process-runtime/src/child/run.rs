//! Running a registered type in the child: decode the state, run the engine (or only
//! `error`), report, exit.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};

use super::engine;
use super::entry::exit_code;
use super::fault::Injector;
use super::port;
use crate::beacon::{ChildTimers, MailCounters, Taken};
use crate::sys;
use crate::wire::channel::{write_frame, Conn, Frame, FrameReader};
use crate::wire::protocol::{self, Mode, ReportTimers, ToChild, ToParent, POSTCARD_LIMITS};
use crate::{Context, Lifecycle, Pid, Process, ProcessError};

/// What a registered type's entry point receives.
pub(crate) struct ChildRun {
    pub(super) frame: Frame,
    pub(super) reader: FrameReader<Conn>,
    pub(super) writer: Conn,
    pub(super) parent_pid: u32,
    pub(super) beacon: &'static AtomicU64,
    pub(super) stop: &'static AtomicBool,
    /// Set with `stop` when the parent asked for the stop.
    pub(super) parent_stop: &'static AtomicBool,
    /// Bumped and woken by the parent after it sets `stop`.
    pub(super) stop_wake: &'static AtomicU32,
    /// The process's timers, in the page shared with the parent.
    pub(super) timers: ChildTimers,
    /// The mailbox counters, in the same page.
    pub(super) mail: &'static MailCounters,
    /// The taken bitmap, in the same page.
    pub(super) taken: Taken<'static>,
    pub(super) fault: Injector,
}

/// Reports a failure that ends the child before its lifecycle ran, then exits.
pub(super) fn report_fatal(send: &Conn, error: ProcessError) -> ! {
    let report = encode_report(&ToParent::Failed {
        error,
        timers: ReportTimers::default(),
        last: true,
    });
    let _ = write_frame(send, &report);
    sys::exit_now(exit_code::FAILED)
}

/// Turns a process's output into the bytes its report carries, which the parent's
/// `Handle` decodes.
pub(crate) type EncodeOutput<T> = fn(<T as Lifecycle>::Output) -> Result<Vec<u8>, ProcessError>;

/// The entry point registered for `T`: decode the state, run, report, exit.
pub(crate) fn run<T: Process>(run: ChildRun) -> ! {
    run_with::<T>(run, encode_output::<T>)
}

/// The report's bytes of an output: its postcard encoding.
fn encode_output<T: Process>(output: T::Output) -> Result<Vec<u8>, ProcessError> {
    postcard::to_allocvec(&output).map_err(|e| {
        ProcessError::Output(format!(
            "the child cannot encode `{}` ({}); {POSTCARD_LIMITS}",
            std::any::type_name::<T::Output>(),
            process_core::__cause(&e)
        ))
    })
}

/// [`run`], with the output turned into the report's bytes by `encode`: the runtime's
/// own process types (a function call) report bytes that are already the encoding of
/// what the parent's handle decodes.
pub(crate) fn run_with<T: Process>(run: ChildRun, encode: EncodeOutput<T>) -> ! {
    let ChildRun {
        mut frame,
        reader,
        writer,
        parent_pid,
        beacon,
        stop,
        parent_stop,
        stop_wake,
        timers,
        mail,
        taken,
        fault,
    } = run;
    crate::shutdown::set_parent_stop(stop, parent_stop, stop_wake);
    // The descriptors of the state's `Transfer`s; those it does not take are closed.
    let fds = frame.take_fds();
    let Ok(ToChild::Start {
        pid,
        config,
        attempt,
        mode,
        state,
        ..
    }) = protocol::decode::<ToChild<'_>>(frame.payload(), "start")
    else {
        unreachable!("the start frame was decoded before dispatch")
    };
    let mut obj: T = match crate::transfer::with_received(fds, || postcard::from_bytes(state)) {
        Ok(obj) => obj,
        Err(e) => report_fatal(
            &writer,
            ProcessError::State(format!(
                "the child cannot decode it: {}",
                process_core::__cause(&e)
            )),
        ),
    };
    drop(frame);
    crate::node::local::set_self(pid, attempt);
    crate::node::direct::set_mailbox(config.mailbox);
    let raw_frames = fault.after_start(&writer);
    engine::panic_location::install();
    // Stop requests arrive through the shared page, and messages are read by the
    // sections that listen, so nothing reads the socket in the background. Where the
    // platform cannot signal a parent's death, a thread watches for it instead.
    if !sys::parent_death_signal_armed() {
        exit_with_parent(parent_pid);
    }
    let port = port::install(reader, writer.clone(), mail, taken, raw_frames);
    let mut cx = Context::__new(config, stop, std::process::id(), parent_pid, attempt)
        .__with_ids(pid, pid.parent().unwrap_or(Pid::ROOT))
        .__with_timers(timers.timers, timers.written)
        .__with_port(Box::new(port));
    let mut failed = false;
    let outcome = match mode {
        Mode::Run { last_life } => {
            match engine::run(&mut obj, &mut cx, beacon, crate::shutdown::before_on_finish) {
                Ok(output) => Ok(output),
                Err(error) if last_life => {
                    failed = true;
                    // The last attempt's own error, as it is: seed 003 hands `error` the
                    // wrapped section error, and a match on `Crashed` or `Timeout` must not
                    // depend on how many lives there were.
                    engine::handle_error(&mut obj, &mut cx, error, beacon).map_err(|e| (e, true))
                }
                Err(error) => {
                    failed = true;
                    Err((error, false))
                }
            }
        }
        Mode::HandleError(error) => {
            engine::handle_error(&mut obj, &mut cx, error, beacon).map_err(|e| (e, true))
        }
    };
    // The section timers stay where they are: the parent reads them from the page.
    let timers = ReportTimers::new(cx.__take_named_timers(), attempt, failed);
    let (report, code) = match outcome {
        Ok(output) => match encode(output) {
            Ok(bytes) => (report_done(&bytes, timers, &fault), 0),
            Err(error) => (
                encode_report(&ToParent::Failed {
                    error,
                    timers,
                    last: true,
                }),
                exit_code::FAILED,
            ),
        },
        Err((error, last)) => (
            encode_report(&ToParent::Failed {
                error,
                timers,
                last,
            }),
            exit_code::FAILED,
        ),
    };
    // What this process's router still holds (the ends of its own children, on their
    // way to the root) goes before the report.
    crate::node::router::flush(std::time::Duration::from_secs(1));
    if write_frame(&writer, &report).is_err() {
        sys::exit_now(exit_code::PARENT_GONE);
    }
    fault.after_report();
    // Exit without running the user's `main` (or returning into the constructor's
    // caller); stdout is flushed so that the user's prints are not lost.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    sys::exit_now(code)
}

fn report_done(output: &[u8], timers: ReportTimers, fault: &Injector) -> Vec<u8> {
    let mut frame = encode_report(&ToParent::Done { output, timers });
    fault.on_report(&mut frame);
    frame
}

fn encode_report(report: &ToParent<'_>) -> Vec<u8> {
    protocol::encode(report).unwrap_or_else(|e| {
        protocol::encode(&ToParent::Failed {
            error: e,
            timers: ReportTimers::default(),
            last: true,
        })
        .expect("an error report always encodes")
    })
}

/// Ends the process when its parent is gone, on a thread of its own: where no
/// parent-death signal exists, a child that outlives its parent is re-parented, which
/// this notices within a tenth of a second.
fn exit_with_parent(parent_pid: u32) {
    let spawned = std::thread::Builder::new()
        .name("process-runtime-parent-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            if sys::parent_pid() != parent_pid {
                sys::exit_now(exit_code::PARENT_GONE)
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        });
    if spawned.is_err() {
        sys::exit_now(exit_code::BAD_START);
    }
}
