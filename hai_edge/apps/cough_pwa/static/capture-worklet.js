// AudioWorkletProcessor: posts each 128-frame input block (mean of the channels) to the page.
class Capture extends AudioWorkletProcessor {
  process(inputs) {
    const chans = inputs[0];
    if (chans && chans.length) {
      const n = chans[0].length, out = new Float32Array(n);
      if (chans.length === 1) out.set(chans[0]);
      else for (let i = 0; i < n; i++) { let s = 0; for (const c of chans) s += c[i]; out[i] = s / chans.length; }
      this.port.postMessage(out, [out.buffer]);
    }
    return true;
  }
}
registerProcessor('hai-capture', Capture);
