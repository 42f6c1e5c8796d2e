// Cough screening of one recording: a port of hai_edge/runtime/cough.py (CoughPipeline.analyze)
// plus the bundle's detector (energy | energy_head, CONTRACTS.md section 2).
//
// mono at the bundle rate -> events (detector) -> WindowPlanner groups -> event_window per group
// (quiet windows skipped) -> features -> embeddings -> heads. Heads score coughs only: with no
// event window every head's score is null and `withheld` says why (hai_edge/runtime/abstain.py);
// ctx.scoreAnyway scores the plain sliding windows instead (fallback) and marks the result.
// Per head: mean / max / count of window probabilities and the head's verdict on the mean
// (positive | negative | borderline within the head's band: heads.js verdictFor).

import { EnergyDetector } from './events.js';
import { InputError, splitWindows, windowFeatures } from './features.js';
import { pyRound, rmsDb } from './util.js';

/** Greedy grouping of time-ordered events into windows of windowS (as cough.WindowPlanner). */
export class WindowPlanner {
  constructor(windowS) { this.windowS = windowS; this.group = []; this.start = 0; this.end = 0; }

  _close() {
    if (!this.group.length) return [];
    const out = [[this.group, 0.5 * (this.start + this.end)]];
    this.group = [];
    return out;
  }

  add(index, ev) {
    let out = [];
    if (this.group.length && Math.max(this.end, ev.end_s) - this.start > this.windowS) out = this._close();
    if (!this.group.length) { this.start = ev.start_s; this.end = ev.end_s; }
    this.group.push(index);
    this.end = Math.max(this.end, ev.end_s);
    return out;
  }

  closeUntil(tS) { return this.group.length && tS > this.start + this.windowS ? this._close() : []; }

  finish() { return this._close(); }
}

/** Window of spec.window_samples from `start` (clamped into the recording), zero-padded. */
function cutAt(mono, start, spec) {
  const n = mono.length, w = spec.window_samples;
  const s = Math.max(0, Math.min(start, n - w));
  const real = Math.min(w, n - s);
  const samples = new Float32Array(w);
  samples.set(mono.subarray(s, s + real));
  return { start: s, real, samples };
}

/** cough.event_window: the window centred on centreS, shifted to lie inside the recording. */
export function eventWindow(mono, centreS, spec) {
  return cutAt(mono, pyRound(centreS * spec.sample_rate) - Math.floor(spec.window_samples / 2), spec);
}

/** The energy_head verification window (hai_edge/runtime/events_learned.py): W samples ending
 *  at round((end_s + after_s) * sr), start = min(end - W, n - W), zeros wherever that range
 *  leaves the recording (a cough in the first W samples gets silence in front). */
export function verificationWindow(mono, ev, afterS, spec) {
  const n = mono.length, w = spec.window_samples;
  const end = pyRound((ev.end_s + afterS) * spec.sample_rate);
  const start = Math.min(end - w, n - w);
  const lo = Math.max(start, 0), hi = Math.min(start + w, n);
  const samples = new Float32Array(w);
  if (hi > lo) samples.set(mono.subarray(lo, hi), lo - start);
  return { start, samples };
}

/** Energy candidates, each kept iff the detector head's p(cough) >= threshold (confidence = p). */
export class EnergyHeadDetector {
  constructor(spec, entry, head) {
    this.name = 'energy_head';
    const where = `detector ${JSON.stringify(entry.name)}`;
    const align = entry.align ?? 'end';
    if (align !== 'end') throw new Error(`${where}: align ${JSON.stringify(align)} is not supported (end)`);
    const params = entry.params ?? {};
    const after = entry.after_s ?? 0.25;
    if (typeof params !== 'object' || typeof after !== 'number') throw new Error(`${where}: params must be an object and after_s a number`);
    if (!(after >= 0 && after <= spec.window_s)) throw new Error(`detector after_s must be within [0, ${spec.window_s}] s`);
    this.energy = new EnergyDetector(spec.sample_rate, params);
    this.head = head;
    this.threshold = head.threshold;     // the entry's threshold is checked equal to the file's
    this.afterS = after;
  }

  async detect(mono, spec, embed) {
    const candidates = this.energy.detect(mono);
    if (!candidates.length) return { events: [], candidates };
    const inputs = candidates.map((ev) => windowFeatures(verificationWindow(mono, ev, this.afterS, spec).samples, spec));
    const vectors = await embed(inputs);
    const events = [];
    candidates.forEach((ev, i) => {
      const p = this.head.predictProba(vectors[i]);
      if (p >= this.threshold) events.push({ start_s: ev.start_s, end_s: ev.end_s, confidence: p, label: 'cough' });
    });
    return { events, candidates };
  }
}

/** Plain energy detector with the same async interface. */
export class EnergyOnlyDetector {
  constructor(sampleRate, entry) { this.name = 'energy'; this.energy = new EnergyDetector(sampleRate, (entry && entry.params) || {}); }

  async detect(mono) { const events = this.energy.detect(mono); return { events, candidates: events }; }
}

const r4 = (v) => Math.round(v * 1e4) / 1e4;
// the reasons of hai_edge/runtime/abstain.py (NO_COUGH, QUIET_COUGH), word for word
export const NO_COUGH = 'no cough detected';
export const QUIET_COUGH = 'the detected coughs were too quiet to score';
const r6 = (v) => Math.round(v * 1e6) / 1e6;

/**
 * Analyse one recording. ctx: {spec, detector, heads, embed(inputs) -> Promise<vectors>,
 * notices, meta}. Returns {result (the `hai-edge cough --json` object), raw (full precision:
 * events, windows with embeddings and probabilities)}.
 */
export async function analyze(mono, source, ctx) {
  const { spec, detector, heads } = ctx;
  const sr = spec.sample_rate;
  const timing = {};
  const need = pyRound(spec.min_clip_s * sr);
  if (mono.length < Math.max(need, 1)) throw new InputError(source, `audio is ${(mono.length / sr).toFixed(2)} s long; at least ${spec.min_clip_s} s is needed`);
  let t = performance.now();
  const det = await detector.detect(mono, spec, ctx.embed);
  const events = det.events;
  timing.detect = performance.now() - t;
  t = performance.now();
  const planner = new WindowPlanner(spec.window_s);
  const groups = [];
  events.forEach((ev, i) => groups.push(...planner.add(i, ev)));
  groups.push(...planner.finish());
  let cut = [];
  for (const [indices, centre] of groups) {
    const w = eventWindow(mono, centre, spec);
    if (spec.skip_quiet_db !== null && rmsDb(w.samples, 0, w.real) < spec.skip_quiet_db) continue;
    cut.push({ start_s: w.start / sr, end_s: (w.start + w.real) / sr, events: indices, samples: w.samples });
  }
  const notices = [...ctx.notices];
  const anyway = !!ctx.scoreAnyway;
  let reasons = {};
  if (!cut.length) {
    const reason = events.length ? QUIET_COUGH : NO_COUGH;
    reasons = Object.fromEntries(heads.map((h) => [h.name, reason]));
    const what = events.length ? 'all event windows were quiet' : 'no cough events detected';
    // without heads no verdict is at stake: the plain windows still give embeddings
    const plain = splitWindows(mono, spec, source);  // all silent: an input error either way
    if (anyway || !heads.length) {
      cut = plain.map((w) => ({ start_s: w.start_s, end_s: w.end_s, events: [], samples: w.samples }));
      notices.push(`${what}: scored the plain sliding windows ${heads.length ? 'anyway (score anyway)' : 'instead'}`);
    } else {
      notices.push(`${what}: no head was scored (heads score coughs only)`);
    }
  }
  const fallback = cut.length > 0 && cut.every((c) => !c.events.length);
  timing.window = performance.now() - t;
  let vectors = [];
  if (cut.length && (heads.length || ctx.keepEmbeddings)) {
    t = performance.now();
    const inputs = cut.map((c) => windowFeatures(c.samples, spec));
    timing.preprocess = performance.now() - t;
    t = performance.now();
    vectors = await ctx.embed(inputs);
    timing.inference = performance.now() - t;
  }
  t = performance.now();
  const windows = cut.map((c, i) => ({
    start_s: c.start_s, end_s: c.end_s, events: c.events,
    scores: Object.fromEntries(heads.map((h) => [h.name, h.predictProba(vectors[i])])),
    embedding: vectors[i] || null,
  }));
  const scores = {};
  for (const h of heads) {
    if (!windows.length) { scores[h.name] = null; continue; }
    const p = windows.map((w) => w.scores[h.name]);
    const mean = p.reduce((a, b) => a + b, 0) / p.length;
    const verdict = h.verdict(mean);
    scores[h.name] = { mean, max: Math.max(...p), count: p.length, threshold: h.threshold, band: h.borderline, verdict,
      positive: verdict === 'positive', borderline: verdict === 'borderline',
      label: verdict === 'borderline' ? 'borderline' : verdict === 'positive' ? h.labels[1] : h.labels[0] };
  }
  timing.heads = performance.now() - t;
  timing.total = Object.values(timing).reduce((a, b) => a + b, 0);
  const raw = { events, candidates: det.candidates, windows, scores, fallback };
  const result = {
    input: source, duration_s: r4(mono.length / sr), sample_rate: sr, ...ctx.meta,
    events: events.map((e) => ({ label: e.label, start_s: r4(e.start_s), end_s: r4(e.end_s), confidence: r4(e.confidence) })),
    windows: windows.map((w) => ({ start_s: r4(w.start_s), end_s: r4(w.end_s), events: [...w.events],
      scores: Object.fromEntries(Object.entries(w.scores).map(([k, v]) => [k, r6(v)])) })),
    fallback_windows: fallback,
    scores: Object.fromEntries(Object.entries(scores).map(([k, s]) => [k, s === null ? null : { mean: r6(s.mean), max: r6(s.max),
      count: s.count, threshold: r6(s.threshold), band: r6(s.band), verdict: s.verdict, positive: s.positive,
      borderline: s.borderline, label: s.label }])),
    withheld: anyway ? {} : reasons,
    scored_anyway: anyway,
    ...(anyway ? { would_withhold: reasons } : {}),
    timing_ms: Object.fromEntries(Object.entries(timing).map(([k, v]) => [k, Math.round(v * 1e3) / 1e3])),
    notices,
  };
  return { result, raw };
}
