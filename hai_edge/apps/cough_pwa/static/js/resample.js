// Rational polyphase resampler: a port of hai_edge/runtime/frontends/_resample.py (same taps).
//
// Rate change target/orig reduced to L/M by their gcd; Kaiser-windowed sinc (beta 5) with
// 2H+1 taps, H = 10 * max(L, M), cutoff 1/max(L, M), taps scaled to sum to L and rounded to
// float32 exactly like the Python table. Zero phase: y[k] = sum_q x[t//L - q] * h[t%L + q*L],
// t = k*M + H, x = 0 outside the signal; ceil(n*L/M) outputs. Accumulation is float64 here
// (float32 BLAS in Python), so results agree to ~1e-7.

export const KAISER_BETA = 5.0;
export const HALF_LEN_FACTOR = 10;

function gcd(a, b) { while (b) { [a, b] = [b, a % b]; } return a; }

// Modified Bessel function I0 by its power series (|x| <= 5 here: converges to double precision).
export function besselI0(x) {
  let sum = 1, term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 200; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

const cache = new Map();

/** Polyphase table P[p*Q + q] = float32(h[p + q*L]) (0 past the end), plus H and Q. */
export function polyphase(up, down) {
  const key = `${up}/${down}`;
  if (cache.has(key)) return cache.get(key);
  const maxRate = Math.max(up, down);
  const half = HALF_LEN_FACTOR * maxRate;
  const n = 2 * half + 1;
  const cutoff = 1.0 / maxRate;
  const alpha = (n - 1) / 2.0;
  const i0beta = besselI0(KAISER_BETA);
  const h = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const t = cutoff * (i - half);
    const sinc = t === 0 ? 1.0 : Math.sin(Math.PI * t) / (Math.PI * t);
    const r = (i - alpha) / alpha;
    const win = besselI0(KAISER_BETA * Math.sqrt(Math.max(0, 1 - r * r))) / i0beta;
    h[i] = cutoff * sinc * win;
    sum += h[i];
  }
  const scale = up / sum;
  const Q = Math.ceil(n / up);
  const table = new Float32Array(up * Q);
  for (let p = 0; p < up; p++) {
    for (let q = 0; q < Q; q++) {
      const i = p + q * up;
      table[p * Q + q] = i < n ? h[i] * scale : 0;
    }
  }
  const out = { table, half, Q, up, down };
  cache.set(key, out);
  return out;
}

function ratio(origSr, targetSr) {
  if (!(origSr > 0 && targetSr > 0)) throw new Error(`sample rates must be positive, got ${origSr} -> ${targetSr}`);
  const g = gcd(origSr, targetSr);
  return [targetSr / g, origSr / g];
}

// Outputs k0..k1-1 of resampling x (global index 0 at x[offset]... x holds inputs from `b0`).
function emit(x, b0, nIn, pp, k0, k1, out, outOff) {
  const { table, half, Q, up, down } = pp;
  for (let k = k0; k < k1; k++) {
    const t = k * down + half;
    const base = Math.floor(t / up), phase = t - base * up;
    const row = phase * Q;
    let acc = 0;
    const qmax = Math.min(Q - 1, base);            // x[base - q] needs base - q >= 0
    const qmin = Math.max(0, base - (nIn - 1));    // ... and base - q <= n - 1
    for (let q = qmin; q <= qmax; q++) acc += x[base - q - b0] * table[row + q];
    out[outOff + k - k0] = acc;
  }
}

/** Resample a 1-D signal from origSr to targetSr Hz: Float32Array of ceil(n*L/M) samples. */
export function resample(x, origSr, targetSr) {
  if (origSr === targetSr) return Float32Array.from(x);
  const [up, down] = ratio(origSr, targetSr);
  const nOut = Math.ceil((x.length * up) / down);
  const out = new Float32Array(nOut);
  if (nOut) emit(x, 0, x.length, polyphase(up, down), 0, nOut, out, 0);
  return out;
}

/** Chunk-by-chunk resample(): push() + flush() outputs concatenated equal resample() of the
 *  whole signal (output k is emitted once every input its filter reaches has arrived). */
export class StreamResampler {
  constructor(origSr, targetSr) {
    this.same = origSr === targetSr;
    if (!this.same) {
      [this.up, this.down] = ratio(origSr, targetSr);
      this.pp = polyphase(this.up, this.down);
    }
    this.buf = new Float32Array(0);
    this.b0 = 0;     // global index of buf[0]
    this.nIn = 0;
    this.kNext = 0;
  }

  push(chunk) {
    if (this.same) { this.nIn += chunk.length; return Float32Array.from(chunk); }
    const merged = new Float32Array(this.buf.length + chunk.length);
    merged.set(this.buf); merged.set(chunk, this.buf.length);
    this.buf = merged;
    this.nIn += chunk.length;
    // last k whose taps stay within inputs < nIn: floor(((nIn-1)*L - H) / M)
    return this._emit(Math.floor(((this.nIn - 1) * this.up - this.pp.half) / this.down));
  }

  flush() {
    if (this.same) return new Float32Array(0);
    return this._emit(Math.ceil((this.nIn * this.up) / this.down) - 1);
  }

  _emit(kLast) {
    if (kLast < this.kNext || this.nIn === 0) return new Float32Array(0);
    const out = new Float32Array(kLast + 1 - this.kNext);
    emit(this.buf, this.b0, this.nIn, this.pp, this.kNext, kLast + 1, out, 0);
    this.kNext = kLast + 1;
    // inputs older than the lowest tap of output kNext are no longer needed
    const firstNeeded = Math.max(0, Math.floor((this.kNext * this.down + this.pp.half) / this.up) - (this.pp.Q - 1));
    if (firstNeeded > this.b0) {
      this.buf = this.buf.slice(firstNeeded - this.b0);
      this.b0 = firstNeeded;
    }
    return out;
  }
}
