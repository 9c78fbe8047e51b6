//! The shape of `src/` that keeps the house cheap to change: no file over 600 lines, no
//! cycle among the top-level modules (counting every `crate::X` path outside `#[cfg(test)]`
//! code), and no library module naming an item defined in `lib.rs`. Function length is
//! clippy's `too_many_lines` (threshold in `clippy.toml`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 600;

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/sink/mysql/ddl.rs` → `sink`).
fn top_module(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The file's text without `#[cfg(test)]` items (a test module, or a test-only item up to
/// the end of its braces) and without comments.
fn code_outside_tests(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            // Skip the next item: to the end of its braces, or its `;`.
            let mut depth = 0i32;
            let mut opened = false;
            for next in lines.by_ref() {
                depth += next.matches('{').count() as i32 - next.matches('}').count() as i32;
                opened |= next.contains('{');
                if (opened && depth <= 0) || (!opened && next.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Top-level modules named by `crate::X` paths, including `use crate::{a::B, c}` groups.
fn uses(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The group's parts at brace depth 0, each naming a module first.
            let mut depth = 0;
            let mut parts = vec![String::new()];
            for c in group.chars() {
                match c {
                    '}' if depth == 0 => break,
                    ',' if depth == 0 => parts.push(String::new()),
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 && c != ',' && c != '}' {
                    parts.last_mut().unwrap().push(c);
                }
            }
            for part in parts {
                let name: String = part
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| top_module(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let module = top_module(f);
        if module == "lib" || module == "main" {
            continue;
        }
        let code = code_outside_tests(&std::fs::read_to_string(f).unwrap());
        let edges = graph.entry(module.clone()).or_default();
        for used in uses(&code) {
            if used != module && (modules.contains(&used) || used == "lib") {
                edges.insert(used);
            }
        }
    }
    graph
}

/// A cycle through `start`, if any, as the modules on it.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                return Some(path.clone());
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_file_in_src_is_over_600_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_FILE_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_FILE_LINES} lines: {long:?}");
}

#[test]
fn the_top_level_modules_have_no_cycle() {
    let graph = graph();
    let cycles: Vec<Vec<String>> = graph.keys().filter_map(|m| cycle_from(&graph, m)).collect();
    assert!(cycles.is_empty(), "cycles: {cycles:?}");
}

#[test]
fn no_library_module_names_an_item_of_lib_rs() {
    let graph = graph();
    let users: Vec<&String> = graph
        .iter()
        .filter(|(_, used)| used.contains("lib"))
        .map(|(m, _)| m)
        .collect();
    // `crate::X` where X is defined in lib.rs: an item rather than a module.
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let items: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| {
            let l = l
                .trim_start()
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ");
            [
                "fn ", "enum ", "struct ", "const ", "static ", "type ", "trait ",
            ]
            .iter()
            .find_map(|k| l.strip_prefix(k))
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect()
            })
        })
        .collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut naming = Vec::new();
    for f in &files {
        if matches!(top_module(f).as_str(), "lib" | "main") {
            continue;
        }
        let code = code_outside_tests(&std::fs::read_to_string(f).unwrap());
        for used in uses(&code) {
            if items.contains(&used) {
                naming.push(format!("{} names crate::{used}", f.display()));
            }
        }
    }
    assert!(users.is_empty() && naming.is_empty(), "{naming:?}");
}

#[test]
fn the_checker_reads_use_groups_and_skips_tests() {
    let code =
        "use crate::{a::B, c, k::{l, m}};\nuse crate::d::{e, f::G};\nlet x = crate::h::i();\n\
                #[cfg(test)]\nmod tests {\n    use crate::z;\n}\n// crate::y in a comment\n";
    let used = uses(&code_outside_tests(code));
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["a", "c", "d", "h", "k"]
    );
}
