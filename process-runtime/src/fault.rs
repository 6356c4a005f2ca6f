//! Faults a real child can be told to commit, for the transport's own tests (feature
//! `fault-injection`): a bad handshake, a garbage or truncated report. An enum rather
//! than free text, so a misspelt fault does not compile.

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
}

impl Fault {
    /// The environment variable that carries the fault to the child.
    pub(crate) const ENV: &'static str = "__PROCESS_RUNTIME_FAULT";

    const ALL: [Fault; 11] = [
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
    ];

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
        }
    }

    /// The fault named `name`; `None` for a name no fault has.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
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
}
