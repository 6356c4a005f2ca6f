//! The process types this binary can run as a child, and the build fingerprint they
//! make up.
//!
//! Every `#[derive(Process)]` adds one [`Registration`] to a table the linker builds
//! (`linkme`), so the table exists before any code runs: a re-executed child reads it
//! from a constructor, before `main`. The child side does not import this module; it
//! is handed a lookup function, which keeps the dependency one way.

use crate::child::ChildRun;
use crate::Process;

/// One entry per `#[derive(Process)]`.
#[linkme::distributed_slice]
pub static REGISTRY: [Registration];

/// One process type, as the child needs it.
#[derive(Debug)]
pub struct Registration {
    tag: &'static str,
    type_name: fn() -> &'static str,
    run: fn(ChildRun) -> !,
}

impl Registration {
    /// The registration of `T` under `tag` (the type's module path and name).
    #[must_use]
    pub const fn new<T: Process>(tag: &'static str) -> Self {
        Self {
            tag,
            type_name: std::any::type_name::<T>,
            run: crate::child::run::<T>,
        }
    }

    /// The registration of one of the runtime's own process types, whose child entry
    /// point is `run` (`crate::child::run::<T>` with another encoding of the output).
    pub(crate) const fn internal<T: Process>(tag: &'static str, run: fn(ChildRun) -> !) -> Self {
        Self {
            tag,
            type_name: std::any::type_name::<T>,
            run,
        }
    }

    /// The tag the parent names the type by in its start frame.
    pub(crate) fn tag(&self) -> &'static str {
        self.tag
    }
}

/// The entry point of the type registered as `tag`.
pub(crate) fn entry_of(tag: &str) -> Option<fn(ChildRun) -> !> {
    REGISTRY.iter().find(|r| r.tag == tag).map(|r| r.run)
}

/// The fingerprint of this build's set of process types and of where their code is: a
/// parent and a child that disagree on it were built from different code and refuse
/// each other.
pub(crate) fn fingerprint() -> u64 {
    // FNV-1a, order-independent over registrations (summed), so the linker's order of
    // the table does not matter.
    fn fnv(bytes: &[u8], mut h: u64) -> u64 {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
    let base = fnv(env!("CARGO_PKG_VERSION").as_bytes(), 0xcbf2_9ce4_8422_2325);
    let base = fnv(&crate::wire::protocol::PROTOCOL_VERSION.to_le_bytes(), base);
    // Where each entry point sits relative to the anchor that function calls are
    // measured from (see `call.rs`): two builds with the same process types but other
    // code almost always differ there, so that a child of another build is refused
    // before any code offset reaches it.
    let anchor = crate::call::anchor();
    REGISTRY.iter().fold(base, |acc, reg| {
        let h = fnv(reg.tag.as_bytes(), base);
        let h = fnv((reg.type_name)().as_bytes(), h);
        let offset = (reg.run as usize).wrapping_sub(anchor) as u64;
        acc.wrapping_add(fnv(&offset.to_le_bytes(), h))
    })
}

/// The registered tag equal to `tag`, as the table holds it; `None` when this build has
/// no such type.
pub(crate) fn static_tag(tag: &str) -> Option<&'static str> {
    REGISTRY.iter().find(|r| r.tag == tag).map(|r| r.tag)
}
