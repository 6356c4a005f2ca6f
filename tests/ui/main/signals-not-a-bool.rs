#[process_runtime::main(signals = "off")]
fn main() {}
