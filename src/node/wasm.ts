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

/** A wasm Scanner for the CLI and Node API; each call gets its own instance and memory. */
export function loadWasmScannerSync(build: "release" | "debug" = "release", options?: WasmScannerOptions): Scanner {
  return createWasmScanner(loadScanModuleSync(build), build === "release" ? "wasm-release" : "wasm-debug", options);
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
