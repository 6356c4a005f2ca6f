//! What a parent hands a child besides the socket: the marker that tells the
//! re-executed binary it is a child, the descriptors it inherits, and the secret it
//! proves itself with. Both sides read this module; it imports neither.

/// Bytes of the per-child secret.
pub(crate) const SECRET_LEN: usize = 32;

/// A fresh random secret for one child.
pub(crate) fn new_secret() -> std::io::Result<[u8; SECRET_LEN]> {
    let mut secret = [0u8; SECRET_LEN];
    getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(secret)
}

/// The environment variable that marks a re-executed binary as a child and carries
/// `version:socket-fd:beacon-fd:parent-pid:secret-hex`. Removed by the child as soon
/// as it is read.
pub(crate) const MARKER: &str = "__PROCESS_RUNTIME_CHILD";
const MARKER_VERSION: &str = "2";

/// What the child needs to find its channel and prove who it is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Marker {
    pub fd: i32,
    pub beacon_fd: i32,
    pub parent_pid: u32,
    pub secret: [u8; SECRET_LEN],
}

impl Marker {
    pub(crate) fn encode(&self) -> String {
        let hex: String = self.secret.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{MARKER_VERSION}:{}:{}:{}:{hex}",
            self.fd, self.beacon_fd, self.parent_pid
        )
    }

    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("malformed {MARKER} value");
        let mut parts = s.split(':');
        if parts.next() != Some(MARKER_VERSION) {
            return Err(format!(
                "{MARKER} was set by a different version of process-runtime"
            ));
        }
        let fd = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let beacon_fd = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let parent_pid = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let hex = parts.next().ok_or_else(bad)?;
        if hex.len() != 2 * SECRET_LEN || parts.next().is_some() {
            return Err(bad());
        }
        let mut secret = [0u8; SECRET_LEN];
        for (i, byte) in secret.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self {
            fd,
            beacon_fd,
            parent_pid,
            secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_and_rejects_junk() {
        let m = Marker {
            fd: 7,
            beacon_fd: 8,
            parent_pid: 4242,
            secret: [0xab; 32],
        };
        assert_eq!(Marker::parse(&m.encode()).unwrap(), m);
        assert!(Marker::parse("1:7:8:1:00")
            .unwrap_err()
            .contains("different version"));
        assert!(Marker::parse("2:x:8:1:00").is_err());
        assert!(Marker::parse(&format!("2:7:8:1:{}", "zz".repeat(32))).is_err());
        assert!(Marker::parse(&format!("{}:extra", m.encode())).is_err());
    }
}
