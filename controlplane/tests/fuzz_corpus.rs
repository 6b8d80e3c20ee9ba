//! Replays every saved input of the control plane's fuzz targets (`fuzz/corpus/TARGET/` and the
//! crashes turned into regressions, `fuzz/regressions/TARGET/`) through the same functions the
//! targets call, on stable, so that CI checks them all without libFuzzer.

use std::path::{Path, PathBuf};

/// Runs `f` on every file of the target's corpus and regressions; the number of files.
fn replay(target: &str, f: fn(&[u8])) -> usize {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        files.extend(entries.map(|e| e.expect("a directory entry").path()));
    }
    files.sort();
    for path in &files {
        let data = std::fs::read(path).expect("a saved fuzz input");
        if std::panic::catch_unwind(|| f(&data)).is_err() {
            panic!("fuzz input {} fails", path.display());
        }
    }
    files.len()
}

#[test]
fn control_decode_corpus() {
    assert!(replay("control_decode", controlplane::fuzzing::control_decode) >= 20);
}

#[test]
fn flow_syntax_corpus() {
    assert!(replay("flow_syntax", controlplane::fuzzing::flow_syntax) >= 20);
}

#[test]
fn agent_config_corpus() {
    assert!(replay("agent_config", controlplane::fuzzing::agent_config) >= 4);
}

#[test]
fn openflow_decode_corpus() {
    assert!(replay("openflow_decode", controlplane::fuzzing::openflow_decode) >= 100);
}
