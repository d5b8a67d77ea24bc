//! Links the `ploutos` binaries, tests and examples against libtorch so that they run
//! without `LD_LIBRARY_PATH` and keep CUDA when a GPU is present.
//!
//! torch-sys passes its rpath only to its own C++ glue, and the linker's default
//! `--as-needed` drops `libtorch.so` (hence `libtorch_cuda.so`) from the NEEDED list, which
//! makes CUDA silently invisible (tch-rs #907, #980). `DEP_TCH_LIBTORCH_LIB` is visible
//! here because this package depends on torch-sys directly.
//!
//! It also compiles `csrc/torch_shim.cpp`, a few C functions for what tch does not wrap
//! (TF32 for f32 matrix products on CUDA, CUDA graphs), against the headers beside that
//! lib folder.

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
        shim(std::path::Path::new(&lib));
    }
}

#[cfg(feature = "learner")]
fn shim(lib: &std::path::Path) {
    println!("cargo:rerun-if-changed=csrc/torch_shim.cpp");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let include = lib.parent().map(|p| p.join("include")).expect("libtorch's lib folder has a parent");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file("csrc/torch_shim.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .warnings(false);
    // CUDA graphs need CUDA's runtime headers and libtorch's CUDA libraries: the wheel's
    // `nvidia/cu13/include` beside `torch/`, else a CUDA toolkit. Without them the shim
    // reports graphs as unsupported and rollouts launch their kernels one by one.
    // Built again when the headers appear (`make setup` installs them into an older .venv).
    if let Some(nvidia) = std::fs::canonicalize(lib).ok().and_then(|l| Some(l.parent()?.parent()?.join("nvidia")))
        && nvidia.is_dir()
    {
        println!("cargo:rerun-if-changed={}", nvidia.display());
    }
    let cuda = cuda_include(lib);
    if cuda.is_none() && lib.join("libtorch_cuda.so").exists() {
        println!(
            "cargo:warning=CUDA's crt/ headers not found beside libtorch (run `make setup`): GPU rollouts will not use CUDA graphs"
        );
    }
    if let Some(cuda) = cuda
        && lib.join("libtorch_cuda.so").exists()
    {
        build.include(cuda).define("PLOUTOS_CUDA_GRAPHS", None);
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
        println!("cargo:rustc-link-lib=dylib=c10");
    }
    build.compile("ploutos_torch_shim");
}

/// CUDA's runtime headers for the libtorch at `lib`: the PyPI wheel's
/// `site-packages/nvidia/cu*/include`, else `$CUDA_HOME/include` or `/usr/local/cuda/include`.
#[cfg(feature = "learner")]
fn cuda_include(lib: &std::path::Path) -> Option<std::path::PathBuf> {
    let site = std::fs::canonicalize(lib).ok()?.parent()?.parent()?.to_path_buf();
    let mut candidates: Vec<std::path::PathBuf> = std::fs::read_dir(site.join("nvidia"))
        .map(|dirs| dirs.flatten().map(|d| d.path().join("include")).collect())
        .unwrap_or_default();
    candidates.sort();
    candidates.extend(std::env::var_os("CUDA_HOME").map(|h| std::path::PathBuf::from(h).join("include")));
    candidates.push("/usr/local/cuda/include".into());
    // `crt/` too: the wheel's runtime headers include it, and it comes in its own wheel
    // (nvidia-cuda-crt, which scripts/setup-libtorch.sh installs).
    candidates.into_iter().find(|dir| dir.join("cuda_runtime_api.h").exists() && dir.join("crt/host_config.h").exists())
}

#[cfg(not(feature = "learner"))]
fn shim(_: &std::path::Path) {}
