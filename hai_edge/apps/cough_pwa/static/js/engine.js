// onnxruntime-web (WASM EP, local files only) behind one small interface: embed(inputs).
// Imported only after the service worker controls the page, so the 14 MB wasm is fetched once
// (through the worker's precache) instead of twice.

const ORT_DIR = 'vendor/ort/';

/** Threads: 1 without cross-origin isolation (multi-threaded WASM needs it); else `want` or
 *  every core, at most 4. The model runs only once the recording has ended (nothing else then
 *  competes for the cores), and ORT's int8 kernels give the same outputs on any thread count;
 *  on this project's 2-core test machine 2 threads took the cough student from ~12 to ~7 ms
 *  per window (benchmarks/pwa_speed.py). */
export function chooseThreads(want) {
  if (!self.crossOriginIsolated) return 1;
  if (want) return Math.max(1, want);
  return Math.min(4, Math.max(1, navigator.hardwareConcurrency || 1));
}

/**
 * QDQ execution mode. 'fused' (default): ORT's own int8 kernels, which give the Python
 * runtime's outputs exactly. 'float' (?qdq=float): ORT's QDQ -> int8-kernel fusion off, so INT8
 * weights are dequantized once at load and activations keep their quantize/dequantize steps;
 * about 2x faster for the cough student in this browser, but not bit-exact (measured on
 * cough-demo: window cosine 0.9999, detector probability off by up to 0.035).
 */
export const QDQ_MODES = ['float', 'fused'];

export async function openEngine(modelBytes, entry, inputShape, threads, qdq = 'fused') {
  const base = new URL(ORT_DIR, location.href).href;
  const ort = await import(base + 'ort.wasm.min.mjs');
  ort.env.wasm.wasmPaths = base;
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = 'error';
  const options = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };
  if (qdq === 'float') options.extra = { session: { disable_quant_qdq: '1' } };
  const session = await ort.InferenceSession.create(new Uint8Array(modelBytes), options);
  const inName = entry.inputs[0].name, outName = entry.outputs[0].name;
  if (!session.inputNames.includes(inName)) throw new Error(`model has no input ${inName}`);
  const timesMs = [];
  return {
    qdq,
    threads: ort.env.wasm.numThreads,
    version: ort.env.versions ? ort.env.versions.web : '',
    timesMs,
    /** One window at a time (batch 1, as a phone scores a recording): Float32Array[] out. */
    async embed(inputs) {
      const out = [];
      for (const x of inputs) {
        const t = performance.now();
        const r = await session.run({ [inName]: new ort.Tensor('float32', x, [1, ...inputShape]) });
        timesMs.push(performance.now() - t);
        out.push(Float32Array.from(r[outName].data));
      }
      return out;
    },
    async close() { await session.release(); },
  };
}
