// patchsafe snapshot column kernels (AssemblyScript 0.28, runtime stub).
//
// A .psnap body stores its integer columns as LEB128 varints: zigzag deltas or (zigzag value,
// run length) pairs (src/snapshot/columns.ts), and the symbol table's sizes are computed from
// its addresses (src/snapshot/sizes.ts). In TypeScript those loops are ~4-5 ns a value; a 100k-task
// snapshot with a 122k-symbol table spends ~4 ms of its ~7 ms decode in them. Here they are the
// same loops over bytes copied into this memory, with the outputs copied back out.
//
// These kernels only ever answer for input they are sure of: every doubt (a varint of 8 bytes,
// a column that ends inside a varint, a value out of range, a run that overflows) returns BAIL,
// and the host runs the TypeScript kernel on the same bytes, which decodes the same values or
// throws the error that names the column and the row. So an accepted column is decoded exactly
// as the TypeScript kernel decodes it (test/column-kernel.test.ts compares them), and a damaged
// one gets the same message.
//
// ABI (host: src/snapshot/columnKernel.ts; every export takes and returns i32/u32/f64):
//   reset()                        forget every block (the memory is kept)
//   allocate(bytes)                a 16-byte aligned block (may grow memory: the host takes
//                                  its views after its last allocate())
//   column(src, len, n, out, kind, min, max, runLength) -> end position in src, or BAIL
//   sizes(lo, hi, object, n, objects, size, scratch) -> 1 if an object's rows are not in
//                                  address order (the host sorts that object), else 0

import { bumpAlloc, bumpReset } from "./bump";

const BAIL: i32 = -1;

// Output element kinds.
const OUT_U8: u32 = 0;
const OUT_U32: u32 = 1;
const OUT_I32: u32 = 2;
const OUT_F64: u32 = 3;
/** f64 nullable ids: 0 is null (NaN), v + 1 is v. */
const OUT_F64_ID: u32 = 4;

export function reset(): void {
  bumpReset();
}

export function allocate(bytes: u32): usize {
  return bumpAlloc(<usize>bytes);
}

/** Where the last readVarint() ended; -1 when it bailed. */
let varEnd: i32 = 0;

/** Bytes readable past a column's end (the host allocates them): readVarint loads 8 at a time. */
export const COLUMN_PADDING: i32 = 8;

/**
 * The varint at src[p], the column ending at src[len]: at most 7 bytes (below 2^49, so every
 * value and every sum the TypeScript decoder makes of it is exact in a double); longer, or cut
 * by the end: varEnd -1. Branch-free: one 8-byte load, the first byte without a continuation
 * bit found by ctz, the 7-bit groups gathered by masks. (A loop per byte mispredicts on every
 * change between 1- and 2-byte deltas, which real columns do all the time: ~5 ns a value.)
 */
@inline
function readVarint(src: usize, p: i32, len: i32): u64 {
  const w = load<u64>(src + <usize>p);
  const last = <i32>(ctz(~w & 0x8080808080808080) >>> 3);
  const end = p + last + 1;
  if (last >= 7 || end > len) {
    varEnd = -1;
    return 0;
  }
  varEnd = end;
  return gather(w & ((<u64>1 << (<u64>(last + 1) << 3)) - 1));
}

/** The 7-bit groups of a varint's bytes (at most 7, the rest of the word zero) as one value. */
@inline
function gather(m: u64): u64 {
  return (m & 0x7f) | ((m >> 1) & 0x3f80) | ((m >> 2) & 0x1fc000) | ((m >> 3) & 0xfe00000) | ((m >> 4) & 0x7f0000000) | ((m >> 5) & 0x3f800000000) | ((m >> 6) & 0x1fc0000000000);
}

@inline
function unzig(z: u64): i64 {
  return (z >>> 1) ^ -(z & 1);
}

/** out[i] = v as the decoder's array stores it (T: its element type; f64 ids: 0 is null). */
@inline
function put<T>(out: usize, i: i32, v: i64, ids: bool): void {
  if (isFloat<T>()) store<f64>(out + (<usize>i << 3), ids ? (v == 0 ? NaN : <f64>(v - 1)) : <f64>v);
  else store<T>(out + (<usize>i << alignof<T>()), <T>v);
}

/**
 * A column from src[0, len) into out[0, n) as the output kind stores it, every value within
 * [min, max]: n zigzag deltas (each running sum checked), or with `runLength` (zigzag value, run
 * length) pairs.
 */
export function column(src: usize, len: i32, n: i32, out: usize, kind: u32, min: f64, max: f64, runLength: bool): i32 {
  const lo = <i64>min;
  const hi = <i64>max;
  if (kind == OUT_U32) return columnOf<u32>(src, len, n, out, lo, hi, false, runLength);
  if (kind == OUT_U8) return columnOf<u8>(src, len, n, out, lo, hi, false, runLength);
  if (kind == OUT_I32) return columnOf<i32>(src, len, n, out, lo, hi, false, runLength);
  return columnOf<f64>(src, len, n, out, lo, hi, kind == OUT_F64_ID, runLength);
}

@inline
function columnOf<T>(src: usize, len: i32, n: i32, out: usize, lo: i64, hi: i64, ids: bool, runLength: bool): i32 {
  return runLength ? runsOf<T>(src, len, n, out, lo, hi, ids) : deltasOf<T>(src, len, n, out, lo, hi, ids);
}

/** n zigzag deltas, each running sum within [lo, hi]. */
@inline
function deltasOf<T>(src: usize, len: i32, n: i32, out: usize, lo: i64, hi: i64, ids: bool): i32 {
  let p: i32 = 0;
  let prev: i64 = 0;
  let i: i32 = 0;
  // A word (8 bytes) at a time: the varints that end in it are found from its stop bits (bytes
  // without a continuation bit), so the next load waits on nothing but the count of bytes used,
  // not on each varint's length in turn. A word past the column's end reads the padding; a
  // varint that ends there is a column cut inside a varint.
  while (i < n) {
    const w = load<u64>(src + <usize>p);
    let stops = ~w & 0x8080808080808080;
    if (stops == 0x8080808080808080 && i + 8 <= n && p + 8 <= len) {
      // Eight one-byte varints (ids, stack ids, most small deltas).
      for (let k: i32 = 0; k < 8; k++) {
        prev += unzig((w >> (<u64>k << 3)) & 0xff);
        if (prev < lo || prev > hi) return BAIL;
        put<T>(out, i + k, prev, ids);
      }
      p += 8;
      i += 8;
      continue;
    }
    // No stop in 8 bytes: a varint longer than 8 bytes (the TypeScript decoder names it).
    if (stops == 0) return BAIL;
    let from: i32 = 0;
    while (stops != 0 && i < n) {
      const last = <i32>(ctz(stops) >>> 3);
      const bytes = last + 1 - from;
      if (bytes > 7 || p + last >= len) return BAIL;
      const m = (w >> (<u64>from << 3)) & ((<u64>1 << (<u64>bytes << 3)) - 1);
      // Most varints here have 1 or 2 bytes: their two groups, the full gather only past that.
      prev += unzig(bytes <= 2 ? (m & 0x7f) | ((m >> 1) & 0x3f80) : gather(m));
      if (prev < lo || prev > hi) return BAIL;
      put<T>(out, i, prev, ids);
      i++;
      from = last + 1;
      stops &= stops - 1;
    }
    p += from;
  }
  return p;
}

/** (zigzag value, run length) pairs filling n values, each within [lo, hi]. */
@inline
function runsOf<T>(src: usize, len: i32, n: i32, out: usize, lo: i64, hi: i64, ids: bool): i32 {
  let p: i32 = 0;
  let i: i32 = 0;
  while (i < n) {
    const z = readVarint(src, p, len);
    if (varEnd < 0) return BAIL;
    const run = readVarint(src, varEnd, len);
    if (varEnd < 0) return BAIL;
    p = varEnd;
    if (run == 0 || run > <u64>(n - i)) return BAIL;
    const v = unzig(z);
    if (v < lo || v > hi) return BAIL;
    const e = i + <i32>run;
    for (let k = i; k < e; k++) put<T>(out, k, v, ids);
    i = e;
  }
  return p;
}

/**
 * Symbol sizes from address halves (src/snapshot/sizes.ts sizesKernel): one pass from the last row
 * to the first, keeping per object the address and size of the run of equal addresses seen last.
 * `scratch`: 17 bytes per object (u64 address, f64 size, u8 seen), any contents.
 */
export function sizes(lo: usize, hi: usize, object: usize, n: i32, objects: i32, size: usize, scratch: usize): i32 {
  const runAddr = scratch;
  const runSize = scratch + (<usize>objects << 3);
  const seen = scratch + (<usize>objects << 4);
  memory.fill(seen, 0, <usize>objects);
  let unsorted: i32 = 0;
  for (let i = n - 1; i >= 0; i--) {
    const o = <usize>load<u32>(object + (<usize>i << 2));
    const a = (<u64>load<u32>(hi + (<usize>i << 2)) << 32) | <u64>load<u32>(lo + (<usize>i << 2));
    const at = size + (<usize>i << 3);
    if (load<u8>(seen + o) == 0) {
      // The object's last row: no higher address (size 0).
      store<u8>(seen + o, 1);
      store<u64>(runAddr + (o << 3), a);
      store<f64>(runSize + (o << 3), 0);
      store<f64>(at, 0);
      continue;
    }
    const ra = load<u64>(runAddr + (o << 3));
    if (a == ra) {
      store<f64>(at, load<f64>(runSize + (o << 3)));
      continue;
    }
    if (a > ra) {
      // Not in address order: the host sorts this object and rewrites its sizes.
      store<u8>(seen + o, 2);
      unsorted = 1;
      store<f64>(at, 0);
      continue;
    }
    const s = <f64>(ra - a);
    store<u64>(runAddr + (o << 3), a);
    store<f64>(runSize + (o << 3), s);
    store<f64>(at, s);
  }
  return unsorted;
}

/** Whether object o was found out of address order by the last sizes() (its seen byte is 2). */
export function sizesUnsorted(scratch: usize, objects: i32, o: i32): bool {
  return load<u8>(scratch + (<usize>objects << 4) + <usize>o) == 2;
}

/**
 * Symbol names of a format 1.2 section (src/snapshot/names.ts namesKernel): per row its stored
 * name's start and length, a leading `__pfx_` folded into pfx, padding rows (bit i of `pad`)
 * pointed at the next stored name with one more prefix. `len`: `stored` lengths of `lenWidth`
 * bytes each; `chars`: `total` code units of `charWidth` bytes. 0 when every row and every
 * end check passes (as storedNameBlob checks them), else BAIL.
 */
export function names(n: i32, pad: usize, len: usize, lenWidth: i32, stored: i32, chars: usize, charWidth: i32, total: i32, start: usize, lenOut: usize, pfx: usize): i32 {
  let k: i32 = 0;
  let at: i32 = 0;
  let pending: i32 = 0;
  for (let i: i32 = 0; i < n; i++) {
    if ((load<u8>(pad + (<usize>i >> 3)) >> <u8>(i & 7)) & 1) {
      pending++;
      continue;
    }
    if (k >= stored) return BAIL;
    let l: i32 = lenWidth == 1 ? <i32>load<u8>(len + <usize>k) : lenWidth == 2 ? <i32>load<u16>(len + (<usize>k << 1)) : <i32>load<u32>(len + (<usize>k << 2));
    k++;
    if (l < 1 || <i64>at + <i64>l > <i64>total) return BAIL;
    let a = at;
    at += l;
    let d: i32 = 0;
    while (l > 6 && isPfx(chars, charWidth, a)) {
      if (d == 255) return BAIL;
      d++;
      a += 6;
      l -= 6;
    }
    store<u32>(start + (<usize>i << 2), a);
    store<u32>(lenOut + (<usize>i << 2), l);
    store<u8>(pfx + <usize>i, <u8>d);
    if (pending > 0) {
      if (d + pending > 16) return BAIL;
      for (let j: i32 = 1; j <= pending; j++) {
        store<u32>(start + (<usize>(i - j) << 2), a);
        store<u32>(lenOut + (<usize>(i - j) << 2), l);
        store<u8>(pfx + <usize>(i - j), <u8>(d + j));
      }
      pending = 0;
    }
  }
  return pending == 0 && k == stored && at == total ? 0 : BAIL;
}

/** Whether code units a..a+5 are `__pfx_` (the caller knows they are inside the name). */
@inline
function isPfx(chars: usize, width: i32, a: i32): bool {
  if (width == 1) {
    // "__pfx_" little-endian: 5f 5f 70 66 78 5f.
    const p = chars + <usize>a;
    return load<u32>(p) == 0x6670_5f5f && load<u16>(p + 4) == 0x5f78;
  }
  const p = chars + (<usize>a << 1);
  return load<u64>(p) == 0x0066_0070_005f_005f && load<u32>(p + 8) == 0x005f_0078;
}

/**
 * The rows named by any of Q queries (src/symbols/table.ts BlobNames.scan over a blob names()
 * left in this memory): a row matches query q when its prefix depth, length and code units are
 * the query's (`qUnits[qStart[q], +qLen[q])` as u16 code units, `qDepth[q]` prefixes). Rows
 * whose length and last code unit's low byte no query has (`keyFlag[l << 8 | low byte]`,
 * l < maxLen) are skipped on two reads (kernel names share prefixes far more than last bytes,
 * and lengths alone let a fifth of the rows through). Writes (q, row)
 * pairs in row order to `out` (room for `cap`); returns their count, or BAIL past `cap`.
 */
export function scanNames(n: i32, chars: usize, charWidth: i32, start: usize, len: usize, pfx: usize, Q: i32, qUnits: usize, qStart: usize, qLen: usize, qDepth: usize, keyFlag: usize, maxLen: i32, out: usize, cap: i32): i32 {
  let found: i32 = 0;
  for (let i: i32 = 0; i < n; i++) {
    const l = <i32>load<u32>(len + (<usize>i << 2));
    if (l >= maxLen || l == 0) continue;
    const a = <usize>load<u32>(start + (<usize>i << 2));
    const lastUnit = charWidth == 1 ? <u32>load<u8>(chars + a + <usize>(l - 1)) : <u32>load<u16>(chars + ((a + <usize>(l - 1)) << 1));
    if (load<u8>(keyFlag + ((<usize>l << 8) | <usize>(lastUnit & 0xff))) == 0) continue;
    const d = <i32>load<u8>(pfx + <usize>i);
    for (let q: i32 = 0; q < Q; q++) {
      if (load<i32>(qLen + (<usize>q << 2)) != l || load<i32>(qDepth + (<usize>q << 2)) != d) continue;
      const u = qUnits + (<usize>load<i32>(qStart + (<usize>q << 2)) << 1);
      let k: i32 = 0;
      if (charWidth == 1) while (k < l && <u32>load<u16>(u + (<usize>k << 1)) == <u32>load<u8>(chars + a + <usize>k)) k++;
      else while (k < l && load<u16>(u + (<usize>k << 1)) == load<u16>(chars + ((a + <usize>k) << 1))) k++;
      if (k < l) continue;
      if (found >= cap) return BAIL;
      store<u32>(out + (<usize>found << 3), q);
      store<u32>(out + (<usize>found << 3) + 4, i);
      found++;
    }
  }
  return found;
}

/** Where the last ownLines() stopped: frames placed and the end of the last task's lines. */
let ownTotal: f64 = 0;
let ownEnd: f64 = 0;

export function ownLinesTotal(): f64 {
  return ownTotal;
}

export function ownLinesEnd(): f64 {
  return ownEnd;
}

/**
 * src/snapshot/psnap.ts placeOwnLines from task `from` on (`total` and `end`: its state before
 * it): each task whose first frame is on its own line, line = end + its step (`line[t & mask]`),
 * points at its stack's block of rows (`block[s]`) and ends its lines where the next begins.
 * Stops at the first task that placeAny must decide (a line out of range, frames on line 0) and
 * at the first task whose stack has no block yet (the host copies the rows, sets block[s], and
 * calls again from there). Returns that task (T when all are placed); the state is in
 * ownLinesTotal() and ownLinesEnd(). `noFrames`: frameStart of a task without frames (the
 * frame table's length). Columns: stack i32, stackLen f64, line f64, block i32; out u32 ×3.
 */
export function ownLines(from: i32, T: i32, stack: usize, stackLen: usize, line: usize, mask: i32, block: usize, noFrames: u32, frameStart: usize, frameCount: usize, taskLine: usize, total: f64, end: f64): i32 {
  // The line chain in integers (one-cycle adds; in doubles two dependent adds a task were the
  // loop's whole cost). Every value is an integer below 2^53 (decoded columns), and a task is
  // placed only while its lines stay below 2^32, so both sums are exact and equal the host's.
  let e = <i64>end;
  let t = from;
  for (; t < T; t++) {
    const s = <usize>load<i32>(stack + (<usize>t << 2));
    const nf = load<f64>(stackLen + (s << 3));
    const step = load<f64>(line + (<usize>(t & mask) << 3));
    // Steps beyond ±2^52 (or NaN) cannot give a line in range: the host's loop stops there too,
    // and the conversion to i64 below would not (NaN converts to 0).
    if (!(step >= -4503599627370496.0 && step <= 4503599627370496.0) || nf > 4294967296.0) break;
    const n = <i64>nf;
    const ln = e + <i64>step;
    if (!(ln >= 0 && ln + n <= 4294967296 && ln <= 4294967295 && (n == 0 || ln > 0))) break;
    let start: u32 = noFrames;
    if (n != 0) {
      const b = load<i32>(block + (s << 2));
      if (b < 0) break;
      start = <u32>b;
    }
    total += nf;
    e = ln + n;
    const a = <usize>t << 2;
    store<u32>(frameStart + a, start);
    store<u32>(frameCount + a, <u32>n);
    store<u32>(taskLine + a, <u32>ln);
  }
  ownTotal = total;
  ownEnd = <f64>e;
  return t;
}
