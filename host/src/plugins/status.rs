//! What `/plugins` shows: the chain that serves now, written by the validate stage when
//! it installs one, and one entry per plugin file, written by the reloader (loaded,
//! rejected) and by the chain (disabled by the circuit breaker). A file's state changes
//! when the file is loaded; the chain serves from the stage's next batch, so the two
//! can differ for as long as a batch takes.

use std::sync::{Arc, RwLock};

use serde::Serialize;

/// Where a plugin file stands.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PluginState {
    /// In the chain.
    Serving,
    /// Did not load; a previous version of the file may still serve.
    Rejected,
    /// Its circuit breaker is open.
    Disabled,
    /// Loaded and checked, not run (manifest `enabled = false`).
    Off,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PluginStatus {
    pub file: String,
    pub name: Option<String>,
    pub version: Option<String>,
    pub wit_version: Option<String>,
    /// How the host crosses into it, e.g. `validator reading user_id, country`.
    pub contract: Option<String>,
    pub state: PluginState,
    pub order: Option<i64>,
    pub last_error: Option<String>,
}

/// The chain the validate stage runs its batches on.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Serving {
    /// 1 for the chain the host started with, one more for each chain installed since.
    pub generation: u64,
    /// When it was installed (UTC, `YYYY-MM-DD hh:mm:ss`).
    pub since: String,
    /// Its plugins in order, as `name@version` (the events' `processed_by`).
    pub chain: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Board {
    pub serving: Serving,
    pub files: Vec<PluginStatus>,
}

pub type PluginBoard = Arc<RwLock<Board>>;

pub fn new_board() -> PluginBoard {
    Arc::new(RwLock::new(Board::default()))
}

/// The validate stage installed `chain`: the next generation serves.
pub fn installed(board: &PluginBoard, chain: Vec<String>) {
    if let Ok(mut b) = board.write() {
        b.serving = Serving {
            generation: b.serving.generation + 1,
            since: crate::timefmt::now(),
            chain,
        };
    }
}

/// Replace the entry for `file` (or add it).
pub fn set(board: &PluginBoard, status: PluginStatus) {
    if let Ok(mut board) = board.write() {
        let entries = &mut board.files;
        match entries.iter_mut().find(|s| s.file == status.file) {
            Some(entry) => *entry = status,
            None => entries.push(status),
        }
        entries.sort_by(|a, b| a.file.cmp(&b.file));
    }
}

pub fn remove(board: &PluginBoard, file: &str) {
    if let Ok(mut board) = board.write() {
        board.files.retain(|s| s.file != file);
    }
}

/// Change the state (and error) of the entry for `file`, if there is one.
pub fn mark(board: &PluginBoard, file: &str, state: PluginState, error: Option<String>) {
    if let Ok(mut board) = board.write() {
        if let Some(entry) = board.files.iter_mut().find(|s| s.file == file) {
            entry.state = state;
            entry.last_error = error;
        }
    }
}

/// Plugin files that serve in no version: rejected at their first load (a rule that
/// was deployed and does not judge), one line each, for `/health`.
pub fn not_serving(board: &PluginBoard) -> Vec<String> {
    let Ok(board) = board.read() else {
        return Vec::new();
    };
    board
        .files
        .iter()
        .filter(|s| s.state == PluginState::Rejected && s.version.is_none())
        .map(|s| {
            format!(
                "plugin {} does not serve: {}",
                s.file,
                crate::text::shown(s.last_error.as_deref().unwrap_or("rejected"), 300)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file: &str, version: Option<&str>, state: PluginState) -> PluginStatus {
        PluginStatus {
            file: file.into(),
            name: version.map(|_| "q".into()),
            version: version.map(String::from),
            wit_version: None,
            contract: None,
            state,
            order: None,
            last_error: Some("not a valid WebAssembly component\nforged".into()),
        }
    }

    #[test]
    fn only_files_that_never_served_are_reported() {
        let board = new_board();
        set(&board, entry("a.wasm", None, PluginState::Rejected));
        // Rejected, but an earlier version of the file still serves.
        set(
            &board,
            entry("b.wasm", Some("1.0.0"), PluginState::Rejected),
        );
        set(&board, entry("c.wasm", Some("1.0.0"), PluginState::Serving));
        assert_eq!(
            not_serving(&board),
            ["plugin a.wasm does not serve: not a valid WebAssembly component\\nforged"]
        );
    }

    #[test]
    fn each_installed_chain_is_the_next_generation() {
        let board = new_board();
        installed(&board, vec!["quality@1.0.0".into()]);
        installed(&board, vec!["enrich@1.0.0".into(), "quality@1.0.0".into()]);
        set(&board, entry("a.wasm", Some("1.0.0"), PluginState::Serving));
        let b = board.read().unwrap();
        assert_eq!(b.serving.generation, 2);
        assert_eq!(b.serving.chain, ["enrich@1.0.0", "quality@1.0.0"]);
        let shown = serde_json::to_value(&*b).unwrap();
        assert_eq!(shown["serving"]["generation"], 2);
        assert_eq!(shown["files"][0]["file"], "a.wasm");
    }
}
