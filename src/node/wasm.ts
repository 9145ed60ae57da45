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

/** The compiled kernel for `build`, read and compiled synchronously on first use. */
export function loadScanModuleSync(build: "release" | "debug" = "release"): WebAssembly.Module {
  let module = modules.get(build);
  if (module === undefined) {
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
