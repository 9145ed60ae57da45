/**
 * Integer column codecs of the snapshot body: each column is a byte string of unsigned LEB128
 * varints, either zigzag deltas (`d`: ascending ids, lines, addresses) or (zigzag value, run
 * length) pairs (`r`: states, flags, mostly-null columns). The encoder keeps the shorter of the
 * two unless a mode is forced. Values are safe integers (|v| < 2^53), not just 32-bit: stat
 * start times and addresses split in halves go through here too.
 *
 * Decoding is bounded: a column declares its element count, and the caller states the count it
 * expects before anything is allocated, so a hostile count cannot make the reader allocate more
 * than the caller already budgeted (SPEC §8: snapshots may come from other people).
 */
import type { ColumnKernel, ColumnOut } from "./columnKernel.js";

/** One encoded column as stored in the msgpack body. */
export interface IntColumn {
  /** `d` zigzag deltas, `r` runs of (zigzag value, length). */
  m: "d" | "r";
  /** Element count. */
  n: number;
  /** The varints. */
  b: Uint8Array;
}

/** Thrown by the decoders; the snapshot reader turns it into E_SNAPSHOT_CORRUPT with context. */
export class ColumnError extends Error {}

class ByteSink {
  buf = new Uint8Array(256);
  len = 0;
  varint(v: number): void {
    if (this.len + 10 > this.buf.length) {
      const b = new Uint8Array(this.buf.length * 2);
      b.set(this.buf.subarray(0, this.len));
      this.buf = b;
    }
    // Arithmetic, not bitwise: values above 2^31 must survive.
    while (v >= 0x80) {
      this.buf[this.len++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.len++] = v;
  }
  bytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

const zig = (v: number): number => (v >= 0 ? v * 2 : -v * 2 - 1);
const unzig = (z: number): number => (z % 2 === 0 ? z / 2 : -(z + 1) / 2);

type IntSource = ArrayLike<number>;

function encodeDelta(values: IntSource): Uint8Array {
  const s = new ByteSink();
  let prev = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    s.varint(zig(v - prev));
    prev = v;
  }
  return s.bytes();
}

function encodeRuns(values: IntSource): Uint8Array {
  const s = new ByteSink();
  let i = 0;
  while (i < values.length) {
    const v = values[i];
    let j = i + 1;
    while (j < values.length && values[j] === v) j++;
    s.varint(zig(v));
    s.varint(j - i);
    i = j;
  }
  return s.bytes();
}

/** Encodes safe integers; `mode` forces a codec (default: the shorter). */
export function encodeInts(values: IntSource, mode?: "d" | "r"): IntColumn {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isSafeInteger(values[i]) || Math.abs(values[i]) > 2 ** 52) throw new RangeError(`column value ${values[i]} at ${i} is not an integer below 2^52`);
  }
  if (mode === "d") return { m: "d", n: values.length, b: encodeDelta(values) };
  if (mode === "r") return { m: "r", n: values.length, b: encodeRuns(values) };
  const d = encodeDelta(values);
  const r = encodeRuns(values);
  return r.length < d.length ? { m: "r", n: values.length, b: r } : { m: "d", n: values.length, b: d };
}

/** Nullable non-negative integers: null is stored as 0, v as v + 1. */
export function encodeNullable(values: (number | null)[], mode?: "d" | "r"): IntColumn {
  const a = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) a[i] = values[i] === null ? 0 : values[i]! + 1;
  return encodeInts(a, mode);
}

// Decoding. Each column is read by a kernel: a function that is nothing but the loop over the
// bytes (no object made, no call per value, nothing after the loop that the loop's first run
// left without type feedback), so V8 compiles it while it runs (on-stack replacement) and the
// compiled code stays valid for the next decode. Every check that needs more than the loop's
// own state is made by the caller: a kernel returns where it stopped. Decoding is synchronous
// and never nested, so kernels leave extra results in module variables.

/**
 * The wasm twin of the kernels below (src/snapshot/columnKernel.ts) while a decode has one
 * (withColumnKernel): it decodes a column or declines it, and a declined column goes through the
 * TypeScript kernel, which then decodes it or names the damage.
 */
let wasmKernel: ColumnKernel | null = null;

/** Runs `fn` (a whole decode) with `kernel` as the column kernel (null: TypeScript only). */
export function withColumnKernel<R>(kernel: ColumnKernel | null, fn: () => R): R {
  const outer = wasmKernel;
  wasmKernel = kernel;
  kernel?.begin();
  try {
    return fn();
  } finally {
    wasmKernel = outer;
  }
}

/** The column kernel of the decode in progress (symbol sizes use it too). */
export function activeColumnKernel(): ColumnKernel | null {
  return wasmKernel;
}

/** The wasm kernel's answer for a column (-1: declined, or none). */
function inWasm(col: IntColumn, out: ColumnOut, n: number, min: number, max: number, ids: boolean): number {
  return wasmKernel === null ? -1 : wasmKernel.decode(col.m, col.b, out, n, min, max, ids);
}

/** Where the last varintAt() ended. */
let varintEnd = 0;
/** The value a kernel stopped at (out of range). */
let kernelValue = 0;

/** The varint at b[p] (at most 8 bytes: below 2^56); varintEnd is where it ends. */
function varintAt(b: Uint8Array, p: number): number {
  let v = 0;
  let mul = 1;
  for (let k = 0; k < 8; k++) {
    if (p >= b.length) throw new ColumnError("column ends inside a varint");
    const byte = b[p++];
    v += (byte & 0x7f) * mul;
    if ((byte & 0x80) === 0) {
      varintEnd = p;
      return v;
    }
    mul *= 0x80;
  }
  throw new ColumnError("varint longer than 8 bytes (above 2^56)");
}

function isColumn(c: unknown): c is IntColumn {
  if (c === null || typeof c !== "object") return false;
  const o = c as Record<string, unknown>;
  return (o.m === "d" || o.m === "r") && typeof o.n === "number" && Number.isSafeInteger(o.n) && o.n >= 0 && o.b instanceof Uint8Array;
}

/** Checks a column's shape and count (`n`); a delta column must hold at least a byte per value. */
function checkColumn(c: unknown, n: number, what: string): IntColumn {
  if (!isColumn(c)) throw new ColumnError(`${what}: not an integer column`);
  if (c.n !== n) throw new ColumnError(`${what}: ${c.n} values where ${n} were expected`);
  // Delta columns hold at least one byte per value: a count beyond the bytes is a lie.
  if (c.m === "d" && n > c.b.length) throw new ColumnError(`${what}: declares ${n} values in ${c.b.length} bytes`);
  return c;
}

function checkEnd(b: Uint8Array, p: number, what: string): void {
  if (p !== b.length) throw new ColumnError(`${what}: ${b.length - p} trailing bytes`);
}

/**
 * Kernel of delta columns into a Float64Array: out[0, n) from b, every value a safe integer.
 * Returns the end position, or -1 - i when value i is out of range (kernelValue).
 */
function deltasF64(b: Uint8Array, out: Float64Array, n: number): number {
  const end = b.length;
  let p = 0;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    let z: number;
    // One- and two-byte varints (small deltas: most of them) without the general loop.
    if (p < end && b[p] < 0x80) z = b[p++];
    else if (p + 1 < end && b[p + 1] < 0x80) {
      z = (b[p] & 0x7f) | (b[p + 1] << 7);
      p += 2;
    } else {
      z = varintAt(b, p);
      p = varintEnd;
    }
    prev += z <= 0x7fffffff ? (z >>> 1) ^ -(z & 1) : z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    if (!(prev >= -Number.MAX_SAFE_INTEGER && prev <= Number.MAX_SAFE_INTEGER)) {
      kernelValue = prev;
      return -1 - i;
    }
    out[i] = prev;
  }
  return p;
}

/** deltasF64 for nullable ids (0 = null, v + 1 = v): NaN or the id; a negative value stops it. */
function deltasIds(b: Uint8Array, out: Float64Array, n: number): number {
  const end = b.length;
  let p = 0;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    let z: number;
    if (p < end && b[p] < 0x80) z = b[p++];
    else if (p + 1 < end && b[p + 1] < 0x80) {
      z = (b[p] & 0x7f) | (b[p + 1] << 7);
      p += 2;
    } else {
      z = varintAt(b, p);
      p = varintEnd;
    }
    prev += z <= 0x7fffffff ? (z >>> 1) ^ -(z & 1) : z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    if (!(prev >= 0 && prev <= Number.MAX_SAFE_INTEGER)) {
      kernelValue = prev;
      return -1 - i;
    }
    out[i] = prev === 0 ? Number.NaN : prev - 1;
  }
  return p;
}

/** Kernel of delta columns into unsigned typed arrays, every value within [min, max]. */
function deltasU(b: Uint8Array, out: Uint32Array | Uint8Array, n: number, min: number, max: number): number {
  const end = b.length;
  let p = 0;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    let z: number;
    if (p < end && b[p] < 0x80) z = b[p++];
    else if (p + 1 < end && b[p + 1] < 0x80) {
      z = (b[p] & 0x7f) | (b[p + 1] << 7);
      p += 2;
    } else {
      z = varintAt(b, p);
      p = varintEnd;
    }
    prev += z <= 0x7fffffff ? (z >>> 1) ^ -(z & 1) : z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    if (!(prev >= min && prev <= max)) {
      kernelValue = prev;
      return -1 - i;
    }
    out[i] = prev;
  }
  return p;
}

/** Kernel of delta columns of indexes 0..max into an Int32Array (stack ids). */
function deltasIndex(b: Uint8Array, out: Int32Array, n: number, max: number): number {
  const end = b.length;
  let p = 0;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    let z: number;
    if (p < end && b[p] < 0x80) z = b[p++];
    else if (p + 1 < end && b[p + 1] < 0x80) {
      z = (b[p] & 0x7f) | (b[p + 1] << 7);
      p += 2;
    } else {
      z = varintAt(b, p);
      p = varintEnd;
    }
    prev += z <= 0x7fffffff ? (z >>> 1) ^ -(z & 1) : z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    if (!(prev >= 0 && prev <= max)) {
      kernelValue = prev;
      return -1 - i;
    }
    out[i] = prev;
  }
  return p;
}

/**
 * Kernel of run-length columns: (zigzag value, length) pairs filling out[0, n), each value
 * within [min, max] (ids: `ids`, v as NaN for 0 and v - 1 otherwise). Returns the end position,
 * -1 - i for a value out of range at i (kernelValue), or -1 - n for a run that overflows.
 */
function runsInto(b: Uint8Array, out: Float64Array | Uint32Array | Uint8Array | Int32Array, n: number, min: number, max: number, ids: boolean): number {
  let p = 0;
  let i = 0;
  while (i < n) {
    const z = varintAt(b, p);
    const run = varintAt(b, varintEnd);
    p = varintEnd;
    if (run === 0 || run > n - i) {
      kernelValue = run;
      return -1 - n;
    }
    const v = z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    if (!(v >= min && v <= max)) {
      kernelValue = v;
      return -1 - i;
    }
    const x = ids ? (v === 0 ? Number.NaN : v - 1) : v;
    // A loop for a short run: a native fill costs more than a few stores.
    if (run > 16) out.fill(x, i, i + run);
    else for (let k = i, e = i + run; k < e; k++) out[k] = x;
    i += run;
  }
  return p;
}

/** The caller's side of a kernel's result: an error for a stop, else the end check. */
function finish(b: Uint8Array, r: number, n: number, what: string, range: string): void {
  if (r >= 0) return checkEnd(b, r, what);
  if (r === -1 - n) throw new ColumnError(`${what}: run of ${kernelValue} overflows the column`);
  throw new ColumnError(`${what}[${-1 - r}]: ${kernelValue} ${range}`);
}

/**
 * Decodes a column into a Float64Array of exactly `expected` elements (a view of `into` when it
 * is large enough). Throws ColumnError when the column is malformed, declares another count, or
 * does not consume its bytes exactly.
 */
export function decodeInts(c: unknown, expected: number, what: string, into?: Float64Array): Float64Array {
  const col = checkColumn(c, expected, what);
  // `into`: scratch space of at least `expected` elements (the caller's, reused across calls).
  const out = into !== undefined && into.length >= expected ? into.subarray(0, expected) : new Float64Array(expected);
  const S = Number.MAX_SAFE_INTEGER;
  const w = inWasm(col, out, expected, -S, S, false);
  finish(col.b, w >= 0 ? w : col.m === "d" ? deltasF64(col.b, out, expected) : runsInto(col.b, out, expected, -S, S, false), expected, what, "out of range");
  return out;
}

/**
 * decodeInts for a column whose values must all lie within [min, max], when the wasm kernel can
 * decode it so (the range checked as it decodes); null otherwise: the caller then decodes it
 * with decodeInts and checks the values itself (naming the first one out of range).
 */
export function decodeIntsWithin(c: unknown, expected: number, what: string, into: Float64Array | undefined, min: number, max: number): Float64Array | null {
  if (wasmKernel === null) return null;
  const col = checkColumn(c, expected, what);
  const out = into !== undefined && into.length >= expected ? into.subarray(0, expected) : new Float64Array(expected);
  const w = inWasm(col, out, expected, min, max, false);
  if (w < 0) return null;
  checkEnd(col.b, w, what);
  return out;
}

/**
 * A nullable id column (0 = null, v + 1 = v: pids, tids) into out[0, n), null as NaN: one pass,
 * every value a non-negative safe integer (what the task table stores, without a column of the
 * stored values first). Throws ColumnError like decodeInts.
 */
export function decodeIdsInto(c: unknown, out: Float64Array, n: number, what: string): void {
  const col = checkColumn(c, n, what);
  if (out.length < n) throw new RangeError(`${what}: ${n} values into ${out.length}`);
  const w = inWasm(col, out, n, 0, Number.MAX_SAFE_INTEGER, true);
  finish(col.b, w >= 0 ? w : col.m === "d" ? deltasIds(col.b, out, n) : runsInto(col.b, out, n, 0, Number.MAX_SAFE_INTEGER, true), n, what, "is not an id");
}

/** A column into an existing typed array, every value within [min, max]. */
export function decodeIntsInto(c: unknown, out: Uint32Array | Uint8Array, min: number, max: number, what: string): void {
  const n = out.length;
  const col = checkColumn(c, n, what);
  const w = inWasm(col, out, n, min, max, false);
  finish(col.b, w >= 0 ? w : col.m === "d" ? deltasU(col.b, out, n, min, max) : runsInto(col.b, out, n, min, max, false), n, what, `outside ${min}..${max}`);
}

/** A column of indexes 0..max into an Int32Array (a task's stack id). */
export function decodeIndexesInto(c: unknown, out: Int32Array, max: number, what: string): void {
  const n = out.length;
  const col = checkColumn(c, n, what);
  const w = inWasm(col, out, n, 0, max, false);
  finish(col.b, w >= 0 ? w : col.m === "d" ? deltasIndex(col.b, out, n, max) : runsInto(col.b, out, n, 0, max, false), n, what, `outside 0..${max}`);
}

/**
 * The one value of a run-length column holding `n` copies of it (most task columns: states,
 * flags and counters nobody captured), else null: the caller then decodes it. Never throws.
 */
export function constantOf(c: unknown, n: number): number | null {
  if (!isColumn(c) || c.m !== "r" || c.n !== n || n === 0) return null;
  try {
    const v = unzig(varintAt(c.b, 0));
    return varintAt(c.b, varintEnd) === n && varintEnd === c.b.length ? v : null;
  } catch {
    return null;
  }
}

/** Zigzag of a safe integer (a non-negative result). */
export const zigzag = zig;

/** Nullable twin of decodeInts: 0 = null, v + 1 = v; negative stored values are corrupt. */
export function decodeNullable(c: unknown, expected: number, what: string): (number | null)[] {
  const a = decodeInts(c, expected, what);
  const out: (number | null)[] = new Array(expected);
  for (let i = 0; i < expected; i++) {
    if (a[i] < 0) throw new ColumnError(`${what}: negative value`);
    out[i] = a[i] === 0 ? null : a[i] - 1;
  }
  return out;
}
