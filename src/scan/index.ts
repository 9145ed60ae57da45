/** The range scan: shared types, the BigInt reference, and the wasm kernel's host side. */
export type { ScanHits, ScanHitsView, ScanInput, Scanner, ViewScanner } from "./types.js";
export { referenceScanner, validateScanInput } from "./reference.js";
export { tsScanner } from "./tsScan.js";
export {
  compileScanModule,
  compileScanModuleAsync,
  createWasmScanner,
  DEFAULT_HIT_CAPACITY,
  DEFAULT_KEY_CHUNK,
  loadWasmScannerFromUrl,
  MAX_WASM_RANGES,
  SCAN_ABI_VERSION,
  SCAN_EXPORTED_FUNCTIONS,
  scanWasmUrl,
  WasmAbortError,
  type WasmScanner,
  type WasmScannerOptions,
} from "./wasm.js";
