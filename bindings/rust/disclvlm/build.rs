//! Embeds the directory where disclvlm-sys found libdisclvlm as an rpath of
//! this crate's tests, examples and binaries, so that they run without
//! LD_LIBRARY_PATH (rustc-link-arg does not pass from a crate to dependents).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_DISCLVLM_LIB_DIR");
    let windows = std::env::var("CARGO_CFG_TARGET_OS").map(|os| os == "windows").unwrap_or(false);
    if let Ok(dir) = std::env::var("DEP_DISCLVLM_LIB_DIR") {
        if !windows && !dir.is_empty() {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
        }
    }
}
