/**
 * Node-only loading of the wasm modules (the scan kernel, the /proc tokenizer, the task kernel):
 * read build/*.wasm next to the package, compile once per build (cached for the process),
 * instantiate fresh per call.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { PatchsafeError } from "../errors.js";
import { compileScanModule, createWasmScanner, scanWasmUrl, type WasmScannerOptions } from "../scan/wasm.js";
import type { Scanner } from "../scan/types.js";
import { compileTokenizerModule, ProcTokenizer } from "../ingest/procTokenizer.js";
import { compileTaskKernelModule, createWasmTaskKernel, type TaskKernel } from "../decide/taskKernel.js";
import { type ColumnKernel, compileColumnKernelModule, createColumnKernel } from "../snapshot/columnKernel.js";

let detachSettled = false;
/**
 * Detaches one throwaway buffer, once per isolate, when a kernel is first loaded. V8 compiles
 * typed-array code without detach checks until the first ArrayBuffer is ever detached, and then
 * throws all of that code away (its "ArrayBufferDetaching" protector); a wasm memory that grows
 * detaches its old buffer. Without this, that happened at the first memory.grow, mid-check: in a
 * fleet worker or a snapshot check, after the decoder's loops had been compiled, so each worker
 * compiled them twice. Detaching first costs the later code nothing measurable.
 */
function settleDetachProtector(): void {
  if (detachSettled) return;
  detachSettled = true;
  const m = new WebAssembly.Memory({ initial: 0 });
  void m.buffer;
  m.grow(0);
}

type Build = "release" | "debug";
const compiled = new Map<string, WebAssembly.Module>();

/**
 * One of the package's wasm modules (`what` names it in errors), read from `url` and compiled
 * synchronously on first use, then kept for the process.
 */
function loadModuleSync(what: string, build: Build, url: () => URL, compile: (bytes: Uint8Array<ArrayBuffer>) => WebAssembly.Module): WebAssembly.Module {
  const key = `${what} ${build}`;
  let module = compiled.get(key);
  if (module === undefined) {
    settleDetachProtector();
    const at = url();
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = readFileSync(at);
    } catch (e) {
      throw new PatchsafeError("E_IO", `cannot read ${what} ${fileURLToPath(at)}: ${(e as Error).message} (run npm run asbuild)`);
    }
    module = compile(bytes);
    compiled.set(key, module);
  }
  return module;
}

/** The compiled scan kernel (build/scan*.wasm). */
export function loadScanModuleSync(build: Build = "release"): WebAssembly.Module {
  return loadModuleSync("scan kernel", build, () => scanWasmUrl(build), compileScanModule);
}

/**
 * A wasm Scanner for the CLI and Node API; each call gets its own instance and memory. It carries
 * a task kernel (assembly/tasks.ts, the same build) for the decision, made on first use.
 */
export function loadWasmScannerSync(build: "release" | "debug" = "release", options?: WasmScannerOptions): Scanner {
  const scanner = createWasmScanner(loadScanModuleSync(build), build === "release" ? "wasm-release" : "wasm-debug", options);
  let kernel: TaskKernel | null | undefined;
  scanner.taskKernel = () => (kernel ??= createWasmTaskKernel(loadTaskKernelModuleSync(build)));
  return scanner;
}

/** The compiled task kernel (build/tasks*.wasm). */
export function loadTaskKernelModuleSync(build: Build = "release"): WebAssembly.Module {
  return loadModuleSync("task kernel", build, () => new URL(build === "release" ? "../../build/tasks.wasm" : "../../build/tasks.debug.wasm", import.meta.url), compileTaskKernelModule);
}

/** The compiled snapshot column kernels (build/columns*.wasm). */
export function loadColumnKernelModuleSync(build: Build = "release"): WebAssembly.Module {
  return loadModuleSync("column kernel", build, () => new URL(build === "release" ? "../../build/columns.wasm" : "../../build/columns.debug.wasm", import.meta.url), compileColumnKernelModule);
}

const columnKernels = new Map<Build, ColumnKernel>();

/**
 * The snapshot decoder's column kernel of this thread (one instance per build, reused by every
 * decode: its memory is then already mapped); null when the module cannot be loaded (the
 * decoder's TypeScript kernels then do the work).
 */
export function columnKernelSync(build: Build = "release"): ColumnKernel | null {
  let k = columnKernels.get(build);
  if (k === undefined) {
    try {
      k = createColumnKernel(loadColumnKernelModuleSync(build));
    } catch {
      return null;
    }
    columnKernels.set(build, k);
  }
  return k;
}

/** The compiled /proc text tokenizer (build/tokenize*.wasm). */
export function loadTokenizerModuleSync(build: Build = "release"): WebAssembly.Module {
  return loadModuleSync("tokenizer", build, () => new URL(build === "release" ? "../../build/tokenize.wasm" : "../../build/tokenize.debug.wasm", import.meta.url), compileTokenizerModule);
}

/** A fresh tokenizer instance (one per input stream). */
export function loadProcTokenizer(build: "release" | "debug" = "release", file = "<input>"): ProcTokenizer {
  return new ProcTokenizer(loadTokenizerModuleSync(build), { name: file });
}

/** The warm-up's size: enough to use up the tier-up budget (measured: 64 KB and 1 MB did no better). */
const WARM_UP_BYTES = 48 << 10;

/**
 * Starts V8's optimizing compile of the tokenizer's hot function ahead of a large /proc dump: a
 * throwaway instance of the same module tokenizes a small synthetic dump (48 KB), which
 * uses up the function's tier-up budget, and V8 compiles it on a background thread. Work done on
 * this thread meanwhile (the CLI reads the symbol file) hides that compile; the dump is then
 * tokenized by optimized code from its first byte instead of by the baseline code for its first
 * ~10 MB (~0.9 against ~0.5 ms per MB here). Changes nothing but timing; failures are ignored.
 */
export function warmProcTokenizer(build: "release" | "debug" = "release"): void {
  try {
    const tok = new ProcTokenizer(loadTokenizerModuleSync(build), { inputCapacity: 1 << 16, name: "<warm-up>" });
    // A few tasks of a few stacks, repeated: the tokenizer's common paths, built with one copy per block.
    const block = new TextEncoder().encode(
      Array.from({ length: 12 }, (_, t) => Array.from({ length: 1 + (t % 4) }, (_, f) => `/proc/${t + 1}/task/${t + 2}/stack:[<0>] warm_up_${(t + f) % 5}+0x${f + 1}/0x100\n`).join("")).join(""),
    );
    const bytes = new Uint8Array(block.length * Math.ceil(WARM_UP_BYTES / block.length));
    for (let at = 0; at < bytes.length; at += block.length) bytes.set(block, at);
    const none = (): void => {};
    tok.push(bytes, { run: none, other: none });
    tok.finish({ run: none, other: none });
  } catch {
    // only a warm-up
  }
}
