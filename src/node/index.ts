/** Node-only helpers: live capture, file input, the synchronous wasm loader. */
export { liveHostFacts, loadedKpatchModules, parseStat, readKpatchPatches } from "./live.js";
export { readCaptureFile, readSymbolFile, streamFile } from "./io.js";
export { loadWasmScannerSync } from "./wasm.js";
export { captureHost, captureLive, readLivepatches, readModules, timedReader } from "./capture.js";
export { readAnyCapture, readSnapshotFile, writePrivateFile } from "./snapshotFile.js";
