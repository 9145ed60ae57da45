/**
 * A fleet worker thread: instantiates the wasm scan kernel once, then checks the snapshot files
 * the main thread sends it, one at a time, reading each file itself, and decoding each distinct
 * symbol section (by exact bytes) once. Protocol (MessagePort from
 * workerData): in `{ id, file }`, out `{ id, result }` followed by a bump of the shared counter
 * (the main thread waits on it synchronously with Atomics.wait); `{ close: true }` ends it.
 */
import { type MessagePort, workerData } from "node:worker_threads";
import type { DecideOptions } from "../decide/livepatch.js";
import type { PatchSpec } from "../patch/spec.js";
import { checkSnapshotFile } from "./fleetCheck.js";
import { newSymbolSectionCache } from "./snapshotFile.js";
import { loadWasmScannerSync } from "./wasm.js";

interface FleetWorkerData {
  port: MessagePort;
  counter: SharedArrayBuffer;
  patch: PatchSpec;
  options: Partial<DecideOptions>;
}

const data = workerData as FleetWorkerData;
const seq = new Int32Array(data.counter);
const scanner = loadWasmScannerSync();
// Hosts of one kernel build carry byte-identical symbol sections: decode each once per worker.
const symbols = newSymbolSectionCache(4);
data.port.on("message", (m: { id: number; file: string } | { close: true }) => {
  if ("close" in m) {
    data.port.close();
    return;
  }
  const result = checkSnapshotFile(m.file, data.patch, data.options, scanner, symbols);
  data.port.postMessage({ id: m.id, result });
  Atomics.add(seq, 0, 1);
  Atomics.notify(seq, 0);
});
// Ready.
Atomics.add(seq, 1, 1);
Atomics.notify(seq, 1);
