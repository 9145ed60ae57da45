/** Node-only helpers: live capture, file input, the synchronous wasm loader. */
export { liveHostFacts, loadedKpatchModules, parseStat, readKpatchPatches } from "./live.js";
export { readCaptureFile, readCaptureFiles, readSymbolFile, streamFile } from "./io.js";
export { loadProcTokenizer, loadTokenizerModuleSync, loadWasmScannerSync } from "./wasm.js";
export { captureHost, captureLive, readLivepatches, readModules, timedReader } from "./capture.js";
export { readAnyCapture, readSnapshotFile, writePrivateFile } from "./snapshotFile.js";
