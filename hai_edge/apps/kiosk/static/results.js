// The kiosk's one result renderer: what was found, how clear it is, what to do next and the
// "not for clinical use" notice, in the catalogue's words (/shared/messages.json); the numbers
// (scores, cut-offs, check values, timings) only inside the card's Details disclosure.
import { advice, clinicalDue, findings, fmtTime, t, verdictOf } from '/shared/plain.js';

const scoreOf = { photo: (s) => s.probability, cough: (s) => s.mean };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function row(table, cells) {
  const tr = table.insertRow();
  for (const c of cells) tr.insertCell().textContent = c;
  return tr;
}

function fmt(v, digits = 3) { return v == null ? '-' : typeof v === 'number' ? v.toFixed(digits) : String(v); }

/** The technical part, for whoever needs it: every number the result carries. */
function details(c, items) {
  const box = el('details', 'cap-more');
  box.append(el('summary', '', t('result.details')));
  const scores = el('table', 'scores');
  scores.createTHead().append(...['Model output', 'Score', 'Threshold', 'Result'].map((h) => el('th', '', h)));
  const checks = el('table', 'checks');
  checks.createTHead().append(...['Check', 'Value', 'Limit', 'Flag'].map((h) => el('th', '', h)));
  const notices = el('ul', 'notices');
  const seen = new Set();
  const timing = [];
  items.forEach((r, i) => {
    const prefix = items.length > 1 ? `frame ${r.frame ?? i}: ` : '';
    for (const [name, s] of Object.entries(r.scores || {})) {
      if (s == null) row(scores, [prefix + name, 'withheld', '-', (r.withheld || {})[name] || '']);
      else {
        const anyway = r.scored_anyway && (r.would_withhold || {})[name];
        const verdict = verdictOf(s);
        const label = (verdict === 'borderline' ? `borderline: no verdict within ±${fmt(s.band)} of the threshold` : s.label)
          + (anyway ? ` (scored anyway; would not be scored: ${anyway})` : '');
        const cut = fmt(s.threshold) + (s.band ? ` ± ${fmt(s.band)}` : '');
        row(scores, [prefix + name, fmt(scoreOf[c.kind](s)), cut, label]).lastChild.className = { positive: 'pos', negative: 'neg' }[verdict] || 'borderline';
      }
    }
    for (const ch of (r.quality || {}).checks || []) row(checks, [prefix + ch.name, fmt(ch.score), fmt(ch.threshold), ch.flag + (ch.reason ? `: ${ch.reason}` : '')]);
    for (const n of r.notices || []) if (!seen.has(n)) { seen.add(n); notices.append(el('li', '', n)); }
    timing.push(...Object.entries(r.timing_ms || {}));
  });
  if (c.kind === 'photo' && c.result.timing_ms) timing.push(...Object.entries(c.result.timing_ms));
  if (!scores.rows.length) row(scores, ['no heads in this bundle', '', '', '']);
  const file = el('p', 'small', `File: ${c.name} (${c.source}); stored as sha256 ${c.media_sha256}`);
  const times = el('p', 'small timings', 'Timings (ms): ' + timing.map(([k, v]) => `${k} ${Number(v).toFixed(1)}`).join(', '));
  box.append(scores, checks, notices, file, times);
  return box;
}

/** One capture (photo or cough) as a result card; `onVoid(c, reason)` voids it. */
export function renderCapture(c, onVoid) {
  const node = $tpl();
  node.dataset.id = c.id; node.dataset.kind = c.kind;
  const source = t('result.source.' + c.source, {}, c.source);
  node.querySelector('.cap-title').textContent = `${t('result.' + c.kind)} (${source}: ${c.name})`;
  node.querySelector('.cap-when').textContent = fmtTime(c.created);
  const img = node.querySelector('.cap-img');
  if (c.kind === 'photo' && !c.media_deleted) { img.src = '/api/media/' + c.media_sha256; img.hidden = false; }
  const items = c.kind === 'photo' ? c.result.frames : [c.result];
  const found = node.querySelector('.findings');
  const warn = items.flatMap((r) => advice((r.quality || {}).checks || []));
  const next = new Set();
  items.forEach((r, i) => {
    const prefix = items.length > 1 ? t('result.frame', { n: i + 1 }) + ': ' : '';
    const lines = findings(r, scoreOf[c.kind], c.kind);
    if (!lines.length) found.append(el('li', 'finding', prefix + t('result.no_findings')));
    for (const f of lines) {
      const li = el('li', 'finding ' + f.cls, prefix + f.text);
      if (f.sure) li.append(el('span', 'sure', ` (${f.sure})`));
      found.append(li);
      if (f.next) next.add(f.next);
    }
    if (r.scored_anyway) found.append(el('li', 'finding warn', t('result.scored_anyway')));
  });
  for (const n of next) found.append(el('li', 'finding borderline-next', n));
  const quality = node.querySelector('.quality');
  const adv = [...new Set(warn)];
  if (adv.length) {
    quality.append(el('p', 'warn', t('result.quality.problem')));
    const ul = el('ul', 'advice');
    for (const a of adv) ul.append(el('li', '', a));
    quality.append(ul, el('p', '', t('result.next.' + c.kind)));
  } else if (items.some((r) => ((r.quality || {}).checks || []).length)) {
    quality.append(el('p', 'good', t('result.quality.good')));
  }
  if (clinicalDue(items.flatMap((r) => r.notices || []))) node.querySelector('.clinical').textContent = t('clinical.notice');
  else node.querySelector('.clinical').hidden = true;
  node.querySelector('.cap-detail').append(details(c, items));
  node.classList.add(adv.length ? 'warn' : 'ok');
  if (c.voided) {
    node.classList.add('voided');
    node.querySelector('.void-note').textContent = t('result.voided', { by: c.voided.by || '?', at: fmtTime(c.voided.at), reason: c.voided.reason });
    node.querySelector('.void-open').hidden = true;
  } else {
    node.querySelector('.void-note').hidden = true;
    wireVoid(node, (reason) => onVoid(c, reason));
  }
  return node;
}

function $tpl() { return document.getElementById('tpl-capture').content.firstElementChild.cloneNode(true); }

/** The "Void" button opens a reason field; confirming calls `done(reason)`. */
export function wireVoid(root, done) {
  const form = root.querySelector('.void-form');
  const open = root.querySelector('.void-open');
  open.addEventListener('click', () => { form.hidden = false; open.hidden = true; form.querySelector('input').focus(); });
  form.querySelector('.void-cancel').addEventListener('click', () => { form.hidden = true; open.hidden = false; });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const reason = form.querySelector('input').value.trim();
    if (reason) done(reason);
  });
}
