//! Records the commit the binary is built from, for `--version` and
//! `meridian_build_info`. `MERIDIAN_COMMIT` wins (a packager building from a
//! tarball sets it); otherwise `git rev-parse`, and "unknown" when there is
//! no git or no repository, so a build never fails for want of either.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MERIDIAN_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    // A new commit moves HEAD or the ref it points at; watch them where git
    // keeps them (a worktree's differ from `.git/`), and only if they exist:
    // a watched path that is missing would rerun this script every build.
    for what in ["HEAD", "refs/heads"] {
        if let Some(path) = git(&["rev-parse", "--git-path", what])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("MERIDIAN_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=MERIDIAN_COMMIT={}", commit.trim());
}

/// What a git command prints, or `None` without git or a repository.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}
