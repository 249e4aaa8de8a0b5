// The page: what the browser's GPU can do, inputs, weights (picked, or from this site, kept in
// IndexedDB), kernels tuned for this GPU, a run with progress and previews, and the result. The work is done by the engine in ./pkg.
import init, { defaults, probe, published_weights, Studio } from './pkg/nst_web.js';

const $ = (id) => document.getElementById(id);
const state = {
  studio: null, content: null, styles: [], running: false, tuning: false, stop: false, restart: false,
  result: null, resultBytes: null,
};

function setState(s) { document.body.dataset.state = s; }

function say(id, text, error = false) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle('error', error);
}

function fail(id, e) {
  say(id, String(e && e.message ? e.message : e), true);
  setState('error');
}

// ---- Weights and tunings, kept in IndexedDB between visits ---------------------------------

// Two stores: the weights (one entry) and each adapter's tuned kernels, keyed by adapter,
// driver and nst version (as `nst tune` keys its cache file).
const DB = 'nst', STORE = 'weights', KEY = 'vgg19', TUNINGS = 'tunings';

function db() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 2);
    req.onupgradeneeded = () => {
      for (const name of [STORE, TUNINGS]) {
        if (!req.result.objectStoreNames.contains(name)) req.result.createObjectStore(name);
      }
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function stored(op, value, store = STORE, key = KEY) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction(store, op === 'get' ? 'readonly' : 'readwrite');
    const s = tx.objectStore(store);
    const req = op === 'get' ? s.get(key) : op === 'put' ? s.put(value, key) : s.delete(key);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

// `from`: where the bytes came from ('file', 'site' or 'stored'), for the message.
async function openWeights(bytes, name, from) {
  say('weights-status', `Checking ${name} and opening the GPU…`);
  setState('loading');
  try {
    state.studio = await Studio.open(bytes, name);
  } catch (e) {
    fail('weights-status', e);
    return;
  }
  let kept = ", from this browser's storage";
  if (from !== 'stored') {
    try {
      await stored('put', { name, bytes });
      kept = ', kept in this browser';
    } catch (e) { console.warn('not kept:', e); kept = ''; }
  }
  say('weights-status', `Weights loaded: ${name} (SHA-256 checked)${kept}.`);
  $('weights-forget').hidden = false;
  await useKeptTuning();
  setState('ready');
  updateStart();
}

// ---- What the browser's GPU can do ---------------------------------------------------------

const mib = (b) => `${Math.round(b / 2 ** 20)} MiB`;

// The adapter (nst_gpu::probe as JSON), shown before the visitor is asked for anything.
function showAdapter(a) {
  const name = a.name || 'not named by the browser';
  const soft = a.software ? ', a software adapter (the CPU does the work: slow)' : '';
  $('adapter').textContent = `GPU: ${name}${soft}; largest storage binding ` +
    `${mib(a.max_storage_binding)}, largest buffer ${mib(a.max_buffer)}, subgroups ${a.subgroups ? 'yes' : 'no'}.`;
  document.body.dataset.software = a.software;
}

// What to do when the browser has WebGPU but no adapter, for the browser in use.
function noAdapterFix() {
  const ua = navigator.userAgent;
  const linux = /Linux/.test(ua) && !/Android/.test(ua);
  if (/Firefox\//.test(ua)) {
    return 'Firefox offers WebGPU from version 141 on Windows; elsewhere set dom.webgpu.enabled ' +
      'in about:config, or use Chrome, Edge or Safari.';
  }
  if (/Chrome\/|Chromium\/|Edg\//.test(ua)) {
    return linux
      ? 'On Linux, Chrome and Chromium offer an adapter only with WebGPU enabled: turn on ' +
        'chrome://flags/#enable-unsafe-webgpu and chrome://flags/#enable-vulkan, or start the ' +
        'browser with --enable-unsafe-webgpu, then reload.'
      : "The GPU may be on the browser's blocklist, or hardware acceleration is off: turn on " +
        '"Use graphics acceleration when available" in the settings, update the GPU driver, ' +
        'and see chrome://gpu for the reason.';
  }
  if (/Safari\//.test(ua)) {
    return 'Safari offers WebGPU from version 26; in earlier versions turn it on under ' +
      'Develop › Feature Flags.';
  }
  return 'Try a current Chrome, Edge or Safari with hardware acceleration on.';
}

// Nothing can run: the message, and the weights, images, settings and run controls off.
function cannotRun(text, s) {
  $('adapter').textContent = text;
  $('adapter').classList.add('error');
  for (const el of document.querySelectorAll('section input, section button, section select')) el.disabled = true;
  setState(s);
}

// ---- Kernels tuned for this GPU, kept per adapter ------------------------------------------

function showKernels() {
  const k = state.studio.kernels();
  $('kernels').textContent = `Kernels: ${k}.`;
  document.body.dataset.kernels = k;
}

async function useKeptTuning() {
  let kept = null;
  try {
    kept = await stored('get', undefined, TUNINGS, state.studio.tuning_key());
  } catch (e) { console.warn('no IndexedDB:', e); }
  if (kept) {
    try {
      if (state.studio.use_tuning(kept)) say('tune-status', 'Using the kernels tuned earlier in this browser.');
    } catch (e) { console.warn('the kept tuning was not used:', e); }
  }
  showKernels();
  $('tune').disabled = false;
}

// Times the kernel variants at the size set, as `nst tune` does, and keeps the winners.
async function tune() {
  const size = Math.max(16, Number($('size').value));
  state.tuning = true;
  $('tune').disabled = true;
  updateStart();
  setState('tuning');
  const started = performance.now();
  let classes = 0;
  say('tune-status', `Timing the kernel variants of a ${size}×${size} iteration…`);
  try {
    const json = await state.studio.tune(size, (line) => {
      classes += 1;
      say('tune-status', `${classes}: ${line}`);
    });
    let kept = ', kept in this browser';
    try { await stored('put', json, TUNINGS, state.studio.tuning_key()); } catch (e) { kept = ''; }
    const secs = (performance.now() - started) / 1000;
    say('tune-status', `Tuned ${classes} classes of launch in ${duration(secs)}${kept}: runs use the fastest variants.`);
    showKernels();
    setState('tuned');
  } catch (e) {
    fail('tune-status', e);
  } finally {
    state.tuning = false;
    $('tune').disabled = false;
    updateStart();
  }
}

async function setUpWeights() {
  const pub = JSON.parse(published_weights());
  $('quantized-name').textContent = pub.quantized_file;
  $('weights-file').addEventListener('change', async (ev) => {
    const f = ev.target.files[0];
    if (!f) return;
    let bytes;
    try {
      bytes = new Uint8Array(await f.arrayBuffer());
    } catch (e) {
      fail('weights-status', `Could not read ${f.name}: ${e.message}. Choose the file again.`);
      return;
    }
    await openWeights(bytes, f.name, 'file');
  });
  $('weights-forget').addEventListener('click', async () => {
    await stored('delete');
    say('weights-status', 'The stored weights were removed from this browser.');
    $('weights-forget').hidden = true;
  });
  // A host may serve the weights beside the page: config.json {"weights_url": "..."}.
  try {
    const r = await fetch('config.json', { cache: 'no-store' });
    if (r.ok) {
      const url = (await r.json()).weights_url;
      if (url) {
        const b = $('weights-host');
        b.hidden = false;
        b.addEventListener('click', async () => {
          say('weights-status', `Downloading ${url}…`);
          try {
            const w = await fetch(url);
            if (!w.ok) throw new Error(`${url}: HTTP ${w.status}`);
            await openWeights(new Uint8Array(await w.arrayBuffer()), url.split('/').pop(), 'site');
          } catch (e) { fail('weights-status', e); }
        });
      }
    }
  } catch (_) { /* no config beside the page */ }
  let kept = null;
  try { kept = await stored('get'); } catch (e) { console.warn('no IndexedDB:', e); }
  if (kept) {
    await openWeights(kept.bytes, kept.name, 'stored');
  } else {
    say('weights-status', 'No weights yet: choose the file' + ($('weights-host').hidden ? '.' : ', or load them from this site.'));
    setState('ready');
  }
}

// ---- Images -------------------------------------------------------------------------------

async function readImages(files, multiple) {
  const out = [];
  for (const f of files) {
    if (!f.type.startsWith('image/') && f.type !== '') continue;
    out.push({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()), url: URL.createObjectURL(f) });
  }
  return multiple ? out : out.slice(0, 1);
}

function thumbs(id, images) {
  const el = $(id);
  el.replaceChildren(...images.map((i) => {
    const img = document.createElement('img');
    img.src = i.url;
    img.alt = i.name;
    img.title = i.name;
    return img;
  }));
}

function setUpImages() {
  const take = async (files, which) => {
    try {
      if (which === 'content') {
        const [c] = await readImages(files, false);
        if (c) { state.content = c; state.resultBytes = null; thumbs('content-thumbs', [c]); }
      } else {
        const s = await readImages(files, true);
        if (s.length) { state.styles = s; thumbs('style-thumbs', s); }
      }
      await resetRegions();
    } catch (e) {
      say('status', `Could not read the ${which} image: ${e.message}`, true);
    }
    updateStart();
  };
  $('content-file').addEventListener('change', (e) => take(e.target.files, 'content'));
  $('style-files').addEventListener('change', (e) => take(e.target.files, 'style'));
  for (const [drop, which] of [['content-drop', 'content'], ['style-drop', 'style']]) {
    const el = $(drop);
    el.addEventListener('dragover', (e) => { e.preventDefault(); el.classList.add('over'); });
    el.addEventListener('dragleave', () => el.classList.remove('over'));
    el.addEventListener('drop', (e) => {
      e.preventDefault();
      el.classList.remove('over');
      take(e.dataTransfer.files, which);
    });
  }
}

function updateStart() {
  $('start').disabled = !(state.studio && state.content && state.styles.length && !state.running && !state.tuning);
}

// ---- Regions: each style's mask, painted over the photo -----------------------------------

// One layer per style, at the photo's shape (its longest side at most PAINT_SIDE): white
// where the style applies, in the layer's alpha. Painting with a style's brush adds to its
// layer and takes the place from the others; the eraser takes it from all.
const PAINT_SIDE = 512, UNDO_DEPTH = 20, TINT = 0.45;
const COLORS = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#42d4f4'];
const paint = { w: 0, h: 0, photo: null, layers: [], brush: 0, undo: [], last: null, painted: false };

function layer(w, h) {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  return c;
}

// A new photo or new styles: fresh, empty layers.
async function resetRegions() {
  if (!state.content || !state.styles.length) return;
  const img = new Image();
  img.src = state.content.url;
  await img.decode();
  const k = Math.min(1, PAINT_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
  paint.w = Math.max(1, Math.round(img.naturalWidth * k));
  paint.h = Math.max(1, Math.round(img.naturalHeight * k));
  paint.photo = img;
  paint.layers = state.styles.map(() => layer(paint.w, paint.h));
  paint.undo = [];
  paint.brush = 0;
  $('paint').width = paint.w;
  $('paint').height = paint.h;
  brushes();
  redraw();
}

function brushes() {
  const b = state.styles.map((s, i) => {
    const el = document.createElement('button');
    el.textContent = `Style ${i + 1}`;
    el.title = s.name;
    el.style.borderColor = COLORS[i % COLORS.length];
    el.style.borderWidth = '3px';
    el.onclick = () => { paint.brush = i; brushes(); };
    el.classList.toggle('active', paint.brush === i);
    return el;
  });
  const eraser = document.createElement('button');
  eraser.textContent = 'Eraser';
  eraser.onclick = () => { paint.brush = -1; brushes(); };
  eraser.classList.toggle('active', paint.brush === -1);
  $('brushes').replaceChildren(...b, eraser);
  $('undo').disabled = !paint.undo.length;
  $('clear-masks').disabled = !paint.layers.length;
}

// The photo with each style's region tinted in its colour.
function redraw() {
  const c = $('paint').getContext('2d');
  c.globalAlpha = 1;
  c.globalCompositeOperation = 'source-over';
  c.drawImage(paint.photo, 0, 0, paint.w, paint.h);
  paint.layers.forEach((l, i) => {
    const tint = layer(paint.w, paint.h);
    const t = tint.getContext('2d');
    t.fillStyle = COLORS[i % COLORS.length];
    t.fillRect(0, 0, paint.w, paint.h);
    t.globalCompositeOperation = 'destination-in';
    t.drawImage(l, 0, 0);
    c.globalAlpha = TINT;
    c.drawImage(tint, 0, 0);
  });
  c.globalAlpha = 1;
}

// One dab of the brush at (x, y), in layer pixels.
function dab(x, y) {
  const r = Number($('brush-size').value) * paint.w / $('paint').getBoundingClientRect().width / 2;
  const soft = $('brush-soft').checked;
  paint.layers.forEach((l, i) => {
    const c = l.getContext('2d');
    const adds = i === paint.brush;
    c.globalCompositeOperation = adds ? 'source-over' : 'destination-out';
    const g = c.createRadialGradient(x, y, soft ? 0 : r, x, y, r);
    g.addColorStop(0, 'rgba(255,255,255,1)');
    g.addColorStop(1, soft ? 'rgba(255,255,255,0)' : 'rgba(255,255,255,1)');
    c.fillStyle = g;
    c.beginPath();
    c.arc(x, y, r, 0, 2 * Math.PI);
    c.fill();
  });
}

function at(ev) {
  const r = $('paint').getBoundingClientRect();
  return [(ev.clientX - r.left) * paint.w / r.width, (ev.clientY - r.top) * paint.h / r.height];
}

function setUpRegions() {
  const canvas = $('paint');
  canvas.addEventListener('pointerdown', (ev) => {
    if (!paint.layers.length) return;
    canvas.setPointerCapture(ev.pointerId);
    paint.undo.push(paint.layers.map((l) => l.getContext('2d').getImageData(0, 0, paint.w, paint.h)));
    if (paint.undo.length > UNDO_DEPTH) paint.undo.shift();
    paint.last = at(ev);
    dab(...paint.last);
    redraw();
  });
  canvas.addEventListener('pointermove', (ev) => {
    if (!paint.last) return;
    const [x, y] = at(ev);
    const [x0, y0] = paint.last;
    // Dabs a quarter of the brush apart along the stroke, so fast strokes stay whole.
    const step = Math.max(1, Number($('brush-size').value) / 8);
    const n = Math.ceil(Math.hypot(x - x0, y - y0) / step);
    for (let i = 1; i <= n; i++) dab(x0 + (x - x0) * i / n, y0 + (y - y0) * i / n);
    paint.last = [x, y];
    redraw();
  });
  const end = () => {
    if (!paint.last) return;
    paint.last = null;
    paint.painted = true;
    brushes();
    strokeEnded();
  };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  $('undo').addEventListener('click', () => {
    const snap = paint.undo.pop();
    if (snap) snap.forEach((d, i) => paint.layers[i].getContext('2d').putImageData(d, 0, 0));
    brushes();
    redraw();
    strokeEnded();
  });
  $('clear-masks').addEventListener('click', () => {
    paint.undo.push(paint.layers.map((l) => l.getContext('2d').getImageData(0, 0, paint.w, paint.h)));
    paint.layers.forEach((l) => l.getContext('2d').clearRect(0, 0, paint.w, paint.h));
    brushes();
    redraw();
    strokeEnded();
  });
}

// Each style's mask for the engine ({width, height, data}: one byte per pixel), or null for
// a style left unpainted (it applies everywhere).
function masks() {
  return paint.layers.map((l) => {
    const rgba = l.getContext('2d').getImageData(0, 0, paint.w, paint.h).data;
    const data = new Uint8Array(paint.w * paint.h);
    let any = false;
    for (let i = 0; i < data.length; i++) {
      data[i] = rgba[4 * i + 3];
      any ||= data[i] > 0;
    }
    return any ? { width: paint.w, height: paint.h, data } : null;
  });
}

// With "update as I paint": a run from the current picture after each stroke (a run going on
// stops at its next iteration and starts again from where it was).
function strokeEnded() {
  if (!$('live').checked || !state.resultBytes) return;
  if (state.running) {
    state.restart = true;
    state.stop = true;
  } else if (!$('start').disabled) {
    run({ fromCurrent: true });
  }
}

// ---- Settings -----------------------------------------------------------------------------

function setUpSettings() {
  const d = JSON.parse(defaults());
  $('size').value = d.size;
  $('size').max = d.max_size;
  $('iterations').value = d.iterations;
  $('strength').value = d.strength;
  $('optimizer').value = d.optimizer;
  const show = () => { $('strength-value').textContent = Number($('strength').value).toFixed(2); };
  $('strength').addEventListener('input', show);
  show();
}

// The engine's settings (nst_transfer::Settings as JSON): what is left out keeps its default.
function settings() {
  return JSON.stringify({
    size: Number($('size').value),
    iterations: Number($('iterations').value),
    loss: { strength: Number($('strength').value) },
    optimizer: $('optimizer').value,
    snapshot_every: Number($('preview-every').value),
    // The losses every iteration, so that the page updates (and can stop) at each.
    report_every: 1,
  });
}

// ---- A run --------------------------------------------------------------------------------

function draw(width, height, rgba) {
  const c = $('preview');
  c.width = width;
  c.height = height;
  c.getContext('2d').putImageData(new ImageData(rgba, width, height), 0, 0);
}

function fmt(v) { return Number(v).toPrecision(5); }
// The weighted parts of a loss, as the CLI's progress line shows them (the out-of-range
// penalty only when the image strays outside [0, 1]).
function parts(v) {
  const range = v.out_of_range ? `, out of range ${fmt(v.out_of_range)}` : '';
  return `content ${fmt(v.content)}, style ${fmt(v.style)}, tv ${fmt(v.tv)}${range}`;
}

function duration(s) {
  s = Math.round(s);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor(s % 3600 / 60)).padStart(2, '0')} min`;
}

// Why a scale ended (nst_transfer::ScaleEnd as JSON).
function ended(e) {
  if (e.why === 'converged') return `the loss fell less than ${100 * e.tolerance} % over ${e.window} iterations`;
  if (e.why === 'no_descent') return `no step lowered the loss`;
  return 'it ran every iteration allowed';
}

// A run of the settings as they stand; `fromCurrent`: from the last result rather than the
// photo (after a stroke, with "update as I paint").
async function run({ fromCurrent = false } = {}) {
  state.running = true;
  state.stop = false;
  state.restart = false;
  document.body.dataset.start = fromCurrent ? 'current' : 'photo';
  updateStart();
  $('stop').disabled = false;
  $('download').hidden = true;
  $('use-largest').hidden = true;
  $('tune').disabled = true;
  setState('running');
  say('status', 'Computing the style targets…');
  let scales = 1;
  const onEvent = (json, preview) => {
    const e = JSON.parse(json);
    if (e.event === 'plan') {
      const [w, h] = e.scales[e.scales.length - 1];
      say('status', `Plan: ${e.scales.length} scale${e.scales.length > 1 ? 's' : ''} up to ${w}×${h}, at most ${e.iterations} iterations each (at most ${Math.round(e.work)} evaluations at full size).`);
    } else if (e.event === 'scale') {
      scales = e.count;
      say('status', `Scale ${e.index + 1} of ${e.count}: ${e.width}×${e.height}` + (e.tiles > 1 ? ` in ${e.tiles} tiles` : ''));
    } else if (e.event === 'iteration') {
      $('progress').value = (e.scale + e.iteration / e.of) / scales;
      const v = e.values;
      if (e.scale === 0 && e.iteration === 1) document.body.dataset.firstLoss = v.total;
      document.body.dataset.perIteration = e.per_iteration;
      document.body.dataset.iteration = e.iteration;
      say('loss', `iteration ${e.iteration} of at most ${e.of}: loss ${fmt(v.total)} (${parts(v)}), ${(e.per_iteration * 1000).toFixed(0)} ms per iteration, at most ${duration(e.left)} left`);
    } else if (e.event === 'scale_end') {
      say('status', `Scale ${e.scale + 1} of ${scales} ended after ${e.iterations} iterations: ${ended(e)}.`);
    } else if (e.event === 'snapshot' && preview) {
      draw(preview.width, preview.height, preview.rgba);
    } else if (e.event === 'final') {
      document.body.dataset.finalLoss = e.values.total;
      say('loss', `final loss ${fmt(e.values.total)} (${parts(e.values)})`);
    }
    return !state.stop;
  };
  try {
    const start = fromCurrent ? state.resultBytes : undefined;
    const out = await state.studio.stylize(state.content.bytes, state.styles.map((s) => s.bytes), masks(), start, settings(), onEvent);
    const info = JSON.parse(out.json);
    const blob = new Blob([out.png], { type: 'image/png' });
    const bitmap = await createImageBitmap(blob);
    const c = $('preview');
    c.width = bitmap.width;
    c.height = bitmap.height;
    c.getContext('2d').drawImage(bitmap, 0, 0);
    if (state.result) URL.revokeObjectURL(state.result);
    state.result = URL.createObjectURL(blob);
    state.resultBytes = out.png;
    $('download').href = state.result;
    $('download').hidden = false;
    $('progress').value = info.stopped ? $('progress').value : 1;
    const closed = info.measure ? `; it closes ${(100 * info.measure.style_gap_closed).toFixed(0)} % of the style gap` : '';
    const kernels = info.kernels[0].toUpperCase() + info.kernels.slice(1);
    say('status', (info.stopped ? 'Stopped' : 'Done') + `: ${info.width}×${info.height}${closed}. ${kernels}.`);
    document.body.dataset.runKernels = info.kernels;
    document.body.dataset.outcomeLoss = info.values ? info.values.total : '';
    document.body.dataset.maskedStyles = info.masked_styles;
    document.body.dataset.runs = Number(document.body.dataset.runs || 0) + 1;
    setState(info.stopped ? 'stopped' : 'done');
  } catch (e) {
    fail('status', e);
    offerLargest(String(e && e.message ? e.message : e));
  } finally {
    state.running = false;
    $('stop').disabled = true;
    $('tune').disabled = false;
    updateStart();
  }
  if (state.restart && state.resultBytes) run({ fromCurrent: true });
}

// A size the device cannot hold: the engine names the largest that fits; offer it.
function offerLargest(message) {
  const m = message.match(/largest size of this shape that fits is about (\d+)×(\d+)/);
  if (!m) return;
  const side = Math.max(Number(m[1]), Number(m[2]));
  const b = $('use-largest');
  b.textContent = `Use ${side} px`;
  b.onclick = () => {
    $('size').value = side;
    b.hidden = true;
    say('status', `Size set to ${side} px.`);
    setState('ready');
  };
  b.hidden = false;
}

// ---- Start --------------------------------------------------------------------------------

async function main() {
  // What the browser can do comes first, before the visitor is asked for anything.
  if (!navigator.gpu && !window.isSecureContext) {
    cannotRun('WebGPU is only offered to secure pages: serve this page over HTTPS, or open it ' +
      'from localhost or 127.0.0.1.', 'no-webgpu');
    return;
  }
  if (!navigator.gpu) {
    cannotRun('This browser has no WebGPU, which nst needs. Chrome and Edge have it from ' +
      'version 113 on Windows, macOS and ChromeOS (Android from 121), Safari from 26, Firefox ' +
      'from 141 on Windows; on Linux, Chrome needs it enabled ' +
      '(chrome://flags/#enable-unsafe-webgpu).', 'no-webgpu');
    return;
  }
  try {
    await init();
  } catch (e) {
    fail('status', e);
    return;
  }
  const a = JSON.parse(await probe());
  if (!a.found) {
    cannotRun(`This browser has WebGPU but offers no adapter (GPU) for it. ${noAdapterFix()}`, 'no-adapter');
    return;
  }
  showAdapter(a);
  if (a.problem) {
    cannotRun(`${$('adapter').textContent} nst cannot run on it: ${a.problem}.`, 'unsupported');
    return;
  }
  setUpSettings();
  setUpImages();
  $('start').addEventListener('click', () => run());
  setUpRegions();
  $('stop').addEventListener('click', () => { state.stop = true; say('status', 'Stopping…'); });
  $('tune').addEventListener('click', tune);
  // The painted masks as the next run takes them, for the browser's console and the tests.
  window.nst = { masks };
  await setUpWeights();
}

main();
