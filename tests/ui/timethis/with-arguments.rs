use process_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Process, Serialize, Deserialize)]
struct Worker;

impl Lifecycle for Worker {
    type Output = ();

    #[timethis("main")]
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        Ok(())
    }

    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

fn main() {}
