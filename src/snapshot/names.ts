/**
 * Format 1.2 symbol names to the decoded table's NameBlob: the stored names' code units back to
 * back (`chars`), a length per stored name (`len`, table order) and padding marks (`pad`, bit
 * i & 7 of byte i >> 3: row i is `__pfx_` + the next row's name and stores nothing). The same
 * blob, checks and messages as test/name-blob-reference.ts (the reference, once table.ts's),
 * with the pass over the rows as a kernel (a function that is only the loop, see columns.ts):
 * a decode's first runs are then not spent in code V8 has thrown away. Browser-clean.
 */
import type { NameBlob } from "../symbols/table.js";
import { activeColumnKernel } from "./columns.js";

const PFX_LENGTH = 6; // "__pfx_"

/** Where the kernel stopped, and its state at the end (the caller checks it). */
let stopRow = 0;
let endAt = 0;
let endStored = 0;
let endPending = 0;

const OK = 0;
const FEWER_LENGTHS = 1;
const BAD_LENGTH = 2;
const TOO_MANY_PREFIXES = 3;
const CHAINED_TOO_DEEP = 4;

/** The blob of `n` rows, or an error naming the field (never throws). `chars` is kept, not copied. */
export function storedNameBlob(n: number, pad: Uint8Array, len: Uint8Array | Uint16Array | Uint32Array, chars: Uint8Array | Uint16Array): NameBlob | { error: string; tooLarge?: boolean } {
  if (pad.length < (n + 7) >> 3) return { error: "symbols.pad: shorter than the rows" };
  // In wasm when the decode in progress has a column kernel; it declines anything rejected below.
  const wasm = activeColumnKernel()?.names(n, pad, len, chars) ?? null;
  if (wasm !== null) {
    const blob: NameBlob = { chars, start: wasm.start, len: wasm.len, pfx: wasm.pfx };
    // Not enumerable: the blob's data are its four arrays (copies, comparisons, the cache).
    Object.defineProperty(blob, "scanRows", { value: wasm.scanRows, enumerable: false });
    return blob;
  }
  const start = new Uint32Array(n);
  const lenOut = new Uint32Array(n);
  const pfx = new Uint8Array(n);
  const r = namesKernel(n, pad, len, chars, start, lenOut, pfx);
  const i = stopRow;
  if (r === FEWER_LENGTHS) return { error: "symbols.nameLen: fewer lengths than stored names" };
  if (r === BAD_LENGTH) return { error: `symbols.names[${i}]: ${len[endStored - 1] === 0 ? "empty name" : "length out of range"}` };
  if (r === TOO_MANY_PREFIXES) return { error: `symbols.names[${i}]: too many __pfx_ prefixes` };
  if (r === CHAINED_TOO_DEEP) return { error: `symbols.pad[${i - endPending}]: padding marks chained too deep` };
  if (endPending > 0) return { error: `symbols.pad[${n - 1}]: bad padding mark` };
  if (endStored !== len.length) return { error: "symbols.nameLen: more lengths than stored names" };
  if (endAt !== chars.length) return { error: "symbols.names: trailing code units" };
  return { chars, start, len: lenOut, pfx };
}

function stop(i: number, k: number, pending: number, code: number): number {
  stopRow = i;
  endStored = k;
  endPending = pending;
  return code;
}

/**
 * The pass over the rows: each stored name's start and length (a leading `__pfx_` folded into
 * pfx), each marked row pointed at the next stored name with one more prefix.
 */
function namesKernel(
  n: number,
  pad: Uint8Array,
  len: Uint8Array | Uint16Array | Uint32Array,
  chars: Uint8Array | Uint16Array,
  start: Uint32Array,
  lenOut: Uint32Array,
  pfx: Uint8Array,
): number {
  const total = chars.length;
  const stored = len.length;
  let k = 0;
  let at = 0;
  // Marked rows before the current one: they take its code units with one more prefix each.
  let pending = 0;
  for (let i = 0; i < n; i++) {
    if ((pad[i >> 3] >> (i & 7)) & 1) {
      pending++;
      continue;
    }
    if (k >= stored) return stop(i, k, pending, FEWER_LENGTHS);
    let l = len[k++];
    if (!(l >= 1) || at + l > total) return stop(i, k, pending, BAD_LENGTH);
    let a = at;
    at += l;
    // Leading `__pfx_` of a stored name (one with no function row after it) folded into pfx.
    let d = 0;
    while (l > PFX_LENGTH && chars[a] === 95 && chars[a + 1] === 95 && chars[a + 2] === 112 && chars[a + 3] === 102 && chars[a + 4] === 120 && chars[a + 5] === 95) {
      if (d === 255) return stop(i, k, pending, TOO_MANY_PREFIXES);
      d++;
      a += PFX_LENGTH;
      l -= PFX_LENGTH;
    }
    start[i] = a;
    lenOut[i] = l;
    pfx[i] = d;
    if (pending > 0) {
      if (d + pending > 16) return stop(i, k, pending, CHAINED_TOO_DEEP);
      for (let j = 1; j <= pending; j++) {
        start[i - j] = a;
        lenOut[i - j] = l;
        pfx[i - j] = d + j;
      }
      pending = 0;
    }
  }
  endAt = at;
  endStored = k;
  endPending = pending;
  return OK;
}
