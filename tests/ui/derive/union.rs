use process_runtime::Process;

#[derive(Process)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
