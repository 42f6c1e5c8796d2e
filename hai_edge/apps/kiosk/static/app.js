// hai-edge kiosk UI: a small single-page app over the JSON API (/api/, docs/kiosk.md).
// No external requests, no inline scripts (strict CSP). Words come from /shared/messages.json.
import { $, ApiError, api, checkSize, guarded, state, status, upload } from './api.js';
import { download, loadAudit, loadOperators, setupAdmin } from './admin.js';
import { resetRecording, setupRecording } from './record.js';
import { renderCapture, wireVoid } from './results.js';
import { fmtTime, loadMessages, micProblem, t } from '/shared/plain.js';

// ---------------------------------------------------------------------------- routing
const VIEWS = ['setup', 'login', 'history', 'new', 'encounter', 'operators', 'audit'];
function show(view) {
  for (const v of VIEWS) $('view-' + v).hidden = v !== view;
  $('nav').hidden = !state.user;
  $('menu-toggle').hidden = !state.user;
  document.body.classList.remove('menu-open');
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
  for (const a of document.querySelectorAll('.admin-only')) a.hidden = state.user.role !== 'admin';
  if (!state.info) state.info = await api('GET', '/api/info');
  const h = location.hash || '#/';
  const m = h.match(/^#\/encounter\/([0-9a-f]+)$/);
  if (m) return openEncounter(m[1]);
  if (h === '#/new') { show('new'); $('new-ref').focus(); return; }
  if (h === '#/operators' && state.user.role === 'admin') { show('operators'); return loadOperators(); }
  if (h === '#/audit' && state.user.role === 'admin') { show('audit'); return loadAudit(); }
  show('history');
  return loadHistory();
}

$('menu-toggle').addEventListener('click', () => document.body.classList.toggle('menu-open'));

// ------------------------------------------------------------------------ auth views
$('setup-form').addEventListener('submit', guarded(async (ev) => {
  ev.preventDefault();
  if ($('setup-pass').value !== $('setup-pass2').value) return status('The two entries differ.', 'error');
  const r = await api('POST', '/api/setup', { username: $('setup-user').value, password: $('setup-pass').value });
  state.csrf = r.csrf; go('#/');
}));

$('login-form').addEventListener('submit', guarded(async (ev) => {
  ev.preventDefault();
  const r = await api('POST', '/api/login', { username: $('login-user').value, password: $('login-pass').value });
  state.csrf = r.csrf; $('login-pass').value = '';
  go(location.hash && location.hash !== '#/login' ? location.hash : '#/');
}));

$('logout').addEventListener('click', async () => {
  try { await api('POST', '/api/logout'); } catch (e) { /* already signed out */ }
  state.user = null; state.info = null; go('#/login');
});

// ---------------------------------------------------------------------------- history
function cell(tr, text, cls) { const td = tr.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; }

async function loadHistory() {
  const q = $('search-q').value.trim();
  const r = await api('GET', '/api/encounters?limit=200&q=' + encodeURIComponent(q));
  const body = $('history-rows');
  body.replaceChildren();
  for (const e of r.items) {
    const tr = body.insertRow();
    tr.dataset.id = e.id;
    if (e.voided) tr.className = 'voided';
    const cb = document.createElement('input');
    cb.type = 'checkbox'; cb.className = 'pick'; cb.checked = state.selected.has(e.id);
    cb.setAttribute('aria-label', 'select ' + e.subject);
    cb.addEventListener('change', () => { if (cb.checked) state.selected.add(e.id); else state.selected.delete(e.id); });
    tr.insertCell().append(cb);
    cell(tr, fmtTime(e.created));
    const a = document.createElement('a');
    a.href = '#/encounter/' + e.id; a.textContent = e.subject + (e.voided ? ' (voided)' : ''); a.className = 'mono';
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
  const body = { encounter_ids: [...state.selected], destination, embeddings: $('export-emb').checked, include_voided: $('export-voided').checked };
  if (destination === 'folder') body.folder = $('export-folder').value.trim() || '.';
  return body;
}

$('export-download').addEventListener('click', guarded(async () => {
  const name = await download(await api('POST', '/api/export', exportBody('download'), { raw: true }), 'export.zip');
  $('export-result').textContent = `Downloaded ${name} (${state.selected.size} encounter(s)).`;
}));

$('export-to-folder').addEventListener('click', guarded(async () => {
  const r = await api('POST', '/api/export', exportBody('folder'));
  $('export-result').textContent = `Wrote ${r.files.join(', ')} to ${r.export_root}/${r.folder}`;
}));

// ------------------------------------------------------------------------- encounters
$('new-form').addEventListener('submit', guarded(async (ev) => {
  ev.preventDefault();
  const e = await api('POST', '/api/encounters', {
    subject_ref: $('new-ref').value, note: $('new-note').value, request_id: crypto.randomUUID(),
  });
  $('new-ref').value = ''; $('new-note').value = '';
  go('#/encounter/' + e.id);
}));

async function voidCapture(c, reason) {
  try {
    const e = await api('POST', `/api/encounters/${c.encounter_id}/captures/${c.id}/void`, { reason });
    showEncounter(e);
    status(t('status.voided'), 'ok');
  } catch (err) { status(err.message, 'error'); }
}

function showEncounter(e) {
  state.encounter = e;
  $('enc-subject').textContent = e.subject;
  $('enc-meta').textContent = `${fmtTime(e.created)} by ${e.operator || '?'}` + (e.note ? ` - ${e.note}` : '');
  $('view-encounter').classList.toggle('voided', !!e.voided);
  $('enc-void-note').hidden = !e.voided;
  $('enc-void-box').hidden = !!e.voided;
  if (e.voided) $('enc-void-note').textContent = t('result.voided', { by: e.voided.by || '?', at: fmtTime(e.voided.at), reason: e.voided.reason });
  $('results').replaceChildren(...[...e.captures].reverse().map((c) => renderCapture(c, voidCapture)));
}

async function openEncounter(id) {
  const e = await api('GET', '/api/encounters/' + id);
  show('encounter');
  resetRecording();
  showEncounter(e);
}

wireVoid($('enc-void-box'), async (reason) => {
  try {
    showEncounter(await api('POST', `/api/encounters/${state.encounter.id}/void`, { reason }));
    status(t('status.voided'), 'ok');
  } catch (err) { status(err.message, 'error'); }
});

function addShown(c) { state.encounter.captures.push(c); $('results').prepend(renderCapture(c, voidCapture)); }

async function addCapture(kind, blob, name, source) {
  const e = state.encounter;
  try {
    checkSize(kind, blob);
    status(t('status.checking.' + kind), 'info');
    addShown(await upload(`/api/encounters/${e.id}/${kind}?source=${source}`, blob, name));
    status(t('status.saved.' + kind), 'ok');
  } catch (err) { status(err.message, 'error'); }
}

for (const kind of ['photo', 'cough']) {
  $(kind + '-file').addEventListener('change', async (ev) => {
    const f = ev.target.files[0];
    ev.target.value = '';
    if (f) await addCapture(kind, f, f.name, 'upload');
  });
}

// ----------------------------------------------------------------------------- camera
let camStream = null;
$('camera-start').addEventListener('click', async () => {
  try {
    camStream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment', width: { ideal: 1920 }, height: { ideal: 1080 } }, audio: false });
    $('camera-video').srcObject = camStream;
    $('camera-box').hidden = false;
  } catch (e) { status(`${t('camera.unavailable')} (${t('mic.' + micProblem(e))})`, 'error'); }
});
function stopCamera() {
  if (camStream) camStream.getTracks().forEach((tr) => tr.stop());
  camStream = null; $('camera-box').hidden = true;
}
$('camera-stop').addEventListener('click', stopCamera);
$('camera-shoot').addEventListener('click', async () => {
  const v = $('camera-video');
  if (!v.videoWidth) return status(t('camera.not_ready'), 'warn');
  const canvas = document.createElement('canvas');
  canvas.width = v.videoWidth; canvas.height = v.videoHeight;
  canvas.getContext('2d').drawImage(v, 0, 0);
  const blob = await new Promise((r) => canvas.toBlob(r, 'image/jpeg', 0.92));
  stopCamera();
  await addCapture('photo', blob, 'camera.jpg', 'camera');
});

setupRecording(addCapture, (c) => addShown(c));
setupAdmin();

window.addEventListener('hashchange', () => route().catch((e) => status(e.message, 'error')));
loadMessages('/shared/messages.json').catch(() => {}).then(route).catch((e) => status(e.message, 'error'));
