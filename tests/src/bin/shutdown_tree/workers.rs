//! The processes the shutdown programs start. Each writes its pid to `<dir>/<name>.pid`
//! when it starts and a marker `<dir>/<name>.finished` when its `on_finish` has run,
//! so that the test can tell what ran and check that no process is left.

use std::path::Path;
use std::time::Duration;

use process_runtime::prelude::*;
use process_runtime_tests::{sleep_forever, wait_for_file, write_atomically};
use serde::{Deserialize, Serialize};

fn file(dir: &str, name: &str) -> String {
    Path::new(dir).join(name).to_string_lossy().into_owned()
}

/// Writes this process's pid to `<dir>/<name>.pid`.
fn write_pid(dir: &str, name: &str, cx: &Context) -> Outcome {
    write_atomically(&file(dir, &format!("{name}.pid")), &cx.pid().to_string())?;
    Ok(())
}

/// Writes `<dir>/<name>.finished`.
fn mark_finished(dir: &str, name: &str, contents: &str) -> Outcome {
    write_atomically(&file(dir, &format!("{name}.finished")), contents)?;
    Ok(())
}

/// Waits until `<dir>/<name>.pid` exists; returns the pid.
///
/// # Panics
/// After 20 s without it.
pub fn pid_of(dir: &str, name: &str) -> u32 {
    wait_for_file(
        Path::new(&file(dir, &format!("{name}.pid"))),
        Duration::from_secs(20),
    )
    .unwrap_or_else(|| panic!("{name} never wrote its pid"))
    .parse()
    .expect("a pid")
}

/// Laps of 20 ms until stopped; its `on_finish` takes `finish_ms`.
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.loop = "10s")]
pub struct Worker {
    pub dir: String,
    pub name: String,
    pub finish_ms: u64,
}

impl Lifecycle for Worker {
    type Output = String;
    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        if cx.lap() == 0 {
            write_pid(&self.dir, &self.name, cx)?;
        }
        Ok(())
    }
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }
    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(self.finish_ms));
        mark_finished(&self.dir, &self.name, "ok")
    }
    fn result(&mut self, _cx: &mut Context) -> Result<String, BoxError> {
        Ok(self.name.clone())
    }
}

/// Starts a [`Worker`] named `leaf` (whose `on_finish` takes 300 ms), then waits in
/// `main_loop` until it has ended: only a stop passed on to the leaf ends that wait.
/// Its `on_finish` records whether the leaf had ended by then.
#[derive(Process, Serialize, Deserialize)]
pub struct Nested {
    pub dir: String,
    #[serde(skip)]
    pub leaf: Option<Handle<String>>,
}

impl Lifecycle for Nested {
    type Output = String;
    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        if cx.lap() == 0 {
            let leaf = Worker {
                dir: self.dir.clone(),
                name: "leaf".into(),
                finish_ms: 300,
            }
            .start()?;
            self.leaf = Some(leaf);
            write_pid(&self.dir, "nested", cx)?;
        }
        Ok(())
    }
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        if let Some(leaf) = &self.leaf {
            leaf.wait();
        }
        Ok(())
    }
    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        let leaf = self.leaf.as_ref().ok_or("no leaf")?;
        let leaf_done = Path::new(&file(&self.dir, "leaf.finished")).exists();
        mark_finished(
            &self.dir,
            "nested",
            &format!(
                "leaf alive: {}, leaf finished: {leaf_done}, leaf result: {:?}",
                leaf.is_alive(),
                leaf.result_timeout(Duration::ZERO)
            ),
        )
    }
    fn result(&mut self, _cx: &mut Context) -> Result<String, BoxError> {
        Ok("nested".into())
    }
}

/// A daemon: laps until killed. Its `on_finish` must not run in a shutdown.
#[derive(Process, Serialize, Deserialize)]
#[process(daemon = true)]
pub struct Daemon {
    pub dir: String,
}

impl Lifecycle for Daemon {
    type Output = ();
    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        if cx.lap() == 0 {
            write_pid(&self.dir, "daemon", cx)?;
        }
        Ok(())
    }
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }
    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        mark_finished(&self.dir, "daemon", "ran")
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Laps until stopped, then hangs in `on_finish` (past its limit, 1 s unless the
/// program starts it with another).
#[derive(Process, Serialize, Deserialize)]
#[process(timeout.onfinish = "1s")]
pub struct Hung {
    pub dir: String,
}

impl Lifecycle for Hung {
    type Output = ();
    fn preloop(&mut self, cx: &mut Context) -> Outcome {
        if cx.lap() == 0 {
            write_pid(&self.dir, "hung", cx)?;
        }
        Ok(())
    }
    fn main_loop(&mut self, _cx: &mut Context) -> Outcome {
        std::thread::sleep(Duration::from_millis(20));
        Ok(())
    }
    fn on_finish(&mut self, _cx: &mut Context) -> Outcome {
        write_atomically(&file(&self.dir, "hung.on_finish"), "entered")?;
        sleep_forever()
    }
    fn result(&mut self, _cx: &mut Context) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Writes `<dir>/<name>` (what the program itself reports).
///
/// # Panics
/// If it cannot.
pub fn report(dir: &str, name: &str, contents: &str) {
    write_atomically(&file(dir, name), contents).expect("write a report");
}
