//! Links the `ploutos` binaries, tests and examples against libtorch so that they run
//! without `LD_LIBRARY_PATH` and keep CUDA when a GPU is present.
//!
//! torch-sys passes its rpath only to its own C++ glue, and the linker's default
//! `--as-needed` drops `libtorch.so` (hence `libtorch_cuda.so`) from the NEEDED list, which
//! makes CUDA silently invisible (tch-rs #907, #980). `DEP_TCH_LIBTORCH_LIB` is visible
//! here because this package depends on torch-sys directly.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_LEARNER").is_none() {
        return;
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-link-arg=-L{lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch,--as-needed");
    }
}
