/**
 * The kernel symbol table: /proc/kallsyms or System.map, with the facts the kernel's own lookups
 * use. Mirrors kernel/kallsyms.c (sizes = distance to the next higher symbol address in the same
 * object) and kernel/livepatch/core.c `klp_find_object_symbol` (sympos = n-th occurrence of a
 * name within an object, in kallsyms order, every symbol type counting).
 */
import { PatchsafeError } from "../errors.js";
import { VMLINUX } from "../model.js";

export type SymbolSource = "kallsyms" | "system.map";

/** Address bounds of the special text sections, half-open. */
export interface SectionBounds {
  sched: [bigint, bigint] | null;
  lock: [bigint, bigint] | null;
  entry: [bigint, bigint] | null;
  noinstr: [bigint, bigint] | null;
  cpuidle: [bigint, bigint] | null;
  init: [bigint, bigint] | null;
}

export interface SymbolTable {
  source: SymbolSource;
  /** What the table covers: `full` (all kallsyms), `subset` (a snapshot's subset), `names-only` (--redact). */
  coverage: "full" | "subset" | "names-only";
  hasAddresses: boolean;
  /** Symbol rows in input order (kallsyms order). */
  count: number;
  names: string[];
  /** Index into `objects` per symbol. */
  object: Uint32Array;
  objects: string[];
  /** nm type letter per symbol. */
  type: Uint8Array;
  addrLo: Uint32Array;
  addrHi: Uint32Array;
  /** Size in bytes: distance to the next higher address in the same object; 0 when unknown. */
  size: Float64Array;
  /** 1-based occurrence of the name within its object in table order (livepatch sympos). */
  sympos: Uint32Array;
  /** Number of symbols with the same (object, name). */
  dupCount: Uint32Array;
  /** `__pfx_`/`__cfi_` padding symbols: never functions. */
  padding: Uint8Array;
  /** name -> symbol rows, in table order (all objects). */
  byName: Map<string, number[]>;
  sections: SectionBounds;
  /** `_text` address (KASLR reconciliation happens in the formats issue). */
  text: bigint | null;
  warnings: string[];
}

export function symbolAddress(t: SymbolTable, i: number): bigint {
  return (BigInt(t.addrHi[i]) << 32n) | BigInt(t.addrLo[i]);
}

export function isPaddingName(name: string): boolean {
  return name.startsWith("__pfx_") || name.startsWith("__cfi_");
}

/** Symbols that scripts/kallsyms.c never puts into kallsyms; System.map still lists them. */
function droppedFromKallsyms(name: string, type: string): boolean {
  if (type === "U" || type === "N" || type === "n" || type === "a" || type === "A") return true;
  if (name.startsWith("$") || name.startsWith(".L") || name.startsWith("__crc_")) return true;
  if (name.startsWith("__kstrtab_") || name.startsWith("__kstrtabns_") || name.startsWith("__ksymtab_")) return true;
  return false;
}

function parseHex(s: string, start: number, end: number): { lo: number; hi: number } | null {
  // Hex digits only, at most 16.
  if (end - start < 1 || end - start > 16) return null;
  let lo = 0;
  let hi = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    let d: number;
    if (c >= 48 && c <= 57) d = c - 48;
    else if (c >= 97 && c <= 102) d = c - 87;
    else if (c >= 65 && c <= 70) d = c - 55;
    else return null;
    hi = ((hi << 4) | (lo >>> 28)) >>> 0;
    lo = ((lo << 4) | d) >>> 0;
  }
  return { lo, hi };
}

function cmpAddr(t: { addrLo: Uint32Array; addrHi: Uint32Array }, a: number, b: number): number {
  const ha = t.addrHi[a];
  const hb = t.addrHi[b];
  if (ha !== hb) return ha < hb ? -1 : 1;
  const la = t.addrLo[a];
  const lb = t.addrLo[b];
  return la < lb ? -1 : la > lb ? 1 : 0;
}

function addrDiff(t: { addrLo: Uint32Array; addrHi: Uint32Array }, hiIdx: number, loIdx: number): number {
  return (t.addrHi[hiIdx] - t.addrHi[loIdx]) * 0x1_0000_0000 + (t.addrLo[hiIdx] - t.addrLo[loIdx]);
}

export interface LoadSymbolsOptions {
  /** File name for error messages. */
  file?: string;
  source?: SymbolSource;
}

/**
 * Parses /proc/kallsyms (`ADDR TYPE NAME[\t[module]]`) or System.map (`ADDR TYPE NAME`).
 * Throws E_SYMBOLS for a table that cannot be used (empty, all-zero addresses).
 */
export function parseSymbolTable(text: string, opts: LoadSymbolsOptions = {}): SymbolTable {
  const file = opts.file ?? "<symbols>";
  const source: SymbolSource = opts.source ?? "kallsyms";
  const names: string[] = [];
  const objectIds = new Map<string, number>([[VMLINUX, 0]]);
  const objects: string[] = [VMLINUX];
  let cap = 1 << 16;
  let object = new Uint32Array(cap);
  let type = new Uint8Array(cap);
  let addrLo = new Uint32Array(cap);
  let addrHi = new Uint32Array(cap);
  let n = 0;
  let nonZero = false;
  let dropped = 0;
  let lineNo = 0;
  let pos = 0;
  const len = text.length;
  while (pos < len) {
    let eol = text.indexOf("\n", pos);
    if (eol < 0) eol = len;
    lineNo++;
    let end = eol;
    if (end > pos && text.charCodeAt(end - 1) === 13) end--;
    const lineStart = pos;
    pos = eol + 1;
    if (end === lineStart) continue;
    let sp1 = lineStart;
    while (sp1 < end && text.charCodeAt(sp1) !== 32) sp1++;
    if (sp1 >= end) throw new PatchsafeError("E_SYMBOLS", `not a symbol table line (expected "ADDRESS TYPE NAME"): ${JSON.stringify(text.slice(lineStart, Math.min(end, lineStart + 80)))}`, { file, line: lineNo });
    const addr = parseHex(text, lineStart, sp1);
    const typeCh = text.charCodeAt(sp1 + 1);
    if (addr === null || text.charCodeAt(sp1 + 2) !== 32 || Number.isNaN(typeCh)) {
      throw new PatchsafeError("E_SYMBOLS", `not a symbol table line (expected "ADDRESS TYPE NAME"): ${JSON.stringify(text.slice(lineStart, Math.min(end, lineStart + 80)))}`, { file, line: lineNo });
    }
    const nameStart = sp1 + 3;
    let nameEnd = end;
    let mod = VMLINUX;
    // Look for the module column's TAB within this line only (indexOf would run to the next
    // module line, which makes the whole parse quadratic on a vmlinux-only table).
    let tab = -1;
    for (let k = nameStart; k < end; k++) {
      if (text.charCodeAt(k) === 9) {
        tab = k;
        break;
      }
    }
    if (tab >= 0) {
      nameEnd = tab;
      const open = text.indexOf("[", tab);
      const close = text.indexOf("]", tab);
      if (open < 0 || close < 0 || close > end || open > close) {
        throw new PatchsafeError("E_SYMBOLS", `malformed module column: ${JSON.stringify(text.slice(lineStart, Math.min(end, lineStart + 80)))}`, { file, line: lineNo });
      }
      mod = text.slice(open + 1, close);
    }
    while (nameEnd > nameStart && text.charCodeAt(nameEnd - 1) === 32) nameEnd--;
    if (nameEnd <= nameStart) throw new PatchsafeError("E_SYMBOLS", "symbol line without a name", { file, line: lineNo });
    const name = text.slice(nameStart, nameEnd);
    const typeStr = String.fromCharCode(typeCh);
    if (source === "system.map" && droppedFromKallsyms(name, typeStr)) {
      dropped++;
      continue;
    }
    if (n === cap) {
      cap *= 2;
      const o2 = new Uint32Array(cap); o2.set(object); object = o2;
      const t2 = new Uint8Array(cap); t2.set(type); type = t2;
      const l2 = new Uint32Array(cap); l2.set(addrLo); addrLo = l2;
      const h2 = new Uint32Array(cap); h2.set(addrHi); addrHi = h2;
    }
    let oid = objectIds.get(mod);
    if (oid === undefined) {
      oid = objects.length;
      objects.push(mod);
      objectIds.set(mod, oid);
    }
    object[n] = oid;
    type[n] = typeCh;
    addrLo[n] = addr.lo;
    addrHi[n] = addr.hi;
    if (addr.lo !== 0 || addr.hi !== 0) nonZero = true;
    names.push(name);
    n++;
  }
  if (n === 0) throw new PatchsafeError("E_SYMBOLS", "the symbol table is empty", { file });
  if (!nonZero) {
    throw new PatchsafeError(
      "E_SYMBOLS",
      "every address in the symbol table is zero (kallsyms read without privilege or with kptr_restrict): unusable; read /proc/kallsyms as root",
      { file },
    );
  }
  object = object.subarray(0, n);
  type = type.subarray(0, n);
  addrLo = addrLo.subarray(0, n);
  addrHi = addrHi.subarray(0, n);
  const t = finishTable({ source, names, object, objects, type, addrLo, addrHi });
  if (source === "system.map") {
    t.warnings.push(
      `System.map: ${dropped} symbols that kallsyms never lists were dropped; sympos counted from a System.map is less certain than from the live /proc/kallsyms`,
    );
  }
  return t;
}

/** Computes sizes, sympos, padding flags, the name index and section bounds. */
export function finishTable(base: {
  source: SymbolSource;
  names: string[];
  object: Uint32Array;
  objects: string[];
  type: Uint8Array;
  addrLo: Uint32Array;
  addrHi: Uint32Array;
}): SymbolTable {
  const n = base.names.length;
  const size = new Float64Array(n);
  const sympos = new Uint32Array(n);
  const dupCount = new Uint32Array(n);
  const padding = new Uint8Array(n);
  const byName = new Map<string, number[]>();

  // sympos: occurrence order per (object, name) in table order (the module's ELF order for
  // modules, which /proc/kallsyms preserves; not address order).
  // byName lists rows in table order, so a name's rows in one object are already in sympos order.
  for (let i = 0; i < n; i++) {
    const name = base.names[i];
    if (name.charCodeAt(0) === 95 && isPaddingName(name)) padding[i] = 1;
    const list = byName.get(name);
    if (list === undefined) byName.set(name, [i]);
    else list.push(i);
  }
  for (const rows of byName.values()) {
    if (rows.length === 1) {
      sympos[rows[0]] = 1;
      dupCount[rows[0]] = 1;
      continue;
    }
    const perObject = new Map<number, number[]>();
    for (const r of rows) {
      const o = base.object[r];
      const same = perObject.get(o);
      if (same === undefined) perObject.set(o, [r]);
      else same.push(r);
    }
    for (const same of perObject.values()) {
      same.forEach((r, k) => {
        sympos[r] = k + 1;
        dupCount[r] = same.length;
      });
    }
  }

  // Sizes: per object, sort by address; distance to the next strictly higher address.
  const perObject: number[][] = base.objects.map(() => []);
  for (let i = 0; i < n; i++) perObject[base.object[i]].push(i);
  for (const rows of perObject) {
    rows.sort((a, b) => cmpAddr(base, a, b));
    let j = 0;
    while (j < rows.length) {
      let k = j + 1;
      while (k < rows.length && cmpAddr(base, rows[k], rows[j]) === 0) k++;
      const s = k < rows.length ? addrDiff(base, rows[k], rows[j]) : 0;
      for (let m = j; m < k; m++) size[rows[m]] = s;
      j = k;
    }
  }

  const find = (name: string): bigint | null => {
    const rows = byName.get(name);
    if (rows === undefined) return null;
    for (const i of rows) if (base.object[i] === 0) return (BigInt(base.addrHi[i]) << 32n) | BigInt(base.addrLo[i]);
    return null;
  };
  const bounds = (a: string, b: string): [bigint, bigint] | null => {
    const lo = find(a);
    const hi = find(b);
    return lo !== null && hi !== null && hi > lo ? [lo, hi] : null;
  };
  const sections: SectionBounds = {
    sched: bounds("__sched_text_start", "__sched_text_end"),
    lock: bounds("__lock_text_start", "__lock_text_end"),
    entry: bounds("__entry_text_start", "__entry_text_end"),
    noinstr: bounds("__noinstr_text_start", "__noinstr_text_end"),
    cpuidle: bounds("__cpuidle_text_start", "__cpuidle_text_end"),
    init: bounds("_sinittext", "_einittext"),
  };
  let hasAddresses = false;
  for (let i = 0; i < n && !hasAddresses; i++) if (base.addrLo[i] !== 0 || base.addrHi[i] !== 0) hasAddresses = true;
  return {
    source: base.source,
    coverage: "full",
    hasAddresses,
    count: n,
    names: base.names,
    object: base.object,
    objects: base.objects,
    type: base.type,
    addrLo: base.addrLo,
    addrHi: base.addrHi,
    size,
    sympos,
    dupCount,
    padding,
    byName,
    sections,
    text: find("_text") ?? find("_stext"),
    warnings: [],
  };
}

export type LookupResult =
  | { ok: true; index: number }
  | { ok: false; code: "E_SYMBOL_NOT_FOUND" | "E_SYMBOL_AMBIGUOUS" | "E_SYMPOS_NOT_FOUND"; message: string };

/**
 * klp_find_object_symbol: the sympos-th symbol named `name` in `object` (0 = must be unique).
 * Messages are the kernel's.
 */
export function findObjectSymbol(t: SymbolTable, object: string, name: string, sympos: number): LookupResult {
  const rows = (t.byName.get(name) ?? []).filter((i) => t.objects[t.object[i]] === object);
  if (rows.length === 0) return { ok: false, code: "E_SYMBOL_NOT_FOUND", message: `symbol '${name}' not found in symbol table` };
  if (sympos === 0) {
    if (rows.length > 1) {
      return {
        ok: false,
        code: "E_SYMBOL_AMBIGUOUS",
        message: `unresolvable ambiguity for symbol '${name}' in object '${object}' (${rows.length} symbols; give a sympos 1..${rows.length})`,
      };
    }
    return { ok: true, index: rows[0] };
  }
  if (sympos > rows.length) {
    return {
      ok: false,
      code: "E_SYMPOS_NOT_FOUND",
      message: `symbol position ${sympos} for symbol '${name}' in object '${object}' not found (${rows.length} found)`,
    };
  }
  return { ok: true, index: rows[sympos - 1] };
}
