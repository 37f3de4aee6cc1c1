//! Compiles the profile files in `policies/` into the binary as the built-in defaults.
use std::fmt::Write;

fn main() {
    // Read at run time, not with env!(): a build script compiled for one checkout must not
    // point at that checkout's files when reused from a shared target directory.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = std::path::Path::new(&manifest).join("policies");
    println!("cargo:rerun-if-changed={}", dir.display());
    // `sqlx::migrate!` embeds migrations/ at compile time but cannot tell cargo to watch it
    // on stable Rust: without this, a new or changed migration is missing from the next build.
    println!(
        "cargo:rerun-if-changed={}",
        std::path::Path::new(&manifest).join("migrations").display()
    );
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
