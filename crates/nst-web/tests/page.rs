//! The web page end to end in a real browser: builds the page (the engine compiled for
//! WebGPU), serves it on 127.0.0.1 with the real weights beside it, and drives headless
//! Chromium through a tiny run with the DevTools protocol, as a user would: load the weights
//! from the site, choose a photo and a painting, set the size, start, wait, download. Then it
//! checks that the loss fell and that `score` (native) of the downloaded PNG agrees with the
//! loss the page reported.
//!
//! Needs Chromium (`chromium`, or the binary `CHROMIUM` names), the `wasm32-unknown-unknown`
//! target and the real weights. Outside CI a missing one is a note; under `CI` a failure.
//! `NST_WEB_SCREENSHOT=path.png` also saves a screenshot of the finished page there.

use nst_transfer::{Engine, Settings, Style};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The run the test drives: the real weights at 32 px, a few iterations of the default optimizer
/// (SwiftShader takes 10 to 18 s for each on 2 cores).
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

/// Serves the built page, `config.json` pointing at the weights, and the weights.
fn serve(page: PathBuf, weights: PathBuf) -> u16 {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("a local port");
    let port = server.server_addr().to_ip().expect("an IP address").port();
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            let url = req.url().split('?').next().unwrap_or("/").to_string();
            let (path, body) = match url.as_str() {
                "/config.json" => (
                    PathBuf::from("config.json"),
                    Ok(json!({"weights_url": "weights/vgg19.safetensors"})
                        .to_string()
                        .into_bytes()),
                ),
                "/weights/vgg19.safetensors" => (weights.clone(), std::fs::read(&weights)),
                "/" => (
                    page.join("index.html"),
                    std::fs::read(page.join("index.html")),
                ),
                other => {
                    let p = page.join(other.trim_start_matches('/'));
                    let body = match p.starts_with(&page) && !other.contains("..") {
                        true => std::fs::read(&p),
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
    port
}

/// Headless Chromium with WebGPU on SwiftShader, killed when dropped.
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

fn launch(binary: &Path) -> (Browser, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--enable-unsafe-webgpu",
            "--use-webgpu-adapter=swiftshader",
            "--no-first-run",
            "--window-size=1000,1700",
            "--remote-debugging-port=0",
        ])
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

    /// Polls `js` until it is true, or fails after `limit` with the page's status.
    fn wait_for(&mut self, js: &str, limit: Duration) {
        let start = Instant::now();
        // Until the page has loaded, its elements are missing: not yet, rather than an error.
        let guarded = |e: &str| {
            format!("(() => {{ try {{ return ({e}); }} catch (_) {{ return null; }} }})()")
        };
        while self.eval(&guarded(js)) != json!(true) {
            let state = self.eval(&guarded(
                "document.body.dataset.state + ': ' + document.getElementById('status').textContent \
                 + ' / ' + document.getElementById('weights-status').textContent",
            ));
            assert!(
                state.as_str().is_none_or(|s| !s.starts_with("error")),
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

    /// Gives the file input `selector` the file at `path`, as a user choosing it would.
    fn choose_file(&mut self, selector: &str, path: &Path) {
        let doc = self.call("DOM.getDocument", json!({}));
        let root = doc["root"]["nodeId"].clone();
        let node = self.call(
            "DOM.querySelector",
            json!({"nodeId": root, "selector": selector}),
        )["nodeId"]
            .clone();
        self.call(
            "DOM.setFileInputFiles",
            json!({"nodeId": node, "files": [path.to_str().unwrap()]}),
        );
    }

    fn log(&self) -> String {
        self.console.join("\n")
    }
}

#[test]
fn the_web_page_stylizes_an_image_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return skip_or_fail("no Chromium (install `chromium`, or set CHROMIUM)");
    };
    let weights = root().join("weights/vgg19.safetensors");
    if !weights.exists() {
        return skip_or_fail("the real weights are missing (run `nst weights fetch`)");
    }
    // The gallery's inputs. Chromium reads a chosen file only by a plain path (no `..`).
    let images = root().join("docs/gallery/inputs").canonicalize().unwrap();
    let (photo, painting) = (images.join("tubingen.jpg"), images.join("starry_night.jpg"));

    if !nst_web::wasm_target_installed() {
        return skip_or_fail(&format!(
            "the {} target is not installed (`rustup target add {}`)",
            nst_web::WASM_TARGET,
            nst_web::WASM_TARGET
        ));
    }
    let page = tempfile::tempdir().unwrap();
    nst_web::build(page.path(), nst_web::Profile::Debug).unwrap_or_else(|e| panic!("{e}"));
    let port = serve(page.path().to_path_buf(), weights.clone());
    let (_browser, devtools) = launch(&chromium);
    let downloads = tempfile::tempdir().unwrap();

    let mut cdp = Cdp::connect(&devtools);
    cdp.call_on(
        true,
        "Browser.setDownloadBehavior",
        json!({"behavior": "allow", "downloadPath": downloads.path().to_str().unwrap()}),
    );
    let target = cdp.call_on(true, "Target.createTarget", json!({"url": "about:blank"}));
    let attached = cdp.call_on(
        true,
        "Target.attachToTarget",
        json!({"targetId": target["targetId"], "flatten": true}),
    );
    cdp.session = Some(attached["sessionId"].as_str().unwrap().to_string());
    cdp.call("Runtime.enable", json!({}));
    cdp.call("Page.enable", json!({}));
    cdp.call(
        "Page.navigate",
        json!({"url": format!("http://127.0.0.1:{port}/")}),
    );

    // The weights, from the site (the button appears once config.json is read).
    let minute = Duration::from_secs(60);
    cdp.wait_for(
        "document.body.dataset.state === 'ready' && !document.getElementById('weights-host').hidden",
        minute,
    );
    cdp.eval("document.getElementById('weights-host').click(); true");
    cdp.wait_for(
        "document.getElementById('weights-status').textContent.startsWith('Weights loaded')",
        3 * minute,
    );
    let adapter = cdp.eval("document.getElementById('adapter').textContent");
    eprintln!("{}", adapter.as_str().unwrap_or_default());

    // The images and settings, then the run.
    cdp.choose_file("#content-file", &photo);
    cdp.choose_file("#style-files", &painting);
    cdp.eval(&format!(
        "document.getElementById('size').value = {SIZE}; \
         document.getElementById('iterations').value = {ITERATIONS}; \
         document.getElementById('preview-every').value = 2; true"
    ));
    cdp.wait_for("!document.getElementById('start').disabled", minute);
    let started = Instant::now();
    cdp.eval("document.getElementById('start').click(); true");
    cdp.wait_for("document.body.dataset.state === 'done'", 5 * minute);
    let per = cdp.eval("document.body.dataset.perIteration");
    eprintln!(
        "the run took {:.1} s in the page, the last iterations {per} s each",
        started.elapsed().as_secs_f64()
    );

    let number = |v: Value| -> f64 {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a number: {v}"))
    };
    let first = number(cdp.eval("document.body.dataset.firstLoss"));
    let last = number(cdp.eval("document.body.dataset.finalLoss"));
    eprintln!("the page's loss: {first} at the first iteration, {last} at the end");
    assert!(
        last < 0.9 * first,
        "the loss did not fall: {first} → {last}"
    );

    if let Some(path) = std::env::var_os("NST_WEB_SCREENSHOT") {
        let shot = cdp.call("Page.captureScreenshot", json!({"format": "png"}));
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(&path, png).unwrap();
    }

    // Download the result as a user would, then score it natively.
    cdp.eval("document.getElementById('download').click(); true");
    let file = downloads.path().join("nst.png");
    let start = Instant::now();
    while !file.exists() {
        assert!(
            start.elapsed() < minute,
            "no download in {}",
            downloads.path().display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let result = nst_transfer::image::load(&file).unwrap().image;
    assert_eq!(result.width().max(result.height()), SIZE);

    let Some(ctx) = nst_tests::context(Default::default()) else {
        return;
    };
    let w = nst_weights::load(&weights).unwrap();
    let engine = Engine::new(ctx, &w).unwrap();
    let load = |p: &Path| nst_transfer::image::load(p).unwrap().image;
    let settings = Settings::default().size(SIZE);
    let score = engine
        .score(
            &load(&photo),
            &[Style::new(load(&painting), 1.0)],
            &result,
            &settings,
        )
        .unwrap();
    let native = score.values.total();
    eprintln!("score of the downloaded PNG: {native}");
    assert!(
        (native - last).abs() <= LOSS_RTOL * last,
        "the page reported {last}, score of its PNG is {native}"
    );
}
