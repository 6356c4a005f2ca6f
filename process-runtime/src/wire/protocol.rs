//! The wire format between a parent and its child.
//!
//! Every message is a frame: a little-endian `u32` length, then that many bytes of
//! postcard. The length is checked against a maximum before anything is allocated, the
//! payload is decoded with `take_from_bytes`, and bytes left over are an error, so a
//! truncated, oversized or garbage frame is a [`ProcessError::Protocol`] with a message
//! saying which, never a hang, a panic or an unbounded allocation.
//!
//! The child speaks first with a [`Hello`] (magic, protocol version, build fingerprint,
//! and the secret it was given out of band); the parent trusts nothing it sends before
//! checking that. The parent sends a [`ToChild::Start`] carrying the type tag,
//! configuration and state (at once when it is small, after the hello otherwise), and
//! the child ends with one [`ToParent`] report. A stop request does not travel here: it
//! is a flag in the page the two share. Both enums only ever grow at the end (postcard encodes the
//! variant index): the frames laid out by hand, messages and room notices of the pair
//! and the node's messages, notices and requests (see [`kind`]), take the indices
//! after them.

use serde::{Deserialize, Serialize};

use crate::wire::handoff::SECRET_LEN;
use crate::{Pid, ProcessConfig, ProcessError, SendError};
use process_core::{__NamedTimers, __SparseTimer};

/// What to tell a user whose type postcard rejects: the serde shapes it cannot carry.
pub(crate) const POSTCARD_LIMITS: &str = "postcard, the wire format, does not support \
     #[serde(flatten)], untagged enums, skip_serializing_if or other self-describing shapes";

/// First bytes of every handshake: identifies the peer as this library.
pub(crate) const MAGIC: [u8; 8] = *b"PRCSRT\r\n";
/// Bumped whenever a frame's encoding changes.
pub(crate) const PROTOCOL_VERSION: u32 = 4;
/// Largest handshake frame: it is read before the peer is authenticated.
pub(crate) const MAX_HELLO_FRAME: usize = 1024;
/// Largest frame after the handshake (states and outputs travel in one frame).
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// The child's first frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub magic: [u8; 8],
    pub version: u32,
    pub fingerprint: u64,
    pub secret: [u8; SECRET_LEN],
}

/// What an attempt is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Mode {
    /// Run the lifecycle; on failure, call `error` only if this is the last life.
    Run { last_life: bool },
    /// Every life is spent and the failed child is gone: only call `error` with this.
    HandleError(ProcessError),
}

/// Frames from the parent to the child.
// Frames live only between decoding and dispatch, one at a time: boxing the large
// variant would cost an allocation for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToChild<'a> {
    /// Run `tag` from `state`.
    Start {
        tag: &'a str,
        /// The process's pid in the node.
        pid: Pid,
        config: ProcessConfig,
        attempt: u32,
        mode: Mode,
        #[serde(borrow)]
        state: &'a [u8],
    },
    // Variants 1 and 2 are the message and room frames of `kind`.
}

/// Frames from the child to the parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToParent<'a> {
    /// The process produced its output (postcard bytes of `Lifecycle::Output`).
    Done {
        #[serde(borrow)]
        output: &'a [u8],
        timers: ReportTimers,
    },
    /// The attempt failed. `last` is true when `error` already ran (or could not), so
    /// the error is the process's result; false when the parent may retry.
    Failed {
        error: ProcessError,
        timers: ReportTimers,
        last: bool,
    },
    // Variants 2 and 3 are the message and room frames of `kind`.
}

/// The timers a report carries, encoded as a `ProcessTimers` is, field for field. The
/// five section timers are sent empty: the child keeps them in the page it shares with
/// the parent, where the parent reads them whether a report comes or not (see
/// `beacon.rs`). They are decoded sparse, so that a report never puts five 30 KiB
/// timers on the supervisor's small stack.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ReportTimers {
    pub(crate) named: __NamedTimers,
    /// The attempt; the parent counts attempts itself and ignores this.
    pub(crate) attempt: u32,
    pub(crate) failed: bool,
    /// `preloop`, `main_loop`, `postloop`, `on_finish`, `full_loop`: empty, and
    /// ignored.
    sections: [__SparseTimer; 5],
}

impl ReportTimers {
    /// The named timers of a child's run and the outcome of its attempt.
    pub(crate) fn new(named: __NamedTimers, attempt: u32, failed: bool) -> Self {
        Self {
            named,
            attempt,
            failed,
            sections: Default::default(),
        }
    }
}

/// The first byte of a frame after the handshake says what it is. Starts and reports
/// are postcard enums, whose first byte is the variant index; messages and room
/// notices use the indices after them, and are laid out by hand so that a message's
/// bytes are encoded once, straight into the frame (see [`Direction`]).
pub(crate) mod kind {
    /// A message from the parent (after `ToChild::Start`, variant 0).
    pub(crate) const TO_CHILD_MESSAGE: u8 = 1;
    /// The parent took messages while the child waited for room in its mailbox.
    pub(crate) const TO_CHILD_ROOM: u8 = 2;
    /// A message from the child (after `ToParent::Done` and `Failed`, 0 and 1).
    pub(crate) const TO_PARENT_MESSAGE: u8 = 2;
    /// The child took messages while the parent waited for room in its mailbox.
    pub(crate) const TO_PARENT_ROOM: u8 = 3;
    /// A message of the node (`node::send`) on its way to the child or below it.
    pub(crate) const TO_CHILD_ROUTED: u8 = 3;
    /// A message of the node from the child or below it, for the parent or beyond.
    pub(crate) const TO_PARENT_ROUTED: u8 = 4;
    /// A request of the node's own (a monitor, a registration, a process's end) from
    /// the child or below it, for the root: laid out as `TO_PARENT_ROUTED`, and not
    /// counted against the child's grant (control never waits behind data). Notices
    /// and replies of the node to the child are `TO_CHILD_ROUTED` frames in no slot.
    pub(crate) const TO_PARENT_CONTROL: u8 = 5;
    /// The child committed messages to its tells ring while the parent waited for one
    /// (see `child/port.rs`): the parent drains the ring. The kind alone, like a room
    /// notice, and counted against no grant (the messages are counted as they are
    /// drained).
    pub(crate) const TO_PARENT_READY: u8 = 6;
}

/// How message and room frames are laid out in one direction.
///
/// A message's payload is its kind, its type tag as 8 little-endian bytes, then, to the
/// child only, its slot in the child's mailbox as 4 little-endian bytes (the parent
/// picks it, the child marks it taken in the shared page: see `parent/mailbox.rs`),
/// then the message's postcard bytes, from [`Direction::body`] on. A room notice is its
/// kind alone.
///
/// A message of the node (`node::send`, which may come from and go to any process of
/// the tree) is laid out the same way up to the body, with its own kind, and then
/// carries its [`Route`] (postcard: the sender's and the receiver's pids) before the
/// body. To the child it takes a slot of the child's mailbox like any message, so that
/// the node's messages and the pair's share one bound.
#[derive(Debug)]
pub(crate) struct Direction {
    /// The first byte of a message.
    pub(crate) message: u8,
    /// The first byte of a room notice.
    pub(crate) room: u8,
    /// The first byte of a message of the node.
    pub(crate) routed: u8,
    /// Where a message's body starts in its payload.
    pub(crate) body: usize,
}

/// Parent to child: `[kind][tag u64 LE][slot u32 LE][body]`.
pub(crate) const TO_CHILD: Direction = Direction {
    message: kind::TO_CHILD_MESSAGE,
    room: kind::TO_CHILD_ROOM,
    routed: kind::TO_CHILD_ROUTED,
    body: SLOT + 4,
};

/// Child to parent: `[kind][tag u64 LE][body]`.
pub(crate) const TO_PARENT: Direction = Direction {
    message: kind::TO_PARENT_MESSAGE,
    room: kind::TO_PARENT_ROOM,
    routed: kind::TO_PARENT_ROUTED,
    body: TAG + 8,
};

/// Who sent a message of the node, and to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Route {
    pub(crate) from: Pid,
    pub(crate) to: Pid,
}

/// The start of a message frame of the node in direction `dir` for `tag` (to the
/// child, with no slot yet), up to its body; the message's bytes are appended, then
/// [`seal`] writes the length.
pub(crate) fn routed_prefix(dir: &Direction, tag: u64, route: Route) -> Vec<u8> {
    let mut frame = message_prefix(dir, tag);
    frame[4] = dir.routed;
    postcard::to_extend(&route, frame).expect("a route always encodes")
}

/// The route of a message of the node that [`kind_of`] found in `payload`, and where
/// its body starts in the payload.
pub(crate) fn route_of(payload: &[u8], dir: &Direction) -> Result<(Route, usize), ProcessError> {
    let header = payload.get(dir.body..).ok_or_else(|| {
        ProcessError::Protocol("malformed message frame of the node: no route".into())
    })?;
    let (route, rest): (Route, _) = postcard::take_from_bytes(header)
        .map_err(|e| ProcessError::Protocol(format!("malformed message frame of the node: {e}")))?;
    if !route.from.__is_valid() || !route.to.__is_valid() {
        return Err(ProcessError::Protocol(
            "malformed message frame of the node: a pid no process can have".into(),
        ));
    }
    Ok((route, payload.len() - rest.len()))
}

/// A control frame of the node to the root: laid out as a message of the node up, with
/// its own kind.
pub(crate) fn control_up(tag: u64, route: Route, body: &[u8]) -> Vec<u8> {
    let mut frame = routed_prefix(&TO_PARENT, tag, route);
    frame[4] = kind::TO_PARENT_CONTROL;
    frame.extend_from_slice(body);
    seal_len(frame)
}

/// A notice or reply of the node to a child, in no slot of its mailbox.
pub(crate) fn control_down(tag: u64, route: Route, body: &[u8]) -> Vec<u8> {
    let mut frame = routed_prefix(&TO_CHILD, tag, route);
    frame.extend_from_slice(body);
    seal_len(frame)
}

/// A message of the node that came up from a child, laid out to go down to another
/// child (a whole frame, with no slot yet).
pub(crate) fn reroute_down(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + payload.len() + 4);
    frame.extend_from_slice(&[0; 4]);
    frame.push(TO_CHILD.routed);
    frame.extend_from_slice(&payload[TAG..TAG + 8]);
    frame.extend_from_slice(&NO_SLOT.to_le_bytes());
    frame.extend_from_slice(&payload[TO_PARENT.body..]);
    seal_len(frame)
}

/// Writes the length of a frame no larger than one that was read.
fn seal_len(mut frame: Vec<u8>) -> Vec<u8> {
    let len = u32::try_from(frame.len() - 4).expect("no larger than a frame read");
    frame[..4].copy_from_slice(&len.to_le_bytes());
    frame
}

/// Where a message's tag starts in its payload.
const TAG: usize = 1;
/// Where a message to the child has its slot in its payload.
const SLOT: usize = TAG + 8;

/// The slot a message to the child carries until [`set_slot`] writes its own: none a
/// mailbox has, so that a frame sent without one is refused.
pub(crate) const NO_SLOT: u32 = u32::MAX;

/// The start of a message frame in direction `dir` for `tag` (to the child, with no
/// slot yet); the message's bytes are appended, then [`seal`] writes the length.
pub(crate) fn message_prefix(dir: &Direction, tag: u64) -> Vec<u8> {
    message_prefix_in(dir, tag, Vec::with_capacity(64))
}

/// As [`message_prefix`], in `frame`, whatever it held (emptied first): a sender that
/// keeps one buffer for its messages allocates none for each.
pub(crate) fn message_prefix_in(dir: &Direction, tag: u64, mut frame: Vec<u8>) -> Vec<u8> {
    frame.clear();
    frame.extend_from_slice(&[0; 4]);
    frame.push(dir.message);
    frame.extend_from_slice(&tag.to_le_bytes());
    if dir.body > SLOT {
        frame.extend_from_slice(&NO_SLOT.to_le_bytes());
    }
    debug_assert_eq!(frame.len(), 4 + dir.body);
    frame
}

/// Writes `slot` into a whole message frame to the child (length prefix included).
pub(crate) fn set_slot(frame: &mut [u8], slot: u32) {
    frame[4 + SLOT..4 + TO_CHILD.body].copy_from_slice(&slot.to_le_bytes());
}

/// The slot of a message to the child, from a payload [`kind_of`] found to be one.
pub(crate) fn slot_of(payload: &[u8]) -> u32 {
    u32::from_le_bytes(
        payload[SLOT..TO_CHILD.body]
            .try_into()
            .expect("4 bytes, checked by kind_of"),
    )
}

/// Writes the length of a message frame built on [`message_prefix`].
pub(crate) fn seal(mut frame: Vec<u8>, type_name: &str) -> Result<Vec<u8>, SendError> {
    let len = frame.len() - 4;
    if len > MAX_FRAME {
        return Err(SendError::Encode {
            type_name: type_name.to_owned(),
            cause: format!(
                "the message takes {len} bytes, more than the maximum of {MAX_FRAME} bytes"
            ),
        });
    }
    let len = u32::try_from(len).expect("MAX_FRAME fits in u32");
    frame[..4].copy_from_slice(&len.to_le_bytes());
    Ok(frame)
}

/// A room notice of `kind`, as a whole frame.
pub(crate) fn room_frame(kind: u8) -> [u8; 5] {
    [1, 0, 0, 0, kind]
}

/// What a frame after the handshake is, by its first byte.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A message with this tag; its body starts at its direction's
    /// [`body`](Direction::body).
    Message(u64),
    /// A room notice.
    Room,
    /// A message of the node with this tag; its [`Route`] follows at its direction's
    /// [`body`](Direction::body).
    Routed(u64),
    /// A control frame of the node (to the parent only), laid out as `Routed`.
    Control(u64),
    /// The tells ring has messages for a parent that waits (to the parent only).
    Ready,
    /// Something else: a start or a report, for postcard to decode.
    Other,
}

/// Classifies a payload that travelled in direction `dir`. A message too short for its
/// tag (or, to the child, its slot), or a room notice with bytes after its kind, is
/// malformed.
pub(crate) fn kind_of(payload: &[u8], dir: &Direction) -> Result<Kind, ProcessError> {
    let malformed = |what: &str| ProcessError::Protocol(format!("malformed message frame: {what}"));
    match payload.first() {
        Some(&k)
            if k == dir.message
                || k == dir.routed
                || (dir.routed == kind::TO_PARENT_ROUTED && k == kind::TO_PARENT_CONTROL) =>
        {
            let tag = payload
                .get(TAG..TAG + 8)
                .ok_or_else(|| malformed("no type tag"))?;
            if payload.len() < dir.body {
                return Err(malformed("no slot"));
            }
            let tag = u64::from_le_bytes(tag.try_into().expect("8 bytes"));
            Ok(if k == dir.message {
                Kind::Message(tag)
            } else if k == dir.routed {
                Kind::Routed(tag)
            } else {
                Kind::Control(tag)
            })
        }
        Some(&k)
            if k == dir.room
                || (dir.routed == kind::TO_PARENT_ROUTED && k == kind::TO_PARENT_READY) =>
        {
            let what = if k == dir.room { "room" } else { "ready" };
            if payload.len() == 1 {
                Ok(if k == dir.room {
                    Kind::Room
                } else {
                    Kind::Ready
                })
            } else {
                Err(ProcessError::Protocol(format!(
                    "malformed {what} frame: {} unexpected trailing bytes",
                    payload.len() - 1
                )))
            }
        }
        _ => Ok(Kind::Other),
    }
}

/// Encodes `value` as one frame (length prefix included), ready for one `write_all`.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ProcessError> {
    let mut buf = postcard::to_extend(value, vec![0u8; 4])
        .map_err(|e| ProcessError::Protocol(format!("cannot encode a frame: {e}")))?;
    let len = buf.len() - 4;
    if len > MAX_FRAME {
        return Err(ProcessError::Protocol(format!(
            "a frame of {len} bytes is larger than the maximum of {MAX_FRAME} bytes"
        )));
    }
    let len = u32::try_from(len).expect("MAX_FRAME fits in u32");
    buf[..4].copy_from_slice(&len.to_le_bytes());
    Ok(buf)
}

/// Decodes one frame's payload, rejecting bytes left over.
pub(crate) fn decode<'a, T: Deserialize<'a>>(
    payload: &'a [u8],
    what: &str,
) -> Result<T, ProcessError> {
    let (value, rest) = postcard::take_from_bytes(payload)
        .map_err(|e| ProcessError::Protocol(format!("malformed {what} frame: {e}")))?;
    if !rest.is_empty() {
        return Err(ProcessError::Protocol(format!(
            "{} unexpected trailing bytes after a {what} frame",
            rest.len()
        )));
    }
    Ok(value)
}

/// Decodes and checks a child's handshake: magic, protocol version, build fingerprint
/// (`fingerprint`, the parent's own), and the secret (compared in constant time, so
/// timing tells nothing about it).
pub(crate) fn check_hello(
    payload: &[u8],
    secret: &[u8; SECRET_LEN],
    fingerprint: u64,
) -> Result<(), ProcessError> {
    use subtle::ConstantTimeEq;
    let hello: Hello = decode(payload, "handshake")?;
    let problem = if hello.magic != MAGIC {
        "the peer is not a process-runtime child (bad magic)".to_owned()
    } else if hello.version != PROTOCOL_VERSION {
        format!(
            "the child speaks protocol version {}, this parent speaks {PROTOCOL_VERSION}",
            hello.version
        )
    } else if hello.fingerprint != fingerprint {
        "the child was built from different code than this parent (build fingerprint mismatch)"
            .to_owned()
    } else if !bool::from(hello.secret.ct_eq(secret)) {
        "the child did not present this parent's secret".to_owned()
    } else {
        return Ok(());
    };
    Err(ProcessError::Protocol(format!(
        "handshake refused: {problem}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINGERPRINT: u64 = 0x0123_4567_89ab_cdef;

    #[test]
    fn frames_round_trip_and_reject_trailing_bytes() {
        let report = ToParent::Done {
            output: &[1, 2, 3],
            timers: ReportTimers::default(),
        };
        let f = encode(&report).unwrap();
        let len = u32::from_le_bytes(f[..4].try_into().unwrap()) as usize;
        assert_eq!(len, f.len() - 4);
        assert!(matches!(
            decode::<ToParent<'_>>(&f[4..], "report").unwrap(),
            ToParent::Done {
                output: [1, 2, 3],
                ..
            }
        ));
        let mut long = f[4..].to_vec();
        long.push(0);
        let e = decode::<ToParent<'_>>(&long, "report").unwrap_err();
        assert_eq!(
            e.to_string(),
            "protocol error: 1 unexpected trailing bytes after a report frame"
        );
    }

    #[test]
    fn message_frames_carry_a_slot_to_the_child_only() {
        let tag = 0x0102_0304_0506_0708;
        // To the child: kind, tag, slot (none until one is written), body.
        let mut frame = message_prefix(&TO_CHILD, tag);
        frame.extend_from_slice(b"body");
        let mut frame = seal(frame, "T").unwrap();
        assert_eq!(&frame[4..], {
            let mut want = vec![kind::TO_CHILD_MESSAGE];
            want.extend_from_slice(&tag.to_le_bytes());
            want.extend_from_slice(&[0xff; 4]);
            want.extend_from_slice(b"body");
            want
        });
        assert_eq!(slot_of(&frame[4..]), NO_SLOT);
        set_slot(&mut frame, 999_999);
        let payload = &frame[4..];
        assert_eq!(kind_of(payload, &TO_CHILD).unwrap(), Kind::Message(tag));
        assert_eq!(slot_of(payload), 999_999);
        assert_eq!(&payload[TO_CHILD.body..], b"body");
        assert_eq!(TO_CHILD.body, 13);
        // To the parent: kind, tag, body.
        let mut frame = message_prefix(&TO_PARENT, tag);
        frame.extend_from_slice(b"body");
        let frame = seal(frame, "T").unwrap();
        let payload = &frame[4..];
        assert_eq!(payload.len(), 1 + 8 + 4);
        assert_eq!(kind_of(payload, &TO_PARENT).unwrap(), Kind::Message(tag));
        assert_eq!(&payload[TO_PARENT.body..], b"body");
        // Too short for the tag, or (to the child) for the slot.
        let short = |dir: &Direction, len: usize| {
            let mut payload = vec![dir.message];
            payload.resize(len, 0);
            kind_of(&payload, dir).unwrap_err().to_string()
        };
        let no_tag = "protocol error: malformed message frame: no type tag";
        let no_slot = "protocol error: malformed message frame: no slot";
        assert_eq!(short(&TO_PARENT, 8), no_tag);
        assert_eq!(short(&TO_CHILD, 8), no_tag);
        assert_eq!(short(&TO_CHILD, 12), no_slot);
        assert!(kind_of(&[TO_PARENT.message; 9], &TO_PARENT).is_ok());
        assert!(kind_of(&[TO_CHILD.message; 13], &TO_CHILD).is_ok());
        // Room notices: the kind alone.
        for dir in [&TO_CHILD, &TO_PARENT] {
            let room = room_frame(dir.room);
            assert_eq!(kind_of(&room[4..], dir).unwrap(), Kind::Room);
            assert!(kind_of(&[dir.room, 0], dir).is_err());
        }
    }

    #[test]
    fn frames_of_the_node_carry_their_route_before_the_body() {
        let tag = 0x0102_0304_0506_0708;
        let a = Pid::ROOT.__child(3).unwrap();
        let b = a.__child(1).unwrap();
        let route = Route {
            from: b,
            to: Pid::ROOT,
        };
        // Up: kind, tag, route, body.
        let mut up = routed_prefix(&TO_PARENT, tag, route);
        up.extend_from_slice(b"body");
        let up = seal(up, "T").unwrap();
        let payload = &up[4..];
        assert_eq!(kind_of(payload, &TO_PARENT).unwrap(), Kind::Routed(tag));
        let (got, body) = route_of(payload, &TO_PARENT).unwrap();
        assert_eq!((got, &payload[body..]), (route, &b"body"[..]));
        // Handed on down: kind, tag, no slot yet, the same route and body.
        let down = reroute_down(payload);
        let payload = &down[4..];
        assert_eq!(
            u32::from_le_bytes(down[..4].try_into().unwrap()) as usize,
            payload.len()
        );
        assert_eq!(kind_of(payload, &TO_CHILD).unwrap(), Kind::Routed(tag));
        assert_eq!(slot_of(payload), NO_SLOT);
        let (got, body) = route_of(payload, &TO_CHILD).unwrap();
        assert_eq!((got, &payload[body..]), (route, &b"body"[..]));
        // A control frame up has a kind of its own; one down is a routed frame.
        let ctl = control_up(tag, route, b"ctl");
        assert_eq!(kind_of(&ctl[4..], &TO_PARENT).unwrap(), Kind::Control(tag));
        assert_eq!(kind_of(&ctl[4..], &TO_CHILD).unwrap(), Kind::Other);
        let note = control_down(tag, route, b"note");
        assert_eq!(kind_of(&note[4..], &TO_CHILD).unwrap(), Kind::Routed(tag));
        // A route that is cut short, or names a pid no process can have, is refused.
        assert!(route_of(&payload[..TO_CHILD.body + 1], &TO_CHILD).is_err());
        let mut forged = up[4..].to_vec();
        forged[TO_PARENT.body] = 9; // a depth beyond the deepest
        assert!(route_of(&forged, &TO_PARENT).is_err());
    }

    #[test]
    fn a_child_of_another_build_is_refused() {
        let mut other = hello([9; SECRET_LEN]);
        other.fingerprint ^= 1;
        let bytes = postcard::to_allocvec(&other).unwrap();
        let e = check_hello(&bytes, &[9; SECRET_LEN], FINGERPRINT).unwrap_err();
        assert!(e.to_string().contains("build fingerprint mismatch"), "{e}");
    }

    #[test]
    fn report_timers_are_encoded_as_process_timers_are() {
        let mut timers = crate::ProcessTimers::default();
        timers
            .named_mut("fetch")
            .add_time(std::time::Duration::from_millis(2));
        timers.__set_origin(3, true);
        let bytes = postcard::to_allocvec(&timers).unwrap();
        let report: ReportTimers = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(report.attempt, 3);
        assert!(report.failed);
        let again = postcard::to_allocvec(&report).unwrap();
        assert_eq!(again, bytes, "the same bytes both ways");
        // A report's timers stay small: its section timers are empty (23 bytes each).
        let report = ReportTimers::new(timers.__take_named(), 3, true);
        assert!(postcard::to_allocvec(&report).unwrap().len() < 160);
        // A section timer in a report is checked like any timer.
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] = 1; // full_loop: one bucket...
        bad.extend([0xff, 0xff, 0x03, 1]); // ...index 65535, out of range
        assert!(postcard::from_bytes::<ReportTimers>(&bad).is_err());
    }

    fn hello(secret: [u8; SECRET_LEN]) -> Hello {
        Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            fingerprint: FINGERPRINT,
            secret,
        }
    }

    #[test]
    fn only_the_right_secret_passes_the_handshake() {
        let good = postcard::to_allocvec(&hello([9; SECRET_LEN])).unwrap();
        assert!(check_hello(&good, &[9; SECRET_LEN], FINGERPRINT).is_ok());
        let e = check_hello(&good, &[8; SECRET_LEN], FINGERPRINT).unwrap_err();
        assert_eq!(
            e.to_string(),
            "protocol error: handshake refused: the child did not present this parent's secret"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_pass_the_handshake(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            proptest::prop_assert!(check_hello(&bytes, &[0x5a; SECRET_LEN], FINGERPRINT).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_frame_decoders(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = decode::<ToParent<'_>>(&bytes, "report");
            let _ = decode::<ToChild<'_>>(&bytes, "start");
        }

        #[test]
        fn a_valid_handshake_with_one_byte_changed_is_refused(index in 0usize..48, flip in 1u8..=255) {
            let mut bytes = postcard::to_allocvec(&hello([7; SECRET_LEN])).unwrap();
            let i = index % bytes.len();
            bytes[i] ^= flip;
            proptest::prop_assert!(check_hello(&bytes, &[7; SECRET_LEN], FINGERPRINT).is_err());
        }
    }

    #[test]
    fn garbage_is_an_error() {
        let e = decode::<ToParent<'_>>(&[0xff, 0xff, 0xff], "report").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("protocol error: malformed report frame"),
            "{e}"
        );
        assert!(decode::<Hello>(&[], "handshake").is_err());
    }
}
