//! The layering of the client API (`src/http/mod.rs` describes it), checked on the
//! sources: every `.rs` file under `src/http` is classified by its first module below
//! `http`, and every path it names that resolves into `crate::http` (a `use` tree, an
//! expression or attribute path starting with `crate::`, `super::` or `self::`) must
//! reach only what its class may import:
//!
//! - `common`, the shared layer: only `common`.
//! - `openapi`, the documentation: `common` and `openapi`.
//! - `front` and `auth`, the middleware: `common` (and itself).
//! - every other module is an area: `common`, `openapi` and itself (never another
//!   area, the middleware, or an item of the root module).
//! - `mod.rs`, the root that merges the areas: anything.
//!
//! The node's background tasks (housekeeping, liveness, watches, streams, the oversize
//! check, search sync and indexing) name nothing of `crate::http`. Comments and string
//! literals are skipped; inline modules (`mod tests { use super::*; }`) resolve
//! `super` from where they are.

use std::path::{Path, PathBuf};

/// What a file of `src/http` may name there (besides its own module), by its first
/// module below `http`; `None`: anything.
fn allowed(top: &str) -> Option<Vec<&str>> {
    match top {
        "" => None,
        "common" => Some(vec!["common"]),
        "openapi" => Some(vec!["common", "openapi"]),
        "front" | "auth" => Some(vec!["common", top]),
        area => Some(vec!["common", "openapi", area]),
    }
}

/// Modules outside `src/http` that name nothing of it: the background tasks (each a
/// file `NAME.rs`, a directory `NAME/`, or both).
const BACKGROUND: &[&str] = &[
    "housekeeping",
    "liveness",
    "oversized",
    "streams",
    "watches",
    "search",
];

#[derive(Debug, Clone, PartialEq)]
struct Tok {
    text: String,
    line: usize,
}

/// The tokens of Rust source that matter here: words, `::` and single punctuation,
/// with comments, strings and character literals left out.
fn tokens(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    // Skips to the end of a string starting at `i` (the opening quote); returns the
    // index after it and counts lines.
    let skip_string = |mut i: usize, hashes: usize, raw: bool, line: &mut usize| {
        i += 1;
        while i < c.len() {
            match c[i] {
                '\\' if !raw => i += 1,
                '\n' => *line += 1,
                '"' if (1..=hashes).all(|h| at(i + h) == '#') => return i + 1 + hashes,
                _ => {}
            }
            i += 1;
        }
        i
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(c[i] == '\n');
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_string(i, 0, false, &mut line);
        } else if (ch == 'r' || (ch == 'b' && at(i + 1) == 'r'))
            && matches!(at(i + 1 + usize::from(ch == 'b')), '"' | '#')
            && {
                let mut j = i + 1 + usize::from(ch == 'b');
                while at(j) == '#' {
                    j += 1;
                }
                at(j) == '"'
            }
        {
            let start = i + 1 + usize::from(ch == 'b');
            let hashes = (start..).take_while(|&j| at(j) == '#').count();
            i = skip_string(start + hashes, hashes, true, &mut line);
        } else if ch == 'b' && at(i + 1) == '"' {
            i = skip_string(i + 1, 0, false, &mut line);
        } else if ch == '\'' || (ch == 'b' && at(i + 1) == '\'') {
            let q = i + usize::from(ch == 'b');
            if at(q + 1) == '\\' {
                i = q + 3; // after the backslash and the character it escapes
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(q + 2) == '\'' {
                i = q + 3;
            } else {
                i = q + 1; // a lifetime or label: its name follows as a word
            }
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let text: String = c[start..i].iter().collect();
            out.push(Tok { text, line });
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Tok {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Tok {
                text: ch.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

fn is_word(t: &str) -> bool {
    t.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Expands the use tree at `toks[i]` under `prefix` into full paths; returns the index
/// after the tree.
fn use_tree(
    toks: &[Tok],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        let Some(t) = toks.get(i) else { return i };
        match t.text.as_str() {
            "{" => {
                i += 1;
                while toks.get(i).is_some_and(|t| t.text != "}") {
                    i = use_tree(toks, i, prefix.clone(), out);
                    if toks.get(i).is_some_and(|t| t.text == ",") {
                        i += 1;
                    }
                }
                return i + 1;
            }
            "*" => {
                prefix.push("*".into());
                out.push(prefix);
                return i + 1;
            }
            "::" => i += 1,
            w if is_word(w) => {
                i += 1;
                if toks.get(i).is_some_and(|t| t.text == "::") {
                    prefix.push(w.into());
                    i += 1;
                    continue;
                }
                if w != "self" {
                    prefix.push(w.into());
                }
                out.push(prefix);
                if toks.get(i).is_some_and(|t| t.text == "as") {
                    i += 2;
                }
                return i;
            }
            _ => return i,
        }
    }
}

/// Every path of `src` that starts at `crate`, `super` or `self`, resolved from the
/// module `module` (its segments from the crate root), with its line.
fn paths(src: &str, module: &[&str]) -> Vec<(usize, String, Vec<String>)> {
    let toks = tokens(src);
    let mut out = Vec::new();
    // Inline modules open: (name, brace depth outside it).
    let (mut inline, mut depth): (Vec<(String, usize)>, usize) = (Vec::new(), 0);
    let mut i = 0;
    while i < toks.len() {
        let here: Vec<String> = module
            .iter()
            .map(|s| s.to_string())
            .chain(inline.iter().map(|(n, _)| n.clone()))
            .collect();
        let t = toks[i].text.as_str();
        let prev = i.checked_sub(1).map(|p| toks[p].text.as_str());
        let mut found = Vec::new();
        if t == "mod" && toks.get(i + 2).is_some_and(|t| t.text == "{") {
            inline.push((toks[i + 1].text.clone(), depth));
            depth += 1;
            i += 3;
            continue;
        } else if t == "{" {
            depth += 1;
        } else if t == "}" {
            depth = depth.saturating_sub(1);
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
        } else if t == "use" {
            let line = toks[i].line;
            let mut trees = Vec::new();
            i = use_tree(&toks, i + 1, Vec::new(), &mut trees);
            found.extend(trees.into_iter().map(|p| (line, p)));
        } else if matches!(t, "crate" | "super" | "self")
            && prev != Some("::")
            && toks.get(i + 1).is_some_and(|t| t.text == "::")
        {
            let line = toks[i].line;
            let mut p = vec![t.to_string()];
            let mut j = i + 1;
            while toks.get(j).is_some_and(|t| t.text == "::")
                && toks.get(j + 1).is_some_and(|t| is_word(&t.text))
            {
                p.push(toks[j + 1].text.clone());
                j += 2;
            }
            found.push((line, p));
            i = j - 1;
        }
        for (line, p) in found {
            if let Some(abs) = resolve(&here, &p) {
                out.push((line, p.join("::"), abs));
            }
        }
        i += 1;
    }
    out
}

/// `p` as segments from the crate root, seen from module `here`; `None` for paths that
/// do not start at `crate`, `super` or `self` (other crates, local names).
fn resolve(here: &[String], p: &[String]) -> Option<Vec<String>> {
    match p.first()?.as_str() {
        "crate" => Some(p[1..].to_vec()),
        "self" => Some(here.iter().chain(&p[1..]).cloned().collect()),
        "super" => {
            let ups = p.iter().take_while(|s| *s == "super").count();
            let base = here.get(..here.len().checked_sub(ups)?)?;
            Some(base.iter().chain(&p[ups..]).cloned().collect())
        }
        _ => None,
    }
}

/// The layering violations in `src`, the source of the file at `module` (segments
/// from the crate root), as `line: path (reason)`.
fn violations(src: &str, module: &[&str]) -> Vec<String> {
    let in_http = module.first() == Some(&"http");
    let top = module.get(1).copied().unwrap_or("");
    let may = if in_http {
        allowed(top)
    } else {
        Some(Vec::new())
    };
    let Some(may) = may else { return Vec::new() };
    let mut out = Vec::new();
    for (line, written, abs) in paths(src, module) {
        if abs.first().map(String::as_str) != Some("http") {
            continue;
        }
        let named = abs
            .get(1)
            .map_or("(the root module itself)", String::as_str);
        if !may.contains(&named) {
            let who = if in_http {
                format!("`{top}`")
            } else {
                "a background task".into()
            };
            out.push(format!(
                "{line}: `{written}` reaches `http::{named}`; {who} may name only {may:?} of crate::http"
            ));
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module of a file under `src/`, as segments from the crate root.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("a file under src/");
    let mut segs: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if segs.last().is_some_and(|s| s == "mod") {
        segs.pop();
    }
    segs
}

fn check(files: &[PathBuf], src: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).expect("readable source");
        let module = module_of(src, f);
        let module: Vec<&str> = module.iter().map(String::as_str).collect();
        for v in violations(&text, &module) {
            out.push(format!("{}:{v}", f.display()));
        }
    }
    out
}

#[test]
fn areas_import_only_the_shared_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src.join("http"), &mut files);
    assert!(files.len() > 20, "src/http holds {} files?", files.len());
    for b in BACKGROUND {
        let (dir, file) = (src.join(b), src.join(format!("{b}.rs")));
        assert!(dir.is_dir() || file.is_file(), "no module `{b}` in src/");
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        if file.is_file() {
            files.push(file);
        }
    }
    let found = check(&files, &src);
    assert!(
        found.is_empty(),
        "the client API's layering is broken (see src/http/mod.rs):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_violations() {
    let area = ["http", "search"];
    let bad = r#"
use super::common::tenant;
use super::points::{rfc3339, PtError};
use super::{common, meta};
use crate::http::{load::now_ns, openapi};
fn f() { super::watch::parse(None); crate::http::read_store(); }
#[utoipa::path(params(super::ws::X))]
fn g() {}
"#;
    let found = violations(bad, &area);
    let lines: Vec<&str> = found.iter().map(|v| v.split(':').next().unwrap()).collect();
    assert_eq!(lines, ["3", "3", "4", "5", "6", "6", "7"], "{found:#?}");
    assert!(found[0].contains("`super::points::rfc3339` reaches `http::points`"));

    let fine = r##"
//! Not [`super::meta`] in a comment, /* nor super::meta */ or a string:
use super::common::{self, body::{self, Body}};
use super::openapi::metric as doc;
use self::inner::x;
const S: &str = "super::meta::check_key";
const R: &str = r#"crate::http::load"#;
fn h<'a>(c: char) -> &'a str { if c == '{' || c == '\'' { "" } else { "}" } }
mod inner { pub fn x() {} }
#[cfg(test)]
mod tests { use super::*; fn t() { super::h('x'); } }
"##;
    assert_eq!(violations(fine, &area), Vec::<String>::new());

    // From a nested file and from a test module of a nested file.
    let nested = ["http", "points", "input"];
    let up = "use super::super::ws::Filter;\nmod tests { use super::super::super::meta; }";
    assert_eq!(violations(up, &nested).len(), 2);
    assert!(violations("use super::output::PointOut;", &nested).is_empty());
    // The shared layer, the documentation and the middleware.
    assert_eq!(
        violations("use super::openapi::X;", &["http", "common"]).len(),
        1
    );
    assert_eq!(
        violations(
            "use super::super::points::X;",
            &["http", "common", "tenant"]
        )
        .len(),
        1
    );
    assert!(violations("use super::common::routes::OPEN;", &["http", "openapi"]).is_empty());
    assert_eq!(
        violations("fn f() { super::document(); }", &["http", "openapi"]).len(),
        1
    );
    assert_eq!(
        violations("use super::ws::stream_tenant;", &["http", "auth"]).len(),
        1
    );
    // The root may name anything; a background task nothing of crate::http.
    assert!(violations("use super::points; fn f() { points::x(); }", &["http"]).is_empty());
    let task = ["housekeeping"];
    assert_eq!(
        violations("use crate::http::common::large;", &task).len(),
        1
    );
    assert!(violations("use crate::state::AppState;", &task).is_empty());
}
