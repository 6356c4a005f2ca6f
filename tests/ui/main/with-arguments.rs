#[process_runtime::main(flavor = "current_thread")]
fn main() {}
