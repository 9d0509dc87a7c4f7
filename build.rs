//! Build information for `foretell_build_info{version,revision,branch,rustversion}`, as
//! Prometheus' own binaries export it: the git commit and branch the binary was built from
//! (`unknown` outside a git checkout, as in a source tarball) and the compiler's version.

use std::process::Command;

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn main() {
    let git = |args: &[&str]| output("git", args).unwrap_or_else(|| "unknown".to_owned());
    let revision = git(&["rev-parse", "HEAD"]);
    let branch = git(&["rev-parse", "--abbrev-ref", "HEAD"]);
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    // `rustc 1.95.0 (59807616e 2026-04-14)`: the version is the second word.
    let rustversion = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=FORETELL_REVISION={revision}");
    println!("cargo:rustc-env=FORETELL_BRANCH={branch}");
    println!("cargo:rustc-env=FORETELL_RUSTC_VERSION={rustversion}");
    // A new commit or checkout changes the revision; nothing else here changes between builds.
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
