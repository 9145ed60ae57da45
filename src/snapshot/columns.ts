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

function readVarint(b: Uint8Array, pos: { p: number }): number {
  let v = 0;
  let mul = 1;
  for (let k = 0; k < 8; k++) {
    if (pos.p >= b.length) throw new ColumnError("column ends inside a varint");
    const byte = b[pos.p++];
    v += (byte & 0x7f) * mul;
    if ((byte & 0x80) === 0) return v;
    mul *= 0x80;
  }
  throw new ColumnError("varint longer than 8 bytes (above 2^56)");
}

function isColumn(c: unknown): c is IntColumn {
  if (c === null || typeof c !== "object") return false;
  const o = c as Record<string, unknown>;
  return (o.m === "d" || o.m === "r") && typeof o.n === "number" && Number.isSafeInteger(o.n) && o.n >= 0 && o.b instanceof Uint8Array;
}

/**
 * Decodes a column into a Float64Array of exactly `expected` elements (a view of `into` when it
 * is large enough). Throws ColumnError when
 * the column is malformed, declares another count, or does not consume its bytes exactly.
 */
export function decodeInts(c: unknown, expected: number, what: string, into?: Float64Array): Float64Array {
  if (!isColumn(c)) throw new ColumnError(`${what}: not an integer column`);
  if (c.n !== expected) throw new ColumnError(`${what}: ${c.n} values where ${expected} were expected`);
  // Delta columns hold at least one byte per value: a count beyond the bytes is a lie.
  if (c.m === "d" && c.n > c.b.length) throw new ColumnError(`${what}: declares ${c.n} values in ${c.b.length} bytes`);
  // `into`: scratch space of at least `expected` elements (the caller's, reused across calls).
  const out = into !== undefined && into.length >= expected ? into.subarray(0, expected) : new Float64Array(expected);
  const b = c.b;
  const end = b.length;
  let p = 0;
  if (c.m === "d") {
    let prev = 0;
    for (let i = 0; i < expected; i++) {
      let z: number;
      // One- and two-byte varints (small deltas: most of them) without the general loop.
      if (p < end && b[p] < 0x80) z = b[p++];
      else if (p + 1 < end && b[p + 1] < 0x80) {
        z = (b[p] & 0x7f) | (b[p + 1] << 7);
        p += 2;
      } else {
        const pos = { p };
        z = readVarint(b, pos);
        p = pos.p;
      }
      prev += z <= 0x7fffffff ? (z >>> 1) ^ -(z & 1) : z % 2 === 0 ? z / 2 : -(z + 1) / 2;
      if (!Number.isSafeInteger(prev)) throw new ColumnError(`${what}: value out of range`);
      out[i] = prev;
    }
  } else {
    const pos = { p: 0 };
    let i = 0;
    while (i < expected) {
      const v = unzig(readVarint(b, pos));
      const run = readVarint(b, pos);
      if (run === 0 || run > expected - i) throw new ColumnError(`${what}: run of ${run} overflows the column`);
      fillRun(out, v, i, run);
      i += run;
    }
    p = pos.p;
  }
  if (p !== end) throw new ColumnError(`${what}: ${end - p} trailing bytes`);
  return out;
}

/** out[i, i + run) = v: a loop for a short run (a native fill costs more than a few stores). */
function fillRun(out: Float64Array | Uint32Array | Uint8Array | Int32Array, v: number, i: number, run: number): void {
  if (run > 16) out.fill(v, i, i + run);
  else for (let k = i, end = i + run; k < end; k++) out[k] = v;
}

/**
 * A nullable id column (0 = null, v + 1 = v: pids, tids) into out[0, n), null as NaN: one pass,
 * every value a non-negative safe integer (what the task table stores, without a column of the
 * stored values first). Throws ColumnError like decodeInts.
 */
export function decodeIdsInto(c: unknown, out: Float64Array, n: number, what: string): void {
  if (!isColumn(c)) throw new ColumnError(`${what}: not an integer column`);
  if (c.n !== n) throw new ColumnError(`${what}: ${c.n} values where ${n} were expected`);
  if (out.length < n) throw new RangeError(`${what}: ${n} values into ${out.length}`);
  const b = c.b;
  const end = b.length;
  const MAX = Number.MAX_SAFE_INTEGER;
  let p = 0;
  if (c.m === "d") {
    if (n > end) throw new ColumnError(`${what}: declares ${n} values in ${end} bytes`);
    let prev = 0;
    for (let i = 0; i < n; i++) {
      let z: number;
      if (p < end && b[p] < 0x80) z = b[p++];
      else if (p + 1 < end && b[p + 1] < 0x80) {
        z = (b[p] & 0x7f) | (b[p + 1] << 7);
        p += 2;
      } else {
        const pos = { p };
        z = readVarint(b, pos);
        p = pos.p;
      }
      prev += z <= 0x7fffffff ? (z >>> 1) ^ -(z & 1) : z % 2 === 0 ? z / 2 : -(z + 1) / 2;
      if (!(prev >= 0 && prev <= MAX)) throw new ColumnError(`${what}[${i}]: ${prev} is not an id`);
      out[i] = prev === 0 ? Number.NaN : prev - 1;
    }
  } else {
    const pos = { p: 0 };
    let i = 0;
    while (i < n) {
      const v = unzig(readVarint(b, pos));
      const run = readVarint(b, pos);
      if (run === 0 || run > n - i) throw new ColumnError(`${what}: run of ${run} overflows the column`);
      if (!(v >= 0 && v <= MAX)) throw new ColumnError(`${what}[${i}]: ${v} is not an id`);
      fillRun(out, v === 0 ? Number.NaN : v - 1, i, run);
      i += run;
    }
    p = pos.p;
  }
  if (p !== end) throw new ColumnError(`${what}: ${end - p} trailing bytes`);
}

/** A column into an existing typed array, every value within [min, max]. */
export function decodeIntsInto(c: unknown, out: Uint32Array | Uint8Array | Int32Array, min: number, max: number, what: string): void {
  const n = out.length;
  if (!isColumn(c)) throw new ColumnError(`${what}: not an integer column`);
  if (c.n !== n) throw new ColumnError(`${what}: ${c.n} values where ${n} were expected`);
  const bad = (i: number, x: number): never => {
    throw new ColumnError(`${what}[${i}]: ${x} outside ${min}..${max}`);
  };
  const b = c.b;
  const pos = { p: 0 };
  if (c.m === "d") {
    if (n > b.length) throw new ColumnError(`${what}: declares ${n} values in ${b.length} bytes`);
    let p = 0;
    let prev = 0;
    for (let i = 0; i < n; i++) {
      let z: number;
      if (p < b.length && b[p] < 0x80) z = b[p++];
      else if (p + 1 < b.length && b[p + 1] < 0x80) {
        z = (b[p] & 0x7f) | (b[p + 1] << 7);
        p += 2;
      } else {
        pos.p = p;
        z = readVarint(b, pos);
        p = pos.p;
      }
      prev += z <= 0x7fffffff ? (z >>> 1) ^ -(z & 1) : z % 2 === 0 ? z / 2 : -(z + 1) / 2;
      if (prev < min || prev > max) bad(i, prev);
      out[i] = prev;
    }
    pos.p = p;
  } else {
    let i = 0;
    while (i < n) {
      const v = unzig(readVarint(b, pos));
      const run = readVarint(b, pos);
      if (run === 0 || run > n - i) throw new ColumnError(`${what}: run of ${run} overflows the column`);
      if (v < min || v > max) bad(i, v);
      fillRun(out, v, i, run);
      i += run;
    }
  }
  if (pos.p !== b.length) throw new ColumnError(`${what}: ${b.length - pos.p} trailing bytes`);
}

/**
 * The one value of a run-length column holding `n` copies of it (most task columns: states,
 * flags and counters nobody captured), else null: the caller then decodes it. Never throws.
 */
export function constantOf(c: unknown, n: number): number | null {
  if (!isColumn(c) || c.m !== "r" || c.n !== n || n === 0) return null;
  const pos = { p: 0 };
  try {
    const v = unzig(readVarint(c.b, pos));
    return readVarint(c.b, pos) === n && pos.p === c.b.length ? v : null;
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
