//! Compile-fail tests of the macros and of `spawn`: each file under `ui/` is one
//! mistake, and its `.stderr` is the message the user gets. Regenerate with
//! `TRYBUILD=overwrite` and review the changes like code.
//!
//! The `spawn/` cases (a function that captures) fail after monomorphization, which
//! `cargo check` never reaches: trybuild reports them because the `pass/` case makes it
//! build the cases instead of checking them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/derive/*.rs");
    t.compile_fail("ui/main/*.rs");
    t.compile_fail("ui/timethis/*.rs");
    t.compile_fail("ui/spawn/*.rs");
    t.pass("ui/pass/*.rs");
}
