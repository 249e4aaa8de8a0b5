//! Builds the page: compiles this crate for `wasm32-unknown-unknown`, generates the module's
//! JavaScript glue with wasm-bindgen, and copies `web/`'s files beside it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target the page's module is compiled for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// How the module is compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Quick to build (tests): the GPU does the work, so the page runs about as fast.
    Debug,
    /// Smaller and faster on the CPU side (decoding, resizing): for serving.
    Release,
}

/// Why the page could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `cargo build` of the module failed; its output was shown.
    #[error("compiling the page's module for {WASM_TARGET} failed (its errors are above){hint}")]
    Compile {
        /// How to fix a missing target, when that was the cause.
        hint: String,
    },
    /// Cargo could not be started.
    #[error("could not run cargo ({0}); is it on PATH?")]
    Cargo(std::io::Error),
    /// wasm-bindgen could not generate the glue.
    #[error("generating the page's JavaScript glue failed: {0}")]
    Bindgen(String),
    /// A file could not be copied or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The workspace's root, where `web/` is.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the page into `out`: `index.html`, `app.js` and `style.css` from `web/`, and the
/// module in `out/pkg`. The module is compiled in the workspace's target folder, whose host
/// build (proc macros) it shares; cargo holds that folder's lock only while it compiles, so a
/// test may call this.
pub fn build(out: &Path, profile: Profile) -> Result<(), BuildError> {
    let root = root();
    let target_dir = root.join("target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--lib", "-p", "nst-web", "--target", WASM_TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    // Started from a build script or a test, cargo passes settings meant for the host build.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        cmd.env_remove(var);
    }
    let status = cmd.status().map_err(BuildError::Cargo)?;
    if !status.success() {
        let hint = match wasm_target_installed() {
            false => format!(". The target is not installed: `rustup target add {WASM_TARGET}`"),
            true => String::new(),
        };
        return Err(BuildError::Compile { hint });
    }
    let dir = match profile {
        Profile::Debug => "debug",
        Profile::Release => "release",
    };
    let wasm = target_dir.join(WASM_TARGET).join(dir).join("nst_web.wasm");
    let pkg = out.join("pkg");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    std::fs::create_dir_all(&pkg).map_err(io(&pkg))?;
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)
        .map_err(|e| BuildError::Bindgen(e.to_string()))?
        .typescript(false)
        .omit_default_module_path(false)
        .generate(&pkg)
        .map_err(|e| BuildError::Bindgen(e.to_string()))?;
    for file in ["index.html", "app.js", "style.css"] {
        let from = root.join("web").join(file);
        std::fs::copy(&from, out.join(file)).map_err(io(&from))?;
    }
    Ok(())
}

/// Whether the toolchain has the standard library for [`WASM_TARGET`] (in rustc's sysroot,
/// however the toolchain was installed).
pub fn wasm_target_installed() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .is_some_and(|root| {
            root.join("lib/rustlib")
                .join(WASM_TARGET)
                .join("lib")
                .is_dir()
        })
}
