//! The default and `signals = true` compile; a program that gets no signal returns from
//! `main` as usual.

#[process_runtime::main(signals = true)]
fn main() -> Result<(), process_runtime::ProcessError> {
    process_runtime::shutdown_on_signals()?;
    assert!(!process_runtime::shutdown_requested());
    Ok(())
}
