/**
 * A fleet worker thread: instantiates the wasm scan kernel once, then claims snapshot files from
 * the shared list one at a time (Atomics.add on the control array's NEXT slot: no round trip
 * through the main thread between hosts), reading each file itself and decoding each distinct
 * symbol section once (known by its exact bytes, or for format 1.3 files by the SHA-256 their
 * header states: later hosts of that kernel build are read only up to the section). Protocol (workerData): `files`, `control` (Int32Array
 * slots of FleetControl in src/cli/fleet.ts), `slot` (this worker's number k: its state is in
 * slot WORKERS + k), and a MessagePort on which it posts `{ id, result }` for each file, followed
 * by a bump and notify of the RESULTS slot (the main thread waits on it with Atomics.wait). It
 * never reads the port (the main thread posts probes to learn whether this thread still runs).
 *
 * The state slot says which file this worker has in hand, so that the main thread can report
 * that file (and only it) when this thread dies while checking it: STARTING until the module
 * has loaded (set by the main thread), then IDLE, then the index of each claimed file from the
 * claim until its result is posted. The claim (Atomics.add) and the store of its index have no
 * call, allocation or loop between them, where V8 would act on a termination request (out of
 * memory); a file claimed but not recorded would still be reported, once no worker is left.
 * The thread ends when no file is left to claim.
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
  slot: number;
  files: string[];
  patch: PatchSpec;
  options: Partial<DecideOptions>;
}

/** FleetControl slots (src/cli/fleet.ts; not imported: the worker bundle stays free of the CLI). */
const RESULTS = 0;
const NEXT = 1;
const WORKERS = 2;
const IDLE = -1;

const data = workerData as FleetWorkerData;
const ctl = new Int32Array(data.control);
const state = WORKERS + data.slot;
// A kernel that cannot be loaded is answered per file, with the reason (a thrown error would stop
// the thread, and its message would reach the main thread only after the run).
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
Atomics.store(ctl, state, IDLE);
const files = data.files;
/**
 * One host per event-loop turn: V8 runs some of its work for this isolate as tasks on the
 * thread's event loop (installing optimized code, finishing GC marking); a synchronous loop
 * over every file kept the worker in unoptimized code (measured: twice the time per host).
 */
function next(): void {
  const i = Atomics.add(ctl, NEXT, 1);
  if (i >= files.length) return;
  Atomics.store(ctl, state, i);
  const file = files[i];
  const result: HostResult =
    scanner !== null
      ? checkSnapshotFile(file, data.patch, data.options, scanner, symbols, buffer)
      : { file, hostname: null, bootId: null, release: null, capturedAt: null, applied: null, transition: null, notApplied: null, verdict: null, exit: 2, counts: null, blockers: [], reasons: [], warnings: [], error: { code: "E_FLEET_WORKER", message: `${file}: the worker could not load the scan kernel: ${startError}` }, ms: 0 };
  data.port.postMessage({ id: i, result });
  Atomics.store(ctl, state, IDLE);
  Atomics.add(ctl, RESULTS, 1);
  Atomics.notify(ctl, RESULTS);
  setImmediate(next);
}
next();
