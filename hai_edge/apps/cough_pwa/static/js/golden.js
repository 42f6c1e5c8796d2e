// Golden-vector self-test on load (the JS side of `hai-edge verify`): the front end on golden
// item 0's raw int16 waveform against its stored features, and the model on every golden input
// against the stored outputs, with the tolerances in golden.json. Beyond them the app refuses to
// score: a device or browser that computes something else must not produce screening results.

import { prepareAudio } from './features.js';
import { cosine } from './util.js';

const DTYPES = { float32: Float32Array, int16: Int16Array, uint8: Uint8Array };

/** {dtype, shape, b64} (little-endian raw bytes) -> {data: TypedArray, shape}. */
export function decodeArray(d, where = 'golden') {
  const T = d && DTYPES[d.dtype];
  if (!T || typeof d.b64 !== 'string') throw new Error(`${where}: not an encoded array`);
  const bin = atob(d.b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const n = d.shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== n * T.BYTES_PER_ELEMENT) throw new Error(`${where}: corrupt encoded array`);
  const view = new DataView(bytes.buffer), out = new T(n);
  for (let i = 0; i < n; i++) {
    const o = i * T.BYTES_PER_ELEMENT;
    out[i] = T === Float32Array ? view.getFloat32(o, true) : T === Int16Array ? view.getInt16(o, true) : view.getUint8(o);
  }
  return { data: out, shape: d.shape };
}

/**
 * Run the golden checks. embed(inputs) -> Promise<Float32Array[]>. Returns {passed, frontend:
 * [{item, max_abs_diff, tolerance, passed}], model: {max_abs_diff, min_cosine, tol_max_abs,
 * tol_min_cosine, passed}, message}.
 */
export async function runGolden(golden, bundle, embed) {
  const { spec, entry } = bundle;
  if (!golden || !Array.isArray(golden.items) || !golden.items.length) {
    return { passed: false, frontend: [], model: null, message: 'the bundle has no golden vectors, so this device cannot check itself (re-export the bundle)' };
  }
  const tol = (golden.frontend_tolerance && golden.frontend_tolerance.max_abs) ?? 1e-3;
  const inputs = [], frontend = [];
  golden.items.forEach((item, i) => {
    const where = `golden item ${i}`;
    const stored = item.input ? decodeArray(item.input, where).data : null;
    let computed = null;
    if (item.raw && item.raw.pcm16) {
      const pcm = decodeArray(item.raw.pcm16, where).data;
      const x = new Float32Array(pcm.length);
      for (let k = 0; k < pcm.length; k++) x[k] = pcm[k] / 32768.0;
      const { inputs: feats } = prepareAudio(x, item.raw.sample_rate, spec, where);
      computed = feats[item.raw.window ?? 0];
      let diff = 0;
      if (stored) {
        for (let k = 0; k < stored.length; k++) diff = Math.max(diff, Math.abs(computed[k] - stored[k]));
      } else if (item.feature_samples) {
        const idx = decodeArray(item.feature_samples.indices, where).data, val = decodeArray(item.feature_samples.values, where).data;
        for (let k = 0; k < idx.length; k++) diff = Math.max(diff, Math.abs(computed[idx[k]] - val[k]));
      }
      if (!Number.isFinite(diff)) diff = Infinity;
      frontend.push({ item: i, max_abs_diff: diff, tolerance: tol, passed: diff <= tol });
    }
    const x = stored || computed;
    if (!x) throw new Error(`${where}: neither an input nor raw media`);
    if (x.length !== spec.input_size) throw new Error(`${where}: input has ${x.length} values, the front end makes ${spec.input_size}`);
    inputs.push(x);
  });
  const exp = golden.models && golden.models[entry.id];
  let model = null;
  if (!exp) {
    model = { passed: false, note: `no expected outputs for model ${entry.id}` };
  } else {
    const expected = decodeArray(exp.outputs, `golden ${entry.id}`);
    const dim = expected.shape[expected.shape.length - 1];
    const t = exp.tolerance || {};
    const tAbs = t.max_abs ?? 1e-4, tCos = t.min_cosine ?? 0.9999;
    const outs = await embed(inputs);
    let diff = 0, minCos = 1;
    outs.forEach((o, i) => {
      const e = expected.data.subarray(i * dim, (i + 1) * dim);
      for (let k = 0; k < dim; k++) { const d = Math.abs(o[k] - e[k]); diff = Number.isNaN(d) ? Infinity : Math.max(diff, d); }
      minCos = Math.min(minCos, cosine(o, e));
    });
    model = { max_abs_diff: diff, min_cosine: minCos, tol_max_abs: tAbs, tol_min_cosine: tCos, passed: diff <= tAbs && minCos >= tCos };
  }
  const passed = frontend.every((f) => f.passed) && model.passed;
  let message = '';
  const badFe = frontend.find((f) => !f.passed);
  if (badFe) message = `the audio front end disagrees with the bundle's golden vectors (max |diff| ${badFe.max_abs_diff.toPrecision(3)} > ${badFe.tolerance})`;
  else if (!model.passed) {
    message = model.note ? model.note : `the model output disagrees with the bundle's golden vectors (max |diff| ${model.max_abs_diff.toPrecision(3)}, tolerance ${model.tol_max_abs.toPrecision(3)}; min cosine ${model.min_cosine.toFixed(5)}, tolerance ${model.tol_min_cosine})`;
  }
  return { passed, frontend, model, message };
}
