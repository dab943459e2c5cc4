//! Finds the installed libstacklstm, without any crate: SLSTM_PREFIX (the install prefix, as
//! given to `cmake --install --prefix`) when set, else `pkg-config --libs stacklstm` run as a
//! command (PKG_CONFIG names another pkg-config; PKG_CONFIG_PATH finds a private prefix).
//! Links the shared library; at run time the loader must find it (LD_LIBRARY_PATH, or a
//! prefix the loader searches). Dependents read the directory as DEP_STACKLSTM_LIBDIR.
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIN_VERSION: &str = "0.2.0"; // the *_init_sized functions appeared in 0.2

fn main() {
    for var in ["SLSTM_PREFIX", "PKG_CONFIG", "PKG_CONFIG_PATH"] {
        println!("cargo:rerun-if-env-changed={}", var);
    }
    let libdirs = match env::var("SLSTM_PREFIX") {
        Ok(prefix) if !prefix.is_empty() => vec![libdir_under_prefix(Path::new(&prefix))],
        _ => from_pkg_config(),
    };
    for dir in &libdirs {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    println!("cargo:rustc-link-lib=dylib=stacklstm");
    if let Some(dir) = libdirs.first() {
        println!("cargo:libdir={}", dir.display());
    }
}

fn libdir_under_prefix(prefix: &Path) -> PathBuf {
    let mut candidates = vec![prefix.join("lib"), prefix.join("lib64")];
    if let Ok(entries) = prefix.join("lib").read_dir() {
        // Debian-style multiarch directories (lib/x86_64-linux-gnu).
        candidates.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    match candidates
        .into_iter()
        .find(|d| d.join("libstacklstm.so").exists())
    {
        Some(dir) => dir,
        None => fail(&format!(
            "SLSTM_PREFIX={} holds no lib/libstacklstm.so (nor lib64/, lib/<multiarch>/); \
             set it to the prefix given to `cmake --install --prefix`",
            prefix.display()
        )),
    }
}

fn from_pkg_config() -> Vec<PathBuf> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let run = |args: &[&str]| -> Result<String, String> {
        match Command::new(&pkg_config).args(args).output() {
            Err(e) => Err(format!("cannot run `{}`: {}", pkg_config, e)),
            Ok(out) if !out.status.success() => Err(format!(
                "`{} {}` failed: {}",
                pkg_config,
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Ok(out) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        }
    };
    let hint = "install libstacklstm and point PKG_CONFIG_PATH at the directory holding \
                stacklstm.pc (<prefix>/lib/pkgconfig), or set SLSTM_PREFIX to its prefix";
    let version = run(&["--modversion", "stacklstm"])
        .unwrap_or_else(|e| fail(&format!("libstacklstm not found: {}; {}", e, hint)));
    if run(&[&format!("--atleast-version={}", MIN_VERSION), "stacklstm"]).is_err() {
        fail(&format!(
            "libstacklstm {} found, this crate needs >= {}; {}",
            version.trim(),
            MIN_VERSION,
            hint
        ));
    }
    let libs = run(&["--libs", "stacklstm"]).unwrap_or_else(|e| fail(&e));
    let mut dirs = Vec::new();
    for token in libs.split_whitespace() {
        if let Some(dir) = token.strip_prefix("-L") {
            dirs.push(PathBuf::from(dir));
        } else if let Some(name) = token.strip_prefix("-l") {
            if name != "stacklstm" {
                println!("cargo:rustc-link-lib={}", name);
            }
        } else {
            println!(
                "cargo:warning=ignoring `{}` from pkg-config --libs stacklstm",
                token
            );
        }
    }
    dirs
}

fn fail(message: &str) -> ! {
    eprintln!("error: {}", message);
    panic!("stacklstm-sys: {}", message);
}
