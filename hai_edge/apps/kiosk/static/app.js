// hai-edge kiosk UI: a small single-page app over the JSON API (/api/, docs/kiosk.md).
// No external requests, no inline scripts (strict CSP). Every POST sends X-CSRF-Token.
const $ = (id) => document.getElementById(id);
const state = { user: null, csrf: null, info: null, encounter: null, selected: new Set() };

function cookie(name) {
  const m = document.cookie.split('; ').find((c) => c.startsWith(name + '='));
  return m ? decodeURIComponent(m.slice(name.length + 1)) : null;
}

function status(msg, kind = 'info') {
  const el = $('status');
  el.textContent = msg;
  el.className = 'status ' + kind;
  el.hidden = !msg;
}

class ApiError extends Error {
  constructor(status, message, retryAfter) { super(message); this.status = status; this.retryAfter = retryAfter; }
}

async function api(method, path, body, { raw = false } = {}) {
  const headers = {};
  let payload = body;
  if (method !== 'GET') headers['X-CSRF-Token'] = state.csrf || cookie('kiosk_csrf') || '';
  if (body !== undefined && !(body instanceof FormData)) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const resp = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  if (!resp.ok) {
    let msg = resp.statusText;
    try { msg = (await resp.json()).error || msg; } catch (e) { /* not JSON */ }
    if (resp.status === 401 && !path.startsWith('/api/login')) { state.user = null; go('#/login'); }
    throw new ApiError(resp.status, msg, parseInt(resp.headers.get('Retry-After') || '0', 10));
  }
  if (raw) return resp;
  return resp.status === 204 ? null : resp.json();
}

// Uploads are retried when the kiosk is busy (503 + Retry-After), so nothing is lost.
async function upload(path, blob, name) {
  for (let attempt = 0; ; attempt++) {
    const fd = new FormData();
    fd.append('file', blob, name);
    try {
      return await api('POST', path, fd);
    } catch (e) {
      if (e.status === 503 && e.retryAfter && attempt < 5) {
        status(`Kiosk busy, retrying in ${e.retryAfter} s ...`, 'warn');
        await new Promise((r) => setTimeout(r, e.retryAfter * 1000));
        continue;
      }
      throw e;
    }
  }
}

// ---------------------------------------------------------------------------- routing
const VIEWS = ['setup', 'login', 'history', 'new', 'encounter'];
function show(view) {
  for (const v of VIEWS) $('view-' + v).hidden = v !== view;
  $('nav').hidden = !state.user;
  document.body.dataset.view = view;
}
function go(hash) { if (location.hash === hash) route(); else location.hash = hash; }

async function route() {
  status('');
  const s = await api('GET', '/api/session');
  state.user = s.user; state.csrf = s.csrf;
  if (s.setup_required) return show('setup');
  if (!state.user) return show('login');
  $('whoami').textContent = `${state.user.username} (${state.user.role})`;
  if (!state.info) state.info = await api('GET', '/api/info');
  const h = location.hash || '#/';
  const m = h.match(/^#\/encounter\/([0-9a-f]+)$/);
  if (m) return openEncounter(m[1]);
  if (h === '#/new') { show('new'); $('new-ref').focus(); return; }
  show('history');
  return loadHistory();
}

// ------------------------------------------------------------------------ auth views
$('setup-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if ($('setup-pass').value !== $('setup-pass2').value) return status('The two entries differ.', 'error');
  try {
    const r = await api('POST', '/api/setup', { username: $('setup-user').value, password: $('setup-pass').value });
    state.csrf = r.csrf; go('#/');
  } catch (e) { status(e.message, 'error'); }
});

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const r = await api('POST', '/api/login', { username: $('login-user').value, password: $('login-pass').value });
    state.csrf = r.csrf; $('login-pass').value = '';
    go(location.hash && location.hash !== '#/login' ? location.hash : '#/');
  } catch (e) { status(e.message, 'error'); }
});

$('logout').addEventListener('click', async () => {
  try { await api('POST', '/api/logout'); } catch (e) { /* already signed out */ }
  state.user = null; state.info = null; go('#/login');
});

// ---------------------------------------------------------------------------- history
function fmtTime(iso) { return iso.replace('T', ' ').replace('Z', ' UTC'); }
function cell(tr, text, cls) { const td = tr.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; }

async function loadHistory() {
  const q = $('search-q').value.trim();
  const r = await api('GET', '/api/encounters?limit=200&q=' + encodeURIComponent(q));
  const body = $('history-rows');
  body.replaceChildren();
  for (const e of r.items) {
    const tr = body.insertRow();
    tr.dataset.id = e.id;
    const cb = document.createElement('input');
    cb.type = 'checkbox'; cb.className = 'pick'; cb.checked = state.selected.has(e.id);
    cb.setAttribute('aria-label', 'select ' + e.subject);
    cb.addEventListener('change', () => { if (cb.checked) state.selected.add(e.id); else state.selected.delete(e.id); });
    tr.insertCell().append(cb);
    cell(tr, fmtTime(e.created));
    const a = document.createElement('a');
    a.href = '#/encounter/' + e.id; a.textContent = e.subject; a.className = 'mono';
    tr.insertCell().append(a);
    cell(tr, e.counts.photo); cell(tr, e.counts.cough); cell(tr, e.operator || ''); cell(tr, e.note);
  }
  $('history-count').textContent = `${r.total} encounter(s)` + (q ? ` matching "${q}"` : '');
}

$('search-form').addEventListener('submit', (ev) => { ev.preventDefault(); loadHistory(); });
$('select-all').addEventListener('change', () => {
  for (const cb of document.querySelectorAll('#history-rows .pick')) {
    cb.checked = $('select-all').checked; cb.dispatchEvent(new Event('change'));
  }
});

function exportBody(destination) {
  if (!state.selected.size) throw new ApiError(0, 'Select at least one encounter to export.');
  const body = { encounter_ids: [...state.selected], destination, embeddings: $('export-emb').checked };
  if (destination === 'folder') body.folder = $('export-folder').value.trim() || '.';
  return body;
}

$('export-download').addEventListener('click', async () => {
  try {
    const resp = await api('POST', '/api/export', exportBody('download'), { raw: true });
    const name = (resp.headers.get('Content-Disposition') || '').match(/filename="([^"]+)"/);
    const url = URL.createObjectURL(await resp.blob());
    const a = document.createElement('a');
    a.href = url; a.download = name ? name[1] : 'export.zip';
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    $('export-result').textContent = `Downloaded ${a.download} (${state.selected.size} encounter(s)).`;
  } catch (e) { status(e.message, 'error'); }
});

$('export-to-folder').addEventListener('click', async () => {
  try {
    const r = await api('POST', '/api/export', exportBody('folder'));
    $('export-result').textContent = `Wrote ${r.files.join(', ')} to ${r.export_root}/${r.folder}`;
  } catch (e) { status(e.message, 'error'); }
});

// ------------------------------------------------------------------------- encounters
$('new-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const e = await api('POST', '/api/encounters', {
      subject_ref: $('new-ref').value, note: $('new-note').value, request_id: crypto.randomUUID(),
    });
    $('new-ref').value = ''; $('new-note').value = '';
    go('#/encounter/' + e.id);
  } catch (e) { status(e.message, 'error'); }
});

async function openEncounter(id) {
  const e = await api('GET', '/api/encounters/' + id);
  state.encounter = e;
  show('encounter');
  $('enc-subject').textContent = e.subject;
  $('enc-meta').textContent = `${fmtTime(e.created)} by ${e.operator || '?'}` + (e.note ? ` - ${e.note}` : '');
  $('mic-kiosk').hidden = !(state.info && state.info.mic);
  const box = $('results');
  box.replaceChildren();
  for (const c of [...e.captures].reverse()) box.append(renderCapture(c));
}

function li(list, text, cls) { const el = document.createElement('li'); el.textContent = text; if (cls) el.className = cls; list.append(el); }

function renderCapture(c) {
  const node = $('tpl-capture').content.firstElementChild.cloneNode(true);
  node.dataset.id = c.id; node.dataset.kind = c.kind;
  node.querySelector('.cap-title').textContent = (c.kind === 'photo' ? 'Photo' : 'Cough') + ` (${c.source}: ${c.name})`;
  node.querySelector('.cap-when').textContent = fmtTime(c.created);
  const img = node.querySelector('.cap-img');
  if (c.kind === 'photo' && !c.media_deleted) { img.src = '/api/media/' + c.media_sha256; img.hidden = false; }
  const flags = node.querySelector('.flags');
  const scores = node.querySelector('.scores tbody');
  const notices = node.querySelector('.notices');
  const items = c.kind === 'photo' ? c.result.frames : [c.result];
  const seen = new Set();
  let timing = [];
  items.forEach((r, i) => {
    const q = r.quality || { passed: true, checks: [] };
    const prefix = items.length > 1 ? `frame ${r.frame ?? i}: ` : '';
    if (!q.checks.length) li(flags, prefix + 'no quality checks for this input', 'flag none');
    for (const ch of q.checks) li(flags, prefix + (ch.flag === 'warn' ? ch.reason : `${ch.name}: ok`), 'flag ' + ch.flag);
    for (const [head, s] of Object.entries(r.scores || {})) {
      const tr = scores.insertRow();
      cell(tr, prefix + head);
      if (s === null) {  // withheld (no cough, blocking quality check, unlike the training data)
        const why = (r.withheld || {})[head] || 'withheld';
        cell(tr, '-'); cell(tr, '-');
        cell(tr, `not scored: ${why}`, 'withheld');
        continue;
      }
      const score = c.kind === 'photo' ? s.probability : s.mean;
      cell(tr, score.toFixed(3)); cell(tr, s.threshold.toFixed(3));
      const anyway = r.scored_anyway && (r.would_withhold || {})[head];
      cell(tr, s.label + (anyway ? ` (scored anyway; would not be scored: ${anyway})` : ''), s.positive ? 'pos' : 'neg');
    }
    for (const n of r.notices || []) if (!seen.has(n)) { seen.add(n); li(notices, n); }
    timing = Object.entries(r.timing_ms || {});
  });
  if (c.kind === 'photo' && c.result.timing_ms) timing = timing.concat(Object.entries(c.result.timing_ms));
  if (!scores.rows.length) { const tr = scores.insertRow(); cell(tr, 'no heads in this bundle').colSpan = 4; }
  node.querySelector('.timings').textContent = 'Timings (ms): ' + timing.map(([k, v]) => `${k} ${Number(v).toFixed(1)}`).join(', ');
  node.classList.add(items.every((r) => (r.quality || {}).passed !== false) ? 'ok' : 'warn');
  return node;
}

async function addCapture(kind, blob, name, source) {
  const e = state.encounter;
  status(`Analysing ${kind} ...`);
  try {
    const c = await upload(`/api/encounters/${e.id}/${kind}?source=${source}`, blob, name);
    e.captures.push(c);
    $('results').prepend(renderCapture(c));
    status(`${kind === 'photo' ? 'Photo' : 'Cough'} saved and analysed.`, 'ok');
  } catch (err) { status(err.message, 'error'); }
}

$('photo-file').addEventListener('change', async (ev) => {
  const f = ev.target.files[0];
  ev.target.value = '';
  if (f) await addCapture('photo', f, f.name, 'upload');
});
$('cough-file').addEventListener('change', async (ev) => {
  const f = ev.target.files[0];
  ev.target.value = '';
  if (f) await addCapture('cough', f, f.name, 'upload');
});

// ----------------------------------------------------------------------------- camera
let camStream = null;
$('camera-start').addEventListener('click', async () => {
  try {
    camStream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment', width: { ideal: 1920 }, height: { ideal: 1080 } }, audio: false });
    $('camera-video').srcObject = camStream;
    $('camera-box').hidden = false;
  } catch (e) { status('Camera unavailable: ' + e.message, 'error'); }
});
function stopCamera() {
  if (camStream) camStream.getTracks().forEach((t) => t.stop());
  camStream = null; $('camera-box').hidden = true;
}
$('camera-stop').addEventListener('click', stopCamera);
$('camera-shoot').addEventListener('click', async () => {
  const v = $('camera-video');
  if (!v.videoWidth) return status('The camera is not ready yet.', 'warn');
  const canvas = document.createElement('canvas');
  canvas.width = v.videoWidth; canvas.height = v.videoHeight;
  canvas.getContext('2d').drawImage(v, 0, 0);
  const blob = await new Promise((r) => canvas.toBlob(r, 'image/jpeg', 0.92));
  stopCamera();
  await addCapture('photo', blob, 'camera.jpg', 'camera');
});

// --------------------------------------------------------------------------- recording
// Raw microphone audio (echo cancellation, noise suppression and gain control off: they would
// change the cough), captured by an AudioWorklet and encoded as 16-bit mono WAV.
let recorder = null;
function encodeWav(samples, rate) {
  const buf = new ArrayBuffer(44 + samples.length * 2);
  const v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, 'RIFF'); v.setUint32(4, 36 + samples.length * 2, true); str(8, 'WAVE');
  str(12, 'fmt '); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
  str(36, 'data'); v.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    v.setInt16(44 + i * 2, s < 0 ? Math.round(s * 32768) : Math.round(s * 32767), true);
  }
  return new Blob([buf], { type: 'audio/wav' });
}

async function startRecording() {
  const secs = Math.max(1, Math.min(30, parseFloat($('rec-seconds').value) || 5));
  const stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 } });
  const ctx = new AudioContext();
  if (ctx.state !== 'running') await ctx.resume();
  await ctx.audioWorklet.addModule('/static/recorder-worklet.js');
  const src = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, 'kiosk-recorder', { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1, channelCountMode: 'explicit' });
  const sink = ctx.createGain(); sink.gain.value = 0;
  const chunks = []; let total = 0; const want = Math.round(secs * ctx.sampleRate);
  let done;
  const finished = new Promise((r) => { done = r; });
  // The graph delivers exact zeros until the microphone's first samples arrive. They are not
  // audio, and leading digital silence would pin the cough detector's noise floor, so skip
  // them (for at most 1 s: a muted microphone still records, and gets the "quiet" warning).
  let waited = 0;
  node.port.onmessage = (ev) => {
    if (total >= want) return;
    if (!total && waited < ctx.sampleRate && !ev.data.some((v) => v !== 0)) { waited += ev.data.length; return; }
    chunks.push(ev.data); total += ev.data.length;
    let peak = 0; for (const x of ev.data) peak = Math.max(peak, Math.abs(x));
    $('rec-level').value = peak;
    if (total >= want) done();
  };
  src.connect(node); node.connect(sink); sink.connect(ctx.destination);
  recorder = { stop: done };
  $('rec-start').disabled = true; $('rec-stop').disabled = false;
  status(`Recording ${secs} s: ask for a strong cough ...`);
  await finished;
  stream.getTracks().forEach((t) => t.stop());
  const rate = ctx.sampleRate;
  await ctx.close();
  recorder = null;
  $('rec-start').disabled = false; $('rec-stop').disabled = true; $('rec-level').value = 0;
  const x = new Float32Array(Math.min(total, want)); let off = 0;
  for (const c of chunks) { const k = Math.min(c.length, x.length - off); x.set(c.subarray(0, k), off); off += k; }
  return encodeWav(x, rate);
}

$('rec-start').addEventListener('click', async () => {
  try {
    const wav = await startRecording();
    await addCapture('cough', wav, 'browser-recording.wav', 'browser-mic');
  } catch (e) {
    $('rec-start').disabled = false; $('rec-stop').disabled = true;
    status('Recording failed: ' + e.message, 'error');
  }
});
$('rec-stop').addEventListener('click', () => { if (recorder) recorder.stop(); });

$('mic-kiosk').addEventListener('click', async () => {
  const e = state.encounter;
  const seconds = Math.max(1, Math.min(30, parseFloat($('rec-seconds').value) || 5));
  status(`Recording ${seconds} s with the kiosk microphone ...`);
  try {
    const c = await api('POST', `/api/encounters/${e.id}/cough/mic`, { seconds });
    e.captures.push(c); $('results').prepend(renderCapture(c));
    status('Cough saved and analysed.', 'ok');
  } catch (err) { status(err.message, 'error'); }
});

window.addEventListener('hashchange', () => route().catch((e) => status(e.message, 'error')));
route().catch((e) => status(e.message, 'error'));
