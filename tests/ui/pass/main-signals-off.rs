//! `signals = false` compiles, and the program runs as without it.

#[process_runtime::main(signals = false)]
fn main() {
    assert!(!process_runtime::shutdown_requested());
}
