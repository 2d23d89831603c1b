//! Keeps the module order of `lib.rs` true: every `crate::NAME` path in a module's
//! source (imports, paths in code, doc links) must name a module below it in the list
//! `lib.rs` documents.

use std::path::{Path, PathBuf};

/// The top-level modules in the order `lib.rs`'s module map lists them.
fn documented_order(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|line| line.strip_prefix("//! - [`"))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name.to_owned()))
        .collect()
}

/// The modules `lib.rs` declares.
fn declared(lib: &str) -> Vec<String> {
    let mut names: Vec<String> = lib
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(';').to_owned())
        .collect();
    names.sort();
    names
}

/// Every top-level module named by a `crate::` path in `source`, with its line.
fn crate_paths(source: &str) -> Vec<(usize, String)> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (index, line) in source.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let preceded_by_ident = rest[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            rest = &rest[at + "crate::".len()..];
            if preceded_by_ident {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a::X, b};`: the first segment of each item.
                let inside = group.split('}').next().unwrap_or("");
                for item in inside.split(',') {
                    let name = ident(item.trim());
                    if !name.is_empty() {
                        found.push((index + 1, name));
                    }
                }
            } else {
                let name = ident(rest);
                if !name.is_empty() {
                    found.push((index + 1, name));
                }
            }
        }
    }
    found
}

/// Each use of a module at or above the user in `order`, as `file:line: message`.
fn violations(order: &[String], files: &[(String, PathBuf, String)]) -> Vec<String> {
    let rank = |name: &str| order.iter().position(|m| m == name);
    let mut found = Vec::new();
    for (module, path, source) in files {
        let Some(own) = rank(module) else { continue };
        for (line, used) in crate_paths(source) {
            match rank(&used) {
                Some(other) if other <= own && used != *module => found.push(format!(
                    "{}:{line}: `{module}` uses `crate::{used}`, which lib.rs lists above it",
                    path.display()
                )),
                _ => {}
            }
        }
    }
    found
}

/// Every `.rs` file of a top-level module: `src/NAME.rs` or all of `src/NAME/`.
fn module_files(src: &Path, module: &str) -> Vec<PathBuf> {
    let file = src.join(format!("{module}.rs"));
    if file.exists() {
        return vec![file];
    }
    let mut files = Vec::new();
    let mut folders = vec![src.join(module)];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn modules_use_only_modules_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let order = documented_order(&lib);
    let mut listed = order.clone();
    listed.sort();
    assert_eq!(
        listed,
        declared(&lib),
        "lib.rs's module map must list every module it declares"
    );
    let mut files = Vec::new();
    for module in &order {
        for path in module_files(&src, module) {
            let source = std::fs::read_to_string(&path).unwrap();
            files.push((module.clone(), path, source));
        }
    }
    assert!(files.len() > order.len(), "no module sources found");
    let found = violations(&order, &files);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_check_catches_an_upward_use() {
    let order: Vec<String> = ["app", "pipeline", "sandbox"].map(String::from).to_vec();
    let file = |module: &str, source: &str| {
        (
            module.to_owned(),
            PathBuf::from(format!("src/{module}.rs")),
            source.to_owned(),
        )
    };
    let files = [
        file("app", "use crate::pipeline::Pipeline;\nuse crate::sandbox;"),
        file(
            "pipeline",
            "use crate::{sandbox::X, app};\nfn f() { crate::pipeline::g() }",
        ),
        file(
            "sandbox",
            "//! See [`crate::pipeline`].\nlet x = mycrate::app::y;",
        ),
    ];
    assert_eq!(
        violations(&order, &files),
        [
            "src/pipeline.rs:1: `pipeline` uses `crate::app`, which lib.rs lists above it",
            "src/sandbox.rs:1: `sandbox` uses `crate::pipeline`, which lib.rs lists above it",
        ]
    );
}
