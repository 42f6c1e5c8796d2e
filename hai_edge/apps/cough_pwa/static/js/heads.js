// Logistic heads with calibration: a port of hai_edge/runtime/heads.py (file format in
// docs/cough.md "Heads"). z = ((x - mean) / scale) . w + b; p = platt sigmoid(a z + b) |
// isotonic interp(z, x, y) (flat beyond the ends) | none sigmoid(z). The verdict on a score is
// verdictFor (runtime.heads.verdict_for): no verdict within the head's borderline band.

const HEAD_FORMAT = 'hai-edge-head';
const SUMMARY_KEYS = ['kind', 'input', 'labels', 'threshold', 'calibration'];

const sigmoid = (z) => 0.5 * (1.0 + Math.tanh(0.5 * z));   // overflow-free, as in Python

/** 'positive' at or above threshold + borderline, 'negative' below threshold - borderline,
 *  'borderline' in between (too close to call): runtime.heads.verdict_for. */
export function verdictFor(score, threshold, borderline = 0) {
  if (score >= threshold + borderline) return 'positive';
  if (score < threshold - borderline) return 'negative';
  return 'borderline';
}

function fail(where, msg) { return new Error(`${where}: ${msg}`); }

function finite(v, where, name) {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw fail(where, `${name} must be a finite number`);
  return v;
}

function vector(v, where, name, dim) {
  if (!Array.isArray(v) || !v.length) throw fail(where, `${name} must be a non-empty list of numbers`);
  if (!v.every((x) => typeof x === 'number' && Number.isFinite(x))) throw fail(where, `${name} must be a flat list of finite numbers`);
  if (dim !== undefined && v.length !== dim) throw fail(where, `${name} has ${v.length} values, expected ${dim}`);
  return Float64Array.from(v);
}

/** np.interp(z, xs, ys): linear, flat outside [xs[0], xs[-1]]. */
export function interp(z, xs, ys) {
  const n = xs.length;
  if (z <= xs[0]) return ys[0];
  if (z >= xs[n - 1]) return ys[n - 1];
  let lo = 0, hi = n - 1;
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (xs[mid] <= z) lo = mid; else hi = mid; }
  const t = (z - xs[lo]) / (xs[hi] - xs[lo]);
  return ys[lo] + t * (ys[hi] - ys[lo]);
}

function calibration(d, where) {
  if (d === undefined || d === null) return { kind: 'none' };
  if (typeof d !== 'object') throw fail(where, 'calibration must be an object');
  const kind = d.kind ?? 'none';
  if (kind === 'platt') {
    const a = finite(d.a, where, 'calibration.a'), b = finite(d.b, where, 'calibration.b');
    if (a <= 0) throw fail(where, 'calibration.a must be > 0 (a calibration may not invert scores)');
    return { kind, a, b };
  }
  if (kind === 'isotonic') {
    const { x, y } = d;
    if (!Array.isArray(x) || !Array.isArray(y) || x.length !== y.length || !x.length) throw fail(where, 'isotonic calibration needs lists x and y of the same length');
    x.forEach((v) => finite(v, where, 'calibration.x')); y.forEach((v) => finite(v, where, 'calibration.y'));
    for (let i = 1; i < x.length; i++) if (!(x[i] > x[i - 1])) throw fail(where, 'isotonic calibration x must be strictly increasing');
    for (let i = 1; i < y.length; i++) if (y[i] < y[i - 1]) throw fail(where, 'isotonic calibration y must be non-decreasing within [0, 1]');
    if (!y.every((v) => v >= 0 && v <= 1)) throw fail(where, 'isotonic calibration y must be non-decreasing within [0, 1]');
    return { kind, x: Float64Array.from(x), y: Float64Array.from(y) };
  }
  if (kind === 'none') return { kind };
  throw fail(where, `unknown calibration kind ${JSON.stringify(kind)} (none|platt|isotonic)`);
}

function calibrationDict(c) {
  if (c.kind === 'platt') return { kind: 'platt', a: c.a, b: c.b };
  if (c.kind === 'isotonic') return { kind: 'isotonic', x: Array.from(c.x), y: Array.from(c.y) };
  return { kind: 'none' };
}

export class Head {
  constructor(d, where = 'head') {
    if (!d || typeof d !== 'object') throw fail(where, 'a head must be a JSON object');
    if (d.format !== HEAD_FORMAT) throw fail(where, `not a hai-edge head file (format ${JSON.stringify(d.format)})`);
    if (d.format_version !== 1) throw fail(where, `unknown head format_version ${d.format_version}; this app reads version 1`);
    if (typeof d.name !== 'string' || !d.name || /[/\\\0]/.test(d.name)) throw fail(where, `invalid head name ${JSON.stringify(d.name)}`);
    if (d.kind !== 'logistic') throw fail(where, `head kind ${JSON.stringify(d.kind)} is not supported (logistic)`);
    if ((d.input ?? 'embedding') !== 'embedding') throw fail(where, `head input ${JSON.stringify(d.input)} is not supported (embedding)`);
    const dim = d.embedding_dim;
    if (!Number.isInteger(dim) || dim <= 0) throw fail(where, 'embedding_dim must be a positive integer');
    const std = d.standardize || {};
    this.name = d.name;
    this.kind = d.kind;
    this.input = 'embedding';
    this.weights = vector(d.weights, where, 'weights', dim);
    this.mean = vector(std.mean ?? new Array(dim).fill(0), where, 'standardize.mean', dim);
    this.scale = vector(std.scale ?? new Array(dim).fill(1), where, 'standardize.scale', dim);
    if (this.scale.some((v) => v <= 0)) throw fail(where, 'standardize.scale must be > 0');
    const labels = d.labels ?? ['negative', 'positive'];
    if (!Array.isArray(labels) || labels.length !== 2 || !labels.every((v) => typeof v === 'string')) throw fail(where, 'labels must be two strings: [negative, positive]');
    this.labels = labels;
    this.threshold = finite(d.threshold ?? 0.5, where, 'threshold');
    if (!(this.threshold >= 0 && this.threshold <= 1)) throw fail(where, 'threshold must be within [0, 1] (a probability)');
    this.borderline = finite(d.borderline ?? 0.0, where, 'borderline');
    if (!(this.borderline >= 0 && this.borderline < 0.5)) throw fail(where, 'borderline must be within [0, 0.5) (a probability half-width)');
    this.bias = finite(d.bias ?? 0.0, where, 'bias');
    this.calibration = calibration(d.calibration, where);
    this.notice = d.notice || '';
    this.dim = dim;
  }

  /** The logit z of one embedding. */
  decision(x) {
    if (x.length !== this.dim) throw new Error(`head ${this.name}: expects ${this.dim}-d embeddings, got ${x.length}`);
    let z = 0;
    for (let i = 0; i < this.dim; i++) z += ((x[i] - this.mean[i]) / this.scale[i]) * this.weights[i];
    return z + this.bias;
  }

  /** Calibrated probability of labels[1] for one embedding. */
  predictProba(x) {
    const z = this.decision(x), c = this.calibration;
    if (c.kind === 'platt') return sigmoid(c.a * z + c.b);
    if (c.kind === 'isotonic') return interp(z, c.x, c.y);
    return sigmoid(z);
  }

  /** The verdict on a calibrated score: 'positive' | 'negative' | 'borderline'. */
  verdict(score) { return verdictFor(score, this.threshold, this.borderline); }

  /** The manifest summary fields of this head, to check a manifest entry against its file. */
  summary() {
    return { kind: this.kind, input: this.input, labels: this.labels, threshold: this.threshold,
      calibration: calibrationDict(this.calibration) };
  }
}

function same(a, b) {
  if (typeof a === 'number' && typeof b === 'number') return Math.abs(a - b) <= Math.max(1e-12, 1e-9 * Math.max(Math.abs(a), Math.abs(b)));
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a).sort(), kb = Object.keys(b).sort();
    return same(ka, kb) && ka.every((k) => same(a[k], b[k]));
  }
  return a === b;
}

/** Build a head from its file, checked against its manifest entry and the embedding size
 *  (`scoring`: a screening head, whose borderline band must agree too; false for the head of a
 *  learned event detector, checked on the fields its entry shares with the file). */
export function headFromEntry(entry, fileDoc, embeddingDim, scoring = true) {
  const where = `head ${JSON.stringify(entry.name)}`;
  const head = new Head(fileDoc, where);
  if (head.name !== entry.name) throw fail(where, `the file is for head ${JSON.stringify(head.name)}`);
  const summary = head.summary();
  for (const key of SUMMARY_KEYS) {
    if (key in entry && key in summary && !same(entry[key], summary[key])) throw fail(where, `manifest ${key} differs from the head file`);
  }
  // a scoring head's band: absent on either side = 0, so neither can drop or add one alone
  if (scoring && !same(entry.borderline ?? 0, head.borderline)) throw fail(where, 'manifest borderline differs from the head file');
  if (head.dim !== embeddingDim) throw fail(where, `trained on ${head.dim}-d embeddings, the bundle's are ${embeddingDim}-d`);
  return head;
}
