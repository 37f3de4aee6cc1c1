//! The layering `docs/architecture.md` describes, checked on the source tree: front ends never
//! reach the token or the store, SQL lives only in the store, the top-level modules form no
//! cycle, and the crate denies missing docs and unsafe code (with one reasoned exception).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The code of a file: comment lines dropped, and the unit-test module at its end cut off.
fn code(p: &Path) -> String {
    let text = std::fs::read_to_string(p).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// (path relative to `src/`, code) of every library source file.
fn library() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(src()).unwrap().display().to_string();
            let c = code(&p);
            (rel, c)
        })
        .filter(|(rel, _)| !rel.starts_with("bin/") && rel != "main.rs")
        .collect()
}

#[test]
fn front_ends_never_name_the_token_or_the_store() {
    let lib = library();
    let front: Vec<_> = lib
        .iter()
        .filter(|(rel, _)| {
            rel.starts_with("api/")
                || rel.starts_with("cli/")
                || rel.starts_with("server/")
                || rel.starts_with("console/")
        })
        .collect();
    assert!(front.len() >= 10, "found the front ends: {}", front.len());
    for (rel, c) in front {
        for forbidden in ["crate::hsm", "crate::store"] {
            assert!(!c.contains(forbidden), "src/{rel} names {forbidden}");
        }
    }
}

#[test]
fn sql_lives_only_in_the_store() {
    let lib = library();
    let mut with_sqlx = 0;
    for (rel, c) in &lib {
        if c.contains("sqlx") {
            with_sqlx += 1;
            assert!(rel.starts_with("store/"), "src/{rel} uses sqlx");
        }
    }
    assert!(
        with_sqlx >= 4,
        "the store itself uses sqlx ({with_sqlx} files)"
    );
}

#[test]
fn top_level_modules_form_no_cycle() {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, c) in library() {
        if rel == "lib.rs" {
            continue;
        }
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        let entry = deps.entry(top.clone()).or_default();
        for part in c.split("crate::").skip(1) {
            let name: String = part
                .chars()
                .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                .collect();
            if !name.is_empty() && name != top {
                entry.insert(name);
            }
        }
    }
    assert!(deps.len() >= 14, "{:?}", deps.keys());
    assert!(
        deps["api"].contains("ra") && deps["console"].contains("ra"),
        "the scan sees imports: {deps:?}"
    );
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(n) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == n) {
            panic!("module cycle: {} -> {n}", path[i..].join(" -> "));
        }
        path.push(n.to_string());
        for d in deps.get(n).into_iter().flatten() {
            visit(d, deps, path, done);
        }
        path.pop();
        done.insert(n.to_string());
    }
    let mut done = BTreeSet::new();
    for n in deps.keys() {
        visit(n, &deps, &mut Vec::new(), &mut done);
    }
    // The layers, outermost first: no module may depend on one listed before it.
    let order = [
        "cli", "api", "console", "server", "service", "ra", "ocsp", "ca", "store", "hsm",
    ];
    for (i, outer) in order.iter().enumerate() {
        for inner in &order[i + 1..] {
            assert!(
                !deps.get(*inner).is_some_and(|d| d.contains(*outer)),
                "{inner} depends on {outer}, a layer above it"
            );
        }
    }
}

#[test]
fn the_crate_denies_missing_docs_and_unsafe_code() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    assert!(lib.contains("#![deny(missing_docs)]"));
    assert!(lib.contains("#![deny(unsafe_code)]"));
    let allows: Vec<String> = library()
        .into_iter()
        .filter(|(_, c)| c.contains("allow(unsafe_code)"))
        .map(|(rel, _)| rel)
        .collect();
    assert_eq!(
        allows,
        vec!["config/mod.rs".to_string()],
        "one reasoned exception"
    );
}
