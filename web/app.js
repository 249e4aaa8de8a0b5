// The page: inputs, weights (picked, or from this site, kept in IndexedDB), a run with
// progress and previews, and the result. The work is done by the engine in ./pkg.
import init, { defaults, published_weights, Studio } from './pkg/nst_web.js';

const $ = (id) => document.getElementById(id);
const state = { studio: null, content: null, styles: [], running: false, stop: false, result: null };

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

// ---- Weights, kept in IndexedDB between visits -------------------------------------------

const DB = 'nst', STORE = 'weights', KEY = 'vgg19';

function db() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function stored(op, value) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction(STORE, op === 'get' ? 'readonly' : 'readwrite');
    const s = tx.objectStore(STORE);
    const req = op === 'get' ? s.get(KEY) : op === 'put' ? s.put(value, KEY) : s.delete(KEY);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function openWeights(bytes, name, keep) {
  say('weights-status', `Checking ${name} and opening the GPU…`);
  setState('loading');
  try {
    state.studio = await Studio.open(bytes, name);
  } catch (e) {
    fail('weights-status', e);
    return;
  }
  if (keep) {
    try { await stored('put', { name, bytes }); } catch (e) { console.warn('not kept:', e); }
  }
  say('weights-status', `Weights loaded: ${name} (SHA-256 checked)${keep ? ', kept in this browser' : ''}.`);
  $('weights-forget').hidden = false;
  showAdapter();
  setState('ready');
  updateStart();
}

function showAdapter() {
  const a = JSON.parse(state.studio.adapter());
  const mib = (b) => `${Math.round(b / 2 ** 20)} MiB`;
  $('adapter').textContent = `GPU: ${a.name || 'name not told by the browser'} (${a.backend}${a.driver ? ', ' + a.driver : ''}); ` +
    `largest storage binding ${mib(a.max_storage_binding)}, largest buffer ${mib(a.max_buffer)}, ` +
    `timestamps ${a.timestamps ? 'yes' : 'no'}, subgroups ${a.subgroups ? 'yes' : 'no'}.`;
}

async function setUpWeights() {
  const pub = JSON.parse(published_weights());
  $('quantized-name').textContent = pub.quantized_file;
  $('weights-file').addEventListener('change', async (ev) => {
    const f = ev.target.files[0];
    if (f) await openWeights(new Uint8Array(await f.arrayBuffer()), f.name, true);
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
            await openWeights(new Uint8Array(await w.arrayBuffer()), url.split('/').pop(), true);
          } catch (e) { fail('weights-status', e); }
        });
      }
    }
  } catch (_) { /* no config beside the page */ }
  let kept = null;
  try { kept = await stored('get'); } catch (e) { console.warn('no IndexedDB:', e); }
  if (kept) {
    await openWeights(kept.bytes, kept.name, false);
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
        if (c) { state.content = c; thumbs('content-thumbs', [c]); }
      } else {
        const s = await readImages(files, true);
        if (s.length) { state.styles = s; thumbs('style-thumbs', s); }
      }
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
  $('start').disabled = !(state.studio && state.content && state.styles.length && !state.running);
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

async function run() {
  state.running = true;
  state.stop = false;
  updateStart();
  $('stop').disabled = false;
  $('download').hidden = true;
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
    const out = await state.studio.stylize(state.content.bytes, state.styles.map((s) => s.bytes), settings(), onEvent);
    const info = JSON.parse(out.json);
    const blob = new Blob([out.png], { type: 'image/png' });
    const bitmap = await createImageBitmap(blob);
    const c = $('preview');
    c.width = bitmap.width;
    c.height = bitmap.height;
    c.getContext('2d').drawImage(bitmap, 0, 0);
    if (state.result) URL.revokeObjectURL(state.result);
    state.result = URL.createObjectURL(blob);
    $('download').href = state.result;
    $('download').hidden = false;
    $('progress').value = info.stopped ? $('progress').value : 1;
    const closed = info.measure ? `; it closes ${(100 * info.measure.style_gap_closed).toFixed(0)} % of the style gap` : '';
    say('status', (info.stopped ? 'Stopped' : 'Done') + `: ${info.width}×${info.height}${closed}.`);
    setState(info.stopped ? 'stopped' : 'done');
  } catch (e) {
    fail('status', e);
  } finally {
    state.running = false;
    $('stop').disabled = true;
    updateStart();
  }
}

// ---- Start --------------------------------------------------------------------------------

async function main() {
  if (!navigator.gpu && !window.isSecureContext) {
    $('adapter').textContent = 'WebGPU is only offered to secure pages: serve this page over ' +
      'HTTPS, or open it from localhost or 127.0.0.1.';
    $('adapter').classList.add('error');
    setState('no-webgpu');
    return;
  }
  if (!navigator.gpu) {
    $('adapter').textContent = 'This browser has no WebGPU, which nst needs. Chrome and Edge ' +
      'have it from version 113 on Windows, macOS and ChromeOS (Android from 121), Safari from ' +
      '26, Firefox from 141 on Windows; on Linux, Chrome needs it enabled ' +
      '(chrome://flags/#enable-unsafe-webgpu).';
    $('adapter').classList.add('error');
    setState('no-webgpu');
    return;
  }
  try {
    await init();
  } catch (e) {
    fail('status', e);
    return;
  }
  setUpSettings();
  setUpImages();
  $('start').addEventListener('click', run);
  $('stop').addEventListener('click', () => { state.stop = true; say('status', 'Stopping…'); });
  await setUpWeights();
}

main();
