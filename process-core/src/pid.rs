//! A process's identity in the node: [`Pid`].
//!
//! Every process of one program tree has a `Pid`, the program's own root process
//! included. A pid is the process's path from the root: the root is `<0.0>`; the
//! children the root starts are `<0.1>`, `<0.2>`, ... in the order they were started;
//! the children of `<0.2>` are `<0.2.1>`, `<0.2.2>`, ...; and so on. Each process
//! numbers its own children from its own counter, so no two processes ever need to
//! agree on a number, and a pid names one process for the life of the node: a number a
//! parent gave out is never given out again, whatever became of its process. The path
//! is also the route: a message to a pid goes down the tree to the child whose number
//! comes next in the path, or up to the parent when the pid is not below the sender.
//!
//! A pid does not change when a process is restarted after a failure (its lives): it
//! names the process, not one of its OS processes. [`Pid::os_pid`] gives the OS process
//! id of the attempt running now.

use std::fmt;
use std::sync::OnceLock;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How many levels below the root a pid can name: a process this deep cannot start
/// processes of its own (its `start()` fails with a `ProcessError::Config` that says
/// so).
///
/// A pid holds its path in place, so that it stays `Copy`; on the wire only the used
/// part travels (one length, then one number per level), so a deeper limit costs
/// shallow pids nothing.
pub const MAX_DEPTH: usize = 16;

/// A process's identity in the node: `Copy`, comparable, hashable, and serializable, so
/// that it can travel inside messages and states. Shown like `<0.12>`.
///
/// A pid is the process's path from the root: the root is `<0.0>` ([`Pid::ROOT`]);
/// the processes the root starts are `<0.1>`, `<0.2>`, ... in start order; the children
/// of `<0.2>` are `<0.2.1>`, `<0.2.2>`, and so on. Each process numbers its own
/// children from its own counter, so a pid is unique in the node for the node's life
/// and never reused for another process. It names the process, not one of its
/// attempts: it stays the same across restarts (lives). Processes nest at most
/// [`MAX_DEPTH`] levels below the root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    /// How many numbers of `path` are used: 0 for the root.
    depth: u8,
    /// The child numbers from the root down; unused entries are 0.
    path: [u32; MAX_DEPTH],
}

impl Serialize for Pid {
    /// The path's numbers, as a sequence: `[]` for the root, `[12, 3]` for `<0.12.3>`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let path = &self.path[..usize::from(self.depth)];
        let mut seq = serializer.serialize_seq(Some(path.len()))?;
        for n in path {
            seq.serialize_element(n)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Pid {
    /// Checked before it becomes a pid: a pid may arrive inside any message, and one
    /// the runtime could not have made (too deep, a zero number) must not get in.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(PathVisitor)
    }
}

/// Reads a pid's path into place, without allocating.
struct PathVisitor;

impl<'de> Visitor<'de> for PathVisitor {
    type Value = Pid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a pid: at most {MAX_DEPTH} child numbers, none of them 0"
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pid, A::Error> {
        let mut pid = Pid::ROOT;
        while let Some(n) = seq.next_element::<u32>()? {
            let depth = usize::from(pid.depth);
            if depth == MAX_DEPTH {
                return Err(de::Error::custom(format!(
                    "not a pid: deeper than {MAX_DEPTH} levels"
                )));
            }
            if n == 0 {
                return Err(de::Error::custom(format!(
                    "not a pid: child number 0 at level {}",
                    depth + 1
                )));
            }
            pid.path[depth] = n;
            pid.depth += 1;
        }
        Ok(pid)
    }
}

/// How the runtime finds the OS process id of a pid (see [`Pid::os_pid`]).
static OS_PID: OnceLock<fn(Pid) -> Option<u32>> = OnceLock::new();

impl Pid {
    /// The root: the program's own process, where `main` runs. `<0.0>`.
    pub const ROOT: Pid = Pid {
        depth: 0,
        path: [0; MAX_DEPTH],
    };

    /// The pid of this process's `n`th child (`n` counts from 1); `None` when this
    /// process is at [`MAX_DEPTH`], or `n` is 0.
    #[doc(hidden)]
    #[must_use]
    pub fn __child(self, n: u32) -> Option<Pid> {
        let depth = usize::from(self.depth);
        if depth >= MAX_DEPTH || n == 0 {
            return None;
        }
        let mut child = self;
        child.path[depth] = n;
        child.depth += 1;
        Some(child)
    }

    /// The pid of the process that started this one; `None` for the root.
    #[must_use]
    pub fn parent(self) -> Option<Pid> {
        let depth = usize::from(self.depth);
        if depth == 0 {
            return None;
        }
        let mut parent = self;
        parent.depth -= 1;
        parent.path[depth - 1] = 0;
        Some(parent)
    }

    /// Whether this is the root, `<0.0>`.
    #[must_use]
    pub fn is_root(self) -> bool {
        self.depth == 0
    }

    /// How many levels below the root this process is: 0 for the root, 1 for the
    /// processes it started, and so on.
    #[must_use]
    pub fn depth(self) -> usize {
        usize::from(self.depth)
    }

    /// When `other` is below this process, the number of this process's child that
    /// `other` is, or descends from; `None` otherwise (also for `other == self`).
    #[doc(hidden)]
    #[must_use]
    pub fn __next_hop(self, other: Pid) -> Option<u32> {
        let depth = usize::from(self.depth);
        (other.depth > self.depth && other.path[..depth] == self.path[..depth])
            .then(|| other.path[depth])
    }

    /// This process's number among its parent's children (0 for the root).
    #[doc(hidden)]
    #[must_use]
    pub fn __number(self) -> u32 {
        match usize::from(self.depth) {
            0 => 0,
            d => self.path[d - 1],
        }
    }

    /// Whether the encoding is one the runtime makes: no number after `depth`, none
    /// zero before it. A pid decoded from a message may have been made by hand.
    #[doc(hidden)]
    #[must_use]
    pub fn __is_valid(self) -> bool {
        let depth = usize::from(self.depth);
        depth <= MAX_DEPTH
            && self.path[..depth].iter().all(|&n| n != 0)
            && self.path[depth..].iter().all(|&n| n == 0)
    }

    /// The OS process id of the attempt of this process running now, when this
    /// process knows it: its own, its parent's, and its own children's (in the root,
    /// every process the root started). `None` once the process has ended, between
    /// two attempts, and for processes elsewhere in the tree.
    #[must_use]
    pub fn os_pid(self) -> Option<u32> {
        OS_PID.get().and_then(|find| find(self))
    }

    /// Installs how [`Pid::os_pid`] finds its answer; the first call wins. Used by the
    /// runtime.
    #[doc(hidden)]
    pub fn __set_os_pid_lookup(find: fn(Pid) -> Option<u32>) {
        let _ = OS_PID.set(find);
    }
}

impl Default for Pid {
    /// The root.
    fn default() -> Self {
        Pid::ROOT
    }
}

impl fmt::Display for Pid {
    /// `<0.0>` for the root, `<0.12>` for the root's 12th child, `<0.12.3>` for that
    /// child's 3rd, and so on.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.depth == 0 {
            return f.write_str("<0.0>");
        }
        f.write_str("<0")?;
        for n in &self.path[..usize::from(self.depth)] {
            write!(f, ".{n}")?;
        }
        f.write_str(">")
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_are_paths_shown_erlang_style() {
        let root = Pid::ROOT;
        assert_eq!(root.to_string(), "<0.0>");
        let a = root.__child(12).unwrap();
        assert_eq!(a.to_string(), "<0.12>");
        let b = a.__child(3).unwrap();
        assert_eq!(format!("{b:?}"), "<0.12.3>");
        assert_eq!(b.parent(), Some(a));
        assert_eq!(a.parent(), Some(root));
        assert_eq!(root.parent(), None);
        assert_eq!(b.depth(), 2);
        assert_eq!(b.__number(), 3);
        assert!(root.is_root() && !a.is_root());
        assert_eq!(root.__child(0), None);
    }

    #[test]
    fn the_next_hop_is_the_child_on_the_path() {
        let a = Pid::ROOT.__child(2).unwrap();
        let b = a.__child(5).unwrap();
        let c = b.__child(1).unwrap();
        assert_eq!(Pid::ROOT.__next_hop(c), Some(2));
        assert_eq!(a.__next_hop(c), Some(5));
        assert_eq!(b.__next_hop(c), Some(1));
        assert_eq!(c.__next_hop(c), None);
        assert_eq!(c.__next_hop(a), None);
        let other = Pid::ROOT.__child(3).unwrap();
        assert_eq!(a.__next_hop(other), None);
        assert_eq!(other.__next_hop(b), None);
    }

    impl Pid {
        /// The same depth, every number 1.
        fn with_ones(self) -> Pid {
            let mut p = Pid::ROOT;
            for _ in 0..self.depth {
                p = p.__child(1).unwrap();
            }
            p
        }
    }

    #[test]
    fn depth_is_bounded_and_round_trips() {
        let mut p = Pid::ROOT;
        for n in 1..=MAX_DEPTH as u32 {
            p = p.__child(n).unwrap();
        }
        assert_eq!(p.__child(1), None);
        assert!(p.__is_valid());
        let bytes = postcard::to_allocvec(&p).unwrap();
        assert_eq!(postcard::from_bytes::<Pid>(&bytes).unwrap(), p);
        let mut forged = Pid::ROOT;
        forged.depth = 1;
        forged.path[..2].copy_from_slice(&[1, 1]);
        assert!(!forged.__is_valid());
        // A zero number, and one level too many, as they would travel.
        let zero = postcard::to_allocvec(&[4u32, 0, 2][..]).unwrap();
        assert!(postcard::from_bytes::<Pid>(&zero).is_err());
        let too_deep = postcard::to_allocvec(&[1u32; MAX_DEPTH + 1][..]).unwrap();
        assert!(postcard::from_bytes::<Pid>(&too_deep).is_err());
        let deepest = postcard::to_allocvec(&[1u32; MAX_DEPTH][..]).unwrap();
        assert_eq!(
            postcard::from_bytes::<Pid>(&deepest).unwrap(),
            p.with_ones()
        );
        // Only the used levels travel: the root is one byte, `<0.12.3>` three.
        assert_eq!(postcard::to_allocvec(&Pid::ROOT).unwrap(), [0]);
        let shallow = Pid::ROOT.__child(12).unwrap().__child(3).unwrap();
        assert_eq!(postcard::to_allocvec(&shallow).unwrap(), [2, 12, 3]);
    }
}
