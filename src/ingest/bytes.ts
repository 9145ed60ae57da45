/**
 * Byte-level helpers for the streaming tokenizers: no per-line strings on the hot path.
 * Names are interned by FNV-1a hash over their bytes and decoded to a string once.
 */
import type { StringTable } from "../model.js";

export const CH = {
  TAB: 9,
  LF: 10,
  CR: 13,
  SPACE: 32,
  HASH: 35,
  PLUS: 43,
  SLASH: 47,
  ZERO: 48,
  COLON: 58,
  LT: 60,
  EQ: 61,
  GT: 62,
  QUESTION: 63,
  LBRACKET: 91,
  RBRACKET: 93,
  x: 120,
} as const;

/** latin1 decode of a byte range: /proc and kallsyms text is ASCII; other bytes survive as U+0080–U+00FF. */
export function latin1(buf: Uint8Array, start: number, end: number): string {
  let s = "";
  for (let i = start; i < end; i += 4096) {
    s += String.fromCharCode.apply(null, buf.subarray(i, Math.min(end, i + 4096)) as unknown as number[]);
  }
  return s;
}

export function encodeLatin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

export function startsWithAscii(buf: Uint8Array, start: number, end: number, prefix: string): boolean {
  if (end - start < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[start + i] !== prefix.charCodeAt(i)) return false;
  return true;
}

export function endsWithAscii(buf: Uint8Array, start: number, end: number, suffix: string): boolean {
  if (end - start < suffix.length) return false;
  const b = end - suffix.length;
  for (let i = 0; i < suffix.length; i++) if (buf[b + i] !== suffix.charCodeAt(i)) return false;
  return true;
}

export function indexOfByte(buf: Uint8Array, byte: number, start: number, end: number): number {
  for (let i = start; i < end; i++) if (buf[i] === byte) return i;
  return -1;
}

/** Parses decimal digits in [start, end); -1 if empty, not all digits, or too long. */
export function parseDecimal(buf: Uint8Array, start: number, end: number): number {
  if (end <= start || end - start > 15) return -1;
  let v = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i] - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/** Hex digit value or -1. */
export function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Result slots for parseHex64, reused to avoid allocation. */
export const hexOut = { lo: 0, hi: 0 };

/** Parses 1–16 hex digits in [start, end) into hexOut; false if invalid. */
export function parseHex64(buf: Uint8Array, start: number, end: number): boolean {
  const n = end - start;
  if (n < 1 || n > 16) return false;
  let lo = 0;
  let hi = 0;
  for (let i = start; i < end; i++) {
    const d = hexDigit(buf[i]);
    if (d < 0) return false;
    hi = ((hi << 4) | (lo >>> 28)) >>> 0;
    lo = ((lo << 4) | d) >>> 0;
  }
  hexOut.lo = lo;
  hexOut.hi = hi;
  return true;
}

/** Interns byte slices into a StringTable without building a string per occurrence. */
export class ByteInterner {
  private table: Int32Array;
  private mask: number;
  private readonly keys: Uint8Array[] = [];
  private readonly ids: number[] = [];

  constructor(private readonly strings: StringTable) {
    this.table = new Int32Array(1024).fill(-1);
    this.mask = 1023;
  }

  intern(buf: Uint8Array, start: number, end: number): number {
    let h = 0x811c9dc5;
    for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i], 0x01000193);
    let slot = (h >>> 0) & this.mask;
    const len = end - start;
    for (;;) {
      const e = this.table[slot];
      if (e < 0) break;
      const k = this.keys[e];
      if (k.length === len) {
        let same = true;
        for (let i = 0; i < len; i++) {
          if (k[i] !== buf[start + i]) {
            same = false;
            break;
          }
        }
        if (same) return this.ids[e];
      }
      slot = (slot + 1) & this.mask;
    }
    const id = this.strings.intern(latin1(buf, start, end));
    const entry = this.keys.length;
    this.keys.push(buf.slice(start, end));
    this.ids.push(id);
    this.table[slot] = entry;
    if (this.keys.length * 2 > this.mask) this.rehash();
    return id;
  }

  private rehash(): void {
    const size = (this.mask + 1) * 2;
    this.table = new Int32Array(size).fill(-1);
    this.mask = size - 1;
    for (let e = 0; e < this.keys.length; e++) {
      const k = this.keys[e];
      let h = 0x811c9dc5;
      for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k[i], 0x01000193);
      let slot = (h >>> 0) & this.mask;
      while (this.table[slot] >= 0) slot = (slot + 1) & this.mask;
      this.table[slot] = e;
    }
  }
}

/**
 * Splits a byte stream into lines across chunk boundaries. Calls onLine(buf, start, end, lineNo)
 * with `end` excluding the newline and a trailing CR. The buffer passed is only valid during the
 * call.
 */
export class LineSplitter {
  private carry: Uint8Array = new Uint8Array(0);
  private carryLen = 0;
  lineNo = 0;

  constructor(private readonly onLine: (buf: Uint8Array, start: number, end: number, lineNo: number) => void) {}

  push(chunk: Uint8Array): void {
    let pos = 0;
    const n = chunk.length;
    if (this.carryLen > 0) {
      const nl = chunk.indexOf(CH.LF);
      if (nl < 0) {
        this.appendCarry(chunk, 0, n);
        return;
      }
      this.appendCarry(chunk, 0, nl);
      this.emit(this.carry, 0, this.carryLen);
      this.carryLen = 0;
      pos = nl + 1;
    }
    for (;;) {
      const nl = chunk.indexOf(CH.LF, pos);
      if (nl < 0) break;
      this.emit(chunk, pos, nl);
      pos = nl + 1;
    }
    if (pos < n) this.appendCarry(chunk, pos, n);
  }

  /** A complete line (no newline in it): as push(line + "\n"), without copying it. */
  pushLine(buf: Uint8Array, start: number, end: number): void {
    if (this.carryLen > 0) {
      this.appendCarry(buf, start, end);
      this.emit(this.carry, 0, this.carryLen);
      this.carryLen = 0;
      return;
    }
    this.emit(buf, start, end);
  }

  end(): void {
    if (this.carryLen > 0) {
      this.emit(this.carry, 0, this.carryLen);
      this.carryLen = 0;
    }
  }

  private emit(buf: Uint8Array, start: number, end: number): void {
    this.lineNo++;
    if (end > start && buf[end - 1] === CH.CR) end--;
    this.onLine(buf, start, end, this.lineNo);
  }

  private appendCarry(src: Uint8Array, start: number, end: number): void {
    const need = this.carryLen + (end - start);
    if (need > this.carry.length) {
      const next = new Uint8Array(Math.max(need, this.carry.length * 2, 256));
      next.set(this.carry.subarray(0, this.carryLen));
      this.carry = next;
    }
    this.carry.set(src.subarray(start, end), this.carryLen);
    this.carryLen = need;
  }
}

/**
 * Byte-string -> int map for hot-path memoisation (no string per lookup): keys are copied into
 * one arena, looked up by FNV-1a hash with linear probing. Stops growing at `maxEntries` (a
 * lookup then simply misses), so adversarial inputs cost bounded memory.
 */
export class ByteMap {
  private table: Int32Array;
  private mask: number;
  private arena = new Uint8Array(1 << 14);
  private arenaLen = 0;
  private keyStart = new Int32Array(256);
  private keyLen = new Int32Array(256);
  private vals = new Int32Array(256);
  private hashes = new Int32Array(256);
  size = 0;

  constructor(private readonly maxEntries = 1 << 20) {
    this.table = new Int32Array(1024).fill(-1);
    this.mask = 1023;
  }

  /** The value stored for buf[start, end), or -1. */
  get(buf: Uint8Array, start: number, end: number): number {
    let h = 0x811c9dc5;
    for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i], 0x01000193);
    const len = end - start;
    const arena = this.arena;
    for (let slot = h & this.mask; ; slot = (slot + 1) & this.mask) {
      const e = this.table[slot];
      if (e < 0) return -1;
      if (this.hashes[e] !== h || this.keyLen[e] !== len) continue;
      const k = this.keyStart[e];
      let i = 0;
      while (i < len && arena[k + i] === buf[start + i]) i++;
      if (i === len) return this.vals[e];
    }
  }

  /** Stores `value` for buf[start, end), which must not be present yet. */
  set(buf: Uint8Array, start: number, end: number, value: number): void {
    if (this.size >= this.maxEntries) return;
    let h = 0x811c9dc5;
    for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i], 0x01000193);
    const len = end - start;
    if (this.arenaLen + len > this.arena.length) {
      const a = new Uint8Array(Math.max(this.arena.length * 2, this.arenaLen + len));
      a.set(this.arena.subarray(0, this.arenaLen));
      this.arena = a;
    }
    const e = this.size++;
    if (e === this.vals.length) {
      const grow = (x: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
        const y = new Int32Array(x.length * 2);
        y.set(x);
        return y;
      };
      this.keyStart = grow(this.keyStart);
      this.keyLen = grow(this.keyLen);
      this.vals = grow(this.vals);
      this.hashes = grow(this.hashes);
    }
    this.arena.set(buf.subarray(start, end), this.arenaLen);
    this.keyStart[e] = this.arenaLen;
    this.keyLen[e] = len;
    this.vals[e] = value;
    this.hashes[e] = h;
    this.arenaLen += len;
    this.insert(e, h);
    if (this.size * 2 > this.mask) {
      const size = (this.mask + 1) * 2;
      this.table = new Int32Array(size).fill(-1);
      this.mask = size - 1;
      for (let k = 0; k < this.size; k++) this.insert(k, this.hashes[k]);
    }
  }

  private insert(e: number, h: number): void {
    let slot = h & this.mask;
    while (this.table[slot] >= 0) slot = (slot + 1) & this.mask;
    this.table[slot] = e;
  }
}
