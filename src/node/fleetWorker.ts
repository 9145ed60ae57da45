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
import type { Scanner } from "../scan/types.js";
import { checkSnapshotFile, type HostResult } from "./fleetCheck.js";
import { newSymbolSectionCache, ReadBuffer } from "./snapshotFile.js";
import { loadWasmScannerSync } from "./wasm.js";

interface FleetWorkerData {
  port: MessagePort;
  counter: SharedArrayBuffer;
  patch: PatchSpec;
  options: Partial<DecideOptions>;
}

const data = workerData as FleetWorkerData;
const seq = new Int32Array(data.counter);
// A kernel that cannot be loaded is answered per file at once (the main thread would otherwise
// wait for results until its stall timeout).
let scanner: Scanner | null = null;
let startError: string | null = null;
try {
  scanner = loadWasmScannerSync();
} catch (e) {
  startError = e instanceof Error ? e.message : String(e);
}
// Hosts of one kernel build carry byte-identical symbol sections: decode each once per worker.
const symbols = newSymbolSectionCache(4);
// One read buffer for every file (a host costs ~2 ms; allocating and zeroing 2 MB was 10% of it).
const buffer = new ReadBuffer();
data.port.on("message", (m: { id: number; file: string } | { close: true }) => {
  if ("close" in m) {
    data.port.close();
    return;
  }
  const result: HostResult =
    scanner !== null
      ? checkSnapshotFile(m.file, data.patch, data.options, scanner, symbols, buffer)
      : { file: m.file, hostname: null, bootId: null, release: null, capturedAt: null, verdict: null, exit: 2, counts: null, blockers: [], reasons: [], warnings: [], error: { code: "E_FLEET_WORKER", message: `${m.file}: the worker could not load the scan kernel: ${startError}` }, ms: 0 };
  data.port.postMessage({ id: m.id, result });
  Atomics.add(seq, 0, 1);
  Atomics.notify(seq, 0);
});
// Ready.
Atomics.add(seq, 1, 1);
Atomics.notify(seq, 1);
