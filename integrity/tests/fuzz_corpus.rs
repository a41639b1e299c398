//! Replays the fuzz campaign's minimized corpus (`fuzz/corpus-min/<target>/`) and every crash
//! it found and fixed (`fuzz/regressions/<target>/`) through the same checks the cargo-fuzz
//! targets run (`fuzz/checks.rs`), so a format change that breaks one of them fails here,
//! without nightly Rust or libFuzzer. The campaign itself runs by hand (docs/RELIABILITY.md).

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::path::Path;

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 6] = [
    ("chunk_reader", checks::chunk_reader),
    ("amf0", checks::amf0),
    ("flv", checks::flv),
    ("http_chunked", checks::http_chunked),
    ("signature_message", checks::signature_message),
    ("signatures", checks::signatures),
];

fn inputs(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

#[test]
fn every_corpus_input_and_fixed_crash_passes_its_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for (name, check) in TARGETS {
        let corpus = inputs(&root.join("corpus-min").join(name));
        let fixed = inputs(&root.join("regressions").join(name));
        assert!(
            !corpus.is_empty(),
            "no corpus for {name} in fuzz/corpus-min/{name}"
        );
        for input in corpus.iter().chain(&fixed) {
            check(input);
        }
    }
}

#[test]
fn the_checks_hold_on_simple_inputs() {
    for (_, check) in TARGETS {
        check(b"");
        check(b"\x00");
        check(&[0xff; 300]);
    }
    // A signed stream left untouched: every op is a no-op (kind 5).
    let mut untouched = vec![3u8; 64];
    untouched.extend_from_slice(&[5, 0, 0, 5, 1, 1]);
    checks::signatures(&untouched);
}
