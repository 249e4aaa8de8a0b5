//! `cargo run -p nst-web -- [OUT]`: builds the page into OUT (default `web/dist`), ready to
//! be served as static files.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    use clap::Parser;

    /// Builds nst's web page: the engine compiled for WebGPU, and the page around it.
    #[derive(Parser)]
    struct Args {
        /// The folder to write the page to.
        #[arg(default_value = "web/dist")]
        out: std::path::PathBuf,
        /// Compile the module without optimizations (quicker to build).
        #[arg(long)]
        debug: bool,
    }
    let args = Args::parse();
    let profile = match args.debug {
        true => nst_web::Profile::Debug,
        false => nst_web::Profile::Release,
    };
    match nst_web::build(&args.out, profile) {
        Ok(()) => {
            println!(
                "built the page in {}: serve that folder over HTTP (for instance \
                 `python3 -m http.server -d {} 8000`) and open it in a browser with WebGPU",
                args.out.display(),
                args.out.display()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {}
