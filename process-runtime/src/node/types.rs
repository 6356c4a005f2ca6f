//! The node's public data: exit reasons, monitor references and notices, registry
//! errors. All of it is plain data that travels between processes.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use process_core::ExitReason;

use crate::Pid;

/// What [`monitor`](super::monitor) returns: names one monitor, in the [`Down`] it
/// brings and to [`demonitor`](super::demonitor). Unique in the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MonitorRef {
    /// The process that monitors.
    pub(crate) owner: Pid,
    /// Its count of monitors made.
    pub(crate) n: u64,
}

impl MonitorRef {
    /// The process that made this monitor (the one its [`Down`] goes to).
    #[must_use]
    pub fn owner(self) -> Pid {
        self.owner
    }
}

impl fmt::Display for MonitorRef {
    /// `#Ref<0.12.5>`: the 5th monitor of `<0.12>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owner = self.owner.to_string();
        write!(f, "#Ref{}.{}>", owner.trim_end_matches('>'), self.n)
    }
}

/// The notice a monitor brings when its process ends: a message in the monitoring
/// process's mailbox, taken with `node::receive::<Down>`. Exactly one per monitor
/// (none after [`demonitor`](super::demonitor)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Down {
    /// The monitor, as [`monitor`](super::monitor) returned it.
    pub monitor: MonitorRef,
    /// The process that ended.
    pub pid: Pid,
    /// How it ended.
    pub reason: ExitReason,
}

/// An exit signal, as a process that traps exits ([`trap_exit`](super::trap_exit))
/// receives it: a message in its mailbox, taken with `node::receive::<Exit>`. It comes
/// from a linked process that ended (with how it ended, `Normal` included), or from
/// [`exit`](super::exit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exit {
    /// The process that ended, or that sent the signal.
    pub from: Pid,
    /// Why.
    pub reason: ExitReason,
}

/// Why the registry refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RegistryError {
    /// The name is held by a live process.
    #[error("the name `{name}` is registered to {holder}")]
    Taken {
        /// The name asked for.
        name: String,
        /// The process that holds it.
        holder: Pid,
    },
    /// The process has a name already: one name per process.
    #[error("{pid} is registered as `{name}` already")]
    AlreadyNamed {
        /// The process.
        pid: Pid,
        /// The name it has.
        name: String,
    },
    /// The process is not alive (it ended, or never existed).
    #[error("{0} is not alive")]
    NoProc(Pid),
    /// No process is registered under the name.
    #[error("no process is registered as `{0}`")]
    NotRegistered(String),
    /// The name is empty.
    #[error("a registered name cannot be empty")]
    EmptyName,
    /// The root, where the registry lives, could not be reached (this process's parent
    /// has gone).
    #[error("the registry cannot be reached: this process's parent has gone")]
    Unreachable,
}
