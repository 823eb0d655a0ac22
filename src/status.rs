//! `mcpinit status` and `mcpinit health`: read the state file a running mcpinit keeps.
//! (Being written by the operator-experience work: human rendering and health checks.)

use std::path::PathBuf;

pub fn status(json: bool, state_file: Option<PathBuf>) -> i32 {
    let path = state_file.unwrap_or_else(|| PathBuf::from(crate::state::PRIMARY));
    match std::fs::read_to_string(&path) {
        Ok(text) if json => {
            print!("{text}");
            0
        }
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!(
                "mcpinit: no running mcpinit found ({}: {e})",
                path.display()
            );
            1
        }
    }
}

pub fn health(state_file: Option<PathBuf>) -> i32 {
    status(true, state_file).min(1)
}
