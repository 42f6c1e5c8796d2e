// The phone app's one result renderer: what was found and how clear it is, what to do next and
// the "not for clinical use" notice, in the catalogue's words (shared/messages.json, the same
// as the kiosk's); the numbers (scores, cut-offs, windows, events) only inside "Details".
import { advice, clinicalDue, findings, t, verdictOf } from '../shared/plain.js';

export function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) { if (k === 'class') e.className = v; else e.setAttribute(k, v); }
  for (const k of kids) e.append(k);
  return e;
}

function fmtP(p) { return p == null ? '-' : `${(100 * p).toFixed(0)}%`; }

function details(r) {
  const box = el('details', { class: 'more' }, el('summary', {}, t('result.details')));
  const names = Object.keys(r.scores || {});
  if (!names.length) box.append(el('p', {}, 'This bundle has no screening heads: events only.'));
  for (const name of names) {
    const s = r.scores[name];
    box.append(s == null
      ? el('p', {}, `${name}: withheld (${(r.withheld || {})[name] || ''})`)
      : el('p', {}, `${name}: ${verdictOf(s) === 'borderline' ? 'borderline, no verdict' : s.label} (score ${fmtP(s.mean)}, threshold ${fmtP(s.threshold)}`
        + (s.band ? ` ± ${fmtP(s.band)}` : '') + `; max window ${fmtP(s.max)} over ${s.count} window(s))`
        + (r.scored_anyway && (r.would_withhold || {})[name] ? `; scored anyway, would not be scored: ${r.would_withhold[name]}` : '')));
  }
  if (r.events.length) {
    const rows = r.events.map((e, i) => el('tr', {}, el('td', {}, String(i + 1)), el('td', {}, `${e.start_s.toFixed(2)}–${e.end_s.toFixed(2)} s`), el('td', {}, e.confidence.toFixed(2))));
    box.append(el('table', {}, el('caption', { class: 'label' }, 'Events'), el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, '#'), el('th', { scope: 'col' }, 'time'), el('th', { scope: 'col' }, 'confidence'))), el('tbody', {}, ...rows)));
  }
  for (const n of r.notices) box.append(el('p', { class: 'muted' }, `Note: ${n}`));
  return box;
}

/** One recording's result, as the #results section shows it. */
export function renderResult(r) {
  const parts = [];
  const lines = findings(r, (s) => s.mean, 'cough');
  if (!lines.length) parts.push(el('p', {}, t('result.no_findings')));
  for (const f of lines) {
    const p = el('p', { class: `score ${{ pos: 'positive', neg: 'negative', borderline: 'borderline' }[f.cls] || 'withheld'}` }, f.text);
    if (f.sure) p.append(el('span', { class: 'sure' }, ` (${f.sure})`));
    parts.push(p);
  }
  for (const n of new Set(lines.map((f) => f.next).filter(Boolean))) parts.push(el('p', { class: 'borderline-next' }, n));
  if (r.scored_anyway) parts.push(el('p', { class: 'withheld' }, t('result.scored_anyway')));
  parts.push(el('p', {}, r.events.length ? t('result.events.some', { n: r.events.length }) : t('result.events.none')));
  const adv = advice(((r.quality || {}).checks) || []);
  if (!r.events.length && !adv.length) adv.push(t('check.cough_events'));
  if (adv.length) {
    parts.push(el('p', { class: 'withheld' }, t('result.quality.problem')), el('ul', { class: 'advice' }, ...adv.map((a) => el('li', {}, a))));
    parts.push(el('p', {}, t('result.next.cough')));
  }
  if (clinicalDue(r.notices)) parts.push(el('p', { class: 'clinical' }, t('clinical.notice')));
  parts.push(details(r));
  return parts;
}
