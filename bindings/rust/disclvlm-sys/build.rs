//! Finds libdisclvlm without any crate: DISCLVLM_LIB_DIR (a directory holding
//! libdisclvlm.so) wins; else `pkg-config --libs disclvlm`; else the linker's
//! default search path. The directory found is passed to dependent build
//! scripts as DEP_DISCLVLM_LIB_DIR (this crate has `links = "disclvlm"`), so
//! that their tests can embed it as an rpath.

use std::env;
use std::process::Command;

fn emit_dir(dir: &str) {
    println!("cargo:rustc-link-search=native={}", dir);
    // For this crate's own tests; dependents add their own (see
    // disclvlm/build.rs). -rpath is understood by GNU ld, lld and ld64.
    if !env::var("CARGO_CFG_TARGET_OS").map(|os| os == "windows").unwrap_or(false) {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
    }
    println!("cargo:lib_dir={}", dir);
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DISCLVLM_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_SYSROOT_DIR");

    if let Some(dir) = env::var_os("DISCLVLM_LIB_DIR") {
        let dir = dir.to_str().expect("DISCLVLM_LIB_DIR is not valid UTF-8").to_string();
        if dir.is_empty() {
            panic!("DISCLVLM_LIB_DIR is set but empty");
        }
        emit_dir(&dir);
        println!("cargo:rustc-link-lib=dylib=disclvlm");
        return;
    }

    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    match Command::new(&pkg_config).args(["--libs", "disclvlm"]).output() {
        Ok(out) if out.status.success() => {
            let flags = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut linked = false;
            for flag in flags.split_whitespace() {
                if let Some(dir) = flag.strip_prefix("-L") {
                    emit_dir(dir);
                } else if let Some(lib) = flag.strip_prefix("-l") {
                    println!("cargo:rustc-link-lib=dylib={}", lib);
                    linked |= lib == "disclvlm";
                }
            }
            if !linked {
                println!("cargo:rustc-link-lib=dylib=disclvlm");
            }
        }
        Ok(out) => {
            println!(
                "cargo:warning=`{} --libs disclvlm` failed ({}); set DISCLVLM_LIB_DIR to the \
                 directory of libdisclvlm.so or PKG_CONFIG_PATH to that of disclvlm.pc",
                pkg_config,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            println!("cargo:rustc-link-lib=dylib=disclvlm");
        }
        Err(e) => {
            println!(
                "cargo:warning=cannot run {} ({}); linking -ldisclvlm from the default \
                 search path (set DISCLVLM_LIB_DIR to choose a directory)",
                pkg_config, e
            );
            println!("cargo:rustc-link-lib=dylib=disclvlm");
        }
    }
}
