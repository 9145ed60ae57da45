/**
 * Node-only loading of the scan kernel: read build/scan*.wasm next to the package, compile once
 * per build (cached for the process), instantiate a fresh Scanner per call.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { PatchsafeError } from "../errors.js";
import { compileScanModule, createWasmScanner, scanWasmUrl, type WasmScannerOptions } from "../scan/wasm.js";
import type { Scanner } from "../scan/types.js";
import { compileTokenizerModule, ProcTokenizer } from "../ingest/procTokenizer.js";
import { compileTaskKernelModule, createWasmTaskKernel, type TaskKernel } from "../decide/taskKernel.js";

const modules = new Map<"release" | "debug", WebAssembly.Module>();

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

/** The compiled kernel for `build`, read and compiled synchronously on first use. */
export function loadScanModuleSync(build: "release" | "debug" = "release"): WebAssembly.Module {
  let module = modules.get(build);
  if (module === undefined) {
    settleDetachProtector();
    const url = scanWasmUrl(build);
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = readFileSync(url);
    } catch (e) {
      throw new PatchsafeError("E_IO", `cannot read scan kernel ${fileURLToPath(url)}: ${(e as Error).message} (run npm run asbuild)`);
    }
    module = compileScanModule(bytes);
    modules.set(build, module);
  }
  return module;
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

const taskKernelModules = new Map<"release" | "debug", WebAssembly.Module>();

/** The compiled task kernel (build/tasks*.wasm), read and compiled on first use. */
export function loadTaskKernelModuleSync(build: "release" | "debug" = "release"): WebAssembly.Module {
  let module = taskKernelModules.get(build);
  if (module === undefined) {
    settleDetachProtector();
    const url = new URL(build === "release" ? "../../build/tasks.wasm" : "../../build/tasks.debug.wasm", import.meta.url);
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = readFileSync(url);
    } catch (e) {
      throw new PatchsafeError("E_IO", `cannot read task kernel ${fileURLToPath(url)}: ${(e as Error).message} (run npm run asbuild)`);
    }
    module = compileTaskKernelModule(bytes);
    taskKernelModules.set(build, module);
  }
  return module;
}

const tokenizerModules = new Map<"release" | "debug", WebAssembly.Module>();

/** The compiled /proc text tokenizer (build/tokenize*.wasm), read and compiled on first use. */
export function loadTokenizerModuleSync(build: "release" | "debug" = "release"): WebAssembly.Module {
  let module = tokenizerModules.get(build);
  if (module === undefined) {
    settleDetachProtector();
    const url = new URL(build === "release" ? "../../build/tokenize.wasm" : "../../build/tokenize.debug.wasm", import.meta.url);
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = readFileSync(url);
    } catch (e) {
      throw new PatchsafeError("E_IO", `cannot read tokenizer ${fileURLToPath(url)}: ${(e as Error).message} (run npm run asbuild)`);
    }
    module = compileTokenizerModule(bytes);
    tokenizerModules.set(build, module);
  }
  return module;
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
