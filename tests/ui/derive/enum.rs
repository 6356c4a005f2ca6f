use process_runtime::Process;

#[derive(Process)]
enum Job {
    Small,
    Large,
}

fn main() {}
