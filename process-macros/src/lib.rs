//! Procedural macros of `process-runtime`. Use them through `process_runtime`, which
//! re-exports them; the generated code names only `::process_runtime` and `::core`.
//!
//! - [`derive(Process)`](macro@Process) with its `#[process(...)]` attribute;
//! - [`#[timethis]`](macro@timethis) on lifecycle sections and other methods;
//! - [`#[main]`](macro@main) on `fn main`.
//!
//! Layout, after serde_derive and thiserror-impl: `attr.rs` reads the attribute,
//! `duration.rs` parses durations, `valid.rs` holds the semantic rules, `expand.rs`
//! generates the code, and `ctxt.rs` collects every error so that all mistakes are
//! reported in one compile.

mod attr;
mod ctxt;
mod duration;
mod expand;
mod main_attr;
mod suggest;
mod timethis;
mod valid;

use proc_macro::TokenStream;

/// Makes a struct runnable as a supervised child OS process.
///
/// The struct must also implement `Lifecycle`, `serde::Serialize` and
/// `serde::Deserialize`; it may have named fields, tuple fields or none, but no
/// generic parameters (the child must find one concrete type to run). The derive
/// implements `process_runtime::Process` and registers the type so that a re-executed
/// child finds it by its module path and name.
///
/// # `#[process(...)]`
///
/// | key | value | default |
/// | --- | --- | --- |
/// | `num_loops` | integer >= 1 | until stopped |
/// | `join_in` | duration | no limit |
/// | `lives` | integer >= 1 | 1 |
/// | `timeout.preloop` | duration or `"none"` | 30s |
/// | `timeout.loop` | duration or `"none"` | 300s |
/// | `timeout.postloop` | duration or `"none"` | 60s |
/// | `timeout.onfinish` | duration or `"none"` | 60s |
/// | `name` | non-empty string | the type's name |
/// | `daemon` | bool | false |
/// | `mailbox` | integer 1..=1000000 | 100 |
///
/// Timeouts may also be grouped: `timeout(loop = "60s", preloop = "5s")`. Several
/// `#[process(...)]` attributes merge; a key may be given once.
///
/// A duration is a string made of a decimal number and a unit, `ns`, `us` (or `µs`),
/// `ms`, `s`, `m` (minutes) or `h`, such as `"300s"`, `"1.5s"`, `"250ms"`, `"2m"`; or a
/// bare integer or float literal, meaning seconds: `30`, `0.5`. It must be greater than
/// zero (use `"none"` for a timeout without limit) and a whole number of nanoseconds.
///
/// ```ignore
/// #[derive(Process, Serialize, Deserialize)]
/// #[process(num_loops = 10, lives = 3, join_in = "30s", timeout.loop = "300s")]
/// struct Counter {
///     counter: u32,
/// }
/// ```
///
/// Every mistake (unknown or duplicate key, value out of range, bad duration, wrong
/// literal type, enum, union or generic type) is a compile error on the offending
/// token, and all of them are reported in one compile.
#[proc_macro_derive(Process, attributes(process))]
pub fn derive_process(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::derive(&input).into()
}

/// Times a lifecycle section or a method.
///
/// On `preloop`, `main_loop`, `postloop` or `on_finish` in `impl Lifecycle`, the engine
/// records each call's duration in that section's timer (sections that are not marked
/// pay nothing). On any other method, which must take a `&mut Context` parameter, each
/// call's duration is recorded in the named timer `cx.timers_mut().named_mut("<method
/// name>")`. The method keeps its signature, visibility, attributes and `async`.
///
/// ```ignore
/// impl Lifecycle for Counter {
///     type Output = u32;
///
///     #[timethis]
///     fn main_loop(&mut self, cx: &mut Context) -> Outcome {
///         self.step(cx)
///     }
///     // ...
/// }
///
/// impl Counter {
///     #[timethis] // recorded as the timer named "step"
///     fn step(&mut self, cx: &mut Context) -> Outcome {
///         self.counter += 1;
///         Ok(())
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn timethis(args: TokenStream, item: TokenStream) -> TokenStream {
    timethis::timethis(args.into(), item.into()).into()
}

/// Marks the program's `fn main`, so that a re-executed child process is taken over
/// before any code of `main` runs (code before the entry point must not run twice), and
/// so that SIGTERM and SIGINT (Ctrl-C) stop the program's processes gracefully.
///
/// Without it, a constructor emitted by `derive(Process)` does the same takeover before
/// `main`; the attribute makes the entry point explicit. It goes on a non-async
/// function without parameters; with an async runtime, write the runtime's attribute
/// above it:
///
/// ```ignore
/// #[tokio::main]
/// #[process_runtime::main]
/// async fn main() { /* ... */ }
/// ```
///
/// # Signals
///
/// By default it calls `process_runtime::shutdown_on_signals()`: the first SIGTERM or
/// SIGINT stops every process of the program gracefully, then the program exits with
/// 143 (SIGTERM) or 130 (SIGINT); see that function. `signals = false` leaves both
/// signals alone (they end the program at once, and its children die with it):
///
/// ```ignore
/// #[process_runtime::main(signals = false)]
/// fn main() { /* ... */ }
/// ```
///
/// `signals` is the only option; it takes `true` or `false`.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    main_attr::main(args.into(), item.into()).into()
}
