//! Compiles the profile files in `policies/` into the binary as the built-in defaults.
use std::fmt::Write;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("policies/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
        .collect();
    entries.sort();
    let mut out = String::from("&[\n");
    for p in entries {
        let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
        if stem.starts_with("hierarchy") {
            continue;
        }
        println!("cargo:rerun-if-changed={}", p.display());
        writeln!(
            out,
            "    ({stem:?}, include_str!({:?})),",
            p.display().to_string()
        )
        .unwrap();
    }
    out.push(']');
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("policies.rs");
    std::fs::write(dest, out).unwrap();
}
