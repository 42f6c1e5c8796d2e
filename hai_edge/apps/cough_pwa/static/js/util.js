// Small numeric helpers that must behave like Python/numpy for the ports to agree exactly.

/** Python's round(): round half to even (int(round(x)) in the Python code). */
export function pyRound(x) {
  const f = Math.floor(x);
  const d = x - f;
  if (d === 0.5) return f % 2 === 0 ? f : f + 1;
  return d < 0.5 ? f : f + 1;
}

/** numpy.linspace(start, stop, num) with endpoint: start + i*step, last element exactly stop. */
export function linspace(start, stop, num) {
  const out = new Float64Array(num);
  const div = num - 1;
  const step = div > 0 ? (stop - start) / div : 0;
  for (let i = 0; i < num; i++) out[i] = start + i * step;
  if (num > 1) out[num - 1] = stop;
  return out;
}

/** RMS level in dBFS of x[a:b]; -Infinity for zero RMS or no samples. */
export function rmsDb(x, a = 0, b = x.length) {
  if (b <= a) return -Infinity;
  let s = 0;
  for (let i = a; i < b; i++) s += x[i] * x[i];
  const rms = Math.sqrt(s / (b - a));
  return rms > 0 ? 20 * Math.log10(rms) : -Infinity;
}

/** Cosine similarity of two vectors (1 when both are zero). */
export function cosine(a, b) {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
  if (aa === 0 && bb === 0) return 1;
  if (aa === 0 || bb === 0) return 0;
  return ab / Math.sqrt(aa * bb);
}

const twiddles = new Map();

/** In-place iterative radix-2 complex FFT (n a power of two), float64. */
export function fft(re, im) {
  const n = re.length;
  let tw = twiddles.get(n);
  if (!tw) {
    tw = { c: new Float64Array(n / 2), s: new Float64Array(n / 2) };
    for (let k = 0; k < n / 2; k++) { tw.c[k] = Math.cos((-2 * Math.PI * k) / n); tw.s[k] = Math.sin((-2 * Math.PI * k) / n); }
    twiddles.set(n, tw);
  }
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      let t = re[i]; re[i] = re[j]; re[j] = t;
      t = im[i]; im[i] = im[j]; im[j] = t;
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const half = len >> 1, stride = n / len;
    for (let k = 0; k < half; k++) {
      const wr = tw.c[k * stride], wi = tw.s[k * stride];
      for (let i = k; i < n; i += len) {
        const j = i + half;
        const xr = re[j] * wr - im[j] * wi, xi = re[j] * wi + im[j] * wr;
        re[j] = re[i] - xr; im[j] = im[i] - xi;
        re[i] += xr; im[i] += xi;
      }
    }
  }
}

/** Power spectrum |rfft(frame, n)|^2 of a real frame zero-padded at its end to n (power of 2):
 *  writes n/2+1 values to `out`. Scratch arrays re/im (length n) are reused by the caller. */
export function powerSpectrum(frame, n, re, im, out) {
  re.fill(0); im.fill(0);
  re.set(frame.length > n ? frame.subarray(0, n) : frame);
  fft(re, im);
  for (let k = 0; k <= n / 2; k++) out[k] = re[k] * re[k] + im[k] * im[k];
}

export function isPowerOfTwo(n) { return n > 0 && (n & (n - 1)) === 0; }
