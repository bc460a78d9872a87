//! Embeds the real samples the fuzzer starts from: every file of `events/` and `config/`, and
//! the recorded audit chains of `tests/fixtures/audit/` (their action reports are the payload
//! samples of the approval gate and the recorder). A file added there is a seed at the next
//! build.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = String::from(
        "/// (path from the repository root, contents)\npub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for dir in ["events", "config", "tests/fixtures/audit"] {
        let path = root.join(dir);
        println!("cargo:rerun-if-changed={}", path.display());
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".md") {
                continue;
            }
            println!("cargo:rerun-if-changed={}", file.display());
            let _ = writeln!(
                out,
                "    ({:?}, include_bytes!({:?})),",
                format!("{dir}/{name}"),
                file.display().to_string()
            );
        }
    }
    out.push_str("];\n");
    let Ok(dest) = std::env::var("OUT_DIR") else {
        return;
    };
    let _ = std::fs::write(Path::new(&dest).join("samples.rs"), out);
}
