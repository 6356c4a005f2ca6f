#[process_runtime::main(signal = false)]
fn main() {}
