//! Keeps src/lib.rs in sync with include/disclvlm.h: the same functions (every
//! `DLV_API ... name(` of the header is declared here with the same number of
//! parameters, and nothing else is), the same status values, flags and version
//! macros, and the same dlv_train_stats fields in the same order.
//!
//! The header is DISCLVLM_HEADER if set, else ../../../include/disclvlm.h
//! relative to this crate (the source tree), else the one pkg-config's
//! includedir holds.

use disclvlm_sys::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn header_path() -> PathBuf {
    if let Some(p) = std::env::var_os("DISCLVLM_HEADER") {
        return PathBuf::from(p);
    }
    let tree = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../include/disclvlm.h");
    if tree.is_file() {
        return tree;
    }
    if let Ok(out) = Command::new("pkg-config").args(["--variable=includedir", "disclvlm"]).output()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let p = PathBuf::from(dir).join("disclvlm.h");
        if out.status.success() && p.is_file() {
            return p;
        }
    }
    panic!("cannot find disclvlm.h: set DISCLVLM_HEADER to its path");
}

fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {}", path.display(), e))
}

/// The text without /* */ and // comments (string literals in these two
/// files hold no comment markers).
fn strip_comments(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && i + 1 < b.len() && b[i + 1] == b'*' {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
            out.push(' ');
        } else if b[i] == b'/' && i + 1 < b.len() && b[i + 1] == b'/' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else {
            let ch = s[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier that ends right before byte offset `end` (spaces skipped).
fn ident_before(s: &str, end: usize) -> &str {
    let t = s[..end].trim_end();
    let start = t.rfind(|c: char| !is_ident(c)).map(|i| i + 1).unwrap_or(0);
    &t[start..]
}

/// The text between the '(' at `open` and its matching ')'.
fn parens(s: &str, open: usize) -> &str {
    let mut depth = 0;
    for (i, c) in s[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &s[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses after offset {}", open);
}

/// The number of parameters in a parameter list ("void" and "" are none).
fn arity(params: &str) -> usize {
    let p = params.trim().trim_end_matches(',').trim();
    if p.is_empty() || p == "void" {
        return 0;
    }
    let mut depth = 0;
    let mut n = 1;
    for c in p.chars() {
        match c {
            '(' | '<' | '[' => depth += 1,
            ')' | '>' | ']' => depth -= 1,
            ',' if depth == 0 => n += 1,
            _ => {}
        }
    }
    n
}

/// name -> arity of every `DLV_API ... name(...)` in the header.
fn header_functions(h: &str) -> BTreeMap<String, usize> {
    let mut fns = BTreeMap::new();
    let mut from = 0;
    while let Some(at) = h[from..].find("DLV_API") {
        let at = from + at;
        from = at + "DLV_API".len();
        // Skip the macro's own #define lines.
        let line_start = h[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
        if h[line_start..at].trim_start().starts_with('#') {
            continue;
        }
        let open = from + h[from..].find('(').expect("DLV_API without '('");
        let name = ident_before(h, open).to_string();
        assert!(name.starts_with("dlv_"), "odd declaration name '{}'", name);
        let n = arity(parens(h, open));
        assert!(fns.insert(name.clone(), n).is_none(), "{} declared twice in the header", name);
    }
    fns
}

/// name -> arity of every `fn name(...)` inside `extern "C" { ... }` blocks.
fn rust_functions(r: &str) -> BTreeMap<String, usize> {
    let mut fns = BTreeMap::new();
    let mut from = 0;
    while let Some(at) = r[from..].find("extern \"C\"") {
        let block_open = from + at + r[from + at..].find('{').unwrap();
        let mut depth = 0;
        let mut block_end = block_open;
        for (i, c) in r[block_open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        block_end = block_open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let block = &r[block_open..block_end];
        let mut f = 0;
        while let Some(k) = block[f..].find("fn ") {
            let k = f + k;
            f = k + 3;
            if k > 0 && is_ident(block[..k].chars().last().unwrap()) {
                continue;
            }
            let open = f + block[f..].find('(').unwrap();
            let name = block[f..open].trim().to_string();
            let n = arity(parens(block, open));
            assert!(fns.insert(name.clone(), n).is_none(), "{} declared twice in lib.rs", name);
        }
        from = block_end;
    }
    fns
}

/// NAME -> value of the entries of `typedef enum dlv_status { ... }`.
fn header_status_values(h: &str) -> BTreeMap<String, i64> {
    let start = h.find("typedef enum dlv_status").expect("no dlv_status enum in the header");
    let open = start + h[start..].find('{').unwrap();
    let close = open + h[open..].find('}').unwrap();
    let mut vals = BTreeMap::new();
    for entry in h[open + 1..close].split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let (name, value) = entry.split_once('=').expect("status without an explicit value");
        vals.insert(name.trim().to_string(), value.trim().parse::<i64>().unwrap());
    }
    vals
}

/// Every `#define DLV_...` of the header: NAME -> the value text.
fn header_defines(h: &str) -> BTreeMap<String, String> {
    let joined = h.replace("\\\n", " ");
    let mut defs = BTreeMap::new();
    for line in joined.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("#define ") {
            let rest = rest.trim_start();
            let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            if name.starts_with("DLV_") && !rest[name.len()..].starts_with('(') {
                defs.insert(name.clone(), rest[name.len()..].trim().to_string());
            }
        }
    }
    defs
}

/// Every `pub const NAME` of lib.rs.
fn rust_consts(r: &str) -> Vec<String> {
    r.lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .map(|rest| rest.chars().take_while(|&c| is_ident(c)).collect())
        .collect()
}

/// The field names of `struct NAME { ... }` in C or Rust source.
fn struct_fields(src: &str, marker: &str, rust: bool) -> Vec<String> {
    let start = src.find(marker).unwrap_or_else(|| panic!("no '{}'", marker));
    let open = start + src[start..].find('{').unwrap();
    let close = open + src[open..].find('}').unwrap();
    let body = &src[open + 1..close];
    let mut names = Vec::new();
    for decl in body.split(if rust { ',' } else { ';' }) {
        let decl = decl.trim();
        if decl.is_empty() {
            continue;
        }
        let name = if rust {
            decl.split(':').next().unwrap().trim().trim_start_matches("pub ").trim().to_string()
        } else {
            ident_before(decl, decl.len()).to_string()
        };
        names.push(name);
    }
    names
}

fn sources() -> (String, String) {
    let h = strip_comments(&read(&header_path()));
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
    (h, strip_comments(&read(&lib)))
}

#[test]
fn functions_match_the_header() {
    let (h, r) = sources();
    let hf = header_functions(&h);
    let rf = rust_functions(&r);
    assert!(hf.len() > 50, "the scanner found only {} functions in the header", hf.len());
    let missing: Vec<_> = hf.keys().filter(|k| !rf.contains_key(*k)).collect();
    let extra: Vec<_> = rf.keys().filter(|k| !hf.contains_key(*k)).collect();
    assert!(missing.is_empty(), "declared in disclvlm.h but not in disclvlm-sys: {:?}", missing);
    assert!(extra.is_empty(), "declared in disclvlm-sys but not in disclvlm.h: {:?}", extra);
    for (name, n) in &hf {
        assert_eq!(
            rf[name], *n,
            "{}: {} parameters in the header, {} in lib.rs",
            name, n, rf[name]
        );
    }
}

#[test]
fn status_values_match_the_header() {
    let (h, _) = sources();
    let hv = header_status_values(&h);
    let rust: BTreeMap<String, i64> = [
        ("DLV_OK", DLV_OK),
        ("DLV_E_INVALID_ARG", DLV_E_INVALID_ARG),
        ("DLV_E_IO", DLV_E_IO),
        ("DLV_E_FORMAT", DLV_E_FORMAT),
        ("DLV_E_UNSUPPORTED", DLV_E_UNSUPPORTED),
        ("DLV_E_NOMEM", DLV_E_NOMEM),
        ("DLV_E_BACKEND", DLV_E_BACKEND),
        ("DLV_E_NOT_IMPLEMENTED", DLV_E_NOT_IMPLEMENTED),
        ("DLV_E_NUMERIC", DLV_E_NUMERIC),
        ("DLV_E_CANCELLED", DLV_E_CANCELLED),
        ("DLV_E_BUFFER_TOO_SMALL", DLV_E_BUFFER_TOO_SMALL),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v as i64))
    .collect();
    assert_eq!(hv, rust, "dlv_status values differ (header, then disclvlm-sys)");
}

#[test]
fn defines_and_constants_match_the_header() {
    let (h, r) = sources();
    let defs = header_defines(&h);
    let ints: BTreeMap<String, i64> = [
        ("DLV_VERSION_MAJOR", DLV_VERSION_MAJOR as i64),
        ("DLV_VERSION_MINOR", DLV_VERSION_MINOR as i64),
        ("DLV_VERSION_PATCH", DLV_VERSION_PATCH as i64),
        ("DLV_ABI_VERSION", DLV_ABI_VERSION as i64),
        ("DLV_EMBED_HIDDEN", DLV_EMBED_HIDDEN as i64),
        ("DLV_TOKENIZE_ADD_SPECIAL", DLV_TOKENIZE_ADD_SPECIAL as i64),
        ("DLV_DETOKENIZE_SKIP_SPECIAL", DLV_DETOKENIZE_SKIP_SPECIAL as i64),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect();
    for (name, value) in &ints {
        let text = defs.get(name).unwrap_or_else(|| panic!("{} is not in the header", name));
        let parsed: i64 = text.trim_end_matches(['u', 'U']).parse().unwrap();
        assert_eq!(parsed, *value, "{}: {} in the header, {} in disclvlm-sys", name, text, value);
    }
    assert_eq!(defs["DLV_VERSION_STRING"], format!("\"{}\"", DLV_VERSION_STRING));
    assert_eq!(
        DLV_VERSION_NUMBER,
        DLV_VERSION_MAJOR * 10000 + DLV_VERSION_MINOR * 100 + DLV_VERSION_PATCH
    );
    // Every macro of the header (but the visibility one) is here, and every
    // constant here is in the header.
    let consts = rust_consts(&r);
    let status = header_status_values(&h);
    for name in
        defs.keys().filter(|n| n.as_str() != "DLV_API" && n.as_str() != "DLV_TRAIN_STATS_INIT")
    {
        assert!(consts.contains(name), "#define {} is not in disclvlm-sys", name);
    }
    for name in &consts {
        assert!(
            defs.contains_key(name) || status.contains_key(name),
            "const {} of disclvlm-sys is not in the header",
            name
        );
    }
}

#[test]
fn train_stats_fields_match_the_header() {
    let (h, r) = sources();
    let c = struct_fields(&h, "typedef struct dlv_train_stats {", false);
    let rust = struct_fields(&r, "pub struct dlv_train_stats {", true);
    assert_eq!(c, rust, "dlv_train_stats fields differ (header, then disclvlm-sys)");
    assert_eq!(std::mem::size_of::<dlv_train_stats>(), std::mem::size_of::<usize>() + 8 * 8);
    assert_eq!(dlv_train_stats::init().struct_size, std::mem::size_of::<dlv_train_stats>());
}

#[test]
fn the_library_links_and_matches_the_header_version() {
    let v = unsafe { std::ffi::CStr::from_ptr(dlv_version()) }.to_str().unwrap();
    assert_eq!(v, DLV_VERSION_STRING, "header/library version mismatch");
    let (mut a, mut b, mut c) = (-1, -1, -1);
    unsafe { dlv_version_numbers(&mut a, &mut b, &mut c) };
    assert_eq!((a, b, c), (DLV_VERSION_MAJOR, DLV_VERSION_MINOR, DLV_VERSION_PATCH));
    let s = unsafe { std::ffi::CStr::from_ptr(dlv_status_str(DLV_E_IO)) };
    assert!(!s.to_bytes().is_empty());
}
