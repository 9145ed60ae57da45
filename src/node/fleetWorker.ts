/**
 * A fleet worker thread: instantiates the wasm scan kernel once, then claims snapshot files from
 * the shared list one at a time (Atomics.add on the control array's NEXT slot: no round trip
 * through the main thread between hosts), reading each file itself and decoding each distinct
 * symbol section (by exact bytes) once. Protocol (workerData): `files`, `control` (Int32Array
 * slots of FleetControl in src/cli/fleet.ts), and a MessagePort on which it posts `{ id, result }`
 * for each file, followed by a bump and notify of the RESULTS slot (the main thread waits on it
 * with Atomics.wait). It stops when no file is left to claim.
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
  control: SharedArrayBuffer;
  files: string[];
  patch: PatchSpec;
  options: Partial<DecideOptions>;
}

/** FleetControl slots (src/cli/fleet.ts; not imported: the worker bundle stays free of the CLI). */
const RESULTS = 0;
const READY = 1;
const NEXT = 2;

const data = workerData as FleetWorkerData;
const ctl = new Int32Array(data.control);
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
// One read buffer for every file (a host costs ~1 ms; allocating and zeroing 2 MB was 10% of it).
const buffer = new ReadBuffer();
Atomics.add(ctl, READY, 1);
Atomics.notify(ctl, READY);
const files = data.files;
/**
 * One host per event-loop turn: V8 runs some of its work for this isolate as tasks on the
 * thread's event loop (installing optimized code, finishing GC marking); a synchronous loop
 * over every file kept the worker in unoptimized code (measured: twice the time per host).
 */
function next(): void {
  const i = Atomics.add(ctl, NEXT, 1);
  if (i >= files.length) return;
  const file = files[i];
  const result: HostResult =
    scanner !== null
      ? checkSnapshotFile(file, data.patch, data.options, scanner, symbols, buffer)
      : { file, hostname: null, bootId: null, release: null, capturedAt: null, verdict: null, exit: 2, counts: null, blockers: [], reasons: [], warnings: [], error: { code: "E_FLEET_WORKER", message: `${file}: the worker could not load the scan kernel: ${startError}` }, ms: 0 };
  data.port.postMessage({ id: i, result });
  Atomics.add(ctl, RESULTS, 1);
  Atomics.notify(ctl, RESULTS);
  setImmediate(next);
}
next();
