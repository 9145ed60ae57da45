/**
 * Hand-written loader and host side of the range-scan kernel (assembly/index.ts). The only code
 * that touches the wasm instance. Runs in Node and browsers: no `node:` imports, no Buffer, no
 * top-level await.
 *
 * Per scan(): validate in TS -> reserve buffers (may grow memory, so views are re-taken) ->
 * copy ranges in caller order -> setRanges (sorted + prefix max inside wasm) -> for each chunk
 * of keys: copy, then scan/drain until the chunk is consumed -> map frames to tasks.
 */
import { PatchsafeError } from "../errors.js";
import { validateScanInput } from "./reference.js";
import type { ScanHits, ScanInput, Scanner } from "./types.js";

/** The kernel ABI this loader speaks (assembly/index.ts ABI_VERSION). */
export const SCAN_ABI_VERSION = 1;

/** Default number of keys copied into wasm per chunk (512 KiB of u64). */
export const DEFAULT_KEY_CHUNK = 65536;
/** Default hit pairs per scan() call before the host drains (512 KiB); raised to the range count. */
export const DEFAULT_HIT_CAPACITY = 65536;
/** Ranges the wasm32 arena is allowed to hold (48 B each: inputs, sorted copies, prefix max, indexes). */
export const MAX_WASM_RANGES = 1 << 25;

/** The exports of build/scan*.wasm: `memory` plus functions over i32 numbers only. */
interface ScanExports {
  memory: WebAssembly.Memory;
  abiVersion(): number;
  reserve(rangeCount: number, keyCount: number, hitCount: number): number;
  keyPtr(): number;
  keyCapacity(): number;
  hitPtr(): number;
  rangeStartPtr(): number;
  rangeLastPtr(): number;
  rangeCapacity(): number;
  hitCount(): number;
  setRanges(count: number): void;
  scan(keyOffset: number, keyCount: number, frameBase: number): number;
  sumKeys(keyOffset: number, keyCount: number): number;
}

/** Every function the kernel must export (the import/export surface is tested). */
export const SCAN_EXPORTED_FUNCTIONS: readonly string[] = [
  "abiVersion",
  "reserve",
  "keyPtr",
  "keyCapacity",
  "hitPtr",
  "rangeStartPtr",
  "rangeLastPtr",
  "rangeCapacity",
  "hitCount",
  "setRanges",
  "scan",
  "sumKeys",
];

/** Thrown by `env.abort`: an assertion or guard inside the kernel failed (a patchsafe bug). */
export class WasmAbortError extends Error {
  readonly kernelMessage: string;
  readonly file: string;
  readonly line: number;
  readonly column: number;

  constructor(kernelMessage: string, file: string, line: number, column: number) {
    super(`scan kernel aborted: ${kernelMessage} (${file}:${line}:${column})`);
    this.name = "WasmAbortError";
    this.kernelMessage = kernelMessage;
    this.file = file;
    this.line = line;
    this.column = column;
  }
}

/**
 * The wasm Scanner plus two benchmark baselines that move the keys exactly as scan() does (the
 * same chunked copies into linear memory, one export call per chunk) but do no lookup:
 * interopOnly() calls an empty export per chunk, memoryFloor() sums the chunk inside wasm.
 */
export interface WasmScanner extends Scanner {
  interopOnly(keys: Uint32Array): number;
  memoryFloor(keys: Uint32Array): number;
}

/** Options for tests and tuning; the defaults suit production. */
export interface WasmScannerOptions {
  /** Keys copied into wasm per chunk (default 65536). */
  keyChunk?: number;
  /** Hit pairs per kernel call before the host drains them (default 65536; at least the range count). */
  hitCapacity?: number;
}

/** Compiles the kernel synchronously (Node CLI; browsers refuse large modules on the main thread). */
export function compileScanModule(bytes: BufferSource): WebAssembly.Module {
  return new WebAssembly.Module(bytes);
}

/** Compiles the kernel off the main thread. */
export function compileScanModuleAsync(bytes: BufferSource): Promise<WebAssembly.Module> {
  return WebAssembly.compile(bytes);
}

/**
 * Where the built kernel lives, relative to this file: resolves from src/scan/*.ts (vitest) and
 * from dist/scan/*.js (after tsc) to <package>/build/. Literal URLs so bundlers can see them.
 */
export function scanWasmUrl(build: "release" | "debug"): URL {
  return build === "release"
    ? new URL("../../build/scan.wasm", import.meta.url)
    : new URL("../../build/scan.debug.wasm", import.meta.url);
}

/** Browser loader: fetch + compileStreaming, falling back to arrayBuffer (e.g. wrong MIME type). */
export async function loadWasmScannerFromUrl(
  url: URL | string,
  kind: "wasm-release" | "wasm-debug" = "wasm-release",
  options: WasmScannerOptions = {},
): Promise<WasmScanner> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new PatchsafeError("E_IO", `cannot fetch scan kernel ${String(url)}: ${(e as Error).message}`);
  }
  if (!res.ok) throw new PatchsafeError("E_IO", `cannot fetch scan kernel ${String(url)}: HTTP ${res.status}`);
  let module: WebAssembly.Module | undefined;
  if (typeof WebAssembly.compileStreaming === "function") {
    try {
      module = await WebAssembly.compileStreaming(res.clone());
    } catch {
      // not served as application/wasm, or streaming unsupported: compile from bytes below
    }
  }
  module ??= await WebAssembly.compile(await res.arrayBuffer());
  return createWasmScanner(module, kind, options);
}

/** Reads an AssemblyScript string (UTF-16LE, byte length in the u32 before it). */
function readKernelString(memory: WebAssembly.Memory | undefined, ptr: number): string {
  if (memory === undefined || ptr === 0) return "";
  const buf = memory.buffer;
  const p = ptr >>> 0;
  if (p < 4 || p > buf.byteLength) return `<bad string pointer ${p}>`;
  const bytes = new DataView(buf).getUint32(p - 4, true);
  const units = Math.min(bytes >>> 1, (buf.byteLength - p) >>> 1, 4096);
  const view = new DataView(buf, p, units * 2);
  let s = "";
  for (let i = 0; i < units; i++) s += String.fromCharCode(view.getUint16(i * 2, true));
  return s;
}

function positiveInt(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1 || v > 0x100_0000) throw new RangeError(`${name} must be an integer in [1, 2^24], got ${v}`);
  return v;
}

/** Maps ascending global frame indexes to task indexes with one forward cursor. */
function tasksOfFrames(taskFrameStart: Uint32Array, frame: Uint32Array): Uint32Array {
  const task = new Uint32Array(frame.length);
  let t = 0;
  for (let i = 0; i < frame.length; i++) {
    const f = frame[i]!;
    while (taskFrameStart[t + 1]! <= f) t++;
    task[i] = t;
  }
  return task;
}

/**
 * Instantiates the kernel (imports: `env.abort` only) and wraps it as a Scanner. The instance
 * is owned by the returned Scanner and reused across scan() calls (synchronous, not reentrant).
 */
export function createWasmScanner(
  module: WebAssembly.Module,
  kind: "wasm-release" | "wasm-debug",
  options: WasmScannerOptions = {},
): WasmScanner {
  const keyChunk = positiveInt("keyChunk", options.keyChunk, DEFAULT_KEY_CHUNK);
  const hitCapacity = positiveInt("hitCapacity", options.hitCapacity, DEFAULT_HIT_CAPACITY);

  let memory: WebAssembly.Memory | undefined;
  const imports = {
    env: {
      abort(msg: number, file: number, line: number, column: number): never {
        throw new WasmAbortError(readKernelString(memory, msg), readKernelString(memory, file), line >>> 0, column >>> 0);
      },
    },
  };
  const instance = new WebAssembly.Instance(module, imports);
  const ex = instance.exports as unknown as ScanExports;
  for (const name of SCAN_EXPORTED_FUNCTIONS) {
    if (typeof (ex as unknown as Record<string, unknown>)[name] !== "function") {
      throw new Error(`scan kernel does not export ${name}(); rebuild with npm run asbuild`);
    }
  }
  if (!(ex.memory instanceof WebAssembly.Memory)) throw new Error("scan kernel does not export its memory");
  memory = ex.memory;
  if (ex.abiVersion() !== SCAN_ABI_VERSION) {
    throw new Error(`scan kernel ABI ${ex.abiVersion()}, this loader speaks ${SCAN_ABI_VERSION}; rebuild with npm run asbuild`);
  }

  // A u32 view of linear memory, re-taken whenever memory.grow has detached the old buffer.
  let heap32 = new Uint32Array(ex.memory.buffer);
  const view = (): Uint32Array => {
    if (heap32.buffer !== ex.memory.buffer) heap32 = new Uint32Array(ex.memory.buffer);
    return heap32;
  };

  /** Copies of the ranges installed in the kernel now (null: none, or unknown after a failure). */
  let installed: { start: Uint32Array; last: Uint32Array } | null = null;
  let maxLimit = 0;
  const sameRanges = (a: { start: Uint32Array; last: Uint32Array }, start: Uint32Array, last: Uint32Array): boolean => {
    if (a.start.length !== start.length) return false;
    for (let i = 0; i < start.length; i++) if (a.start[i] !== start[i] || a.last[i] !== last[i]) return false;
    return true;
  };

  function scan(input: ScanInput): ScanHits {
    validateScanInput(input);
    const { keys, taskFrameStart, rangeStart, rangeLast } = input;
    const frames = keys.length >>> 1;
    const ranges = rangeStart.length >>> 1;
    if (ranges > MAX_WASM_RANGES) {
      throw new PatchsafeError("E_UNSUPPORTED", `${ranges} ranges exceed the wasm scan limit of ${MAX_WASM_RANGES}`);
    }
    if (frames === 0 || ranges === 0) {
      return { count: 0, task: new Uint32Array(0), frame: new Uint32Array(0), range: new Uint32Array(0) };
    }

    const keyCapBefore = ex.keyCapacity();
    const rangeCapBefore = ex.rangeCapacity();
    let limit: number;
    try {
      limit = ex.reserve(ranges, keyChunk, hitCapacity) >>> 0; // may grow memory: take views after this
    } catch (e) {
      installed = null;
      // memory.grow refused (a trap) or the arena limit: the previous layout stays usable
      if (e instanceof WebAssembly.RuntimeError || e instanceof WasmAbortError) {
        throw new PatchsafeError("E_UNSUPPORTED", `cannot allocate wasm scan buffers for ${ranges} ranges: ${e.message}`);
      }
      throw e;
    }
    let mem = view();
    // The same ranges as the last call (a fleet or a benchmark checking one patch again) stay
    // installed, sorted and memoised, unless reserve() reallocated (any capacity grew, or the
    // hit limit rose past every earlier one: conservatively a reallocation).
    const reallocated = ex.keyCapacity() !== keyCapBefore || ex.rangeCapacity() !== rangeCapBefore || limit > maxLimit;
    maxLimit = Math.max(maxLimit, limit);
    if (reallocated || installed === null || !sameRanges(installed, rangeStart, rangeLast)) {
      installed = null;
      mem.set(rangeStart, ex.rangeStartPtr() >>> 2);
      mem.set(rangeLast, ex.rangeLastPtr() >>> 2);
      ex.setRanges(ranges);
      installed = { start: rangeStart.slice(), last: rangeLast.slice() };
    }

    let outFrame = new Uint32Array(1024);
    let outRange = new Uint32Array(1024);
    let count = 0;
    const keyWord = ex.keyPtr() >>> 2;
    const hitWord = ex.hitPtr() >>> 2;
    for (let base = 0; base < frames; base += keyChunk) {
      const n = Math.min(keyChunk, frames - base);
      mem = view();
      mem.set(keys.subarray(2 * base, 2 * (base + n)), keyWord);
      let done = 0;
      while (done < n) {
        const consumed = ex.scan(done, n - done, base) >>> 0;
        const h = ex.hitCount() >>> 0;
        if (consumed === 0 && h === 0) throw new Error("scan kernel made no progress (kernel bug)");
        if (count + h > outFrame.length) {
          let cap = outFrame.length * 2;
          while (cap < count + h) cap *= 2;
          const f = new Uint32Array(cap);
          f.set(outFrame.subarray(0, count));
          outFrame = f;
          const r = new Uint32Array(cap);
          r.set(outRange.subarray(0, count));
          outRange = r;
        }
        mem = view();
        for (let i = 0, w = hitWord; i < h; i++, w += 2) {
          outFrame[count] = mem[w]!;
          outRange[count] = mem[w + 1]!;
          count++;
        }
        done += consumed;
      }
    }
    const frame = outFrame.slice(0, count);
    return { count, task: tasksOfFrames(taskFrameStart, frame), frame, range: outRange.slice(0, count) };
  }

  /** Copies keys chunk by chunk as scan() does and calls `visit` per chunk. */
  function chunked(keys: Uint32Array, visit: (n: number) => number): number {
    const frames = keys.length >>> 1;
    if (frames === 0) return 0;
    const kc = ex.keyCapacity();
    const rc = ex.rangeCapacity();
    const limit = ex.reserve(1, keyChunk, hitCapacity) >>> 0;
    if (ex.keyCapacity() !== kc || ex.rangeCapacity() !== rc || limit > maxLimit) installed = null;
    maxLimit = Math.max(maxLimit, limit);
    let acc = 0;
    const keyWord = ex.keyPtr() >>> 2;
    for (let base = 0; base < frames; base += keyChunk) {
      const n = Math.min(keyChunk, frames - base);
      view().set(keys.subarray(2 * base, 2 * (base + n)), keyWord);
      acc = (acc ^ visit(n)) >>> 0;
    }
    return acc;
  }

  return {
    kind,
    scan,
    interopOnly: (keys) => chunked(keys, (n) => ex.hitCount() + n),
    memoryFloor: (keys) => chunked(keys, (n) => ex.sumKeys(0, n)),
  };
}
