//! Where a test child breaks the protocol on purpose. Without the `fault-injection`
//! feature every hook is an empty inline function, so production code carries no
//! branch for it.

use crate::wire::channel::Conn;
use crate::wire::protocol::Hello;

/// What the handshake should do after the fault was applied.
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub(crate) enum HelloStep {
    /// Send the (possibly altered) handshake.
    Send,
    /// A broken frame was sent instead: wait for the parent to hang up.
    Park,
}

#[cfg(feature = "fault-injection")]
mod imp {
    use super::{Conn, Hello, HelloStep};
    use crate::fault::Fault;
    use crate::wire::channel::write_frame;

    /// The fault this child was told to commit, if any, and the payload of the frame
    /// that [`Fault::RawFrameAfterStart`] sends.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Injector(Option<Fault>, Vec<u8>);

    impl Injector {
        /// Reads the fault from the environment and removes it. A name that no fault
        /// has, or a frame that is not hex, is a broken test: the child refuses to
        /// start.
        pub(crate) fn from_env() -> Result<Self, String> {
            let Some(name) = std::env::var_os(Fault::ENV) else {
                return Ok(Self::default());
            };
            std::env::remove_var(Fault::ENV);
            let frame = std::env::var_os(Fault::FRAME_ENV);
            std::env::remove_var(Fault::FRAME_ENV);
            let name = name.to_string_lossy();
            let fault = Fault::from_name(&name).ok_or_else(|| format!("unknown fault `{name}`"))?;
            let payload = match frame {
                Some(hex) if fault.sends_frame() => crate::fault::from_hex(&hex.to_string_lossy())
                    .ok_or_else(|| format!("{} is not hex", Fault::FRAME_ENV))?,
                _ => Vec::new(),
            };
            Ok(Self(Some(fault), payload))
        }

        pub(crate) fn before_hello(&self, hello: &mut Hello, send: &Conn) -> HelloStep {
            match self.0 {
                Some(Fault::ExitBeforeHello) => crate::sys::exit_now(7),
                Some(Fault::HelloGarbage) => {
                    let _ = write_frame(send, &[5, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0xff]);
                    return HelloStep::Park;
                }
                Some(Fault::HelloOversized) => {
                    let _ = write_frame(send, &u32::MAX.to_le_bytes());
                    return HelloStep::Park;
                }
                Some(Fault::HelloBadSecret) => hello.secret[0] ^= 1,
                Some(Fault::HelloBadVersion) => hello.version += 1,
                Some(Fault::HelloBadMagic) => hello.magic[0] ^= 1,
                Some(Fault::HelloBadFingerprint) => hello.fingerprint ^= 1,
                _ => {}
            }
            HelloStep::Send
        }

        /// The start frame was read; the lifecycle has not run. Returns the frames with
        /// content it sent on the socket, for the port to count.
        pub(crate) fn after_start(&self, send: &Conn) -> u64 {
            let len = u32::try_from(self.1.len()).expect("a test frame fits in u32");
            let mut frame = len.to_le_bytes().to_vec();
            frame.extend_from_slice(&self.1);
            match self.0 {
                Some(Fault::RawFrameAfterStart) => {
                    let _ = write_frame(send, &frame);
                    // Counted as the child counts what it sends on the socket.
                    use crate::wire::protocol::kind;
                    let content = [
                        kind::TO_PARENT_MESSAGE,
                        kind::TO_PARENT_ROUTED,
                        kind::TO_PARENT_CONTROL,
                    ];
                    return u64::from(self.1.first().is_some_and(|k| content.contains(k)));
                }
                Some(Fault::DescriptorAnnouncedNotSent) => {
                    // The layout of a frame with descriptors (see `descriptors`): a
                    // flagged prefix counting the count byte, the count, the payload.
                    let prefix = (len + 1) | crate::wire::descriptors::CARRIES_FDS;
                    let mut forged = prefix.to_le_bytes().to_vec();
                    forged.push(1);
                    forged.extend_from_slice(&self.1);
                    let _ = write_frame(send, &forged);
                }
                Some(Fault::DescriptorSentNotAnnounced) => {
                    let stray = std::fs::File::open("/dev/null").expect("/dev/null opens");
                    let _ = crate::sys::send_with_fds(
                        send.stream(),
                        &[std::io::IoSlice::new(&frame)],
                        &[std::os::fd::AsFd::as_fd(&stray)],
                        false,
                    );
                }
                _ => {}
            }
            0
        }

        /// The report was written; the child is about to exit.
        pub(crate) fn after_report(&self) {
            if self.0 == Some(Fault::LingerAfterReport) {
                std::thread::sleep(Fault::LINGER);
            }
        }

        pub(crate) fn on_report(&self, frame: &mut Vec<u8>) {
            match self.0 {
                Some(Fault::ReportTrailing) => {
                    frame.push(0);
                    let len = u32::try_from(frame.len() - 4).expect("frame length");
                    frame[..4].copy_from_slice(&len.to_le_bytes());
                }
                Some(Fault::ReportOversized) => *frame = u32::MAX.to_le_bytes().to_vec(),
                Some(Fault::ReportTruncated) => frame.truncate(frame.len() / 2),
                Some(Fault::ReportGarbage) => *frame = vec![3, 0, 0, 0, 0xff, 0xff, 0xff],
                _ => {}
            }
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
mod imp {
    use super::{Conn, Hello, HelloStep};

    /// No faults without the feature.
    #[derive(Debug, Clone, Copy, Default)]
    pub(crate) struct Injector;

    impl Injector {
        #[inline(always)]
        pub(crate) fn from_env() -> Result<Self, String> {
            Ok(Self)
        }

        #[inline(always)]
        pub(crate) fn before_hello(&self, _: &mut Hello, _: &Conn) -> HelloStep {
            HelloStep::Send
        }

        #[inline(always)]
        pub(crate) fn after_start(&self, _: &Conn) -> u64 {
            0
        }

        #[inline(always)]
        pub(crate) fn on_report(&self, _: &mut Vec<u8>) {}

        #[inline(always)]
        pub(crate) fn after_report(&self) {}
    }
}

pub(crate) use imp::Injector;
