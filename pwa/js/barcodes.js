// Barcode reading on the phone: the Barcode Detection API everywhere. Where the browser has
// no BarcodeDetector for the formats we need (iOS Safari, desktop Linux), the vendored
// barcode-detector ponyfill gives the same API on ZXing-C++ (WebAssembly), reading every
// symbology the gateway reads. Its .wasm is served by the gateway next to it (no CDN: the
// app works offline and the CSP allows only this origin).
import { BarcodeDetector as ZXingDetector, prepareZXingModule } from "../vendor/barcode-detector/ponyfill.js";

const WASM_URL = new URL("../vendor/barcode-detector/zxing_reader.wasm", import.meta.url).href;

// What a bin label or a product carries (the formats the gateway's zxing-cpp reads too).
export const LABEL_FORMATS = [
  "qr_code", "data_matrix", "code_128", "code_39", "code_93", "codabar", "itf", "ean_13",
  "ean_8", "upc_a", "upc_e", "pdf417", "aztec",
];

let prepared = false;
function prepareWasm() {
  if (prepared) return;
  prepared = true;
  prepareZXingModule({
    overrides: { locateFile: (path, prefix) => (path.endsWith(".wasm") ? WASM_URL : prefix + path) },
  });
}

async function nativeDetector(formats) {
  if (typeof globalThis.BarcodeDetector === "undefined") return null;
  try {
    const supported = await globalThis.BarcodeDetector.getSupportedFormats();
    if (!formats.every((f) => supported.includes(f))) return null;
    return new globalThis.BarcodeDetector({ formats });
  } catch {
    return null;
  }
}

// A detector for `formats`: { detect(source) -> [{ rawValue, format, ... }], engine }.
export async function barcodeReader(formats) {
  const native = await nativeDetector(formats);
  if (native) return { detect: (source) => native.detect(source), engine: "native" };
  prepareWasm();
  const zxing = new ZXingDetector({ formats });
  return { detect: (source) => zxing.detect(source), engine: "zxing-wasm" };
}
