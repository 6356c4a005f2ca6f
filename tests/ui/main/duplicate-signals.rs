#[process_runtime::main(signals = false, signals = true)]
fn main() {}
