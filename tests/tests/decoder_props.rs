//! Property tests of what crosses the wire, through the public surface.
//!
//! The frame decoder and the handshake are crate-private, so they are reached two ways:
//! - the public serde types that travel inside frames (`ProcessError`, `ProcessConfig`,
//!   `RemoteError`, `Exit`, `Section`, `ProcessTimers`) are decoded from arbitrary
//!   bytes with postcard, as the runtime decodes them: never a panic, and whatever
//!   decodes re-encodes to a value that decodes the same;
//! - the parent's report decoder is fed arbitrary bytes by a REAL child whose
//!   `main_loop` writes them to its own end of the channel and exits: every time a
//!   protocol error, never a panic, a hang or an allocation the bytes did not pay for.
//!
//! The handshake decoder runs before any user code, so only the fixed faults of
//! `protocol_faults.rs` reach it; it needs an in-crate property test.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use process_runtime::prelude::*;
use process_runtime::{Exit, RemoteError, Timeouts};
use process_runtime_tests::{reaped, status_kb};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Decodes `bytes` as `T` both ways the runtime does (`from_bytes`, and
/// `take_from_bytes` with the rest checked), and when it decodes, checks the value
/// survives its own round trip.
fn decodes_sanely<T>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let whole = postcard::from_bytes::<T>(bytes);
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, rest)) => {
            prop_assert!(rest.len() <= bytes.len());
            let again = postcard::to_allocvec(&value).expect("a decoded value encodes");
            let decoded = postcard::from_bytes::<T>(&again).ok();
            prop_assert_eq!(decoded.as_ref(), Some(&value));
            if rest.is_empty() {
                let whole = whole.ok();
                prop_assert_eq!(whole.as_ref(), Some(&value));
            }
        }
        Err(_) => prop_assert!(whole.is_err(), "from_bytes accepted what take refused"),
    }
    Ok(())
}

fn section() -> impl Strategy<Value = Section> {
    prop_oneof![
        Just(Section::Preloop),
        Just(Section::MainLoop),
        Just(Section::Postloop),
        Just(Section::OnFinish),
        Just(Section::Result),
        Just(Section::Error),
    ]
}

fn exit() -> impl Strategy<Value = Exit> {
    prop_oneof![
        any::<i32>().prop_map(Exit::Code),
        any::<i32>().prop_map(Exit::Signal)
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n))
}

fn process_error() -> impl Strategy<Value = ProcessError> {
    let leaf = prop_oneof![
        (section(), ".*").prop_map(|(s, m)| ProcessError::in_section(s, RemoteError::msg(m))),
        (section(), duration())
            .prop_map(|(section, limit)| ProcessError::Timeout { section, limit }),
        (proptest::option::of(section()), exit())
            .prop_map(|(section, exit)| ProcessError::Crashed { section, exit }),
        Just(ProcessError::Killed),
        ".*".prop_map(ProcessError::Protocol),
        ".*".prop_map(ProcessError::State),
    ];
    leaf
}

fn process_config() -> impl Strategy<Value = ProcessConfig> {
    (
        ".+",
        proptest::option::of(any::<u64>()),
        proptest::option::of(duration()),
        any::<u32>(),
        [
            proptest::option::of(duration()),
            proptest::option::of(duration()),
            proptest::option::of(duration()),
            proptest::option::of(duration()),
        ],
        any::<bool>(),
        any::<u32>(),
    )
        .prop_map(|(name, loops, join_in, lives, limits, daemon, mailbox)| {
            let mut c = ProcessConfig::new(name)
                .with_num_loops(loops)
                .with_join_in(join_in)
                .with_lives(lives)
                .with_daemon(daemon)
                .with_mailbox(mailbox);
            for (s, l) in [
                Section::Preloop,
                Section::MainLoop,
                Section::Postloop,
                Section::OnFinish,
            ]
            .into_iter()
            .zip(limits)
            {
                c = c.with_timeout(s, l);
            }
            c
        })
}

proptest! {
    #![proptest_config(Config { cases: 2000, ..Config::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_wire_types(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decodes_sanely::<ProcessError>(&bytes)?;
        decodes_sanely::<ProcessConfig>(&bytes)?;
        decodes_sanely::<RemoteError>(&bytes)?;
        decodes_sanely::<Timeouts>(&bytes)?;
        decodes_sanely::<Exit>(&bytes)?;
        decodes_sanely::<Section>(&bytes)?;
        decodes_sanely::<ProcessTimers>(&bytes)?;
    }

    #[test]
    fn errors_and_configs_survive_the_wire(e in process_error(), c in process_config()) {
        let bytes = postcard::to_allocvec(&e).unwrap();
        prop_assert_eq!(postcard::from_bytes::<ProcessError>(&bytes).unwrap(), e.clone());
        // A truncated encoding is an error, never a panic or a different value.
        for cut in 0..bytes.len() {
            prop_assert!(postcard::from_bytes::<ProcessError>(&bytes[..cut]) != Ok(e.clone()));
        }
        let bytes = postcard::to_allocvec(&c).unwrap();
        prop_assert_eq!(postcard::from_bytes::<ProcessConfig>(&bytes).unwrap(), c);
    }
}

/// The child's end of the channel: its only socket above stdio.
fn channel_fd() -> Result<RawFd, BoxError> {
    let mut sockets = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if fd > 2 && is_socket {
            sockets.push(fd);
        }
    }
    match sockets[..] {
        [fd] => Ok(fd),
        _ => Err(format!("expected one socket, found {sockets:?}").into()),
    }
}

/// Writes `bytes` where its report belongs, then exits without reporting.
#[derive(Process, Serialize, Deserialize)]
#[process(num_loops = 1)]
struct Scribbler {
    bytes: Vec<u8>,
}

impl Lifecycle for Scribbler {
    type Output = u32;
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        let fd = channel_fd()?;
        let mut left = &self.bytes[..];
        while !left.is_empty() {
            // SAFETY: writes from a live slice to a descriptor this process owns.
            let n = unsafe { libc::write(fd, left.as_ptr().cast(), left.len()) };
            if n <= 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            left = &left[n.unsigned_abs()..];
        }
        // SAFETY: _exit ends the process at once; nothing else is sent.
        unsafe { libc::_exit(0) }
    }
    fn result(&mut self, _cx: &mut Context) -> Result<u32, BoxError> {
        Ok(0)
    }
}

fn scribble(bytes: Vec<u8>) -> (Result<u32, ProcessError>, u32, Duration) {
    let started = Instant::now();
    let h = Scribbler { bytes }.start().unwrap();
    let pid = h.pid();
    let r = h.result();
    h.wait();
    (r, pid, started.elapsed())
}

/// Bytes a report frame might be made of: anything, or a plausible length prefix
/// followed by anything (so that whole frames with garbage payloads are decoded too).
fn report_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..96),
        (0u32..80, proptest::collection::vec(any::<u8>(), 0..96)).prop_map(|(len, rest)| {
            let mut v = len.to_le_bytes().to_vec();
            v.extend(rest);
            v
        }),
    ]
}

proptest! {
    // A real child per case: few cases, and a fixed seed so that CI sees the same ones.
    #![proptest_config(Config {
        cases: 48,
        rng_seed: RngSeed::Fixed(0x5eed_0003),
        ..Config::default()
    })]

    #[test]
    fn arbitrary_report_bytes_from_a_real_child_are_a_protocol_error(bytes in report_bytes()) {
        let (r, pid, took) = scribble(bytes);
        prop_assert!(matches!(r, Err(ProcessError::Protocol(_))), "{:?}", r);
        prop_assert!(took < Duration::from_secs(10), "no hang: {:?}", took);
        prop_assert!(reaped(pid));
    }
}

#[test]
fn a_lying_length_prefix_costs_only_the_bytes_sent() {
    // 1 GiB - 1 announced (within the report limit, so the reader starts reading it),
    // then 1000 bytes, then the child dies.
    let mut bytes = ((1u32 << 30) - 1).to_le_bytes().to_vec();
    bytes.extend(std::iter::repeat_n(0xa5, 1000));
    let peak_before = status_kb("VmHWM").unwrap();
    let (r, pid, took) = scribble(bytes);
    let grew_kb = status_kb("VmHWM").unwrap() - peak_before;
    assert_eq!(
        r,
        Err(ProcessError::Protocol(
            "the connection closed in the middle of a report frame (truncated frame)".into()
        ))
    );
    assert!(took < Duration::from_secs(10));
    assert!(reaped(pid));
    assert!(
        grew_kb < 128 * 1024,
        "the parent's peak memory grew by {grew_kb} kB for 1004 bytes sent"
    );
}

/// The same route carries a well-formed report to the parent, which shows that the
/// bytes above really reach the report decoder. (This mirrors the crate-private
/// `ToParent::Done`, variant 0: update it with the protocol.)
#[test]
fn the_route_reaches_the_report_decoder() {
    #[derive(Serialize)]
    enum ToParentMirror {
        Done {
            output: Vec<u8>,
            timers: ProcessTimers,
        },
    }
    let payload = postcard::to_allocvec(&ToParentMirror::Done {
        output: postcard::to_allocvec(&7u32).unwrap(),
        timers: ProcessTimers::default(),
    })
    .unwrap();
    let mut bytes = u32::try_from(payload.len()).unwrap().to_le_bytes().to_vec();
    bytes.extend(payload);
    let (r, pid, _) = scribble(bytes);
    assert_eq!(r, Ok(7));
    assert!(reaped(pid));
}
