//! Descriptors that travel with frames (`SCM_RIGHTS`), and how a frame says so.
//!
//! A frame that carries descriptors sets the top bit of its length prefix (no frame may
//! be that long: `MAX_FRAME` is 2^30), and its first byte after the prefix is how many
//! it carries; the usual payload follows. It is written with one `sendmsg` that
//! attaches the descriptors to the frame's first byte. Frames without descriptors are
//! laid out and written exactly as before; the reader only looks further when a
//! prefix is larger than the limit, which such frames never are.
//!
//! Which frame received descriptors belong to is decided by where they arrived, not
//! by their order: the kernel attaches a `sendmsg`'s descriptors to the first of its
//! bytes, and a read that meets them stops at the end of that message's first buffer,
//! so the last byte of the read that brought them lies inside the frame that carried
//! them. A frame that announces descriptors must find exactly one batch of that size
//! there; a frame that announces none must find none. Anything else (a batch missing,
//! too small, too large, two batches in one frame, or descriptors the kernel had to
//! drop) is a protocol error, and every descriptor received is closed.
//!
//! Descriptors are read only from the parent-child socket pair, which nobody else can
//! reach; one attached to a frame before the child's handshake is checked is refused
//! with the rest (the handshake frame never announces any).

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys;
use crate::wire::channel::{write_frame, Conn, ParentRead};
use crate::ProcessError;

/// The top bit of a length prefix: the frame carries descriptors.
pub(crate) const CARRIES_FDS: u32 = 1 << 31;

/// The most descriptors one frame may carry.
pub(crate) const MAX_FDS: usize = sys::MAX_PASSED_FDS;

/// Reading that can also receive descriptors. Sources that cannot (the unit tests'
/// byte streams) keep the default, which receives none.
pub(crate) trait FdRead: Read {
    /// Reads like [`Read::read`], and appends the descriptors that came with the bytes
    /// to `fds`. `Ok((n, true))` when the kernel had to drop some.
    fn read_fds(&mut self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<(usize, bool)> {
        let _ = fds;
        self.read(buf).map(|n| (n, false))
    }
}

impl FdRead for Conn {
    fn read_fds(&mut self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<(usize, bool)> {
        sys::recv_with_fds(self.stream(), buf, false, fds)
    }
}

impl FdRead for ParentRead {
    fn read_fds(&mut self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<(usize, bool)> {
        sys::recv_with_fds(self.conn.stream(), buf, !self.wait, fds)
    }
}

/// Descriptors a reader received and has not handed to a frame yet, each batch with
/// the stream offset of the last byte of the read that brought it.
#[derive(Debug, Default)]
pub(crate) struct Inbound {
    batches: VecDeque<(u64, Vec<OwnedFd>)>,
    /// The kernel dropped descriptors: the next frame is refused.
    truncated: bool,
}

impl Inbound {
    /// Whether nothing waits to be handed to a frame (the common case: one branch).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.batches.is_empty() && !self.truncated
    }

    /// Records what one read brought: `fds` (taken, leaving it empty) arrived with the
    /// bytes ending at stream offset `end` (exclusive).
    pub(crate) fn arrived(&mut self, fds: &mut Vec<OwnedFd>, end: u64, truncated: bool) {
        self.truncated |= truncated;
        if !fds.is_empty() {
            self.batches
                .push_back((end.saturating_sub(1), std::mem::take(fds)));
        }
    }

    /// Hands the frame at stream offsets `start..end` its descriptors, checked against
    /// the `announced` count. On error every descriptor received is closed.
    pub(crate) fn claim(
        &mut self,
        start: u64,
        end: u64,
        announced: usize,
    ) -> Result<Vec<OwnedFd>, String> {
        let result = self.check(start, end, announced);
        if result.is_err() {
            self.batches.clear();
        }
        result
    }

    fn check(&mut self, start: u64, end: u64, announced: usize) -> Result<Vec<OwnedFd>, String> {
        if self.truncated {
            return Err("descriptors sent with a frame did not fit and were dropped".into());
        }
        let in_frame = |at: u64| at >= start && at < end;
        let mine = self.batches.iter().take_while(|(at, _)| *at < end).count();
        if self.batches.iter().take(mine).any(|(at, _)| !in_frame(*at)) {
            return Err("descriptors arrived with no frame to carry them".into());
        }
        match (mine, announced) {
            (0, 0) => Ok(Vec::new()),
            (0, n) => Err(format!("a frame announced {} and carried none", count(n))),
            (1, n) => {
                let (_, fds) = self.batches.pop_front().expect("one batch");
                if fds.len() == n {
                    Ok(fds)
                } else {
                    Err(format!(
                        "a frame announced {} and carried {}",
                        count(n),
                        fds.len()
                    ))
                }
            }
            (_, n) => Err(format!(
                "a frame announced {} and carried several batches",
                count(n)
            )),
        }
    }
}

/// `n descriptors`, in words.
fn count(n: usize) -> String {
    match n {
        0 => "no descriptor".to_owned(),
        1 => "1 descriptor".to_owned(),
        n => format!("{n} descriptors"),
    }
}

/// The header of a frame of `len` payload bytes carrying `count` descriptors: the
/// flagged prefix (counting the count byte) and the count.
fn header(len: usize, count: usize) -> [u8; 5] {
    let prefix = u32::try_from(len + 1).expect("a frame fits in u32") | CARRIES_FDS;
    let mut head = [0; 5];
    head[..4].copy_from_slice(&prefix.to_le_bytes());
    head[4] = u8::try_from(count).expect("at most MAX_FDS descriptors");
    head
}

/// How many bytes `frame` (a whole frame, length prefix included) takes on the wire
/// when it carries `fds`.
pub(crate) fn wire_len(frame: &[u8], fds: &[OwnedFd]) -> usize {
    frame.len() + usize::from(!fds.is_empty())
}

/// Writes what fits of `frame` (with `fds`, if any) from wire offset `written` on,
/// without waiting when `dontwait`; returns how many bytes went. The descriptors go
/// with the first byte, so only when `written` is 0.
pub(crate) fn send_some(
    conn: &Conn,
    frame: &[u8],
    fds: &[OwnedFd],
    written: usize,
    dontwait: bool,
) -> io::Result<usize> {
    if fds.is_empty() {
        return if dontwait {
            sys::send_dontwait(conn.stream(), &frame[written..])
        } else {
            io::Write::write(&mut &*conn, &frame[written..])
        };
    }
    let head = header(frame.len() - 4, fds.len());
    let body = &frame[4..];
    let (head_rest, body_rest) = if written < head.len() {
        (&head[written..], body)
    } else {
        (&head[..0], &body[written - head.len()..])
    };
    let bufs = [IoSlice::new(head_rest), IoSlice::new(body_rest)];
    let borrowed: Vec<BorrowedFd<'_>>;
    let attach: &[BorrowedFd<'_>] = if written == 0 {
        borrowed = fds.iter().map(AsFd::as_fd).collect();
        &borrowed
    } else {
        &[]
    };
    sys::send_with_fds(conn.stream(), &bufs, attach, dontwait)
}

/// Writes a whole frame (length prefix included) with `fds` attached: as
/// [`write_frame`] when there are none.
pub(crate) fn write_frame_with(
    conn: &Conn,
    frame: &[u8],
    fds: &[OwnedFd],
) -> Result<(), ProcessError> {
    if fds.is_empty() {
        return write_frame(conn, frame);
    }
    if fds.len() > MAX_FDS {
        return Err(ProcessError::Protocol(format!(
            "a frame may carry at most {MAX_FDS} descriptors, not {}",
            fds.len()
        )));
    }
    let total = wire_len(frame, fds);
    let mut written = 0;
    while written < total {
        match send_some(conn, frame, fds, written, false) {
            Ok(0) => {
                return Err(ProcessError::Io(
                    "writing a frame: the connection is closed".into(),
                ))
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ProcessError::Io(format!("writing a frame: {e}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fds(n: usize) -> Vec<OwnedFd> {
        (0..n)
            .map(|_| std::fs::File::open("/dev/null").unwrap().into())
            .collect()
    }

    /// A whole frame of `payload`.
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = u32::try_from(payload.len()).unwrap().to_le_bytes().to_vec();
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frames_with_and_without_descriptors_keep_their_own_over_a_real_socket() {
        use crate::wire::channel::FrameReader;
        let (a, b) = sys::socket_pair().unwrap();
        let (send, recv) = (Conn::from_fd(a), Conn::from_fd(b));
        let big = vec![9u8; 300_000];
        // Written before anything is read, so that reads meet several frames at once,
        // and a large one that needs many reads.
        let writer = std::thread::spawn(move || {
            write_frame_with(&send, &frame(b"before"), &[]).unwrap();
            write_frame_with(&send, &frame(b"two"), &fds(2)).unwrap();
            write_frame_with(&send, &frame(b"between"), &[]).unwrap();
            write_frame_with(&send, &frame(&big), &fds(3)).unwrap();
            write_frame_with(&send, &frame(b"one"), &fds(1)).unwrap();
            write_frame_with(&send, &frame(b"after"), &[]).unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut reader = FrameReader::new(recv);
        let mut got = Vec::new();
        for _ in 0..6 {
            let mut f = reader.read_frame(1 << 20).unwrap().unwrap();
            got.push((f.payload().len(), f.take_fds().len()));
        }
        writer.join().unwrap();
        assert_eq!(got, [(6, 0), (3, 2), (7, 0), (300_000, 3), (3, 1), (5, 0)]);
    }

    #[test]
    fn a_batch_belongs_to_the_frame_holding_the_last_byte_of_its_read() {
        let mut inbound = Inbound::default();
        // A read of bytes 0..30 brought two descriptors: the frame 20..40 carries them.
        inbound.arrived(&mut fds(2), 30, false);
        assert!(inbound.claim(0, 20, 0).unwrap().is_empty());
        assert_eq!(inbound.claim(20, 40, 2).unwrap().len(), 2);
        assert!(inbound.is_empty());
    }

    #[test]
    fn mismatches_are_refused_and_close_everything() {
        // (batches as (last byte, count), the frame as (start, end, announced), error)
        type Case<'a> = (&'a [(u64, usize)], (u64, u64, usize), &'a str);
        let cases: [Case<'_>; 4] = [
            (
                &[],
                (0, 10, 1),
                "a frame announced 1 descriptor and carried none",
            ),
            (
                &[(10, 2)],
                (0, 20, 1),
                "a frame announced 1 descriptor and carried 2",
            ),
            (
                &[(5, 1)],
                (0, 20, 0),
                "a frame announced no descriptor and carried 1",
            ),
            (
                &[(5, 1), (8, 1)],
                (0, 20, 1),
                "a frame announced 1 descriptor and carried several batches",
            ),
        ];
        for (batches, (start, end, announced), want) in cases {
            let mut inbound = Inbound::default();
            for &(end, n) in batches {
                inbound.arrived(&mut fds(n), end + 1, false);
            }
            inbound.arrived(&mut fds(1), 1000, false);
            assert_eq!(inbound.claim(start, end, announced).unwrap_err(), want);
            assert!(inbound.is_empty(), "{want}: everything received is closed");
        }
        let mut inbound = Inbound::default();
        inbound.arrived(&mut Vec::new(), 10, true);
        assert_eq!(
            inbound.claim(0, 10, 0).unwrap_err(),
            "descriptors sent with a frame did not fit and were dropped"
        );
    }
}
