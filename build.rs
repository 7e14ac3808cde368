//! Build facts for `hookbridge_build_info`: the commit and the compiler.
//!
//! The commit comes from `GIT_SHA` when set (image builds, whose context has no `.git`), else
//! from `git rev-parse`, else it is "unknown": a tarball or a Docker context still builds. The
//! script reruns only when the checked-out commit can have changed (HEAD, the branch's ref,
//! packed refs) or `GIT_SHA` changed, not on every edit of a source file.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GIT_SHA");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());

    let sha = match std::env::var("GIT_SHA") {
        Ok(given) if !given.trim().is_empty() => {
            let given = given.trim();
            // A full commit id (an image build's `git rev-parse HEAD`) reads like a local build's.
            if given.len() > 12 && given.chars().all(|c| c.is_ascii_hexdigit()) {
                label_value(&given[..12])
            } else {
                label_value(given)
            }
        }
        _ => {
            for path in git_paths(&manifest_dir) {
                println!("cargo:rerun-if-changed={}", path.display());
            }
            git(&manifest_dir, &["rev-parse", "--short=12", "HEAD"])
                .map(|sha| label_value(&sha))
                .unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=HOOKBRIDGE_GIT_SHA={sha}");

    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        // "rustc 1.95.0 (59807616e 2026-04-14)": the version is the second word.
        .and_then(|text| text.split_whitespace().nth(1).map(label_value))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=HOOKBRIDGE_RUSTC_VERSION={rustc_version}");
}

/// Runs git in `dir`; `None` when git is missing, `dir` is no work tree, or git refuses
/// (a repository owned by another user, for instance).
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The files whose change means another commit is checked out: HEAD, the ref it points to and
/// packed-refs (where the ref lives after `git gc`). Only existing files are named, because cargo
/// reruns a script on every build while a named file is missing. `--git-path` resolves linked
/// work trees, whose HEAD and refs live in different directories.
fn git_paths(dir: &Path) -> Vec<PathBuf> {
    let mut names = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(reference) = git(dir, &["rev-parse", "--symbolic-full-name", "HEAD"])
        && reference.starts_with("refs/")
    {
        names.push(reference);
    }
    names
        .iter()
        .filter_map(|name| git(dir, &["rev-parse", "--git-path", name]))
        .map(|path| dir.join(path))
        .filter(|path| path.is_file())
        .collect()
}

/// A short, printable label value: what a caller puts in `GIT_SHA` is not trusted to be one.
fn label_value(raw: &str) -> String {
    let cleaned: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "unknown".to_owned()
    } else {
        cleaned
    }
}
