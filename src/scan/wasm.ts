/**
 * Hand-written loader and host side of the range-scan kernel (assembly/index.ts). The only code
 * that touches the wasm instance. Runs in Node and browsers: no `node:` imports, no Buffer, no
 * top-level await.
 *
 * Per scan(): validate in TS -> reserve buffers (may grow memory, so views are re-taken) ->
 * copy ranges in caller order -> setRanges (sorted + prefix max inside wasm) -> for each chunk
 * of keys: copy, then scan until the chunk is consumed; hits accumulate in the kernel's output
 * columns across chunks and are copied out in bulk (typed-array slices) only when the columns
 * are full and at the end -> map frames to tasks.
 *
 * scanView() is the same scan without the final copy: when every hit is still in the kernel's
 * columns (the common case: they hold max(frame count, 2^20) hits, at most hitCapacity) it
 * returns subarrays of linear memory; hits that had to be drained mid-scan go to scratch
 * arrays the scanner reuses. Either way the next call overwrites them (ScanHitsView). Its task
 * column is filled into reused scratch when first read.
 */
import { PatchsafeError } from "../errors.js";
import { validateScanRanges, validateScanShape } from "./reference.js";
import type { ScanHits, ScanHitsView, ScanInput, ViewScanner } from "./types.js";

/** The kernel ABI this loader speaks (assembly/index.ts ABI_VERSION). */
export const SCAN_ABI_VERSION = 2;

/** Default number of keys copied into wasm per chunk (512 KiB of u64). */
export const DEFAULT_KEY_CHUNK = 65536;
/**
 * Default cap on the kernel's hit columns (2^20 hits, 8 MiB): hits accumulate there across key
 * chunks and are copied out once at the end unless they fill the columns. A scan asks for
 * max(frame count, 2^20) hits, at most its hitCapacity (the kernel raises the limit to the range
 * count). The kernel lays out columns for any limit up to 2^20 at a fixed stride its hot loop
 * is compiled for (assembly/index.ts STRIDE_HITS), so asking for less would save only
 * untouched pages; a scan whose frames hit at most once each needs no intermediate copy.
 */
export const DEFAULT_HIT_CAPACITY = 1 << 20;
/** setRanges() result: some range has last < start (nothing installed). */
const RANGES_INVALID = 2;
/** Smallest hit limit a scan asks for (within its hitCapacity): the kernel's STRIDE_HITS. */
const MIN_HIT_ASK = 1 << 20;
/** Ranges the wasm32 arena is allowed to hold (64 B each: inputs, installed copies, sorted copies, prefix max, indexes; plus the tree). */
export const MAX_WASM_RANGES = 1 << 25;

/** The exports of build/scan*.wasm: `memory` plus functions over i32 numbers only. */
interface ScanExports {
  memory: WebAssembly.Memory;
  abiVersion(): number;
  reserve(rangeCount: number, keyCount: number, hitCount: number): number;
  keyPtr(): number;
  keyCapacity(): number;
  hitFramePtr(): number;
  hitRangePtr(): number;
  rangeStartPtr(): number;
  rangeLastPtr(): number;
  rangeCapacity(): number;
  hitCount(): number;
  setRanges(count: number): number;
  scan(keyOffset: number, keyCount: number, frameBase: number, hitOffset: number): number;
  sumKeys(keyOffset: number, keyCount: number): number;
}

/** Every function the kernel must export (the import/export surface is tested). */
export const SCAN_EXPORTED_FUNCTIONS: readonly string[] = [
  "abiVersion",
  "reserve",
  "keyPtr",
  "keyCapacity",
  "hitFramePtr",
  "hitRangePtr",
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
export interface WasmScanner extends ViewScanner {
  interopOnly(keys: Uint32Array): number;
  memoryFloor(keys: Uint32Array): number;
}

/** Options for tests and tuning; the defaults suit production. */
export interface WasmScannerOptions {
  /** Keys copied into wasm per chunk (default 65536). */
  keyChunk?: number;
  /** Cap on the kernel's hit columns (default 2^20; the kernel raises it to the range count). */
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

/** One array of `count` elements from consecutive pieces. */
function concat(pieces: readonly Uint32Array[], count: number): Uint32Array {
  const out = new Uint32Array(count);
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Maps ascending global frame indexes to task indexes with one forward cursor. */
function tasksOfFrames(taskFrameStart: Uint32Array, frame: Uint32Array): Uint32Array {
  return tasksInto(taskFrameStart, frame, new Uint32Array(frame.length), true);
}

/**
 * Writes the task of each frame into task[0, frame.length) (task has room). `zeroed`: task is
 * known to be all zero (a new array), so a single-task scan writes nothing.
 */
function tasksInto(taskFrameStart: Uint32Array, frame: Uint32Array, task: Uint32Array, zeroed: boolean): Uint32Array {
  const n = frame.length;
  // one task (a scan of shared rows, the common case): every hit is task 0
  if (taskFrameStart.length === 2) {
    if (!zeroed) task.fill(0, 0, n);
    return task;
  }
  let t = 0;
  for (let i = 0; i < n; i++) {
    const f = frame[i]!;
    while (taskFrameStart[t + 1]! <= f) t++;
    task[i] = t;
  }
  return task;
}

/** `a` if it holds `need` elements, else a larger array with a's first `keep` elements. */
function atLeast(a: Uint32Array, need: number, keep: number): Uint32Array {
  if (need <= a.length) return a;
  const b = new Uint32Array(Math.max(need, Math.min(a.length * 2, 0x4000_0000)));
  b.set(a.subarray(0, keep));
  return b;
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

  // scanView()'s scratch: hits drained from the kernel's columns mid-scan, and the task column.
  // Kept between calls (a view is valid until the next call); they grow to the largest scan's hits.
  let scratchFrame: Uint32Array = new Uint32Array(0);
  let scratchRange: Uint32Array = new Uint32Array(0);
  let scratchTask: Uint32Array = new Uint32Array(0);

  /**
   * scan() (`borrow` false: owned arrays) and scanView() (`borrow` true: views on the kernel's
   * columns when every hit is still there, else on the scratch arrays).
   */
  function run(input: ScanInput, borrow: boolean): ScanHits {
    // The ranges' own check (last >= start) runs in the kernel's setRanges(), which compares
    // them with the installed ones first; validateScanRanges() names the offending range, and
    // runs here wherever the kernel does not see the ranges.
    validateScanShape(input);
    const { keys, taskFrameStart, rangeStart, rangeLast } = input;
    const frames = keys.length >>> 1;
    const ranges = rangeStart.length >>> 1;
    if (ranges > MAX_WASM_RANGES) {
      validateScanRanges(rangeStart, rangeLast);
      throw new PatchsafeError("E_UNSUPPORTED", `${ranges} ranges exceed the wasm scan limit of ${MAX_WASM_RANGES}`);
    }
    if (frames === 0 || ranges === 0) {
      validateScanRanges(rangeStart, rangeLast);
      return { count: 0, task: new Uint32Array(0), frame: new Uint32Array(0), range: new Uint32Array(0) };
    }

    try {
      const hitAsk = Math.min(hitCapacity, Math.max(frames, MIN_HIT_ASK));
      ex.reserve(ranges, keyChunk, hitAsk); // may grow memory: take views after this
    } catch (e) {
      validateScanRanges(rangeStart, rangeLast);
      // memory.grow refused (a trap) or the arena limit: the previous layout stays usable
      if (e instanceof WebAssembly.RuntimeError || e instanceof WasmAbortError) {
        throw new PatchsafeError("E_UNSUPPORTED", `cannot allocate wasm scan buffers for ${ranges} ranges: ${e.message}`);
      }
      throw e;
    }
    let mem = view();
    // The same ranges as the installed ones (a fleet or a benchmark checking one patch again)
    // stay installed, sorted and memoised: setRanges() compares and keeps them. reserve()
    // drops them when it reallocates.
    mem.set(rangeStart, ex.rangeStartPtr() >>> 2);
    mem.set(rangeLast, ex.rangeLastPtr() >>> 2);
    if (ex.setRanges(ranges) === RANGES_INVALID) {
      validateScanRanges(rangeStart, rangeLast);
      throw new Error("scan kernel rejected ranges the host accepts (kernel bug)");
    }

    // Hits stay in the kernel's columns across chunks (hitOffset = hits not yet copied out);
    // they are copied out in bulk when the columns are full and once at the end.
    const frameCols: Uint32Array[] = [];
    const rangeCols: Uint32Array[] = [];
    let count = 0;
    let pending = 0;
    const keyWord = ex.keyPtr() >>> 2;
    const frameWord = ex.hitFramePtr() >>> 2;
    const rangeWord = ex.hitRangePtr() >>> 2;
    const drain = (): void => {
      mem = view();
      if (borrow) {
        scratchFrame = atLeast(scratchFrame, count + pending, count);
        scratchRange = atLeast(scratchRange, count + pending, count);
        scratchFrame.set(mem.subarray(frameWord, frameWord + pending), count);
        scratchRange.set(mem.subarray(rangeWord, rangeWord + pending), count);
      } else {
        frameCols.push(mem.slice(frameWord, frameWord + pending));
        rangeCols.push(mem.slice(rangeWord, rangeWord + pending));
      }
      count += pending;
      pending = 0;
    };
    for (let base = 0; base < frames; base += keyChunk) {
      const n = Math.min(keyChunk, frames - base);
      mem = view();
      mem.set(keys.subarray(2 * base, 2 * (base + n)), keyWord);
      let done = 0;
      for (;;) {
        const consumed = ex.scan(done, n - done, base, pending) >>> 0;
        // with empty columns any one key's hits fit (the hit limit is at least the range count)
        if (consumed === 0 && pending === 0) throw new Error("scan kernel made no progress (kernel bug)");
        pending = ex.hitCount() >>> 0;
        done += consumed;
        if (done === n) break;
        drain(); // stopped early: the columns are full
      }
    }
    if (borrow) {
      let frame: Uint32Array;
      let range: Uint32Array;
      if (count === 0) {
        // every hit is still in the kernel's columns: hand them out where they are
        mem = view();
        frame = mem.subarray(frameWord, frameWord + pending);
        range = mem.subarray(rangeWord, rangeWord + pending);
        count = pending;
      } else {
        if (pending > 0) drain();
        frame = scratchFrame.subarray(0, count);
        range = scratchRange.subarray(0, count);
      }
      // The task column on first read: scanCapture (one task) never reads it, and filling it
      // cost ~0.05 ns/frame (275k hits per 1M frames).
      let task: Uint32Array | null = null;
      const n = count;
      return {
        count,
        frame,
        range,
        get task(): Uint32Array {
          if (task === null) {
            scratchTask = atLeast(scratchTask, n, 0);
            task = tasksInto(taskFrameStart, frame, scratchTask, false).subarray(0, n);
          }
          return task;
        },
      };
    }
    if (pending > 0 || frameCols.length === 0) drain();
    const frame = frameCols.length === 1 ? frameCols[0]! : concat(frameCols, count);
    const range = rangeCols.length === 1 ? rangeCols[0]! : concat(rangeCols, count);
    return { count, task: tasksOfFrames(taskFrameStart, frame), frame, range };
  }

  /** Copies keys chunk by chunk as scan() does and calls `visit` per chunk. */
  function chunked(keys: Uint32Array, visit: (n: number) => number): number {
    const frames = keys.length >>> 1;
    if (frames === 0) return 0;
    ex.reserve(1, keyChunk, 1); // no hits: never grows the hit columns
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
    scan: (input: ScanInput): ScanHits => run(input, false),
    scanView: (input: ScanInput): ScanHitsView => run(input, true),
    interopOnly: (keys) => chunked(keys, (n) => ex.hitCount() + n),
    memoryFloor: (keys) => chunked(keys, (n) => ex.sumKeys(0, n)),
  };
}
