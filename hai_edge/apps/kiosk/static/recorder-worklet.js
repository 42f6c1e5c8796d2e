// AudioWorkletProcessor: copies each 128-frame mono input block to the main thread.
class KioskRecorder extends AudioWorkletProcessor {
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch) this.port.postMessage(ch.slice(0));
    return true;
  }
}
registerProcessor('kiosk-recorder', KioskRecorder);
