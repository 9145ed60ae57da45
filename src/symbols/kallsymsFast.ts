/**
 * /proc/kallsyms read by the wasm module (assembly/tokenize.ts kallsymsParse): addresses, types,
 * name offsets and module ids in one pass over the bytes, no string per symbol (names stay in
 * the file's bytes as a NameBlob, what finishTable indexes). parseSymbolTable stays the
 * definition: any line the wasm parse does not accept, a name byte above 0x7f, or a table the
 * TypeScript parser would refuse is handed to it, so errors and odd inputs read the same.
 * Browser-clean (the caller supplies the compiled module).
 */
import { VMLINUX } from "../model.js";
import { finishTable, type LoadSymbolsOptions, type NameBlob, parseSymbolTable, type SymbolTable } from "./table.js";

interface KallsymsExports {
  memory: WebAssembly.Memory;
  init(inputCapacity: number): void;
  inputPtr(): number;
  kallsymsParse(len: number): number;
  ksAddrLoPtr(): number;
  ksAddrHiPtr(): number;
  ksTypePtr(): number;
  ksNameStartPtr(): number;
  ksNameLenPtr(): number;
  ksModulePtr(): number;
  ksPfxPtr(): number;
  ksAnyAddress(): number;
  ksModuleCount(): number;
  ksModuleStartPtr(): number;
  ksModuleLenPtr(): number;
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return s;
}

/** How many tables each path produced (tests check that the fast path is the one taken). */
export const kallsymsPaths = { wasm: 0, typescript: 0 };

/** The table of `bytes` (a /proc/kallsyms text), as parseSymbolTable(latin1 text) gives it. */
export function parseKallsymsBytes(module: WebAssembly.Module, bytes: Uint8Array, opts: LoadSymbolsOptions = {}): SymbolTable {
  const slow = (): SymbolTable => {
    kallsymsPaths.typescript++;
    return parseSymbolTable(latin1(bytes), opts);
  };
  if ((opts.source ?? "kallsyms") !== "kallsyms") return slow();
  const x = new WebAssembly.Instance(module, { env: { abort: () => {} } }).exports as unknown as KallsymsExports;
  x.init(bytes.length + 1);
  new Uint8Array(x.memory.buffer, x.inputPtr(), bytes.length).set(bytes);
  // Everything per symbol happens in wasm (this code runs once per process: its loops would
  // run interpreted); here only column copies.
  const n = x.kallsymsParse(bytes.length);
  if (n <= 0 || x.ksAnyAddress() === 0) return slow();
  const mem = x.memory.buffer;
  const addrLo = new Uint32Array(mem, x.ksAddrLoPtr(), n).slice();
  const addrHi = new Uint32Array(mem, x.ksAddrHiPtr(), n).slice();
  const type = new Uint8Array(mem, x.ksTypePtr(), n).slice();
  const start = new Uint32Array(mem, x.ksNameStartPtr(), n).slice();
  const len = new Uint32Array(mem, x.ksNameLenPtr(), n).slice();
  const pfx = new Uint8Array(mem, x.ksPfxPtr(), n).slice();
  let object = new Uint32Array(mem, x.ksModulePtr(), n).slice();
  // Module ids in first-appearance order, as parseSymbolTable numbers them; a `[vmlinux]`
  // column is vmlinux itself (then the ids are renumbered).
  const objects = [VMLINUX];
  const m = x.ksModuleCount();
  const modStart = new Uint32Array(mem, x.ksModuleStartPtr(), m);
  const modLen = new Uint32Array(mem, x.ksModuleLenPtr(), m);
  const modNames: string[] = [];
  for (let k = 0; k < m; k++) modNames.push(latin1(bytes.subarray(modStart[k], modStart[k] + modLen[k])));
  if (modNames.includes(VMLINUX)) {
    const ids = new Map<string, number>([[VMLINUX, 0]]);
    const remap = new Uint32Array(m + 1);
    modNames.forEach((name, k) => {
      let id = ids.get(name);
      if (id === undefined) {
        id = objects.length;
        objects.push(name);
        ids.set(name, id);
      }
      remap[k + 1] = id;
    });
    object = object.map((w) => remap[w]);
  } else objects.push(...modNames);
  const names: NameBlob = { chars: bytes, start, len, pfx };
  kallsymsPaths.wasm++;
  return finishTable({ source: "kallsyms", names, object, objects, type, addrLo, addrHi });
}
