//! Framed reading and writing over the parent-child socket.
//!
//! The reader is buffered and resumable: a read that times out (the parent's
//! supervisor wakes up periodically to check deadlines) keeps the bytes of a partial
//! frame, so polling never loses or misaligns data. The length prefix is checked
//! against the limit before the buffer grows, and the buffer grows only as bytes
//! actually arrive, so a lying prefix cannot make it allocate more than was sent.
//!
//! Descriptors that come with the bytes (`Transfer`) are handed to the frame they
//! belong to as it is taken from the buffer; how a frame announces them, and how the
//! reader tells which frame that is, is in [`descriptors`](super::descriptors).

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use interprocess::local_socket::Stream;

use crate::wire::descriptors::{FdRead, Inbound, CARRIES_FDS};
use crate::ProcessError;

/// Why no frame could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the socket (or died). `partial` is true when it did so in the
    /// middle of a frame.
    Closed { partial: bool },
    /// The length prefix announced more than the limit.
    TooLarge { len: usize, max: usize },
    /// The socket failed.
    Io(io::Error),
    /// The descriptors that came with the frames do not match what they announced
    /// (see `descriptors`); every one received was closed.
    Descriptors(String),
}

impl ReadError {
    /// The error as the parent reports it.
    pub(crate) fn into_process_error(self, what: &str) -> ProcessError {
        match self {
            ReadError::Closed { partial: true } => ProcessError::Protocol(format!(
                "the connection closed in the middle of a {what} frame (truncated frame)"
            )),
            ReadError::Closed { partial: false } => {
                ProcessError::Protocol(format!("the connection closed before a {what} frame"))
            }
            ReadError::TooLarge { len, max } => ProcessError::Protocol(format!(
                "a {what} frame announced {len} bytes, more than the maximum of {max} bytes"
            )),
            ReadError::Io(e) => ProcessError::Io(format!("reading a {what} frame: {e}")),
            ReadError::Descriptors(why) => ProcessError::Protocol(why),
        }
    }
}

/// A frame's payload, owned, and the descriptors it carried (closed with it unless
/// taken).
#[derive(Debug)]
pub(crate) struct Frame {
    data: Vec<u8>,
    start: usize,
    fds: Vec<OwnedFd>,
}

impl Frame {
    /// A frame whose payload is `data`, made in this process.
    pub(crate) fn owned(data: Vec<u8>) -> Self {
        Self {
            data,
            start: 0,
            fds: Vec::new(),
        }
    }

    /// The frame's bytes, for their room to be used again (see `spare.rs`); the
    /// descriptors it still carried are closed.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    pub(crate) fn payload(&self) -> &[u8] {
        &self.data[self.start..]
    }

    /// A frame whose payload is `data`, made in this process, with the descriptors
    /// it carries.
    pub(crate) fn owned_with(data: Vec<u8>, fds: Vec<OwnedFd>) -> Self {
        Self {
            data,
            start: 0,
            fds,
        }
    }

    /// Takes the descriptors the frame carried, in the order they were sent.
    pub(crate) fn take_fds(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.fds)
    }
}

const READ_CHUNK: usize = 64 * 1024;
/// The least a read asks for, so that small frames (messages) arrive several to a
/// system call instead of a length prefix and a payload in two.
const MIN_READ: usize = 4096;
/// Frames at least this large that fill the buffer alone are handed over with it;
/// smaller ones are copied out, and the buffer is kept for the next read.
const MOVE_MIN: usize = 16 * 1024;

/// Reads length-prefixed frames from a socket.
pub(crate) struct FrameReader<R = Conn> {
    inner: R,
    buf: Vec<u8>,
    // Bytes of `buf` before `pos` are consumed; bytes from `filled` on are scratch.
    pos: usize,
    filled: usize,
    /// The stream offset of `buf[0]`, to tell which frame received descriptors
    /// belong to.
    base: u64,
    /// Descriptors received and not yet handed to their frame.
    inbound: Inbound,
    /// Where a read puts the descriptors it receives.
    received: Vec<OwnedFd>,
}

impl<R: FdRead> FrameReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            pos: 0,
            filled: 0,
            base: 0,
            inbound: Inbound::default(),
            received: Vec::new(),
        }
    }

    /// What frames are read from.
    pub(crate) fn get_ref(&self) -> &R {
        &self.inner
    }

    /// What frames are read from, to change how.
    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Reads the next frame whose payload is at most `max` bytes. `Ok(None)` when the
    /// socket's read timeout passed first; the partial frame is kept for the next call.
    pub(crate) fn read_frame(&mut self, max: usize) -> Result<Option<Frame>, ReadError> {
        loop {
            let have = self.filled - self.pos;
            if let Some((prefix, len)) = self.next_len(max)? {
                if have >= 4 + len {
                    return self.take(prefix, len).map(Some);
                }
                self.make_room(4 + len - have);
            } else {
                self.make_room(4 - have);
            }
            match self
                .inner
                .read_fds(&mut self.buf[self.filled..], &mut self.received)
            {
                Ok((0, _)) => {
                    // Nothing arrives with an end-of-file; whatever did is closed here.
                    self.received.clear();
                    return Err(ReadError::Closed {
                        partial: self.filled > self.pos,
                    });
                }
                Ok((n, truncated)) => {
                    self.filled += n;
                    if truncated || !self.received.is_empty() {
                        let end = self.base + self.filled as u64;
                        self.inbound.arrived(&mut self.received, end, truncated);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A peer that exits with our bytes unread resets the connection instead
                // of closing it: for us it is the same end.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(ReadError::Closed {
                        partial: self.filled > self.pos,
                    })
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }

    /// The next frame if it is whole in the buffer already, without reading: `Ok(None)`
    /// when it is not.
    pub(crate) fn buffered_frame(&mut self, max: usize) -> Result<Option<Frame>, ReadError> {
        let Some((prefix, len)) = self.next_len(max)? else {
            return Ok(None);
        };
        if self.filled - self.pos >= 4 + len {
            self.take(prefix, len).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A prefix above `max`: a frame that carries descriptors (see `descriptors`),
    /// whose length (count byte included) is returned, or one too large. Off the path
    /// of frames without descriptors.
    #[cold]
    /// The next frame's length prefix as it came and the length of its payload, once
    /// the prefix is in the buffer: `None` before.
    fn next_len(&self, max: usize) -> Result<Option<(usize, usize)>, ReadError> {
        if self.filled - self.pos < 4 {
            return Ok(None);
        }
        let prefix: [u8; 4] = self.buf[self.pos..self.pos + 4]
            .try_into()
            .expect("4 bytes");
        let prefix = u32::from_le_bytes(prefix) as usize;
        let len = if prefix > max {
            self.check_flagged(prefix, max)?
        } else {
            prefix
        };
        Ok(Some((prefix, len)))
    }

    fn check_flagged(&self, prefix: usize, max: usize) -> Result<usize, ReadError> {
        let flag = CARRIES_FDS as usize;
        let len = prefix & !flag;
        if prefix & flag == 0 || len > max.saturating_add(1) {
            // Reported as the prefix said it: a lie about the size, whatever its bits.
            return Err(ReadError::TooLarge { len: prefix, max });
        }
        if len == 0 {
            return Err(ReadError::Descriptors(
                "a frame announced descriptors without saying how many".into(),
            ));
        }
        Ok(len)
    }

    /// Whether bytes already read wait in the buffer (a whole frame, or part of one).
    pub(crate) fn has_buffered(&self) -> bool {
        self.filled > self.pos
    }

    /// Removes the frame of `len` bytes at `pos` from the buffer; `prefix` is its
    /// length prefix as read, which differs from `len` for a frame that carries
    /// descriptors.
    fn take(&mut self, prefix: usize, len: usize) -> Result<Frame, ReadError> {
        let end = self.pos + 4 + len;
        // A frame with descriptors starts with how many: its payload follows.
        let (head, announced) = if prefix == len {
            (4, 0)
        } else {
            (5, usize::from(self.buf[self.pos + 4]))
        };
        let fds = if self.inbound.is_empty() && announced == 0 {
            Vec::new()
        } else {
            let start = self.base + self.pos as u64;
            self.inbound
                .claim(start, start + (end - self.pos) as u64, announced)
                .map_err(ReadError::Descriptors)?
        };
        if self.pos == 0 && end == self.filled && len >= MOVE_MIN {
            // The buffer holds exactly this frame: hand it over without copying (the
            // common case for large states and outputs).
            let mut data = std::mem::take(&mut self.buf);
            data.truncate(end);
            self.base += end as u64;
            self.pos = 0;
            self.filled = 0;
            return Ok(Frame {
                data,
                start: head,
                fds,
            });
        }
        let data = self.buf[self.pos + head..end].to_vec();
        self.pos = end;
        if self.pos == self.filled {
            self.base += self.filled as u64;
            self.pos = 0;
            self.filled = 0;
        }
        Ok(Frame {
            data,
            start: 0,
            fds,
        })
    }

    /// Makes sure at least one more byte can be read. The buffer grows towards the
    /// `wanted` bytes, but by no more than what has already arrived (or one chunk), so
    /// its size follows the data actually sent rather than what a prefix promised.
    fn make_room(&mut self, wanted: usize) {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.base += self.pos as u64;
            self.pos = 0;
        }
        let target = wanted.min(READ_CHUNK.max(self.filled)).max(MIN_READ);
        if self.buf.len() - self.filled < target {
            self.buf.resize(self.filled + target, 0);
        }
    }
}

/// Writes whole frames: one `write_all` each, so frames from several threads never
/// interleave when the writer is behind a lock.
pub(crate) fn write_frame(mut w: impl Write, frame: &[u8]) -> Result<(), ProcessError> {
    w.write_all(frame)
        .map_err(|e| ProcessError::Io(format!("writing a frame: {e}")))
}

/// One end of the socket, shared by the threads that read and write it (the handle
/// writes stop requests while the supervisor reads reports).
#[derive(Debug, Clone)]
pub(crate) struct Conn(Arc<Stream>);

impl Conn {
    /// Wraps a connected socket descriptor as an `interprocess` local-socket stream.
    pub(crate) fn from_fd(fd: std::os::fd::OwnedFd) -> Self {
        Self(Arc::new(crate::sys::local_stream(fd)))
    }

    /// The socket, for polling it.
    pub(crate) fn stream(&self) -> &Stream {
        &self.0
    }

    /// Sets how long a read may block before it reports a timeout (`None`: for ever).
    pub(crate) fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        use interprocess::local_socket::traits::Stream as _;
        self.0.set_recv_timeout(timeout)
    }
}

/// The parent's end of a socket, as it is read: by the event loop without waiting, or
/// by a caller of `listen` that borrowed it (`wait`), up to the socket's read timeout.
/// The socket itself stays blocking for the threads that write to it.
#[derive(Debug, Clone)]
pub(crate) struct ParentRead {
    pub(crate) conn: Conn,
    pub(crate) wait: bool,
}

impl Read for ParentRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.wait {
            (&*self.conn.0).read(buf)
        } else {
            crate::sys::recv_dontwait(&self.conn.0, buf)
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for &Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes in fixed-size reads, then a timeout, then end-of-file.
    struct Chunks {
        data: Vec<u8>,
        at: usize,
        step: usize,
        timeout_once: bool,
    }

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.timeout_once && self.at > 0 {
                self.timeout_once = false;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = self.step.min(buf.len()).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    impl FdRead for Chunks {}

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in payloads {
            v.extend_from_slice(&u32::try_from(p.len()).unwrap().to_le_bytes());
            v.extend_from_slice(p);
        }
        v
    }

    #[test]
    fn frames_split_across_reads_and_timeouts_survive() {
        let big = vec![7u8; 200_000];
        let data = framed(&[b"one", &big, b"", b"three"]);
        for step in [1, 3, 5, 4096, 1 << 20] {
            let mut r = FrameReader::new(Chunks {
                data: data.clone(),
                at: 0,
                step,
                timeout_once: true,
            });
            let mut got = Vec::new();
            loop {
                match r.read_frame(1 << 20) {
                    Ok(Some(f)) => got.push(f.payload().to_vec()),
                    Ok(None) => {}
                    Err(ReadError::Closed { partial }) => {
                        assert!(!partial);
                        break;
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
            assert_eq!(
                got,
                vec![b"one".to_vec(), big.clone(), vec![], b"three".to_vec()],
                "step {step}"
            );
        }
    }

    #[test]
    fn oversized_prefix_is_refused_before_allocating() {
        let mut data = u32::MAX.to_le_bytes().to_vec();
        data.extend_from_slice(b"xx");
        let mut r = FrameReader::new(Chunks {
            data,
            at: 0,
            step: 64,
            timeout_once: false,
        });
        match r.read_frame(1024) {
            Err(ReadError::TooLarge { len, max }) => {
                assert_eq!((len, max), (u32::MAX as usize, 1024))
            }
            other => panic!("{other:?}"),
        }
        assert!(r.buf.len() <= READ_CHUNK);
    }

    proptest::proptest! {
        /// Whatever arrives, in whatever pieces: frames or an error, never a panic,
        /// and the buffer never grows past the limit plus one read chunk.
        #[test]
        fn arbitrary_streams_give_frames_or_errors(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            step in 1usize..64,
            max in 0usize..128,
        ) {
            let mut r = FrameReader::new(Chunks { data, at: 0, step, timeout_once: true });
            loop {
                match r.read_frame(max) {
                    Ok(Some(f)) => proptest::prop_assert!(f.payload().len() <= max),
                    Ok(None) => {}
                    Err(_) => break,
                }
                proptest::prop_assert!(r.buf.len() <= max + 4 + READ_CHUNK);
            }
        }
    }

    #[test]
    fn a_reset_connection_is_a_close() {
        struct Reset;
        impl Read for Reset {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::ErrorKind::ConnectionReset.into())
            }
        }
        impl FdRead for Reset {}
        let mut r = FrameReader::new(Reset);
        assert!(matches!(
            r.read_frame(64),
            Err(ReadError::Closed { partial: false })
        ));
    }

    #[test]
    fn truncation_is_reported_as_partial() {
        let mut data = framed(&[b"hello"]);
        data.truncate(6);
        let mut r = FrameReader::new(Chunks {
            data,
            at: 0,
            step: 2,
            timeout_once: false,
        });
        assert!(matches!(
            r.read_frame(64),
            Err(ReadError::Closed { partial: true })
        ));
    }

    #[test]
    fn a_lying_prefix_only_grows_the_buffer_with_arriving_bytes() {
        let mut data = (100u32 << 20).to_le_bytes().to_vec();
        data.extend_from_slice(&[1; 10]);
        let mut r = FrameReader::new(Chunks {
            data,
            at: 0,
            step: 1 << 20,
            timeout_once: false,
        });
        assert!(matches!(
            r.read_frame(1 << 30),
            Err(ReadError::Closed { partial: true })
        ));
        assert!(r.buf.len() <= 2 * READ_CHUNK, "{}", r.buf.len());
    }
}
