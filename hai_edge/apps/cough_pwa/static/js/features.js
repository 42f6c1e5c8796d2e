// Audio front end: a port of hai_edge/runtime/frontends/_audio.py, driven by the manifest's
// `preprocessing` object (kind "audio"). Same steps, same conventions:
// to_mono -> resample -> split_windows -> per-window clip normalisation -> waveform | log-mel |
// PCEN (TF pad_end STFT, periodic Hann, TF/HTK mel matrix) -> (x - mean) / std, float64 inside,
// Float32Array out, laid out [1, n_mels, n_frames].

import { resample } from './resample.js';
import { fft, isPowerOfTwo, linspace, pyRound, rmsDb } from './util.js';

export const SPEC_DEFAULTS = Object.freeze({
  sample_rate: 16000, window_s: 2.0, hop_s: 1.8, min_clip_s: 0.5, pad_last: true,
  skip_quiet_db: -50.0, clip_normalization: 'none', features: 'log_mel', n_fft: 512,
  win_length: 400, hop_length: 160, n_mels: 64, fmin: 60.0, fmax: 7800.0, log_offset: 1e-6,
  pcen_alpha: 0.8, pcen_smooth: 0.04, pcen_delta: 2.0, pcen_root: 2.0, pcen_floor: 1e-8,
  feature_mean: 0.0, feature_std: 1.0,
});

/** An InputError-like error: one line naming the input. */
export class InputError extends Error {
  constructor(source, msg) { super(`${source}: ${msg}`); this.name = 'InputError'; }
}

/** The manifest's preprocessing object with defaults and derived sizes (like AudioFrontendSpec). */
export function audioSpec(pre) {
  if (!pre || pre.kind !== 'audio') throw new Error('the bundle is not an audio bundle (preprocessing.kind != "audio")');
  const known = new Set([...Object.keys(SPEC_DEFAULTS), 'kind']);
  const unknown = Object.keys(pre).filter((k) => !known.has(k));
  if (unknown.length) throw new Error(`unknown preprocessing field(s) ${unknown.join(', ')}: this app is older than the bundle`);
  const s = { ...SPEC_DEFAULTS, ...pre };
  if (!['none', 'peak', 'minmax'].includes(s.clip_normalization)) throw new Error(`unknown clip_normalization ${s.clip_normalization}`);
  if (!['waveform', 'log_mel', 'pcen'].includes(s.features)) throw new Error(`unknown features ${s.features}`);
  s.window_samples = pyRound(s.window_s * s.sample_rate);
  s.hop_samples = pyRound(s.hop_s * s.sample_rate);
  s.n_frames = Math.ceil(s.window_samples / s.hop_length);
  s.input_shape = s.features === 'waveform' ? [s.window_samples] : [1, s.n_mels, s.n_frames];
  s.input_size = s.input_shape.reduce((a, b) => a * b, 1);
  return Object.freeze(s);
}

/** Channel arrays (or one array) -> Float32Array mean of the channels. */
export function toMono(channels) {
  if (!Array.isArray(channels)) return Float32Array.from(channels);
  if (channels.length === 1) return Float32Array.from(channels[0]);
  const n = channels[0].length, out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (const c of channels) s += c[i];
    out[i] = s / channels.length;
  }
  return out;
}

function fmtPair(a, b) {
  for (let d = 2; d < 7; d++) {
    const sa = a.toFixed(d), sb = b.toFixed(d);
    if (sa !== sb || a === b) return [sa, sb];
  }
  return [a.toFixed(6), b.toFixed(6)];
}

/** Fixed windows of spec.window_samples every spec.hop_samples (rules of split_windows). */
export function splitWindows(x, spec, source = '<audio>') {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) throw new InputError(source, 'contains NaN or infinite samples');
  const sr = spec.sample_rate, n = x.length, win = spec.window_samples, hop = Math.max(1, spec.hop_samples);
  const minSamples = pyRound(spec.min_clip_s * sr);
  if (n < Math.max(minSamples, 1)) {
    const [have, need] = fmtPair(n / sr, spec.min_clip_s);
    throw new InputError(source, `audio is ${have} s long; at least ${need} s is needed`);
  }
  const windows = [];
  let peak = -Infinity;
  for (let index = 0; ; index++) {
    const start = index * hop;
    const real = Math.min(win, n - start);
    if (real <= 0) break;
    const last = start + win >= n;
    if (real === win || index === 0 || (spec.pad_last && real >= minSamples)) {
      const level = rmsDb(x, start, start + real);
      peak = Math.max(peak, level);
      if (spec.skip_quiet_db === null || level >= spec.skip_quiet_db) {
        const samples = new Float32Array(win);
        samples.set(x.subarray(start, start + real));
        windows.push({ index, start_s: start / sr, end_s: (start + real) / sr, rms_db: level, samples });
      }
    }
    if (last) break;
  }
  if (!windows.length) {
    const p = Number.isFinite(peak) ? peak.toFixed(1) : '-inf';
    throw new InputError(source, `audio is silent (peak window RMS ${p} dBFS, threshold ${spec.skip_quiet_db} dBFS)`);
  }
  return windows;
}

const melCache = new Map();

/** TF's linear_to_mel_weight_matrix [n_fft/2+1][n_mels] (row-major Float64Array), DC row zero;
 *  `.bands[j] = [k0, k1)`: the bins where band j is non-zero (the rest of a column is zero). */
export function melFilterbank(sr, nFft, nMels, fmin, fmax) {
  const key = [sr, nFft, nMels, fmin, fmax].join('/');
  if (melCache.has(key)) return melCache.get(key);
  const nBins = Math.floor(nFft / 2) + 1;
  const mel = (f) => 1127.0 * Math.log(1.0 + f / 700.0);
  const binHz = linspace(0.0, sr / 2.0, nBins);
  const edges = linspace(mel(fmin), mel(fmax), nMels + 2);
  const w = new Float64Array(nBins * nMels);
  for (let i = 1; i < nBins; i++) {
    const m = mel(binHz[i]);
    for (let j = 0; j < nMels; j++) {
      const lo = edges[j], c = edges[j + 1], hi = edges[j + 2];
      const v = Math.min((m - lo) / (c - lo), (hi - m) / (hi - c));
      w[i * nMels + j] = v > 0 ? v : 0;
    }
  }
  w.bands = [];
  for (let j = 0; j < nMels; j++) {
    let k0 = nBins, k1 = 0;
    for (let k = 1; k < nBins; k++) if (w[k * nMels + j] !== 0) { k0 = Math.min(k0, k); k1 = k + 1; }
    w.bands.push(k0 < k1 ? [k0, k1] : [0, 0]);
  }
  melCache.set(key, w);
  return w;
}

function normaliseClip(x, mode) {
  const out = Float64Array.from(x);
  if (mode === 'none') return out;
  let lo = Infinity, hi = -Infinity, peak = 0;
  for (const v of out) { if (v < lo) lo = v; if (v > hi) hi = v; if (Math.abs(v) > peak) peak = Math.abs(v); }
  if (mode === 'peak') {
    if (peak > 0) for (let i = 0; i < out.length; i++) out[i] /= peak;
    return out;
  }
  const span = hi - lo;
  for (let i = 0; i < out.length; i++) out[i] = span > 0 ? (2.0 * (out[i] - lo)) / span - 1.0 : 0.0;
  return out;
}

// Real DFT for an n_fft that is not a power of two (rare; O(n^2) per frame, table-driven).
const dftTables = new Map();
function dftPower(frame, n, out) {
  let tab = dftTables.get(n);
  if (!tab) {
    tab = { c: new Float64Array(n), s: new Float64Array(n) };
    for (let i = 0; i < n; i++) { tab.c[i] = Math.cos((-2 * Math.PI * i) / n); tab.s[i] = Math.sin((-2 * Math.PI * i) / n); }
    dftTables.set(n, tab);
  }
  const m = Math.min(frame.length, n);
  for (let k = 0; k <= n / 2; k++) {
    let re = 0, im = 0, idx = 0;
    for (let t = 0; t < m; t++) {
      re += frame[t] * tab.c[idx]; im += frame[t] * tab.s[idx];
      idx += k; if (idx >= n) idx -= n;
    }
    out[k] = re * re + im * im;
  }
}

/** Mel power [n_frames][n_mels] (Float64Array, row-major) of one normalised window. */
function melPower(x, spec) {
  const { n_frames: nFrames, hop_length: hop, win_length: winLen, n_fft: nFft, n_mels: nMels } = spec;
  const nBins = Math.floor(nFft / 2) + 1;
  const mel = melFilterbank(spec.sample_rate, nFft, nMels, spec.fmin, spec.fmax);
  const hann = new Float64Array(winLen);
  for (let i = 0; i < winLen; i++) hann[i] = 0.5 - 0.5 * Math.cos((2.0 * Math.PI * i) / winLen);
  const pow2 = isPowerOfTwo(nFft);
  const re = new Float64Array(nFft), im = new Float64Array(nFft), power = new Float64Array(nBins);
  const frame = new Float64Array(winLen);
  const out = new Float64Array(nFrames * nMels);
  for (let f = 0; f < nFrames; f++) {
    const s = f * hop;
    for (let i = 0; i < winLen; i++) frame[i] = (s + i < x.length ? x[s + i] : 0) * hann[i];
    if (pow2) {
      re.fill(0); im.fill(0); re.set(frame.subarray(0, Math.min(winLen, nFft)));
      fft(re, im);
      for (let k = 0; k < nBins; k++) power[k] = re[k] * re[k] + im[k] * im[k];
    } else {
      dftPower(frame, nFft, power);
    }
    for (let j = 0; j < nMels; j++) {
      const [k0, k1] = mel.bands[j];
      let acc = 0;
      for (let k = k0; k < k1; k++) acc += power[k] * mel[k * nMels + j];
      out[f * nMels + j] = acc;
    }
  }
  return out;
}

function pcenInPlace(e, nFrames, nCh, spec) {
  const inv = 1.0 / spec.pcen_root, dpow = Math.pow(spec.pcen_delta, inv);
  const state = e.slice(0, nCh);
  for (let t = 0; t < nFrames; t++) {
    for (let c = 0; c < nCh; c++) {
      const i = t * nCh + c;
      state[c] = (1.0 - spec.pcen_smooth) * state[c] + spec.pcen_smooth * e[i];
      e[i] = Math.pow(e[i] / Math.pow(spec.pcen_floor + state[c], spec.pcen_alpha) + spec.pcen_delta, inv) - dpow;
    }
  }
}

/** Model input of one window (spec.window_samples samples) -> Float32Array of spec.input_size. */
export function windowFeatures(samples, spec) {
  if (samples.length !== spec.window_samples) throw new Error(`windowFeatures expects ${spec.window_samples} samples, got ${samples.length}`);
  const x = normaliseClip(samples, spec.clip_normalization);
  if (spec.features === 'waveform') return Float32Array.from(x);
  const { n_frames: nFrames, n_mels: nMels } = spec;
  const e = melPower(x, spec);
  if (spec.features === 'log_mel') for (let i = 0; i < e.length; i++) e[i] = Math.log(e[i] + spec.log_offset);
  else pcenInPlace(e, nFrames, nMels, spec);
  const out = new Float32Array(nMels * nFrames);           // [1, n_mels, n_frames]
  for (let f = 0; f < nFrames; f++) {
    for (let m = 0; m < nMels; m++) out[m * nFrames + f] = (e[f * nMels + m] - spec.feature_mean) / spec.feature_std;
  }
  return out;
}

/** prepare_audio: channels at `rate` -> {mono (at spec rate), windows, inputs: Float32Array[]}. */
export function prepareAudio(channels, rate, spec, source = '<audio>') {
  const mono0 = toMono(channels);
  for (let i = 0; i < mono0.length; i++) if (!Number.isFinite(mono0[i])) throw new InputError(source, 'contains NaN or infinite samples');
  const mono = resample(mono0, rate, spec.sample_rate);
  const windows = splitWindows(mono, spec, source);
  return { mono, windows, inputs: windows.map((w) => windowFeatures(w.samples, spec)) };
}
