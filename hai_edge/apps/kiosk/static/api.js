// The kiosk page's link to its JSON API (docs/kiosk.md): session state, the status banner and
// fetch wrappers. Every POST sends X-CSRF-Token; every error shows the kiosk's own message.
import { errorText, t } from '/shared/plain.js';

export const $ = (id) => document.getElementById(id);
export const state = { user: null, csrf: null, info: null, encounter: null, selected: new Set() };

function cookie(name) {
  const m = document.cookie.split('; ').find((c) => c.startsWith(name + '='));
  return m ? decodeURIComponent(m.slice(name.length + 1)) : null;
}

/** The one banner. Kinds: info (work in progress), ok, warn, error. Empty text hides it. */
export function status(msg, kind = 'info') {
  const el = $('status');
  el.textContent = msg;
  el.className = 'status ' + kind;
  el.hidden = !msg;
}

// A banner belongs to the action that raised it: the next click or form sent clears it (before
// that action's own handler runs, so its new message is the one left standing).
function clearOnNextAction(ev) {
  if (ev.type === 'click' && !ev.target.closest('button, a, label.button, summary')) return;
  if (!$('status').classList.contains('info')) status('');
}
document.addEventListener('click', clearOnNextAction, true);
document.addEventListener('submit', clearOnNextAction, true);

export class ApiError extends Error {
  constructor(status, message, retryAfter) { super(message); this.status = status; this.retryAfter = retryAfter; }
}

export async function api(method, path, body, { raw = false } = {}) {
  const headers = {};
  let payload = body;
  if (method !== 'GET') headers['X-CSRF-Token'] = state.csrf || cookie('kiosk_csrf') || '';
  if (body !== undefined && !(body instanceof FormData)) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  } catch (e) {
    throw new ApiError(0, errorText(0));
  }
  if (!resp.ok) {
    let msg = null;
    try { msg = (await resp.json()).error || null; } catch (e) { /* not JSON: the catalogue's words */ }
    if (resp.status === 401 && !path.startsWith('/api/login')) { state.user = null; location.hash = '#/login'; }
    throw new ApiError(resp.status, errorText(resp.status, msg), parseInt(resp.headers.get('Retry-After') || '0', 10));
  }
  if (raw) return resp;
  return resp.status === 204 ? null : resp.json();
}

/** Refuse a file over the kiosk's limit before sending it (the server checks again). */
export function checkSize(kind, blob) {
  const limits = (state.info && state.info.limits) || {};
  const limit = kind === 'photo' ? limits.photo_bytes : limits.audio_bytes;
  if (!limit || blob.size <= limit) return;
  const mb = (n) => (n / (1024 * 1024)).toFixed(n < 10 * 1024 * 1024 ? 1 : 0);
  throw new ApiError(413, t('upload.too_large', { size: mb(blob.size), limit: mb(limit), what: t('upload.what.' + kind) }));
}

// Uploads are retried when the kiosk is busy (503 + Retry-After), so nothing is lost.
export async function upload(path, blob, name) {
  for (let attempt = 0; ; attempt++) {
    const fd = new FormData();
    fd.append('file', blob, name);
    try {
      return await api('POST', path, fd);
    } catch (e) {
      if (e.status === 503 && e.retryAfter && attempt < 5) {
        status(t('status.busy_retry', { s: e.retryAfter }), 'info');
        await new Promise((r) => setTimeout(r, e.retryAfter * 1000));
        continue;
      }
      throw e;
    }
  }
}

/** Click handler that shows any error in the banner. */
export function guarded(fn) {
  return async (ev) => {
    try { await fn(ev); } catch (e) { status(e.message, 'error'); }
  };
}
