#[process_runtime::main(signals)]
fn main() {}
