#[process_runtime::main]
struct Main;

fn main() {}
