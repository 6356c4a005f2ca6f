//! Where `map` and `run` put their results: a vector written in place, each slot once,
//! in whatever order the results come.
//!
//! A `Result<R, ProcessError>` is over a hundred bytes, so the results of 100,000
//! trivial items are ten megabytes: filling them with placeholders first, or with
//! `Option`s to unwrap after, is a pass over all of it more (and, in memory not touched
//! yet, every page faulted in before the first result is even there). Here a slot is
//! written once, when its result comes, while the workers run the rest; which slots
//! are written is kept apart, in a bit each.

use std::mem::{ManuallyDrop, MaybeUninit};

/// `len` results, written in any order, each once.
pub(crate) struct Gather<T> {
    slots: Vec<MaybeUninit<T>>,
    /// A bit per slot: written.
    written: Vec<u64>,
    count: usize,
}

impl<T> Gather<T> {
    pub(crate) fn new(len: usize) -> Self {
        let mut slots = Vec::with_capacity(len);
        // Nothing is written: the memory is touched only when results come.
        slots.resize_with(len, MaybeUninit::uninit);
        Self {
            slots,
            written: vec![0; len.div_ceil(64)],
            count: 0,
        }
    }

    /// Writes the result of slot `at`. A second result for one slot, or a slot past
    /// the end, is a bug of the pool's.
    ///
    /// # Panics
    /// In either case.
    pub(crate) fn put(&mut self, at: usize, value: T) {
        assert!(
            at < self.slots.len(),
            "a result for item {at}, past the end"
        );
        let (word, bit) = (at / 64, 1u64 << (at % 64));
        assert!(
            self.written[word] & bit == 0,
            "a second result for item {at}"
        );
        self.slots[at].write(value);
        self.written[word] |= bit;
        self.count += 1;
    }

    /// The results, once every slot is written.
    ///
    /// # Panics
    /// When one is not (a bug of the pool's: every item gets its result).
    pub(crate) fn finish(mut self) -> Vec<T> {
        assert_eq!(self.count, self.slots.len(), "every item has a result");
        // Taken out, so that dropping the gather drops none of them.
        let mut slots = ManuallyDrop::new(std::mem::take(&mut self.slots));
        let (ptr, len, capacity) = (slots.as_mut_ptr(), slots.len(), slots.capacity());
        // SAFETY: every slot was written once (`count` of them, none twice: `put`
        // checks), so all `len` are initialized `T`s; `MaybeUninit<T>` has the size and
        // alignment of `T`, so the allocation is one of `capacity` `T`s, and it is owned
        // by the new vector alone (`slots` is not dropped).
        unsafe { Vec::from_raw_parts(ptr.cast::<T>(), len, capacity) }
    }
}

impl<T> Drop for Gather<T> {
    /// Drops the results written, when the call unwinds before its end.
    fn drop(&mut self) {
        for (at, slot) in self.slots.iter_mut().enumerate() {
            if self.written[at / 64] & (1u64 << (at % 64)) != 0 {
                // SAFETY: its bit says it was written, and it is dropped once: the
                // slots go with the gather.
                unsafe { slot.assume_init_drop() };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn results_written_in_any_order_come_out_in_place() {
        let mut gather = Gather::new(130);
        for at in (0..130).rev() {
            gather.put(at, format!("item {at}"));
        }
        let out = gather.finish();
        assert_eq!(out.len(), 130);
        assert_eq!(out[0], "item 0");
        assert_eq!(out[129], "item 129");
        assert!(Gather::<u8>::new(0).finish().is_empty());
    }

    #[test]
    fn a_gather_dropped_half_written_drops_what_was_written() {
        let shared = Rc::new(());
        let mut gather = Gather::new(100);
        gather.put(3, Rc::clone(&shared));
        gather.put(70, Rc::clone(&shared));
        assert_eq!(Rc::strong_count(&shared), 3);
        drop(gather);
        assert_eq!(Rc::strong_count(&shared), 1);
    }

    #[test]
    #[should_panic(expected = "a second result for item 5")]
    fn a_second_result_for_a_slot_is_refused() {
        let mut gather = Gather::new(10);
        gather.put(5, 1);
        gather.put(5, 2);
    }

    #[test]
    #[should_panic(expected = "every item has a result")]
    fn a_missing_result_is_refused() {
        let mut gather = Gather::new(2);
        gather.put(0, 1);
        let _ = gather.finish();
    }
}
