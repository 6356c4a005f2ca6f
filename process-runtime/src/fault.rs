//! Faults a real child can be told to commit, for the transport's own tests (feature
//! `fault-injection`): a bad handshake, a garbage or truncated report, a frame of given
//! bytes. An enum rather than free text, so a misspelt fault does not compile.

/// A way for a test child to break the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Exit with code 7 before the handshake.
    ExitBeforeHello,
    /// Send a handshake frame that is not postcard.
    HelloGarbage,
    /// Announce a handshake frame of 4 GiB.
    HelloOversized,
    /// Present a secret with one bit changed.
    HelloBadSecret,
    /// Speak the next protocol version.
    HelloBadVersion,
    /// Send the wrong magic bytes.
    HelloBadMagic,
    /// Claim a different build.
    HelloBadFingerprint,
    /// Append a byte to the report.
    ReportTrailing,
    /// Announce a report of 4 GiB.
    ReportOversized,
    /// Send half of the report.
    ReportTruncated,
    /// Send a report that is not postcard.
    ReportGarbage,
    /// Right after the start frame, before the lifecycle runs, send one frame whose
    /// payload is the bytes given in `__PROCESS_RUNTIME_FAULT_FRAME` (hex; none when
    /// it is not set); then run as usual. Set by `__testing::start_with_raw_frame`.
    RawFrameAfterStart,
    /// As [`Fault::RawFrameAfterStart`], but the frame's prefix announces one
    /// descriptor that is not sent with it.
    DescriptorAnnouncedNotSent,
    /// As [`Fault::RawFrameAfterStart`], but the frame (which announces none) is sent
    /// with a descriptor attached.
    DescriptorSentNotAnnounced,
    /// After the report, wait 300 ms before exiting: the outcome is decided while the
    /// process is still alive, for that long instead of a fraction of a millisecond.
    LingerAfterReport,
}

impl Fault {
    /// The environment variable that carries the fault to the child.
    pub(crate) const ENV: &'static str = "__PROCESS_RUNTIME_FAULT";
    /// The environment variable that carries the payload of
    /// [`Fault::RawFrameAfterStart`], in lowercase hex.
    pub(crate) const FRAME_ENV: &'static str = "__PROCESS_RUNTIME_FAULT_FRAME";

    /// How long [`Fault::LingerAfterReport`] waits.
    pub(crate) const LINGER: std::time::Duration = std::time::Duration::from_millis(300);

    const ALL: [Fault; 15] = [
        Fault::ExitBeforeHello,
        Fault::HelloGarbage,
        Fault::HelloOversized,
        Fault::HelloBadSecret,
        Fault::HelloBadVersion,
        Fault::HelloBadMagic,
        Fault::HelloBadFingerprint,
        Fault::ReportTrailing,
        Fault::ReportOversized,
        Fault::ReportTruncated,
        Fault::ReportGarbage,
        Fault::RawFrameAfterStart,
        Fault::DescriptorAnnouncedNotSent,
        Fault::DescriptorSentNotAnnounced,
        Fault::LingerAfterReport,
    ];

    /// Whether the fault sends a frame of given bytes after the start frame.
    pub(crate) fn sends_frame(self) -> bool {
        matches!(
            self,
            Fault::RawFrameAfterStart
                | Fault::DescriptorAnnouncedNotSent
                | Fault::DescriptorSentNotAnnounced
        )
    }

    /// The fault's name, in the environment variable and in test messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::ExitBeforeHello => "exit-before-hello",
            Fault::HelloGarbage => "hello-garbage",
            Fault::HelloOversized => "hello-oversized",
            Fault::HelloBadSecret => "hello-bad-secret",
            Fault::HelloBadVersion => "hello-bad-version",
            Fault::HelloBadMagic => "hello-bad-magic",
            Fault::HelloBadFingerprint => "hello-bad-fingerprint",
            Fault::ReportTrailing => "report-trailing",
            Fault::ReportOversized => "report-oversized",
            Fault::ReportTruncated => "report-truncated",
            Fault::ReportGarbage => "report-garbage",
            Fault::RawFrameAfterStart => "raw-frame-after-start",
            Fault::DescriptorAnnouncedNotSent => "descriptor-announced-not-sent",
            Fault::DescriptorSentNotAnnounced => "descriptor-sent-not-announced",
            Fault::LingerAfterReport => "linger-after-report",
        }
    }

    /// The fault named `name`; `None` for a name no fault has.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// `bytes` in lowercase hex, for [`Fault::FRAME_ENV`].
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a hex string; `None` when it is not one.
pub(crate) fn from_hex(hex: &str) -> Option<Vec<u8>> {
    // `from_str_radix` alone would also take a sign.
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_round_trips_its_name() {
        for f in Fault::ALL {
            assert_eq!(Fault::from_name(f.name()), Some(f));
        }
        assert_eq!(Fault::from_name("hello-garbag"), None);
    }

    #[test]
    fn frame_bytes_round_trip_through_hex() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xfe, 0xff];
        assert_eq!(to_hex(&bytes), "00017f80feff");
        assert_eq!(from_hex(&to_hex(&bytes)).as_deref(), Some(&bytes[..]));
        assert_eq!(from_hex(""), Some(Vec::new()));
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("+1"), None);
    }
}
