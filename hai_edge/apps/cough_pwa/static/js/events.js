// Energy event detector: an exact port of hai_edge/runtime/events.py (EnergyDetector and its
// streaming state machine). Band energy 150-6000 Hz in 25 ms Blackman-Harris frames every 10 ms,
// adaptive floor (trailing minimum), on/off hysteresis, min/max duration, merge gap, onset
// spectral flux gate. detect() runs the streaming code over the whole signal, as in Python.

import { fft, pyRound } from './util.js';

const EPS = 1e-12;
const MIN_DB = -120.0;
const MAX_RISE_DB = 20.0;
// Digital silence (a muted or just-opened stream, a gap of zeros) says nothing about the room's
// noise floor: frames at or below SILENCE_DB, or with >= a quarter of their samples exactly zero,
// are not fed to the floor tracker.
const SILENCE_DB = -110.0;
const SILENT_ZERO_FRACTION = 0.25;

function countZeros(x) {
  let n = 0;
  for (let i = 0; i < x.length; i++) if (x[i] === 0) n++;
  return n;
}

export const ENERGY_DEFAULTS = Object.freeze({
  frame_s: 0.025, hop_s: 0.010, fmin: 150.0, fmax: 6000.0, n_bands: 16, floor_window_s: 2.5,
  on_db: 12.0, off_db: 6.0, abs_min_db: -55.0, min_event_s: 0.06, max_event_s: 2.0,
  merge_gap_s: 0.15, min_flux_db: 6.0,
});

/** EnergyDetectorConfig.from_dict: defaults, unknown keys refused, consistency checked. */
export function energyConfig(params = {}) {
  const unknown = Object.keys(params).filter((k) => !(k in ENERGY_DEFAULTS));
  if (unknown.length) throw new Error(`energy detector: unknown parameter(s) ${unknown.join(', ')}`);
  const c = { ...ENERGY_DEFAULTS };
  for (const [k, v] of Object.entries(params)) c[k] = k === 'n_bands' ? Math.trunc(Number(v)) : Number(v);
  const ok = c.hop_s > 0 && c.hop_s <= c.frame_s && c.fmin >= 0 && c.fmin < c.fmax && c.n_bands >= 1
    && c.off_db > 0 && c.off_db <= c.on_db && c.min_event_s > 0 && c.min_event_s < c.max_event_s
    && c.merge_gap_s >= 0 && c.floor_window_s > 0;
  if (!ok) throw new Error('inconsistent energy detector parameters');
  return Object.freeze(c);
}

/** Trailing minimum of frame levels over a window, per block of 10 frames (as _FloorTracker). */
class FloorTracker {
  constructor(nValues, windowFrames, block = 10) {
    this.block = block;
    this.nBlocks = Math.max(1, Math.ceil(windowFrames / block));
    this.blocks = [];   // [index, Float64Array]
    this.done = new Float64Array(nValues).fill(Infinity);
    this.curIndex = -1;
    this.cur = new Float64Array(nValues).fill(Infinity);
    this.floor = new Float64Array(nValues).fill(NaN);
  }

  _advance(b) {
    if (b === this.curIndex) return;
    if (this.curIndex >= 0 && this.cur.every(Number.isFinite)) this.blocks.push([this.curIndex, this.cur]);
    this.curIndex = b;
    this.cur = new Float64Array(this.cur.length).fill(Infinity);
    while (this.blocks.length && this.blocks[0][0] <= b - this.nBlocks) this.blocks.shift();
    const d = new Float64Array(this.cur.length).fill(Infinity);
    for (const [, v] of this.blocks) for (let i = 0; i < d.length; i++) if (v[i] < d[i]) d[i] = v[i];
    this.done = d;
  }

  feed(frame, levels) {
    this._advance(Math.floor(frame / this.block));
    const f = new Float64Array(levels.length);
    for (let i = 0; i < levels.length; i++) {
      if (levels[i] < this.cur[i]) this.cur[i] = levels[i];
      f[i] = Math.min(this.done[i], this.cur[i]);
    }
    this.floor = f;
  }

  age(frame) {
    this._advance(Math.floor(frame / this.block));
    if (this.done.every(Number.isFinite)) this.floor = this.done;
  }
}

function meanRows(rows) {
  const out = new Float64Array(rows[0].length);
  for (const r of rows) for (let i = 0; i < out.length; i++) out[i] += r[i];
  for (let i = 0; i < out.length; i++) out[i] /= rows.length;
  return out;
}

/** One detection stream (push chunks of mono audio at `sr`, then flush). */
export class EnergyStream {
  constructor(sr, cfg) {
    if (sr < 8000) throw new Error('the energy detector needs audio at >= 8 kHz');
    this.sr = sr; this.cfg = cfg;
    this.win = Math.max(16, pyRound(cfg.frame_s * sr));
    this.hop = Math.max(1, pyRound(cfg.hop_s * sr));
    this.nFft = 1;
    while (this.nFft < this.win) this.nFft *= 2;            // 1 << (win - 1).bit_length()
    const taper64 = new Float64Array(this.win);
    let sq = 0;
    for (let i = 0; i < this.win; i++) {
      const n = (2.0 * Math.PI * i) / this.win;
      taper64[i] = 0.35875 - 0.48829 * Math.cos(n) + 0.14128 * Math.cos(2 * n) - 0.01168 * Math.cos(3 * n);
      sq += taper64[i] * taper64[i];
    }
    this.norm = 2.0 / (this.nFft * sq);
    this.taper = Float32Array.from(taper64);
    this._bands();
    this.hopT = this.hop / sr;
    this.buf = new Float32Array(0);
    this.frame = 0;
    this.floors = new FloorTracker(1 + cfg.n_bands, pyRound(cfg.floor_window_s / this.hopT));
    this.history = [];               // last 64 band-level vectors
    this.state = 'idle';
    this.runStart = null;
    this.ev = null;
    this.pending = null;
    this.flushed = false;
    this.maxLatencyS = cfg.merge_gap_s + cfg.hop_s + cfg.frame_s;
    this.re = new Float64Array(this.nFft); this.im = new Float64Array(this.nFft);
  }

  _bands() {
    const cfg = this.cfg;
    const fmax = Math.min(cfg.fmax, 0.47 * this.sr);
    const mel = (f) => 1127.0 * Math.log1p(f / 700.0);
    const nb = cfg.n_bands, edges = new Float64Array(nb + 1);
    const lo = mel(cfg.fmin), hi = mel(fmax), step = (hi - lo) / nb;
    for (let i = 0; i <= nb; i++) edges[i] = lo + i * step;
    edges[nb] = hi;
    const nBins = this.nFft / 2 + 1;
    const bandOf = new Int32Array(nBins);
    for (let k = 0; k < nBins; k++) {
      const f = (k * this.sr) / this.nFft;
      if (f < cfg.fmin || f >= fmax) { bandOf[k] = -1; continue; }
      const m = mel(f);
      let idx = -1;                              // searchsorted(edges, m, 'right') - 1
      while (idx + 1 <= nb && edges[idx + 1] <= m) idx++;
      bandOf[k] = idx;
    }
    const inband = [];
    for (let k = 0; k < nBins; k++) if (bandOf[k] >= 0) inband.push(k);
    this.bin0 = inband[0]; this.bin1 = inband[inband.length - 1] + 1;
    const counts = new Array(nb).fill(0);
    for (const k of inband) counts[bandOf[k]] += 1;
    if (counts.some((c) => c === 0)) throw new Error(`${nb} bands are too many for a ${this.nFft}-point FFT`);
    this.bandOf = bandOf;
  }

  /** One frame (win float32 samples) -> Float64Array [total, band_0..band_n-1] in dB. */
  _levels(frame) {
    const { re, im, nFft, win, taper } = this;
    re.fill(0); im.fill(0);
    for (let i = 0; i < win; i++) re[i] = Math.fround(frame[i] * taper[i]);
    fft(re, im);
    const nb = this.cfg.n_bands, bands = new Float64Array(nb);
    for (let k = this.bin0; k < this.bin1; k++) bands[this.bandOf[k]] += re[k] * re[k] + im[k] * im[k];
    let total = 0;
    for (let b = 0; b < nb; b++) { bands[b] *= this.norm; total += bands[b]; }
    const lv = new Float64Array(nb + 1);
    lv[0] = Math.max(10.0 * Math.log10(total + EPS), MIN_DB);
    for (let b = 0; b < nb; b++) lv[b + 1] = Math.max(10.0 * Math.log10(bands[b] + EPS), MIN_DB);
    return lv;
  }

  push(chunk) {
    if (this.flushed) throw new Error('push after flush: start a new stream');
    const merged = new Float32Array(this.buf.length + chunk.length);
    merged.set(this.buf); merged.set(chunk, this.buf.length);
    this.buf = merged;
    const n = this.buf.length < this.win ? 0 : Math.floor((this.buf.length - this.win) / this.hop) + 1;
    const out = [];
    for (let i = 0; i < n; i++) {
      const frame = this.buf.subarray(i * this.hop, i * this.hop + this.win);
      out.push(...this._step(this._levels(frame), countZeros(frame) >= SILENT_ZERO_FRACTION * this.win));
    }
    if (n) this.buf = this.buf.slice(n * this.hop);
    return out;
  }

  flush() {
    if (this.flushed) return [];
    const out = [];
    if (this.buf.length > this.win - this.hop) {
      const pad = new Float32Array(this.win);
      const real = this.buf.subarray(0, Math.min(this.win, this.buf.length));
      pad.set(real);
      out.push(...this._step(this._levels(pad), countZeros(real) >= SILENT_ZERO_FRACTION * real.length));
    }
    this.flushed = true;
    if (this.state === 'active' && this.ev !== null) this._closeActive();
    if (this.pending !== null) {
      const ev = this._finish(this.pending);
      this.pending = null;
      if (ev !== null) out.push(ev);
    }
    return out;
  }

  _t(frame) { return (frame * this.hop + 0.5 * this.win) / this.sr; }

  _thresholds(floorTotal) {
    const c = this.cfg;
    return [Math.max(floorTotal + c.on_db, c.abs_min_db),
      Math.max(floorTotal + c.off_db, c.abs_min_db - (c.on_db - c.off_db))];
  }

  _step(lv, zeros = false) {
    const cfg = this.cfg, f = this.frame;
    this.frame += 1;
    const out = [];
    if (this.state !== 'active' && lv[0] > SILENCE_DB && !zeros) this.floors.feed(f, lv);
    else this.floors.age(f);
    const level = lv[0];
    if (this.state === 'sustained') {
      const [, off] = this._thresholds(this.floors.floor[0]);
      if (level < off) { this.state = 'idle'; this.runStart = null; }
    } else if (this.state === 'idle') {
      if (this.pending !== null && this._t(f) - this.pending.end_t > cfg.merge_gap_s) {
        const ev = this._finish(this.pending);
        this.pending = null;
        if (ev !== null) out.push(ev);
      }
      const [on, off] = this._thresholds(this.floors.floor[0]);
      if (level >= off) { if (this.runStart === null) this.runStart = f; } else this.runStart = null;
      if (level >= on) this._open(f, lv);
    } else {
      const ev = this.ev;
      if (level >= ev.off) {
        ev.last = f;
        ev.end_t = this._t(f);
        if (level > ev.peak) ev.peak = level;
        if (f <= ev.on_frame + 3) ev.post.push(lv.subarray(1));
        if (this._t(f) - ev.start_t > cfg.max_event_s) {
          this.ev = null; this.pending = null;
          this.state = 'sustained';
        }
      } else {
        this._closeActive();
      }
    }
    this.history.push(lv.subarray(1));
    if (this.history.length > 64) this.history.shift();
    return out;
  }

  _open(f, lv) {
    const floor = Float64Array.from(this.floors.floor);
    const [, off] = this._thresholds(floor[0]);
    const start = this.runStart !== null ? this.runStart : f;
    const back = f - start;
    const hist = this.history;
    let pre = hist.slice(Math.max(0, hist.length - back - 5), Math.max(0, hist.length - back));
    if (!pre.length) pre = [floor.subarray(1)];
    let ev = { start_t: this._t(start), end_t: this._t(f), last: f, on_frame: f, peak: lv[0],
      floor: floor[0], off, pre: meanRows(pre), post: [lv.subarray(1)], flux: 0.0, pending_flux: null };
    if (this.pending !== null) {
      const merged = this.pending;
      merged.peak = Math.max(merged.peak, ev.peak);
      merged.pending_flux = Math.max(merged.flux, merged.pending_flux ?? 0.0);
      Object.assign(merged, { on_frame: f, pre: ev.pre, post: ev.post, off });
      ev = merged;
      this.pending = null;
    }
    this.ev = ev;
    this.state = 'active';
  }

  _closeActive() {
    const ev = this.ev;
    const post = meanRows(ev.post);
    let s = 0;
    for (let i = 0; i < post.length; i++) s += Math.min(Math.max(post[i] - ev.pre[i], 0.0), MAX_RISE_DB);
    ev.flux = Math.max(s / post.length, ev.pending_flux ?? 0.0);
    this.pending = ev; this.ev = null;
    this.state = 'idle'; this.runStart = null;
  }

  _finish(ev) {
    const cfg = this.cfg;
    const duration = ev.end_t - ev.start_t;
    if (duration < cfg.min_event_s || ev.flux < cfg.min_flux_db) return null;
    const snr = ev.peak - ev.floor;
    const s = 1.0 - Math.exp(-Math.max(0.0, snr - cfg.on_db + 1.0) / 8.0);
    const fl = 1.0 - Math.exp(-ev.flux / 8.0);
    const half = 0.5 * this.hopT;
    return { start_s: Math.max(0.0, ev.start_t - half), end_s: ev.end_t + half,
      confidence: Math.min(1.0, Math.max(0.0, s * fl)), label: 'cough', snr_db: snr };
  }
}

/** The energy baseline detector at `sampleRate` with manifest params. */
export class EnergyDetector {
  constructor(sampleRate = 16000, params = {}) {
    this.name = 'energy';
    this.sampleRate = sampleRate;
    this.cfg = energyConfig(params);
    if (sampleRate < 8000) throw new Error('the energy detector needs audio at >= 8 kHz');
  }

  stream() { return new EnergyStream(this.sampleRate, this.cfg); }

  detect(mono) {
    const s = this.stream();
    return [...s.push(mono), ...s.flush()];
  }
}
