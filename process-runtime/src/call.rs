//! How a child finds the function the parent named.
//!
//! A process type is found by its tag in a table the linker builds, but a function
//! cannot be registered that way: what the child must run is `f` called with an `A` and
//! encoding an `R`, a generic instance, and statics cannot be generic. So the parent
//! names it by address. Each `(A, R, F)` has a [`trampoline`], a plain function that
//! decodes the argument, calls `F` and encodes the result; the parent sends the
//! trampoline's address as an offset from [`ANCHOR`], and the child adds its own
//! anchor's address to that offset to get its own copy of the same function.
//!
//! This works because the child is the parent's own executable, re-executed: the same
//! bytes at the same offsets, loaded at another base address when addresses are
//! randomized (ASLR moves a whole image by one amount). The handshake refuses a child of
//! another build, and the offset only travels inside the start frame or a message, on
//! the authenticated channel. See [`trampoline_at`] for the exact conditions.
//!
//! `F` is never sent: it must be zero-sized (a fn item or a closure that captures
//! nothing), so that the child can make one out of nothing. A closure that captures is
//! refused at compile time by [`offset_of`]; the message says why.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::wire::protocol::POSTCARD_LIMITS;
use crate::ProcessError;

/// What the child calls: the argument's postcard bytes in, the result's appended to
/// the buffer (reused from call to call by a pool worker).
pub(crate) type Trampoline = fn(&[u8], &mut Vec<u8>) -> Result<(), CallError>;

/// Why a call produced no result bytes (a panic unwinds out of the trampoline instead).
#[derive(Debug)]
pub(crate) enum CallError {
    /// The argument's bytes do not decode as the argument's type.
    Argument(String),
    /// The result does not encode.
    Output(String),
    /// The call ran and failed with this error, which is its result as it is (a
    /// process's lifecycle run by a pool, whose lives are spent).
    Failed(ProcessError),
}

impl From<CallError> for ProcessError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Argument(why) => ProcessError::State(why),
            CallError::Output(why) => ProcessError::Output(why),
            CallError::Failed(error) => error,
        }
    }
}

/// An argument's postcard bytes, as a trampoline decodes them.
pub(crate) fn encode_arg<A: Serialize>(arg: &A) -> Result<Vec<u8>, ProcessError> {
    let mut bytes = Vec::new();
    encode_arg_into(arg, &mut bytes)?;
    Ok(bytes)
}

/// [`encode_arg`], appended to `out` (left as it was on an error).
pub(crate) fn encode_arg_into<A: Serialize>(
    arg: &A,
    out: &mut Vec<u8>,
) -> Result<(), ProcessError> {
    encode_into(arg, out).map_err(|e| {
        ProcessError::State(format!(
            "the argument, a `{}`, does not serialize ({e}); {POSTCARD_LIMITS}",
            std::any::type_name::<A>()
        ))
    })
}

/// Appends the postcard bytes of `value` to `out`, which is left as it was on an error.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> postcard::Result<()> {
    /// Appends to a borrowed buffer, which `postcard::to_extend` would otherwise own
    /// (and drop on an error).
    struct Append<'a>(&'a mut Vec<u8>);

    impl Extend<u8> for Append<'_> {
        fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
            self.0.extend(bytes);
        }
    }

    let len = out.len();
    let encoded = postcard::to_extend(value, Append(out)).map(drop);
    if encoded.is_err() {
        out.truncate(len);
    }
    encoded
}

/// The point offsets are measured from. A static has one address for the whole
/// program, which a function does not promise (an inlinable one may have a copy per
/// codegen unit); it lives in the same image as the code, so it moves with it.
static ANCHOR: u8 = 0;

pub(crate) fn anchor() -> usize {
    std::ptr::addr_of!(ANCHOR) as usize
}

/// The address of the trampoline of `(A, R, F)`, as an offset from the anchor, for the
/// child to turn back into the function with [`trampoline_at`].
///
/// Refuses at compile time an `F` that is not zero-sized: a closure that captures
/// anything (or a fn pointer, whose value is an address of this process) cannot be
/// made again in another process.
pub(crate) fn offset_of<A, R, F>(_f: &F) -> i64
where
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
    F: Fn(A) -> R,
{
    const {
        assert!(
            std::mem::size_of::<F>() == 0,
            "process_runtime: the function must be a fn item or a closure that captures \
             nothing: it runs in another process, where captured values do not exist; \
             pass what it needs in the argument"
        );
    }
    offset_of_trampoline(trampoline::<A, R, F>)
}

/// The offset of a function of the runtime's own with a trampoline's signature (the
/// lifecycle of a process type run by a pool, see `pool/lifecycle.rs`), for
/// [`trampoline_at`].
pub(crate) fn offset_of_trampoline(call: Trampoline) -> i64 {
    // Two's complement: the difference fits an i64 whichever of the two comes first.
    (call as usize).wrapping_sub(anchor()) as i64
}

/// The trampoline at `offset` from the anchor.
///
/// # Safety
/// `offset` must be a value [`offset_of`] (or [`offset_of_trampoline`]) returned in a
/// process running the same executable file as this one. Then `anchor() + offset` is
/// the address of a function of type `Trampoline` in this process too: both addresses
/// are in the one image that file was loaded as (the runtime's crates are linked
/// statically into it, and so is every instance of `trampoline` or of a pool's
/// lifecycle runner, which are generic over the user's types), and the
/// loader moves a whole image by one amount, so the difference between two of its
/// addresses is the same in every process that runs it.
///
/// The runtime holds the first condition by where the offset comes from: only the
/// start frame or a message, read from the channel whose child proved the secret it was
/// handed out of band, and whose build fingerprint matched (see `registry.rs`: it
/// includes code offsets); and the child is started from the running executable itself
/// where the platform can name it (`/proc/self/exe`), not from a path a rebuild could
/// have replaced.
pub(crate) unsafe fn trampoline_at(offset: i64) -> Trampoline {
    let address = anchor().wrapping_add(offset as usize);
    // SAFETY: by this function's contract, `address` is the address of a function of
    // type `Trampoline` in this process; a fn pointer is an address.
    unsafe { std::mem::transmute::<usize, Trampoline>(address) }
}

/// Decodes an `A`, calls `F` on it, appends the `R`'s bytes to `out`. Only reached
/// through [`offset_of`], which checks that `F` is zero-sized.
fn trampoline<A, R, F>(arg: &[u8], out: &mut Vec<u8>) -> Result<(), CallError>
where
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
    F: Fn(A) -> R,
{
    let arg: A = postcard::from_bytes(arg).map_err(|e| {
        CallError::Argument(format!(
            "the child cannot decode the argument, a `{}` ({e}); {POSTCARD_LIMITS}",
            std::any::type_name::<A>()
        ))
    })?;
    // SAFETY: `F` is zero-sized (asserted at compile time in `offset_of`, the only way
    // to this function), so a value of it has no bytes to initialize: `zeroed` makes
    // one without reading or writing memory. Such a value is a valid `F` when `F` is a
    // fn item or a closure that captures nothing, which have no invariant beyond their
    // type. (A closure that captures only zero-sized values passes the size check too;
    // it gets copies of them made out of nothing, which is sound unless one of them is a
    // token whose existence promises something, and such a token would mean nothing in
    // another process anyway.) It is never dropped: no destructor runs on a value the
    // parent never handed over.
    let f = std::mem::ManuallyDrop::new(unsafe { std::mem::zeroed::<F>() });
    let result = f(arg);
    encode_into(&result, out).map_err(|e| {
        CallError::Output(format!(
            "the child cannot encode the result, a `{}` ({e}); {POSTCARD_LIMITS}",
            std::any::type_name::<R>()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(x: u64) -> u64 {
        x * 2
    }

    fn call_at<A: Serialize>(offset: i64, arg: &A) -> Result<Vec<u8>, CallError> {
        // SAFETY: the offset came from `offset_of` in this very process.
        let call = unsafe { trampoline_at(offset) };
        let mut out = vec![9];
        call(&postcard::to_allocvec(arg).unwrap(), &mut out)?;
        assert_eq!(out.remove(0), 9, "appended to what was there");
        Ok(out)
    }

    #[test]
    fn an_offset_leads_back_to_the_function() {
        let bytes = call_at(offset_of::<u64, u64, _>(&double), &21u64).unwrap();
        assert_eq!(postcard::from_bytes::<u64>(&bytes).unwrap(), 42);
        let offset = offset_of::<String, usize, _>(&|s: String| s.len());
        let bytes = call_at(offset, &"four".to_owned()).unwrap();
        assert_eq!(postcard::from_bytes::<usize>(&bytes).unwrap(), 4);
    }

    #[test]
    fn an_encoding_that_fails_leaves_the_buffer_as_it_was() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::{Error, SerializeTuple};
                let mut t = s.serialize_tuple(2)?;
                t.serialize_element(&7u32)?;
                Err(S::Error::custom("refused halfway"))
            }
        }
        let mut out = vec![1, 2];
        assert!(encode_into(&Refuses, &mut out).is_err());
        assert_eq!(out, [1, 2]);
        encode_into(&300u32, &mut out).unwrap();
        assert_eq!(out, [1, 2, 0xac, 0x02]);
    }

    #[test]
    fn bytes_of_another_type_are_an_argument_error() {
        let offset = offset_of::<String, usize, _>(&|s: String| s.len());
        let e = call_at(offset, &u64::MAX).unwrap_err();
        assert!(matches!(&e, CallError::Argument(m) if m.contains("`alloc::string::String`")));
        assert!(matches!(ProcessError::from(e), ProcessError::State(_)));
    }
}
