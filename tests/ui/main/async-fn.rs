#[process_runtime::main]
async fn main() {}
