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

/**
 * Names of a table kept as one block of UTF-16 code units instead of one string per row (a
 * decoded snapshot): row i's name is `__pfx_` repeated pfx[i] times, then the code units
 * chars[start[i], start[i] + len[i]). Rows of x86 function padding (`__pfx_NAME` followed by NAME)
 * point at their function's code units, so nothing is stored twice.
 */
export interface NameBlob {
  /** Code units: bytes when every name is ASCII (the usual case), else UTF-16 code units. */
  chars: Uint8Array | Uint16Array;
  start: Uint32Array;
  len: Uint32Array;
  /** How many `__pfx_` prefixes come before the stored code units (0 for most rows). */
  pfx: Uint8Array;
  /**
   * The same scan as BlobNames.scan, in wasm, where the blob's arrays are still in a column
   * kernel's memory (src/snapshot/columnKernel.ts; not enumerable); null when it cannot answer.
   */
  scanRows?: (code: Uint16Array[], depth: Int32Array) => (number[] | undefined)[] | null;
}

const PFX = "__pfx_";
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over UTF-16 code units of s[from, s.length), continuing from h. */
function hashChars(s: string, from: number, h: number): number {
  for (let i = from; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h;
}

function mix(h: number, depth: number): number {
  h = Math.imul(h ^ depth, FNV_PRIME);
  return (h ^ (h >>> 15)) >>> 0;
}

/**
 * Leading `__pfx_` prefixes of s that are followed by more characters (the same rule the blob
 * builder folds stored names by: "__pfx_" alone is a name, not a prefix).
 */
function pfxDepth(s: string): number {
  let d = 0;
  while (s.length - d * PFX.length > PFX.length && s.startsWith(PFX, d * PFX.length)) d++;
  return d;
}

/** Row names as the index sees them: hash, equality with a query, the string itself. */
interface NameSource {
  readonly count: number;
  /** Hash of every row's name (the same function as hashQuery). */
  hashes(): Uint32Array;
  hashQuery(s: string): number;
  equals(i: number, s: string): boolean;
  /** Whether row i's name contains s (an ASCII string). */
  contains(i: number, s: string): boolean;
  name(i: number): string;
  /**
   * Rows of each query name, in table order (undefined: none), found by one pass over the rows:
   * for a few lookups on a table whose index is not built yet (hashing every name costs ~10-20
   * passes).
   */
  scan(queries: readonly string[]): (number[] | undefined)[];
}

/** Query indices by name length (the first filter of a scan: one array read per row). */
function queriesByLength(lengths: number[]): (number[] | undefined)[] {
  const byLen: (number[] | undefined)[] = [];
  lengths.forEach((l, q) => {
    while (byLen.length <= l) byLen.push(undefined);
    (byLen[l] ??= []).push(q);
  });
  return byLen;
}

class ArrayNames implements NameSource {
  readonly count: number;
  constructor(readonly names: string[]) {
    this.count = names.length;
  }
  hashes(): Uint32Array {
    const h = new Uint32Array(this.count);
    for (let i = 0; i < this.count; i++) h[i] = this.hashQuery(this.names[i]);
    return h;
  }
  hashQuery(s: string): number {
    return mix(hashChars(s, 0, FNV_OFFSET), 0);
  }
  equals(i: number, s: string): boolean {
    return this.names[i] === s;
  }
  contains(i: number, s: string): boolean {
    return this.names[i].includes(s);
  }
  name(i: number): string {
    return this.names[i];
  }
  scan(queries: readonly string[]): (number[] | undefined)[] {
    const out: (number[] | undefined)[] = queries.map(() => undefined);
    const byLen = queriesByLength(queries.map((q) => q.length));
    const names = this.names;
    for (let i = 0; i < names.length; i++) {
      const s = names[i];
      const qs = s.length < byLen.length ? byLen[s.length] : undefined;
      if (qs === undefined) continue;
      for (const q of qs) if (queries[q] === s) (out[q] ??= []).push(i);
    }
    return out;
  }
}

/**
 * Blob names hash as (stored code units, number of `__pfx_` prefixes): a padding row costs no
 * hashing of its own, and a query is split the same way. Stored code units never start with
 * `__pfx_` followed by more (the blob builder folds such prefixes into pfx, like pfxDepth).
 */
class BlobNames implements NameSource {
  readonly count: number;
  private rowHash: Uint32Array | null = null;
  constructor(readonly blob: NameBlob) {
    this.count = blob.start.length;
  }
  private hashAll(): Uint32Array {
    const { chars, start, len, pfx } = this.blob;
    const n = this.count;
    const h = new Uint32Array(n);
    // Padding rows share their function's code units: hash each distinct start once.
    let lastStart = -1;
    let lastLen = -1;
    let lastHash = 0;
    for (let i = 0; i < n; i++) {
      const a = start[i];
      const l = len[i];
      if (a !== lastStart || l !== lastLen) {
        let x = FNV_OFFSET;
        for (let k = a, e = a + l; k < e; k++) x = Math.imul(x ^ chars[k], FNV_PRIME);
        lastStart = a;
        lastLen = l;
        lastHash = x;
      }
      h[i] = mix(lastHash, pfx[i]);
    }
    return h;
  }
  hashes(): Uint32Array {
    return (this.rowHash ??= this.hashAll());
  }
  hashQuery(s: string): number {
    const d = pfxDepth(s);
    return mix(hashChars(s, d * PFX.length, FNV_OFFSET), d);
  }
  equals(i: number, s: string): boolean {
    const { chars, start, len, pfx } = this.blob;
    const d = pfx[i];
    const off = d * PFX.length;
    const l = len[i];
    if (s.length !== off + l) return false;
    for (let k = 0; k < d; k++) if (!s.startsWith(PFX, k * PFX.length)) return false;
    const a = start[i];
    for (let k = 0; k < l; k++) if (s.charCodeAt(off + k) !== chars[a + k]) return false;
    return true;
  }
  contains(i: number, s: string): boolean {
    const { chars, start, len } = this.blob;
    // The `__pfx_` prefixes hold no `.`: the stored code units are where s can be.
    const a = start[i];
    const last = a + len[i] - s.length;
    const c0 = s.charCodeAt(0);
    for (let k = a; k <= last; k++) {
      if (chars[k] !== c0) continue;
      let j = 1;
      while (j < s.length && chars[k + j] === s.charCodeAt(j)) j++;
      if (j === s.length) return true;
    }
    return false;
  }
  name(i: number): string {
    const { chars, start, len, pfx } = this.blob;
    return PFX.repeat(pfx[i]) + charsToString(chars, start[i], start[i] + len[i]);
  }
  scan(queries: readonly string[]): (number[] | undefined)[] {
    const { chars, start, len, pfx } = this.blob;
    const Q = queries.length;
    const out: (number[] | undefined)[] = queries.map(() => undefined);
    // Each query as the blob stores it (pfxDepth: the canonical split the blob builder makes):
    // `__pfx_` depth and the code units after it. A row matches on length, depth and code units.
    const depth = new Int32Array(Q);
    const code = queries.map((q, k) => {
      const d = pfxDepth(q);
      depth[k] = d;
      const rest = new Uint16Array(q.length - d * PFX.length);
      for (let j = 0; j < rest.length; j++) rest[j] = q.charCodeAt(d * PFX.length + j);
      return rest;
    });
    const fast = this.blob.scanRows?.(code, depth) ?? null;
    if (fast !== null) return fast;
    // Queries by (length, low byte of the last code unit): one typed-array read per row finds
    // the few queries worth comparing (kernel names share prefixes far more than last bytes).
    let maxLen = 1;
    for (const c of code) maxLen = Math.max(maxLen, c.length + 1);
    const head = new Int32Array(maxLen << 8).fill(-1);
    const nextQ = new Int32Array(Q).fill(-1);
    for (let q = Q - 1; q >= 0; q--) {
      const c = code[q];
      if (c.length === 0) continue; // no row has an empty name
      const key = (c.length << 8) | (c[c.length - 1] & 0xff);
      nextQ[q] = head[key];
      head[key] = q;
    }
    for (let i = 0, n = this.count; i < n; i++) {
      const l = len[i];
      if (l >= maxLen) continue;
      const a = start[i];
      for (let q = head[(l << 8) | (chars[a + l - 1] & 0xff)]; q >= 0; q = nextQ[q]) {
        if (pfx[i] !== depth[q]) continue;
        const r = code[q];
        let k = 0;
        while (k < l && r[k] === chars[a + k]) k++;
        if (k === l) (out[q] ??= []).push(i);
      }
    }
    return out;
  }
}

function charsToString(chars: Uint8Array | Uint16Array, a: number, b: number): string {
  if (b - a <= 4096) return String.fromCharCode.apply(null, chars.subarray(a, b) as unknown as number[]);
  const parts: string[] = [];
  for (let k = a; k < b; k += 4096) parts.push(String.fromCharCode.apply(null, chars.subarray(k, Math.min(b, k + 4096)) as unknown as number[]));
  return parts.join("");
}

/**
 * Builds a NameBlob from front-coded names (the snapshot's encoding: each stored name is `pre`
 * code units of the previous stored name plus `len` code units of `text`; rows marked in `pfx` are
 * `__pfx_` + the next row's name and store nothing). Returns an error string instead of throwing,
 * so the caller reports it in its own terms. `maxChars` bounds the allocation.
 */
export function nameBlobFromFrontCoding(
  n: number,
  pfxMark: ArrayLike<number>,
  pre: ArrayLike<number>,
  len: ArrayLike<number>,
  text: string,
  maxChars: number,
): NameBlob | { error: string; tooLarge?: boolean } {
  // Pass 1: lengths, validation, total.
  let stored = 0;
  let total = 0;
  let prevLen = 0;
  let pos = 0;
  for (let i = 0; i < n; i++) {
    if (pfxMark[i] !== 0) {
      if (pfxMark[i] !== 1 || i + 1 === n) return { error: `symbols.pfx[${i}]: bad padding mark` };
      continue;
    }
    const p = pre[stored];
    const l = len[stored];
    stored++;
    if (p < 0 || p > prevLen || l < 0 || pos + l > text.length) return { error: `symbols.names[${i}]: front coding out of range` };
    if (p + l === 0) return { error: `symbols.names[${i}]: empty name` };
    pos += l;
    prevLen = p + l;
    total += prevLen;
    if (total > maxChars) return { error: `symbols: names expand to more than ${maxChars} characters`, tooLarge: true };
  }
  if (stored !== pre.length || stored !== len.length) return { error: "symbols.pre: count differs from the stored names" };
  if (pos !== text.length) return { error: "symbols.text: trailing characters" };
  const start = new Uint32Array(n);
  const lenOut = new Uint32Array(n);
  const pfx = new Uint8Array(n);
  let chars: Uint8Array | Uint16Array;
  let k = 0;
  if (total === text.length) {
    // No shared prefixes (what format 1.1 writes): the stored names are `text` back to back,
    // as bytes when it is ASCII (one native call), else as code units.
    chars = asciiBytes(text) ?? codeUnits(text);
    let at = 0;
    for (let i = 0; i < n; i++) {
      if (pfxMark[i] !== 0) continue;
      const l = len[k++];
      start[i] = at;
      lenOut[i] = l;
      at += l;
    }
  } else {
    // Pass 2: code units back to back.
    const cu = new Uint16Array(total);
    let at = 0;
    let prevStart = 0;
    pos = 0;
    for (let i = 0; i < n; i++) {
      if (pfxMark[i] !== 0) continue;
      const p = pre[k] | 0;
      const l = len[k] | 0;
      k++;
      if (p > 24) cu.copyWithin(at, prevStart, prevStart + p);
      else for (let j = 0; j < p; j++) cu[at + j] = cu[prevStart + j];
      for (let j = 0, d = at + p; j < l; j++) cu[d + j] = text.charCodeAt(pos + j);
      pos += l;
      start[i] = at;
      lenOut[i] = p + l;
      prevStart = at;
      at += p + l;
    }
    chars = cu;
  }
  return foldPadding(n, pfxMark, chars, start, lenOut, pfx);
}

/**
 * The blob's per-row view from stored names: leading `__pfx_` of stored names (those with no
 * function row after them) folded into pfx, and each marked row pointed at the next row's code
 * units with one more prefix.
 */
function foldPadding(
  n: number,
  pfxMark: ArrayLike<number>,
  chars: Uint8Array | Uint16Array,
  start: Uint32Array,
  lenOut: Uint32Array,
  pfx: Uint8Array,
): NameBlob | { error: string; tooLarge?: boolean } {
  for (let i = 0; i < n; i++) {
    if (pfxMark[i] !== 0) continue;
    while (lenOut[i] > PFX.length && chars[start[i]] === 95 && startsWithPfx(chars, start[i])) {
      if (pfx[i] === 255) return { error: `symbols.names[${i}]: too many __pfx_ prefixes` };
      pfx[i]++;
      start[i] += PFX.length;
      lenOut[i] -= PFX.length;
    }
  }
  for (let i = n - 1; i >= 0; i--) {
    if (pfxMark[i] === 0) continue;
    if (pfx[i + 1] >= 16) return { error: `symbols.pfx[${i}]: padding marks chained too deep` };
    pfx[i] = pfx[i + 1] + 1;
    start[i] = start[i + 1];
    lenOut[i] = lenOut[i + 1];
  }
  return { chars, start, len: lenOut, pfx };
}

/** The string's bytes when it is all ASCII (then bytes and UTF-16 code units coincide). */
function asciiBytes(s: string): Uint8Array | null {
  if (typeof TextEncoder === "undefined") return null;
  const b = new TextEncoder().encode(s);
  return b.length === s.length ? b : null;
}

function codeUnits(s: string): Uint16Array {
  const u = new Uint16Array(s.length);
  for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
  return u;
}

function startsWithPfx(chars: Uint8Array | Uint16Array, a: number): boolean {
  for (let k = 0; k < PFX.length; k++) if (chars[a + k] !== PFX.charCodeAt(k)) return false;
  return true;
}

/** The name index's hash chains: bucket heads (hash & (head.length - 1)) and the next row of each row. */
export interface NameIndexArrays {
  head: Int32Array;
  next: Int32Array;
}

function indexCapacity(n: number): number {
  let cap = 16;
  while (cap < 2 * n) cap *= 2;
  return cap;
}

/**
 * name -> rows in table order, as a Map. get() and has() use a hash index over the names built
 * on first use (typed arrays: no string or array per row); iteration, size and mutation turn it
 * into an ordinary Map first. Lists returned by get() must not be modified.
 */
export class NameIndex extends Map<string, number[]> {
  private head: Int32Array | null = null;
  private next: Int32Array | null = null;
  private mask = 0;
  private full = false;
  private readonly memo = new Map<string, number[] | undefined>();

  /** `built`: head and next as indexArrays() gave them for the same names (a table cache), else built on first use. */
  constructor(
    private readonly src: NameSource,
    built: NameIndexArrays | null = null,
  ) {
    super();
    if (built !== null) {
      const cap = built.head.length;
      if (built.next.length !== src.count || cap !== indexCapacity(src.count)) throw new RangeError("name index arrays do not fit the names");
      this.head = built.head;
      this.next = built.next;
      this.mask = cap - 1;
    }
  }

  /** The names' blob and the built index (built now if need be) when the index is over a NameBlob. */
  blobIndex(): { blob: NameBlob; index: NameIndexArrays } | null {
    if (!(this.src instanceof BlobNames)) return null;
    if (this.head === null) this.build();
    return { blob: this.src.blob, index: { head: this.head!, next: this.next! } };
  }

  private build(): void {
    const n = this.src.count;
    const cap = indexCapacity(n);
    const head = new Int32Array(cap).fill(-1);
    const next = new Int32Array(n);
    const mask = cap - 1;
    // Backwards, so every chain lists its rows in table order.
    const hashes = this.src.hashes();
    for (let i = n - 1; i >= 0; i--) {
      const b = hashes[i] & mask;
      next[i] = head[b];
      head[b] = i;
    }
    this.head = head;
    this.next = next;
    this.mask = mask;
  }

  private materialize(): void {
    if (this.full) return;
    this.full = true;
    const get = Map.prototype.get;
    const set = Map.prototype.set;
    for (let i = 0; i < this.src.count; i++) {
      const name = this.src.name(i);
      const rows = get.call(this, name) as number[] | undefined;
      if (rows === undefined) set.call(this, name, [i]);
      else rows.push(i);
    }
    this.memo.clear();
  }

  /**
   * Rows named `name` (as get()), but while the index is not built, the first few lookups scan
   * the rows instead of building it: a check of a decoded snapshot looks up only the patched
   * functions and the section markers (its frames carry their rows), and hashing every name
   * costs as much as 10-20 scans. Callers that look up many names use get(), which builds.
   */
  lookup(name: string): number[] | undefined {
    return this.lookupMany([name])[0];
  }

  /** lookup() for several names: one scan answers them all. */
  lookupMany(names: readonly string[]): (number[] | undefined)[] {
    if (this.full || this.head !== null || this.scans >= NameIndex.SCANS) return names.map((n) => this.get(n));
    const out = names.map((n) => (typeof n === "string" ? this.memo.get(n) : undefined));
    const todo: number[] = [];
    names.forEach((n, k) => {
      if (typeof n === "string" && !this.memo.has(n)) todo.push(k);
    });
    if (todo.length > 0) {
      this.scans++;
      const queries = todo.map((k) => names[k]);
      // Names the table reads anyway (section bounds, _text) ride along with the first scan.
      const extra = this.prefetch.filter((n) => !this.memo.has(n) && !queries.includes(n));
      this.prefetch = [];
      const found = this.src.scan(queries.concat(extra));
      if (this.memo.size > 4096) this.memo.clear();
      todo.forEach((k, j) => {
        out[k] = found[j];
        this.memo.set(names[k], found[j]);
      });
      extra.forEach((n, j) => this.memo.set(n, found[queries.length + j]));
    }
    return out;
  }

  /** Names the first scan also looks up (finishTable: the section markers and `_text`). */
  prefetch: readonly string[] = [];

  /** Whether the hash index (or the full Map) has been built: false while lookups only scanned. */
  get indexed(): boolean {
    return this.head !== null || this.full;
  }

  /** Whether row i is named `name` (no index, no string made). */
  rowIs(i: number, name: string): boolean {
    return i >= 0 && i < this.src.count && this.src.equals(i, name);
  }

  /** Rows whose name contains `sub` (ASCII), in table order (one pass over the rows). */
  rowsContaining(sub: string): number[] {
    const out: number[] = [];
    for (let i = 0, n = this.src.count; i < n; i++) if (this.src.contains(i, sub)) out.push(i);
    return out;
  }

  /** Row i's name. */
  nameOf(i: number): string {
    return this.src.name(i);
  }

  /** Scans answered before get() builds the index anyway. */
  static readonly SCANS = 8;
  private scans = 0;

  override get(name: string): number[] | undefined {
    if (this.full) return super.get(name);
    if (this.memo.has(name)) return this.memo.get(name);
    if (this.head === null) this.build();
    const src = this.src;
    let rows: number[] | undefined;
    if (typeof name === "string") {
      for (let r = this.head![src.hashQuery(name) & this.mask]; r >= 0; r = this.next![r]) {
        if (src.equals(r, name)) (rows ??= []).push(r);
      }
    }
    if (this.memo.size > 4096) this.memo.clear();
    this.memo.set(name, rows);
    return rows;
  }
  override has(name: string): boolean {
    return this.get(name) !== undefined;
  }
  override set(name: string, rows: number[]): this {
    this.materialize();
    return super.set(name, rows);
  }
  override delete(name: string): boolean {
    this.materialize();
    return super.delete(name);
  }
  override clear(): void {
    this.materialize();
    super.clear();
  }
  override forEach(fn: (rows: number[], name: string, map: Map<string, number[]>) => void, thisArg?: unknown): void {
    this.materialize();
    super.forEach(fn, thisArg);
  }
  override entries(): MapIterator<[string, number[]]> {
    this.materialize();
    return super.entries();
  }
  override keys(): MapIterator<string> {
    this.materialize();
    return super.keys();
  }
  override values(): MapIterator<number[]> {
    this.materialize();
    return super.values();
  }
  override [Symbol.iterator](): MapIterator<[string, number[]]> {
    this.materialize();
    return super.entries();
  }
}
// `size` is an accessor on Map.prototype: TypeScript cannot override it in the class body.
Object.defineProperty(NameIndex.prototype, "size", {
  get(this: NameIndex) {
    (this as unknown as { materialize(): void }).materialize();
    return Reflect.get(Map.prototype, "size", this) as number;
  },
});

/**
 * Defines `key` on `obj` as computed on first read (then an ordinary data property); assigning
 * it first replaces the computation. Enumerable, so a spread copy (`{ ...table }`) still has it.
 */
function lazy<T extends object, K extends keyof T>(obj: T, key: K, compute: () => T[K]): void {
  Object.defineProperty(obj, key, {
    configurable: true,
    enumerable: true,
    get() {
      const v = compute();
      Object.defineProperty(obj, key, { value: v, writable: true, configurable: true, enumerable: true });
      return v;
    },
    set(v: T[K]) {
      Object.defineProperty(obj, key, { value: v, writable: true, configurable: true, enumerable: true });
    },
  });
}

/**
 * Sizes: per object, the distance from each address to the next strictly higher one (0 for the
 * highest). One pass in table order while every object's rows come in address order (vmlinux in
 * kallsyms and System.map always does); an object that does not is sorted on its own.
 */
function computeSizes(n: number, objectCount: number, object: Uint32Array, t: { addrLo: Uint32Array; addrHi: Uint32Array }): Float64Array {
  const size = new Float64Array(n);
  const { addrLo, addrHi } = t;
  // Per object: the last row seen and the first row of its run of equal addresses; rows of a
  // run are linked (prevSame) so the run gets its size when a higher address arrives.
  const last = new Int32Array(objectCount).fill(-1);
  const prevSame = new Int32Array(n).fill(-1);
  const unsorted = new Uint8Array(objectCount);
  let anyUnsorted = false;
  for (let i = 0; i < n; i++) {
    const o = object[i];
    const l = last[o];
    last[o] = i;
    if (l < 0 || unsorted[o]) continue;
    const hi = addrHi[i];
    const lo = addrLo[i];
    const lh = addrHi[l];
    const ll = addrLo[l];
    if (hi === lh && lo === ll) {
      prevSame[i] = l;
      continue;
    }
    if (hi < lh || (hi === lh && lo < ll)) {
      unsorted[o] = 1;
      anyUnsorted = true;
      continue;
    }
    const s = (hi - lh) * 0x1_0000_0000 + (lo - ll);
    for (let r = l; r >= 0; r = prevSame[r]) size[r] = s;
  }
  if (!anyUnsorted) return size;
  for (let o = 0; o < objectCount; o++) {
    if (!unsorted[o]) continue;
    const rows: number[] = [];
    for (let i = 0; i < n; i++) if (object[i] === o) rows.push(i);
    rows.sort((a, b) => cmpAddr(t, a, b));
    let j = 0;
    while (j < rows.length) {
      let k = j + 1;
      while (k < rows.length && cmpAddr(t, rows[k], rows[j]) === 0) k++;
      const sz = k < rows.length ? addrDiff(t, rows[k], rows[j]) : 0;
      for (let m = j; m < k; m++) size[rows[m]] = sz;
      j = k;
    }
  }
  return size;
}

/** sympos, dupCount and padding from the name index (only computed when someone reads them). */
function occurrenceColumns(t: SymbolTable): { sympos: Uint32Array; dupCount: Uint32Array; padding: Uint8Array } {
  const n = t.count;
  const sympos = new Uint32Array(n);
  const dupCount = new Uint32Array(n);
  const padding = new Uint8Array(n);
  const names = t.names;
  for (let i = 0; i < n; i++) {
    const name = names[i];
    if (name.charCodeAt(0) === 95 && isPaddingName(name)) padding[i] = 1;
  }
  // sympos: occurrence order per (object, name) in table order (the module's ELF order for
  // modules, which /proc/kallsyms preserves; not address order). byName lists rows in table
  // order, so a name's rows in one object are already in sympos order.
  for (const rows of t.byName.values()) {
    if (rows.length === 1) {
      sympos[rows[0]] = 1;
      dupCount[rows[0]] = 1;
      continue;
    }
    const perObject = new Map<number, number[]>();
    for (const r of rows) {
      const o = t.object[r];
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
  return { sympos, dupCount, padding };
}

/** Start and end symbols of the SectionBounds sections, in their order. */
const SECTION_MARKERS = [
  "__sched_text_start",
  "__sched_text_end",
  "__lock_text_start",
  "__lock_text_end",
  "__entry_text_start",
  "__entry_text_end",
  "__noinstr_text_start",
  "__noinstr_text_end",
  "__cpuidle_text_start",
  "__cpuidle_text_end",
  "_sinittext",
  "_einittext",
];

export interface TableBase {
  source: SymbolSource;
  /** One string per row, or one block of code units (decoded snapshots). */
  names: string[] | NameBlob;
  object: Uint32Array;
  objects: string[];
  type: Uint8Array;
  addrLo: Uint32Array;
  addrHi: Uint32Array;
  /** Sizes as data (a table without addresses); computed from the addresses when absent. */
  size?: Float64Array | null;
  /** With a NameBlob: the name index tableNameBlob() gave for the same blob (not rebuilt). */
  nameIndex?: NameIndexArrays | null;
}

/**
 * Computes sizes, sympos, padding flags, the name index and section bounds. Only what every
 * check needs is computed here (sizes: one pass when addresses are in order); names (from a
 * blob), sympos, dupCount, padding, section bounds and `_text` are computed on first read, and
 * byName answers get()/has() from a hash index built on first use. Every field keeps its meaning.
 */
export function finishTable(base: TableBase): SymbolTable {
  const blob = Array.isArray(base.names) ? null : base.names;
  const n = blob === null ? (base.names as string[]).length : blob.start.length;
  const src: NameSource = blob === null ? new ArrayNames(base.names as string[]) : new BlobNames(blob);
  let hasAddresses = false;
  for (let i = 0; i < n && !hasAddresses; i++) if (base.addrLo[i] !== 0 || base.addrHi[i] !== 0) hasAddresses = true;
  const size = base.size ?? computeSizes(n, base.objects.length, base.object, base);
  const byName = new NameIndex(src, blob === null ? null : (base.nameIndex ?? null));
  byName.prefetch = [...SECTION_MARKERS, "_text", "_stext"];
  const t = {
    source: base.source,
    coverage: "full",
    hasAddresses,
    count: n,
    object: base.object,
    objects: base.objects,
    type: base.type,
    addrLo: base.addrLo,
    addrHi: base.addrHi,
    size,
    byName,
    warnings: [],
  } as unknown as SymbolTable;
  if (blob === null) t.names = base.names as string[];
  else
    lazy(t, "names", () => {
      const out: string[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = src.name(i);
      return out;
    });
  let occ: ReturnType<typeof occurrenceColumns> | null = null;
  const occurrences = (): ReturnType<typeof occurrenceColumns> => (occ ??= occurrenceColumns(t));
  lazy(t, "sympos", () => occurrences().sympos);
  lazy(t, "dupCount", () => occurrences().dupCount);
  lazy(t, "padding", () => occurrences().padding);
  // The first vmlinux row of each name, all looked up at once (one scan when the index is not built).
  const findAll = (names: string[]): (bigint | null)[] =>
    byName.lookupMany(names).map((rows) => {
      for (const i of rows ?? []) if (base.object[i] === 0) return (BigInt(base.addrHi[i]) << 32n) | BigInt(base.addrLo[i]);
      return null;
    });
  lazy(t, "sections", () => {
    const a = findAll(SECTION_MARKERS);
    const bounds = (k: number): [bigint, bigint] | null => {
      const lo = a[2 * k];
      const hi = a[2 * k + 1];
      return lo !== null && hi !== null && hi > lo ? [lo, hi] : null;
    };
    return { sched: bounds(0), lock: bounds(1), entry: bounds(2), noinstr: bounds(3), cpuidle: bounds(4), init: bounds(5) };
  });
  lazy(t, "text", () => {
    const [text, stext] = findAll(["_text", "_stext"]);
    return text ?? stext;
  });
  return t;
}

/**
 * A table's names as a NameBlob plus its built name index (built now if need be), or null when
 * the names are strings: what a cache of built tables stores, and finishTable takes back
 * (`names`, `nameIndex`) without hashing every name again.
 */
export function tableNameBlob(t: SymbolTable): { blob: NameBlob; index: NameIndexArrays } | null {
  return t.byName instanceof NameIndex ? t.byName.blobIndex() : null;
}

/**
 * t.byName.get(name) for a caller that looks up a few names: a table's name index is then not
 * built for them (NameIndex.lookup scans for the first few). Same rows, same order.
 */
export function rowsNamed(t: SymbolTable, name: string): number[] | undefined {
  return t.byName instanceof NameIndex ? t.byName.lookup(name) : t.byName.get(name);
}

/**
 * Looks up `names` now, in one scan of the rows while the name index is not built: the lookups
 * that follow (rowsNamed, findObjectSymbol) are then answered from its memo. A check looks up
 * each patched function by itself; without this, each one was a scan of every row.
 */
export function prefetchNames(t: SymbolTable, names: readonly string[]): void {
  if (t.byName instanceof NameIndex && names.length > 0) t.byName.lookupMany(names);
}

/** Whether row i of t is named `name`, without materializing the names. */
export function rowHasName(t: SymbolTable, i: number, name: string): boolean {
  if (!(i >= 0 && i < t.count)) return false;
  return t.byName instanceof NameIndex ? t.byName.rowIs(i, name) : t.names[i] === name;
}

const llvmVariantMemo = new WeakMap<SymbolTable, Map<string, number>>();

/**
 * How many symbols of `object` are named `name.llvm.<hash>`: Clang-LTO's promoted static
 * functions. Linux ~6.2–6.10 counted those beside `name` when it resolved a sympos (SPEC §1), so
 * on such a kernel `name,N` may name another copy than the table's count says. One pass over the
 * names per table (a few ms for 120k symbols), kept for later calls: a fleet worker's hosts share
 * their table.
 */
export function llvmVariantCount(t: SymbolTable, object: string, name: string): number {
  let counts = llvmVariantMemo.get(t);
  if (counts === undefined) {
    counts = new Map();
    const rows = t.byName instanceof NameIndex ? t.byName.rowsContaining(".llvm.") : t.names.flatMap((s, i) => (s.includes(".llvm.") ? [i] : []));
    for (const i of rows) {
      const full = t.byName instanceof NameIndex ? t.byName.nameOf(i) : t.names[i];
      const key = `${t.objects[t.object[i]]}\u0000${full.slice(0, full.indexOf(".llvm."))}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    llvmVariantMemo.set(t, counts);
  }
  return counts.get(`${object}\u0000${name}`) ?? 0;
}

export type LookupResult =
  | { ok: true; index: number }
  | { ok: false; code: "E_SYMBOL_NOT_FOUND" | "E_SYMBOL_AMBIGUOUS" | "E_SYMPOS_NOT_FOUND"; message: string };

/**
 * klp_find_object_symbol: the sympos-th symbol named `name` in `object` (0 = must be unique).
 * Messages are the kernel's.
 */
export function findObjectSymbol(t: SymbolTable, object: string, name: string, sympos: number): LookupResult {
  const rows = (rowsNamed(t, name) ?? []).filter((i) => t.objects[t.object[i]] === object);
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
