//! The crate's dependencies point one way: no production source file
//! imports, directly or through others, a file that imports it back.
//!
//! Reads `src/` as text: every `use` path and every inline `crate::`,
//! `super::` or `self::` path is resolved to the file that defines the
//! module it names, giving a graph of files; a strongly connected
//! component of more than one file is a cycle, reported with the imports
//! that make it. Test-only code (`#[cfg(test)]` modules, inline or in
//! their own files) is left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path (`["health", "scheduler"]`) and the file defining it.
struct Module {
    path: Vec<String>,
    file: PathBuf,
    text: String,
}

fn collect(dir: &Path, root: &Path, modules: &mut Vec<Module>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src is readable")
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, root, modules);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap();
            let mut segments: Vec<String> = rel
                .iter()
                .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if matches!(segments.last().map(String::as_str), Some("mod" | "lib")) {
                segments.pop();
            }
            if segments == ["main"] {
                continue; // the binary: a leaf above everything
            }
            let text = std::fs::read_to_string(&path).unwrap();
            modules.push(Module {
                path: segments,
                file: path,
                text,
            });
        }
    }
}

/// The text with test-only modules removed: `#[cfg(test)] mod x { ... }`
/// blocks (by brace matching) and `#[cfg(test)] mod x;` declarations,
/// whose names are returned so their files can be left out too.
fn production_text(text: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut test_modules = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        let Some(decl) = after
            .strip_prefix("pub(crate) mod ")
            .or_else(|| after.strip_prefix("pub mod "))
            .or_else(|| after.strip_prefix("mod "))
        else {
            // cfg(test) on an item other than a module: skip the attribute only.
            rest = after;
            continue;
        };
        let name: String = decl
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let decl = decl[name.len()..].trim_start();
        if let Some(body) = decl.strip_prefix(';') {
            test_modules.push(name);
            rest = body;
        } else if decl.starts_with('{') {
            let mut depth = 0usize;
            let mut end = decl.len();
            for (i, c) in decl.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            rest = &decl[end..];
        } else {
            rest = decl;
        }
    }
    out.push_str(rest);
    (out, test_modules)
}

/// Expands one `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(p).into_iter().map(move |e| format!("{prefix}{e}")))
        .collect()
}

/// Every module path the text refers to, as written (`crate::a::b`,
/// `super::x`, `child::y`). Comments are left out, so a doc link is not
/// an import.
fn references(text: &str) -> Vec<String> {
    // Comments are left out, but for the intra-doc links of doc comments
    // (``[`super::x`]``): rustdoc resolves them, so a link to a module that
    // imports this one is a cycle in the documentation as in the code.
    let code: String = text
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => {
                let mut kept = line[..at].to_string();
                let comment = &line[at..];
                if comment.starts_with("///") || comment.starts_with("//!") {
                    for link in comment.split("[`").skip(1) {
                        if let Some(end) = link.find("`]") {
                            let path = link[..end].rsplit('@').next().unwrap_or("");
                            kept.push(' ');
                            kept.push_str(path);
                        }
                    }
                }
                kept
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut refs = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("use ") {
        let line_start = rest[..at].rfind('\n').map_or(0, |i| i + 1);
        let lead = rest[line_start..at].trim();
        rest = &rest[at + 4..];
        if !matches!(lead, "" | "pub" | "pub(crate)" | "pub(super)") {
            continue;
        }
        // A `use` item is a path tree; anything else that starts a line
        // with "use " (a line of a string) is not one.
        if let Some(end) = rest.find(';')
            && rest[..end]
                .chars()
                .all(|c| c.is_alphanumeric() || "_:{}, *\n\t".contains(c))
        {
            refs.extend(expand(&rest[..end]));
        }
    }
    for prefix in ["crate::", "super::", "self::"] {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(prefix) {
            let path: String = rest[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            // `super::{a, b}` is a use tree, already expanded above.
            if !path.ends_with("::") {
                refs.push(path);
            }
            rest = &rest[at + prefix.len()..];
        }
    }
    refs
}

/// The crate's production modules, each with its text less test modules.
fn production_modules(root: &Path) -> Vec<Module> {
    let mut modules = Vec::new();
    collect(root, root, &mut modules);
    let mut test_only: BTreeSet<Vec<String>> = BTreeSet::new();
    for module in &mut modules {
        let (text, tests) = production_text(&module.text);
        for name in tests {
            let mut path = module.path.clone();
            path.push(name);
            test_only.insert(path);
        }
        module.text = text;
    }
    modules.retain(|m| !test_only.iter().any(|t| m.path.starts_with(t)));
    modules
}

#[test]
fn no_production_source_file_is_part_of_an_import_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = production_modules(&root);
    let by_path: BTreeMap<Vec<String>, usize> = modules
        .iter()
        .enumerate()
        .map(|(i, m)| (m.path.clone(), i))
        .collect();
    let is_dir_module = |m: &Module| {
        matches!(
            m.file.file_name().and_then(|f| f.to_str()),
            Some("mod.rs" | "lib.rs")
        )
    };

    // file -> (imported file, the path that imports it)
    let mut edges: BTreeMap<usize, BTreeMap<usize, String>> = BTreeMap::new();
    for (here_path, &here) in &by_path {
        let module = &modules[here];
        for reference in references(&module.text) {
            let mut segments: Vec<&str> = reference.split("::").filter(|s| !s.is_empty()).collect();
            let mut base: Vec<String> = match segments.first().copied() {
                Some("crate") => {
                    segments.remove(0);
                    Vec::new()
                }
                Some("self") => {
                    segments.remove(0);
                    here_path.clone()
                }
                Some("super") => {
                    let mut base = here_path.clone();
                    while segments.first() == Some(&"super") {
                        segments.remove(0);
                        base.pop();
                    }
                    base
                }
                Some(first) => {
                    // A child module named without `self::` (2018 paths).
                    let mut child = here_path.clone();
                    child.push(first.to_string());
                    if !by_path.contains_key(&child) || !is_dir_module(module) {
                        continue; // an external crate or a local item
                    }
                    here_path.clone()
                }
                None => continue,
            };
            // The longest prefix that is a module file of ours.
            let mut target = by_path.get(&base).copied();
            for segment in segments {
                base.push(segment.to_string());
                match by_path.get(&base) {
                    Some(&file) => target = Some(file),
                    None => break,
                }
            }
            if let Some(target) = target
                && target != here
            {
                edges
                    .entry(here)
                    .or_default()
                    .entry(target)
                    .or_insert(reference);
            }
        }
    }

    // Which files reach which (tiny graph: a closure by search is enough).
    let reach = |from: usize| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(f) = stack.pop() {
            for &to in edges.get(&f).map(|e| e.keys()).into_iter().flatten() {
                if seen.insert(to) {
                    stack.push(to);
                }
            }
        }
        seen
    };
    let name = |f: usize| {
        modules[f]
            .file
            .strip_prefix(root.parent().unwrap())
            .unwrap()
            .display()
            .to_string()
    };
    let mut problems = Vec::new();
    for (&from, targets) in &edges {
        for (&to, path) in targets {
            if reach(to).contains(&from) {
                problems.push(format!(
                    "{} imports {} (`{path}`), which imports it back",
                    name(from),
                    name(to)
                ));
            }
        }
    }
    assert!(
        edges.len() > 10,
        "the import graph is implausibly small; the reader is broken"
    );
    assert!(
        problems.is_empty(),
        "import cycles between production source files:\n  {}\n\
         move the shared item down into a module both may import",
        problems.join("\n  ")
    );
}

#[test]
fn the_reader_finds_a_cycle_when_there_is_one() {
    // The parts the check is made of, on a made-up pair of files.
    let refs = references("use crate::a::{b, c::{d, e}};\nfn f() { crate::z::g(); }");
    assert!(refs.contains(&"crate::a::b".to_string()), "{refs:?}");
    assert!(refs.contains(&"crate::a::c::e".to_string()), "{refs:?}");
    assert!(
        refs.iter().any(|r| r.starts_with("crate::z::g")),
        "{refs:?}"
    );
    let refs =
        references("//! Beside [`mod@super::fast`]; see `super::not_a_link`.\n// [`super::plain`]");
    assert_eq!(
        refs,
        ["super::fast"],
        "doc links count, other comments do not"
    );
    let (text, tests) = production_text(
        "use crate::x;\n#[cfg(test)]\nmod tests {\n use crate::y; { }\n}\n#[cfg(test)]\nmod other;\nuse crate::w;",
    );
    assert!(text.contains("crate::x") && text.contains("crate::w"));
    assert!(!text.contains("crate::y"), "{text}");
    assert_eq!(tests, ["other"]);
}

#[test]
fn no_production_source_file_is_over_its_size_budget() {
    // Long files hide several concerns. Tests beside the code may make a
    // file longer; what counts is the text before its test module.
    const BUDGET: usize = 700;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let over: Vec<String> = production_modules(&root)
        .iter()
        .filter_map(|m| {
            let lines = m.text.lines().count();
            (lines > BUDGET).then(|| format!("{} ({lines} lines)", m.file.display()))
        })
        .collect();
    assert!(
        over.is_empty(),
        "production files over {BUDGET} lines: {over:?}; split them by concern"
    );
}
