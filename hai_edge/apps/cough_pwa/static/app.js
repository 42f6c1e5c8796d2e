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
import { el, renderResult } from './js/render.js';
import { StreamResampler, resample } from './js/resample.js';
import { addResult, clearResults, deleteResult, listResults } from './js/store.js';
import { LevelWatch, clinicalDue, fmtTime, loadMessages, micProblem, t, verdictOf } from './shared/plain.js';

const $ = (id) => document.getElementById(id);
const q = new URLSearchParams(location.search);
const pwa = (window.__pwa = { phase: 'loading', error: null, selftest: null, result: null, raw: null, capture: null });
let ctx = null;          // {bundle, engine}
let lastRecord = null;
const control = {};      // recordAudio sets control.stop while it records

function setStatus(text) { $('status').textContent = text; }

function refuse(message) {
  pwa.phase = 'refused';
  const box = $('refusal');
  box.hidden = false;
  box.replaceChildren(el('p', {}, 'This phone cannot score recordings: its self-check against the stored reference results (golden vectors) failed, so nothing will be scored.'),
    el('details', {}, el('summary', {}, t('result.details')), el('p', {}, message)));
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

function showNotices(notices) {   // the catalogue's wording up front, the bundle's own behind Details
  const box = $('notices');
  const kids = clinicalDue(notices) ? [el('p', {}, t('clinical.notice'))] : [];
  if (notices.length) kids.push(el('details', {}, el('summary', {}, t('result.details')), ...notices.map((n) => el('p', {}, n))));
  box.replaceChildren(...kids);
}

async function start() {
  await loadMessages('./shared/messages.json');
  setStatus('Preparing the offline copy…');
  const sw = await waitForServiceWorker(60000);
  pwa.serviceWorker = sw;
  const bundle = await loadBundle();
  showNotices(bundle.notices);
  setStatus('Loading the model…');
  const threads = chooseThreads(parseInt(q.get('threads') || '0', 10));
  const qdq = QDQ_MODES.includes(q.get('qdq')) ? q.get('qdq') : 'fused';
  const engine = await openEngine(bundle.model, bundle.entry, bundle.spec.input_shape, threads, qdq);
  setStatus('Checking that this phone computes correctly…');
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
  setStatus(`Ready (${offline}; self-check passed)`);
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

function hint(kind, text) {
  const h = $('rec-hint');
  h.textContent = text || '';
  h.className = 'hint ' + (kind || '');
  h.hidden = !text;
}

function recording(on) {
  $('record').disabled = on || pwa.phase === 'refused';
  $('stop').hidden = !on; $('stop').disabled = !on;
}

async function onRecord() {
  const { bundle } = ctx;
  const seconds = parseInt($('duration').value, 10);
  recording(true);
  $('record').textContent = t('rec.waiting');
  $('share').disabled = true; $('export').disabled = true;
  lastRecord = null;   // the previous result goes: this recording's result replaces it
  $('results').replaceChildren(el('p', { class: 'muted' }, t('rec.in_progress')));
  pwa.phase = 'recording';
  const sr = bundle.spec.sample_rate;
  let live = null, heard = 0, watch = null, check = null;
  hint('', '');
  try {
    const rec = await recordAudio({
      seconds, control,
      onStart: () => {   // only now is the microphone really listening
        $('record').textContent = 'Recording…';
        $('prompt').textContent = t('rec.recording');
        check = setInterval(() => {
          const v = watch && watch.verdict();
          if (v === 'silent' || v === 'clipping') hint('warn', t('live.' + v));
          else if (v === 'ok') hint('ok', t('live.ok'));
        }, 250);
      },
      onLevel: setLevel,
      onBlock: (block, rate) => {   // live feedback only; the result comes from the whole recording
        if (!live) live = { rs: new StreamResampler(rate, sr), det: new EnergyStream(sr, bundle.detector.energy.cfg) };
        if (!watch) watch = new LevelWatch(rate);
        watch.push(block);
        heard += live.det.push(live.rs.push(block)).length;
      },
      onProgress: (done) => { $('countdown').textContent = t('rec.heard', { s: Math.max(0, Math.ceil(seconds - done)), n: heard }); },
    }).finally(() => clearInterval(check));
    setLevel(-Infinity);
    recording(false);
    if (!$('rec-hint').classList.contains('warn')) hint('', '');
    pwa.phase = 'analysing';
    $('countdown').textContent = t('rec.checking');
    $('prompt').textContent = t('rec.checking');
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
    $('results').replaceChildren(...renderResult(result));
    await addResult(result).catch(() => {});
    await showHistory();
    $('countdown').textContent = '';
    $('prompt').textContent = t('rec.done');
    $('share').disabled = false; $('export').disabled = false;
    pwa.phase = 'done';
  } catch (err) {
    pwa.error = String((err && err.message) || err);
    const mic = err && err.name === 'MicError';
    const why = mic ? t('mic.' + micProblem(err)) : /audio is silent/.test(pwa.error) ? t('rec.silent') : t('rec.failed', { reason: pwa.error });
    $('countdown').textContent = '';
    $('prompt').textContent = mic ? why : t('rec.again');
    $('results').replaceChildren(el('p', { class: 'positive', role: 'alert' }, why));
    pwa.phase = 'failed';
  } finally {
    recording(false);
    $('record').textContent = 'Record again';
  }
}

async function showHistory() {
  const items = await listResults().catch(() => []);
  const ul = $('history');
  if (!items.length) { ul.replaceChildren(el('li', { class: 'muted' }, 'No saved results.')); return; }
  ul.replaceChildren(...items.reverse().map((r) => {
    const first = Object.entries(r.scores)[0];
    const what = first ? (first[1] ? (verdictOf(first[1]) === 'borderline' ? t('result.borderline', { name: first[0] }) : t('result.finding', { name: first[0], label: first[1].label }))
      : t('result.not_scored', { name: first[0], reason: (r.withheld || {})[first[0]] || '-' }))
      : (r.events.length ? t('result.events.some', { n: r.events.length }) : t('result.events.none'));
    const del = el('button', { type: 'button', 'aria-label': `Delete result of ${fmtTime(r.recorded_at)}` }, 'Delete');
    del.addEventListener('click', async () => { await deleteResult(r.id); await showHistory(); });
    return el('li', {}, el('span', {}, `${fmtTime(r.recorded_at)} · ${what}`), del);
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
$('stop').addEventListener('click', () => { if (control.stop) control.stop(); });
$('share').addEventListener('click', () => lastRecord && share(lastRecord, `cough-result-${stamp()}.json`));
$('export').addEventListener('click', () => lastRecord && download(jsonFile(lastRecord, `cough-result-${stamp()}.json`)));
$('export-all').addEventListener('click', async () => download(jsonFile(await listResults(), `cough-history-${stamp()}.json`)));
$('clear').addEventListener('click', async () => { if (confirm('Delete all saved results on this phone?')) { await clearResults(); await showHistory(); } });

showHistory();
start().catch(fatal);
