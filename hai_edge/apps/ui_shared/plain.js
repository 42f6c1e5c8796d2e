// Shared by the kiosk page and the phone app: the message catalogue (messages.json), local time
// with its UTC offset, plain-language findings and advice, error and microphone wording, and the
// live level watch. Each app keeps one render function of its own that uses these helpers.

let MESSAGES = {};

/** Load the catalogue (once per page); the browser's language when present, else the default. */
export async function loadMessages(url) {
  const cat = await (await fetch(url)).json();
  const langs = navigator.languages || [navigator.language || ''];
  const pick = langs.map((l) => l.split('-')[0]).find((l) => cat.languages[l]) || cat.default;
  MESSAGES = { ...cat.languages[cat.default], ...cat.languages[pick] };
  document.documentElement.lang = pick;
  for (const node of document.querySelectorAll('[data-msg]')) node.textContent = t(node.dataset.msg);
  return MESSAGES;
}

/** The message `key` with {placeholders} filled; `fallback` (or the key) when it is missing. */
export function t(key, vars = {}, fallback) {
  const text = MESSAGES[key] ?? fallback ?? key;
  return text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

/** One time-zone policy: the device's local time with its offset, e.g. 2024-05-01 14:03 (UTC+02:00). */
export function fmtTime(when) {
  const d = when instanceof Date ? when : new Date(when);
  if (Number.isNaN(d.getTime())) return String(when);
  const p = (n) => String(n).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const zone = `UTC${sign}${p(Math.floor(Math.abs(off) / 60))}:${p(Math.abs(off) % 60)}`;
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())} (${zone})`;
}

/** How clear a verdict is, from the distance between the score and its cut-off. */
export function sureness(score, cutoff) {
  const margin = Math.abs(score - cutoff);
  return margin >= 0.25 ? 'high' : margin >= 0.1 ? 'mid' : 'low';
}

/** The verdict of a stored score: 'positive' | 'negative' | 'borderline' (results saved before
 *  the borderline band have no `verdict`: their `positive` decides). */
export function verdictOf(s) {
  return s.verdict || (s.positive ? 'positive' : 'negative');
}

/** One line per model output: {text, sure, cls, next}; a withheld or missing score says why in
 *  words, a borderline one (too close to the cut-off to call) says so and, with `kind` ('photo'
 *  or 'cough'), what to do next. `scoreOf(s)` picks the number (photos: probability, coughs:
 *  mean). */
export function findings(result, scoreOf, kind) {
  const out = [];
  const withheld = result.withheld || {};
  const names = new Set([...Object.keys(result.scores || {}), ...Object.keys(withheld)]);
  for (const name of names) {
    const s = (result.scores || {})[name];
    if (s == null || name in withheld) {
      const why = withheld[name] || '';
      out.push({ text: t('result.not_scored', { name, reason: t('withheld.' + why, {}, why || '-') }), cls: 'withheld' });
      continue;
    }
    const verdict = verdictOf(s);
    if (verdict === 'borderline') {
      out.push({ text: t('result.borderline', { name }), sure: t('result.borderline.why'), cls: 'borderline',
        next: kind ? t('result.borderline.next.' + kind) : undefined });
      continue;
    }
    const sure = sureness(scoreOf(s), s.threshold);
    out.push({ text: t('result.finding', { name, label: s.label }), sure: t('result.sure.' + sure), cls: verdict === 'positive' ? 'pos' : 'neg' });
  }
  return out;
}

/** Advice for the checks that warned (deduplicated), in the catalogue's words. */
export function advice(checks) {
  const lines = checks.filter((c) => c.flag === 'warn').map((c) => t('check.' + c.name, {}, t('check.other')));
  return [...new Set(lines)];
}

export function clinicalDue(notices) { return (notices || []).some((n) => /clinical/i.test(n)); }

/** The server's own one-line message when it sent one, else the catalogue's for the status. */
export function errorText(status, serverMessage) {
  if (serverMessage) return serverMessage;
  if (!status) return t('error.network');
  return t('error.' + status, {}, t('error.other', { status }));
}

/** A getUserMedia failure (or a MicError's code) as a catalogue key under mic.*. */
export function micProblem(err) {
  if (err && err.code) return err.code;
  const name = err && err.name;
  if (name === 'NotAllowedError' || name === 'SecurityError') return 'denied';
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'missing';
  if (name === 'NotReadableError') return 'busy';
  return 'other';
}

/** Live input check while recording: 'silent' when nothing above a whisper arrived for
 *  `silentS` seconds, 'clipping' when over 0.1 % of the last second's samples hit full scale
 *  (the same share the recording check uses), else 'ok'; null until `silentS` has passed. */
export class LevelWatch {
  constructor(rate, { silentS = 1.5, silentPeak = 0.001, clipLevel = 0.999, clipShare = 0.001 } = {}) {
    Object.assign(this, { rate, silentS, silentPeak, clipLevel, clipShare });
    this.started = performance.now();
    this.blocks = [];  // [{n, peak, clipped}] newest last, about silentS seconds of them
  }

  push(block) {
    let peak = 0, clipped = 0;
    for (let i = 0; i < block.length; i++) {
      const a = Math.abs(block[i]);
      if (a > peak) peak = a;
      if (a >= this.clipLevel) clipped++;
    }
    this.blocks.push({ n: block.length, peak, clipped });
    let kept = 0;
    for (let i = this.blocks.length - 1; i >= 0; i--) {
      kept += this.blocks[i].n;
      if (kept > this.silentS * this.rate) { this.blocks.splice(0, i); break; }
    }
  }

  verdict(now = performance.now()) {
    if (now - this.started < this.silentS * 1000) return null;
    let n = 0, clipped = 0, peak = 0;
    for (const b of this.blocks) peak = Math.max(peak, b.peak);
    for (let i = this.blocks.length - 1; i >= 0 && n < this.rate; i--) { n += this.blocks[i].n; clipped += this.blocks[i].clipped; }
    if (peak < this.silentPeak) return 'silent';
    if (n && clipped / n > this.clipShare) return 'clipping';
    return 'ok';
  }
}
