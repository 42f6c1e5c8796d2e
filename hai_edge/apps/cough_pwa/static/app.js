// Cough-screening PWA: service worker first, then the bundle (hash-verified), onnxruntime-web,
// the golden self-test, and only then the record button. State for automation and debugging is
// mirrored on window.__pwa (phase, selftest, last result); see docs/pwa.md.
//
// Query parameters (for benchmarks and diagnostics only): threads=N (needs cross-origin
// isolation for N > 1), bench=N (time N runs of the model on the golden inputs after the
// self-test), qdq=float (INT8 numerics on float kernels: faster, not bit-exact; js/engine.js),
// score_anyway=1 (score the heads even with no cough detected; the result says scored_anyway).

import { loadBundle } from './js/bundle.js';
import { analyze } from './js/cough.js';
import { QDQ_MODES, chooseThreads, openEngine } from './js/engine.js';
import { EnergyStream } from './js/events.js';
import { runGolden } from './js/golden.js';
import { recordAudio } from './js/mic.js';
import { StreamResampler, resample } from './js/resample.js';
import { addResult, clearResults, deleteResult, listResults } from './js/store.js';

const $ = (id) => document.getElementById(id);
const q = new URLSearchParams(location.search);
const pwa = (window.__pwa = { phase: 'loading', error: null, selftest: null, result: null, raw: null, capture: null });
let ctx = null;          // {bundle, engine}
let lastRecord = null;

function setStatus(text) { $('status').textContent = text; }
function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) { if (k === 'class') e.className = v; else e.setAttribute(k, v); }
  for (const k of kids) e.append(k);
  return e;
}

function refuse(message) {
  pwa.phase = 'refused';
  const box = $('refusal');
  box.hidden = false;
  box.textContent = `This phone cannot score recordings with this bundle: ${message}. Nothing will be scored.`;
  $('record').disabled = true;
  setStatus('Self-test failed: scoring is disabled');
}

function fatal(err) {
  pwa.phase = 'error';
  pwa.error = String((err && err.message) || err);
  const box = $('refusal');
  box.hidden = false;
  box.textContent = `The app could not start: ${pwa.error}`;
  $('record').disabled = true;
  setStatus('Not ready');
}

async function waitForServiceWorker(ms) {
  if (!('serviceWorker' in navigator)) return 'unsupported';
  try {
    await navigator.serviceWorker.register('sw.js');
  } catch (err) {
    return 'failed';
  }
  if (navigator.serviceWorker.controller) return 'controlled';
  const controlled = await Promise.race([
    new Promise((res) => navigator.serviceWorker.addEventListener('controllerchange', () => res(true), { once: true })),
    new Promise((res) => setTimeout(() => res(false), ms)),
  ]);
  return controlled ? 'controlled' : 'timeout';
}

function showNotices(notices) {
  const box = $('notices');
  box.replaceChildren(...notices.map((n) => el('p', {}, n)));
}

async function start() {
  setStatus('Preparing the offline copy…');
  const sw = await waitForServiceWorker(60000);
  pwa.serviceWorker = sw;
  const bundle = await loadBundle();
  showNotices(bundle.notices);
  setStatus('Loading the model…');
  const threads = chooseThreads(parseInt(q.get('threads') || '0', 10));
  const qdq = QDQ_MODES.includes(q.get('qdq')) ? q.get('qdq') : 'fused';
  const engine = await openEngine(bundle.model, bundle.entry, bundle.spec.input_shape, threads, qdq);
  setStatus('Checking this phone against the golden vectors…');
  const st = await runGolden(bundle.golden, bundle, (xs) => engine.embed(xs));
  ctx = { bundle, engine };
  pwa.qdq = engine.qdq;
  pwa.threads = engine.threads;
  pwa.crossOriginIsolated = self.crossOriginIsolated;
  $('about').textContent = `Bundle ${bundle.manifest.name}, model ${bundle.entry.id} (${bundle.entry.precision}), `
    + `detector ${bundle.detector.name}, onnxruntime-web ${engine.version}, ${engine.threads} thread(s), QDQ ${engine.qdq}. `
    + 'Everything runs on this phone; no audio or result leaves it unless you share it.';
  pwa.selftest = st;
  if (!st.passed) { refuse(st.message); return; }
  const bench = parseInt(q.get('bench') || '0', 10);
  if (bench > 0) await runBench(bench);
  const offline = sw === 'controlled' ? 'works offline' : sw === 'unsupported' ? 'offline use needs https' : 'offline copy not ready';
  setStatus(`Ready (${offline}; self-test passed)`);
  $('record').disabled = false;
  pwa.phase = 'ready';
}

async function runBench(n) {
  // per-window model time (batch 1, as a recording is scored) and front-end time, in-page
  const { decodeArray } = await import('./js/golden.js');
  const { windowFeatures } = await import('./js/features.js');
  const spec = ctx.bundle.spec;
  const inputs = ctx.bundle.golden.items.filter((it) => it.input).map((it) => decodeArray(it.input).data);
  for (let i = 0; i < 10; i++) await ctx.engine.embed(inputs.slice(0, 1));        // warm-up
  ctx.engine.timesMs.length = 0;
  const x = [];
  for (let i = 0; i < n; i++) x.push(inputs[i % inputs.length]);
  const t0 = performance.now();
  await ctx.engine.embed(x);
  const wall = performance.now() - t0;
  const ts = [...ctx.engine.timesMs].sort((a, b) => a - b);
  const win = new Float32Array(spec.window_samples).map((_, i) => 0.3 * Math.sin(i * 0.05) + 0.01 * Math.sin(i * 1.7));
  for (let i = 0; i < 5; i++) windowFeatures(win, spec);
  const nf = Math.max(10, Math.min(100, n >> 2));
  const t1 = performance.now();
  for (let i = 0; i < nf; i++) windowFeatures(win, spec);
  const feat = (performance.now() - t1) / nf;
  pwa.bench = { n, threads: ctx.engine.threads, qdq: ctx.engine.qdq, crossOriginIsolated: self.crossOriginIsolated,
    median_ms: ts[ts.length >> 1], p90_ms: ts[Math.floor(ts.length * 0.9)], mean_ms: wall / n,
    min_ms: ts[0], features_ms: feat };
}

function setLevel(db) {
  const v = Math.max(-60, Math.min(0, Number.isFinite(db) ? db : -60));
  $('meter-bar').style.width = `${((v + 60) / 60) * 100}%`;
  $('meter').setAttribute('aria-valuenow', v.toFixed(0));
}

async function onRecord() {
  const { bundle } = ctx;
  const seconds = parseInt($('duration').value, 10);
  $('record').disabled = true;
  $('record').textContent = 'Recording…';
  $('share').disabled = true; $('export').disabled = true;
  pwa.phase = 'recording';
  const sr = bundle.spec.sample_rate;
  let live = null, heard = 0;
  try {
    $('prompt').textContent = 'Recording: cough now, 2 or 3 times.';
    const rec = await recordAudio({
      seconds,
      onLevel: setLevel,
      onBlock: (block, rate) => {   // live feedback only; the result comes from the whole recording
        if (!live) live = { rs: new StreamResampler(rate, sr), det: new EnergyStream(sr, bundle.detector.energy.cfg) };
        heard += live.det.push(live.rs.push(block)).length;
      },
      onProgress: (done) => { $('countdown').textContent = `${Math.max(0, Math.ceil(seconds - done))} s left · sounds heard: ${heard}`; },
    });
    setLevel(-Infinity);
    pwa.phase = 'analysing';
    $('countdown').textContent = 'Analysing…';
    $('prompt').textContent = 'Done recording.';
    const mono = resample(rec.samples, rec.sampleRate, sr);
    const source = `mic:${rec.device}`;
    const { result, raw } = await analyze(mono, source, {
      spec: bundle.spec, detector: bundle.detector, heads: bundle.heads, notices: bundle.notices,
      embed: (xs) => ctx.engine.embed(xs), keepEmbeddings: true, scoreAnyway: q.get('score_anyway') === '1',
      meta: { bundle: bundle.manifest.name, backend: 'onnxruntime-web', model: bundle.entry.id, detector: bundle.detector.name },
    });
    const processing = Object.fromEntries(['echoCancellation', 'noiseSuppression', 'autoGainControl']
      .filter((k) => k in rec.settings).map((k) => [k, rec.settings[k]]));
    result.capture = { device: rec.device, device_rate: rec.sampleRate, sample_rate: sr, captured_s: rec.samples.length / rec.sampleRate,
      started_unix_s: Date.now() / 1000 - rec.samples.length / rec.sampleRate, processing };
    result.recorded_at = new Date().toISOString();
    pwa.capture = rec;
    pwa.result = result;
    pwa.raw = raw;
    lastRecord = result;
    showResult(result);
    await addResult(result).catch(() => {});
    await showHistory();
    $('countdown').textContent = '';
    $('share').disabled = false; $('export').disabled = false;
    pwa.phase = 'done';
  } catch (err) {
    pwa.error = String((err && err.message) || err);
    $('countdown').textContent = '';
    $('results').replaceChildren(el('p', { class: 'positive', role: 'alert' }, `Could not analyse the recording: ${pwa.error}`));
    pwa.phase = 'failed';
  } finally {
    $('record').textContent = 'Record again';
    $('record').disabled = pwa.phase === 'refused';
  }
}

function fmtP(p) { return `${(100 * p).toFixed(0)}%`; }

function showResult(r) {
  const parts = [];
  const names = Object.keys(r.scores);
  if (!names.length) parts.push(el('p', {}, 'This bundle has no screening heads: events only.'));
  for (const name of names) {
    const s = r.scores[name];
    if (s === null) {  // withheld: a reason in plain words, never a verdict
      const why = (r.withheld || {})[name] || 'withheld';
      parts.push(el('p', { class: 'score withheld' }, `${name}: not scored (${why}).`));
      parts.push(el('p', { class: 'muted' }, 'Only coughs are scored. Record again and cough 2 or 3 times, strongly.'));
      continue;
    }
    const anyway = r.scored_anyway && (r.would_withhold || {})[name];
    parts.push(el('p', { class: `score ${s.positive ? 'positive' : 'negative'}` },
      `${name}: ${s.label} (score ${fmtP(s.mean)}, threshold ${fmtP(s.threshold)})`
      + (anyway ? ` - scored anyway, would not be scored: ${anyway}` : '')));
    parts.push(el('p', { class: 'muted' }, `max window ${fmtP(s.max)} over ${s.count} window(s)`));
  }
  parts.push(el('p', {}, r.events.length ? `${r.events.length} cough event(s) found.` : 'No cough events found.'));
  if (r.events.length) {
    const rows = r.events.map((e, i) => el('tr', {}, el('td', {}, String(i + 1)), el('td', {}, `${e.start_s.toFixed(2)}–${e.end_s.toFixed(2)} s`), el('td', {}, e.confidence.toFixed(2))));
    parts.push(el('table', {}, el('caption', { class: 'label' }, 'Events'), el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, '#'), el('th', { scope: 'col' }, 'time'), el('th', { scope: 'col' }, 'confidence'))), el('tbody', {}, ...rows)));
  }
  for (const n of r.notices) parts.push(el('p', { class: 'muted' }, `Note: ${n}`));
  $('results').replaceChildren(...parts);
}

async function showHistory() {
  const items = await listResults().catch(() => []);
  const ul = $('history');
  if (!items.length) { ul.replaceChildren(el('li', { class: 'muted' }, 'No saved results.')); return; }
  ul.replaceChildren(...items.reverse().map((r) => {
    const head = Object.entries(r.scores)[0];
    const what = !head ? `${r.events.length} event(s)` : head[1] === null ? `${head[0]}: not scored`
      : `${head[0]}: ${head[1].label} (${fmtP(head[1].mean)})`;
    const del = el('button', { type: 'button', 'aria-label': `Delete result of ${r.recorded_at}` }, 'Delete');
    del.addEventListener('click', async () => { await deleteResult(r.id); await showHistory(); });
    return el('li', {}, el('span', {}, `${new Date(r.recorded_at).toLocaleString()} · ${what}`), del);
  }));
}

function jsonFile(obj, name) { return new File([JSON.stringify(obj, null, 1)], name, { type: 'application/json' }); }

function download(file) {
  const url = URL.createObjectURL(file);
  const a = el('a', { href: url, download: file.name });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function share(obj, name) {
  const file = jsonFile(obj, name);
  if (navigator.canShare && navigator.canShare({ files: [file] })) {
    try { await navigator.share({ files: [file], title: 'Cough screening result' }); return; } catch (err) {
      if (err && err.name === 'AbortError') return;
    }
  }
  download(file);
}

const stamp = () => new Date().toISOString().replace(/[:.]/g, '-');
$('record').addEventListener('click', () => { onRecord(); });
$('share').addEventListener('click', () => lastRecord && share(lastRecord, `cough-result-${stamp()}.json`));
$('export').addEventListener('click', () => lastRecord && download(jsonFile(lastRecord, `cough-result-${stamp()}.json`)));
$('export-all').addEventListener('click', async () => download(jsonFile(await listResults(), `cough-history-${stamp()}.json`)));
$('clear').addEventListener('click', async () => { if (confirm('Delete all saved results on this phone?')) { await clearResults(); await showHistory(); } });

showHistory();
start().catch(fatal);
