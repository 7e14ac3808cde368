//! hookbridge: verified webhooks into Kafka as Avro, answered only once the broker has them.
//!
//! One generic request path and one folder per sender. Dependencies point down: the handler
//! ([`http`]) and start-up ([`startup`]) use the [`providers`]; the providers use the generic
//! parts below them ([`sink`], [`verify`], [`config`], ...); nothing outside [`providers`] names a
//! vendor.
//!
//! - [`providers`]: the provider seam and its registry; one folder per provider (verify, parse,
//!   route, schema, encode).
//! - [`config`]: the TOML file layered under `HOOKBRIDGE_*` variables, checked at start-up with
//!   every problem reported at once, in typed sections; secrets held in redacting types.
//! - [`verify`]: HMAC-SHA256 over the raw bytes as they arrive; the only place a
//!   [`verify::VerifiedWebhook`] is made.
//! - [`topic`]: topic names and routing overrides.
//! - [`sink`]: the idempotent producer, the [`sink::kafka::Publisher`] seam, topic creation,
//!   broker health; the Confluent-compatible registry client; Avro primitives and framing.
//! - [`http`]: the public listener (header and idle timeouts, connection cap), the byte budget
//!   bodies and records draw from, the client address, the one webhook handler and the admin
//!   endpoints (`/livez`, `/readyz`, `/metrics`).
//! - [`json`]: lenient, bounded JSON reading for typed views (no whole tree, no depth limit).
//! - [`startup`]: builds the application from a config and bound listeners; runs until shutdown.
//! - [`telemetry`]: logging and the Prometheus recorder.
//! - [`error`]: the API error type and its stable HTTP mapping.

pub mod config;
pub mod error;
pub mod http;
pub mod json;
pub mod otel;
pub mod providers;
pub mod sink;
pub mod startup;
pub mod telemetry;
pub mod topic;
pub mod trace;
pub mod verify;

/// The layering the modules promise, checked on the source: module dependencies (outside test
/// code) form no cycle, and only `src/providers/` names a vendor.
#[cfg(test)]
mod architecture {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    fn sources() -> Vec<(String, String)> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        files
            .into_iter()
            .map(|p| {
                let rel = p
                    .strip_prefix(&src)
                    .expect("under src")
                    .to_string_lossy()
                    .into_owned();
                (rel, std::fs::read_to_string(&p).expect("readable"))
            })
            .collect()
    }

    /// The top-level module a file belongs to (`providers/<name>/mod.rs` → `providers`).
    fn module_of(rel: &str) -> &str {
        rel.split('/').next().unwrap_or(rel).trim_end_matches(".rs")
    }

    /// The code without test items: a `#[cfg(test)] mod x;` line goes, and a `#[cfg(test)] mod
    /// x { … }` ends the code (test modules close their files).
    fn without_tests(text: &str) -> String {
        let mut out = String::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.trim() == "#[cfg(test)]" {
                match lines.next().map(str::trim) {
                    Some(item) if item.starts_with("mod ") && item.ends_with(';') => continue,
                    _ => break,
                }
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// The top-level modules `code` names as `crate::x`, also inside `crate::{x, y::z}`.
    fn dependencies(code: &str) -> BTreeSet<String> {
        let ident = |s: &str| -> String {
            s.trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        };
        let mut found = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // Top-level names only: those not nested in a further brace.
                let mut depth = 0;
                let mut start = 0;
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            found.insert(ident(&group[start..j]));
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            found.insert(ident(&group[start..j]));
                            start = j + 1;
                        }
                        _ => {}
                    }
                }
            } else {
                found.insert(ident(rest));
            }
        }
        found.remove("");
        found
    }

    #[test]
    fn the_dependency_scan_sees_grouped_imports_and_skips_tests() {
        let code = "use crate::{config::{A, B}, sink};\nuse crate::topic::T;\n#[cfg(test)]\nmod config_tests;\nuse crate::verify;\n#[cfg(test)]\nmod tests {\n    use crate::http;\n}\n";
        let deps = dependencies(&without_tests(code));
        let names: Vec<&str> = deps.iter().map(String::as_str).collect();
        assert_eq!(names, ["config", "sink", "topic", "verify"]);
    }

    #[test]
    fn module_dependencies_have_no_cycle() {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (rel, text) in sources() {
            let from = module_of(&rel).to_owned();
            if from == "main" || from == "lib" {
                continue;
            }
            for to in dependencies(&without_tests(&text)) {
                if to != from {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            }
        }
        // Depth-first search for a path back to the start.
        for start in edges.keys() {
            let mut stack = vec![vec![start.clone()]];
            while let Some(path) = stack.pop() {
                let last = path.last().expect("non-empty path");
                for next in edges.get(last).into_iter().flatten() {
                    assert!(
                        next != start,
                        "module cycle: {} -> {next}",
                        path.join(" -> ")
                    );
                    if !path.contains(next) {
                        let mut longer = path.clone();
                        longer.push(next.clone());
                        stack.push(longer);
                    }
                }
            }
        }
        assert!(
            edges.contains_key("providers"),
            "the scan found the modules"
        );
    }

    #[test]
    fn only_the_providers_folder_names_a_vendor() {
        // Split so that this file does not name them either.
        const VENDORS: &[&str] = &[
            concat!("send", "bird"),
            concat!("get", "stream"),
            concat!("stream", " chat"),
            concat!("standard", " webhooks"),
            concat!("standard", "webhooks"),
            concat!("wh", "sec"),
        ];
        for (rel, text) in sources() {
            if rel.starts_with("providers/") {
                continue;
            }
            let lower = text.to_lowercase();
            for vendor in VENDORS {
                assert!(!lower.contains(vendor), "src/{rel} names {vendor:?}");
            }
        }
    }
}
