//! Compile-fail tests of the macros: each file under `ui/` is one mistake, and its
//! `.stderr` is the message the user gets. Regenerate with `TRYBUILD=overwrite` and
//! review the changes like code.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/derive/*.rs");
    t.compile_fail("ui/main/*.rs");
    t.compile_fail("ui/timethis/*.rs");
    t.pass("ui/pass/*.rs");
}
