//! The tree's floors import only downwards: config, core, sys, surface, supervisor.
//! A module that reaches a floor above its own is an import loop waiting to happen
//! (parsing the configuration once depended on the metrics server).

use std::path::Path;

const FLOORS: [&str; 5] = ["config", "core", "sys", "surface", "supervisor"];

fn floor(room: &str) -> Option<usize> {
    FLOORS.iter().position(|&f| f == room)
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::ROOM` named in `text`.
fn rooms_named(text: &str) -> Vec<&str> {
    text.match_indices("crate::")
        .map(|(i, m)| {
            let rest = &text[i + m.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

#[test]
fn no_floor_imports_from_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let Some(own) = relative.iter().next().and_then(|r| floor(r.to_str()?)) else {
            continue; // lib.rs, main.rs
        };
        let text = std::fs::read_to_string(file).unwrap();
        for room in rooms_named(&text) {
            if floor(room).is_some_and(|f| f > own) {
                upward.push(format!("{} -> {room}", relative.display()));
            }
        }
    }
    assert!(files.len() > 40, "found the sources ({})", files.len());
    assert!(upward.is_empty(), "imports upward: {upward:#?}");
}

#[test]
fn the_check_sees_an_upward_import() {
    assert_eq!(
        rooms_named("use crate::supervisor::terminate; crate::core::x"),
        ["supervisor", "core"]
    );
}
