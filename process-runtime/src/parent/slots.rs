//! The slots of a child's mailbox, as the parent keeps them: which messages told to the
//! child are not known to be taken, in the order they were told, and which slots are
//! free. Pure bookkeeping, with no page and no socket: `mailbox.rs` says what is taken.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use crate::wire::protocol;

/// The messages to the child that it has not taken, as far as the parent knows, each in
/// a slot of `0..capacity`.
#[derive(Debug)]
pub(crate) struct Slots {
    capacity: u32,
    /// The occupied slots in the order their messages were told, with their frames
    /// and the descriptors those carry (closed when the slot is freed).
    told: VecDeque<(u32, Vec<u8>, Vec<OwnedFd>)>,
    /// Slots freed since, used again before fresh ones.
    free: Vec<u32>,
    /// Slots `fresh..capacity` were never occupied. Handing them out only as needed
    /// keeps a mailbox of a million that never holds more than a few small.
    fresh: u32,
}

impl Slots {
    /// No slot occupied, of `capacity`.
    pub(crate) fn new(capacity: u32) -> Self {
        Self {
            capacity,
            told: VecDeque::new(),
            free: Vec::new(),
            fresh: 0,
        }
    }

    /// How many slots are occupied.
    pub(crate) fn len(&self) -> usize {
        self.told.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.told.is_empty()
    }

    /// Whether every slot is occupied: the child's mailbox is full.
    pub(crate) fn is_full(&self) -> bool {
        self.told.len() >= self.capacity as usize
    }

    /// Puts a message frame to the child in a free slot, written into it; `None` (and
    /// the frame dropped) when the mailbox is full.
    pub(crate) fn push(&mut self, mut frame: Vec<u8>, fds: Vec<OwnedFd>) -> Option<u32> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if self.fresh < self.capacity => {
                self.fresh += 1;
                self.fresh - 1
            }
            None => return None,
        };
        protocol::set_slot(&mut frame, slot);
        self.told.push_back((slot, frame, fds));
        Some(slot)
    }

    /// Frees the slots whose messages the child took, forgetting their frames;
    /// `taken(slot)` says whether it took the message in `slot` (and forgets that it
    /// did, as the slot is freed). Looks at the occupied slots in the order they were
    /// told, and stops once `limit` are found; returns how many were.
    ///
    /// The child mostly takes messages in the order they were told, so the ones taken
    /// are found near the front: the cost is that of the slots looked at, plus moving
    /// the fewer of those before or after the freed ones.
    pub(crate) fn trim(&mut self, limit: u64, mut taken: impl FnMut(u32) -> bool) -> u64 {
        let mut found = 0;
        // Untaken entries are moved down to `kept`, in order; `kept..looked` are freed.
        let mut kept = 0;
        let mut looked = 0;
        while found < limit && looked < self.told.len() {
            let slot = self.told[looked].0;
            if taken(slot) {
                self.free.push(slot);
                found += 1;
            } else {
                self.told.swap(kept, looked);
                kept += 1;
            }
            looked += 1;
        }
        self.told.drain(kept..looked);
        found
    }

    /// The frames from the `from`th occupied slot on, in the order they were told,
    /// with their descriptors.
    pub(crate) fn frames(&self, from: usize) -> impl Iterator<Item = (&[u8], &[OwnedFd])> {
        self.told
            .range(from..)
            .map(|(_, frame, fds)| (frame.as_slice(), fds.as_slice()))
    }

    /// The occupied slots, in the order their messages were told.
    #[cfg(test)]
    fn order(&self) -> Vec<u32> {
        self.told.iter().map(|(slot, ..)| *slot).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::{kind_of, message_prefix, seal, slot_of, Kind, TO_CHILD};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A message frame to the child whose tag is `n`.
    fn frame(n: u64) -> Vec<u8> {
        seal(message_prefix(&TO_CHILD, n), "test").unwrap()
    }

    /// The tag and slot a frame carries.
    fn read(frame: &[u8]) -> (u64, u32) {
        let payload = &frame[4..];
        let Ok(Kind::Message(tag)) = kind_of(payload, &TO_CHILD) else {
            panic!("not a message frame")
        };
        (tag, slot_of(payload))
    }

    /// The tags of the frames kept, in order.
    fn tags(slots: &Slots) -> Vec<u64> {
        slots.frames(0).map(|(f, _)| read(f).0).collect()
    }

    #[test]
    fn a_full_mailbox_takes_nothing_more_and_each_slot_is_written_into_its_frame() {
        let mut slots = Slots::new(3);
        assert!(slots.is_empty());
        for n in 0..3 {
            assert_eq!(slots.push(frame(n), Vec::new()), Some(n as u32));
        }
        assert!(slots.is_full());
        assert_eq!(slots.push(frame(3), Vec::new()), None);
        assert_eq!(slots.len(), 3);
        let read: Vec<_> = slots.frames(0).map(|(f, _)| read(f)).collect();
        assert_eq!(read, [(0, 0), (1, 1), (2, 2)]);
        assert_eq!(slots.frames(2).count(), 1);
    }

    #[test]
    fn an_out_of_order_take_frees_that_slot_and_keeps_the_others_in_order() {
        let mut slots = Slots::new(3);
        for n in [10, 11, 12] {
            slots.push(frame(n), Vec::new());
        }
        // The child took the second (slot 1) only.
        assert_eq!(slots.trim(1, |slot| slot == 1), 1);
        assert_eq!(tags(&slots), [10, 12]);
        assert_eq!(slots.order(), [0, 2]);
        // The freed slot is the one used next, and order is by telling, not by slot.
        assert_eq!(slots.push(frame(13), Vec::new()), Some(1));
        assert_eq!(tags(&slots), [10, 12, 13]);
        assert_eq!(slots.order(), [0, 2, 1]);
        assert!(slots.is_full());
        // Then the first and the last.
        let mut marked = BTreeSet::from([0, 1]);
        assert_eq!(slots.trim(2, |slot| marked.remove(&slot)), 2);
        assert!(marked.is_empty());
        assert_eq!(tags(&slots), [12]);
    }

    #[test]
    fn a_trim_stops_at_its_limit_and_the_next_finds_the_rest() {
        let mut slots = Slots::new(8);
        for n in 0..8 {
            slots.push(frame(n), Vec::new());
        }
        let mut marked: BTreeSet<u32> = [1, 4, 6].into();
        let mut looked = Vec::new();
        let found = slots.trim(2, |slot| {
            looked.push(slot);
            marked.remove(&slot)
        });
        assert_eq!(found, 2);
        assert_eq!(looked, [0, 1, 2, 3, 4], "it stopped at the second mark");
        assert_eq!(tags(&slots), [0, 2, 3, 5, 6, 7]);
        assert_eq!(slots.trim(u64::MAX, |slot| marked.remove(&slot)), 1);
        assert_eq!(tags(&slots), [0, 2, 3, 5, 7]);
        assert_eq!(slots.trim(u64::MAX, |_| false), 0);
        assert_eq!(slots.trim(0, |_| true), 0, "a limit of none looks at none");
        assert_eq!(slots.len(), 5);
    }

    /// What the model does: tell (`None`) or take the `i`th untaken message, modulo
    /// their number (`Some(i)`), then trim with a limit of `limit` (or all).
    #[derive(Debug, Clone)]
    struct Step {
        take: Option<usize>,
        limit: Option<u64>,
    }

    fn step() -> impl Strategy<Value = Step> {
        (
            proptest::option::of(0usize..16),
            proptest::option::of(0u64..4),
        )
            .prop_map(|(take, limit)| Step { take, limit })
    }

    proptest! {
        /// Against a model: tells and out-of-order takes, trims with and without a
        /// limit. Occupancy never exceeds the capacity, no slot is held twice, and what
        /// is kept is exactly what was told and not taken, in the order told.
        #[test]
        fn slots_keep_exactly_the_untaken_messages_in_order(
            capacity in 1u32..6,
            steps in proptest::collection::vec(step(), 0..200),
        ) {
            let mut slots = Slots::new(capacity);
            let mut next = 0u64;
            // The model: told and not taken, in order, with the slot each took.
            let mut untaken: Vec<(u64, u32)> = Vec::new();
            // Taken by the child, not yet freed (its marks).
            let mut marked: BTreeSet<u32> = BTreeSet::new();
            for Step { take, limit } in steps {
                match take {
                    None => {
                        let was_full = slots.is_full();
                        match slots.push(frame(next), Vec::new()) {
                            Some(slot) => {
                                prop_assert!(!was_full);
                                prop_assert!(slot < capacity);
                                prop_assert!(!marked.contains(&slot), "a marked slot reused");
                                untaken.push((next, slot));
                            }
                            None => prop_assert!(was_full),
                        }
                        next += 1;
                    }
                    Some(i) if !untaken.is_empty() => {
                        let (_, slot) = untaken.remove(i % untaken.len());
                        marked.insert(slot);
                    }
                    Some(_) => {}
                }
                let before = marked.len() as u64;
                let found = slots.trim(limit.unwrap_or(u64::MAX), |slot| marked.remove(&slot));
                prop_assert_eq!(found, before - marked.len() as u64);
                if limit.is_none() {
                    prop_assert!(marked.is_empty());
                }
                prop_assert!(slots.len() <= capacity as usize);
                prop_assert_eq!(slots.len(), untaken.len() + marked.len());
                let held: BTreeSet<u32> = slots.order().into_iter().collect();
                prop_assert_eq!(held.len(), slots.len(), "a slot held twice");
                // Kept: the untaken, in order, and the marked ones not yet freed.
                let kept: Vec<(u64, u32)> = slots
                    .frames(0)
                    .map(|(f, _)| read(f))
                    .filter(|(_, slot)| !marked.contains(slot))
                    .collect();
                prop_assert_eq!(&kept, &untaken);
            }
        }
    }
}
