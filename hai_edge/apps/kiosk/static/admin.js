// Admin pages: operators (add, disable/enable, unlock, reset PIN) and the activity log (read,
// download as CSV). The same API, session and CSRF rules as everything else (docs/kiosk.md).
import { $, api, guarded, status } from './api.js';
import { fmtTime } from '/shared/plain.js';

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function button(text, cls, fn) {
  const b = el('button', text, cls);
  b.type = 'button';
  b.addEventListener('click', guarded(fn));
  return b;
}

function userState(u) {
  if (u.disabled) return 'disabled';
  if (u.locked) return 'locked out';
  return 'active';
}

function userRow(u) {
  const tr = document.createElement('tr');
  tr.dataset.user = u.username;
  if (u.disabled) tr.className = 'voided';
  tr.append(el('td', u.username, 'mono'), el('td', u.role), el('td', userState(u), 'state'));
  const acts = el('td', undefined, 'actions');
  const path = `/api/users/${encodeURIComponent(u.username)}`;
  if (u.locked) {
    acts.append(button('Unlock', 'unlock', async () => {
      await api('POST', path + '/unlock'); status(`${u.username} can sign in again.`, 'ok'); await loadOperators();
    }));
  }
  acts.append(button(u.disabled ? 'Enable' : 'Disable', u.disabled ? 'enable' : 'disable', async () => {
    await api('POST', path + (u.disabled ? '/enable' : '/disable'));
    status(`${u.username} is ${u.disabled ? 'enabled' : 'disabled'}.`, 'ok'); await loadOperators();
  }));
  const pin = el('input'); pin.type = 'password'; pin.placeholder = 'new PIN'; pin.className = 'pin';
  pin.setAttribute('aria-label', `new PIN for ${u.username}`); pin.autocomplete = 'new-password';
  acts.append(pin, button('Reset PIN', 'reset', async () => {
    await api('POST', path + '/password', { password: pin.value });
    pin.value = ''; status(`New PIN set for ${u.username}.`, 'ok'); await loadOperators();
  }));
  tr.append(acts);
  return tr;
}

export async function loadOperators() {
  const r = await api('GET', '/api/users');
  $('operator-rows').replaceChildren(...r.users.map(userRow));
}

export async function loadAudit() {
  const r = await api('GET', '/api/audit?limit=200');
  $('audit-rows').replaceChildren(...r.items.map((e) => {
    const tr = document.createElement('tr');
    tr.append(el('td', fmtTime(e.at)), el('td', e.actor || '-'), el('td', e.action),
      el('td', `${e.target_kind} ${e.target_id}`, 'mono'), el('td', e.detail));
    return tr;
  }));
  $('audit-count').textContent = `${r.total} entr${r.total === 1 ? 'y' : 'ies'}` + (r.total > r.items.length ? ` (newest ${r.items.length} shown; the download has all)` : '');
}

async function download(resp, fallback) {
  const name = (resp.headers.get('Content-Disposition') || '').match(/filename="([^"]+)"/);
  const url = URL.createObjectURL(await resp.blob());
  const a = document.createElement('a');
  a.href = url; a.download = name ? name[1] : fallback;
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return a.download;
}

export function setupAdmin() {
  $('operator-form').addEventListener('submit', guarded(async (ev) => {
    ev.preventDefault();
    const username = $('op-user').value.trim();
    await api('POST', '/api/users', { username, password: $('op-pass').value, role: $('op-role').value });
    $('op-user').value = ''; $('op-pass').value = '';
    status(`${username} added.`, 'ok');
    await loadOperators();
  }));
  $('audit-download').addEventListener('click', guarded(async () => {
    const name = await download(await api('POST', '/api/audit/export', undefined, { raw: true }), 'audit.csv');
    status(`Downloaded ${name}.`, 'ok');
    await loadAudit();
  }));
}

export { download };
