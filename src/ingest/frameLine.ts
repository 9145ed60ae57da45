/**
 * One stack-trace line of a kernel log, in every architecture's shape (FORMATS.md §2, §6), read
 * into the CaptureBuilder's frame columns. The frame token itself (`sym+0xOFF/0xSIZE [mod id]`,
 * `? `, bare hex) is CaptureBuilder.addToken's; this file peels what surrounds it:
 *
 *   x86 ≥4.10, arm64       ` ? sym+0x1/0x2 [mod]`   ` sym+0x1/0x2 (T)` (arm64 unwind source)
 *   symbolized (syzbot)    ` sym+0x1/0x2 kernel/x.c:12`   ` inlined_fn kernel/x.c:5 [inline]`
 *   x86 old, MIPS, ia64    ` [<ffffffff8135067c>] ? sym+0x1/0x2 [mod]`
 *   s390 first entry       `([<000003ff8086d036>] sym+0x36/0x1000 [mod])`      (a guess)
 *   powerpc                `[c00000001f930b0] [c000000008068df8] .sym+0x1/0x2 (unreliable)`
 *   ARM                    `[<c0236f5c>] (callee[+off/size]) from [<c02bb87c>] (caller+0x1/0x2)`
 *
 * Byte-level, no strings, linear.
 */
import { FrameFlag } from "../model.js";
import { CaptureBuilder, TokenKind } from "./builder.js";
import { CH, hexDigit, hexOut, indexOfByte, parseHex64 } from "./bytes.js";

const addrOut = { lo: 0, hi: 0, has: false, end: 0 };

/** `[<HEX>]` or `[HEX]` at p (hex 1–16 digits); sets addrOut, returns false if not there. */
function bracketAddr(buf: Uint8Array, p: number, end: number): boolean {
  if (p >= end || buf[p] !== CH.LBRACKET) return false;
  let q = p + 1;
  const angled = q < end && buf[q] === CH.LT;
  if (angled) q++;
  const h0 = q;
  while (q < end && hexDigit(buf[q]) >= 0 && q - h0 <= 16) q++;
  if (q === h0 || q - h0 > 16) return false;
  if (angled) {
    if (q >= end || buf[q] !== CH.GT) return false;
    if (!parseHex64(buf, h0, q)) return false;
    q++;
  } else if (!parseHex64(buf, h0, q)) return false;
  if (q >= end || buf[q] !== CH.RBRACKET) return false;
  addrOut.lo = hexOut.lo;
  addrOut.hi = hexOut.hi;
  addrOut.has = hexOut.lo !== 0 || hexOut.hi !== 0;
  addrOut.end = q + 1;
  return true;
}

function skipSpaces(buf: Uint8Array, p: number, end: number): number {
  while (p < end && (buf[p] === CH.SPACE || buf[p] === CH.TAB)) p++;
  return p;
}

function endsWith(buf: Uint8Array, start: number, end: number, s: string): boolean {
  if (end - start < s.length) return false;
  const b = end - s.length;
  for (let i = 0; i < s.length; i++) if (buf[b + i] !== s.charCodeAt(i)) return false;
  return true;
}

/**
 * Reads a frame token in [p, end) with the decorations other tools add: ` [inline]` pseudo-frames,
 * ` file.c:LINE`, ` (T)`-style unwind-source tags, ` (unreliable)`, `(null)`.
 */
export function addDecoratedToken(
  b: CaptureBuilder,
  buf: Uint8Array,
  p: number,
  end: number,
  line: number,
  hasAddr: boolean,
  lo: number,
  hi: number,
  flags: number,
): TokenKind {
  while (end > p && (buf[end - 1] === CH.SPACE || buf[end - 1] === CH.TAB)) end--;
  if (end <= p) return TokenKind.Bad;
  if (endsWith(buf, p, end, " (unreliable)")) {
    flags |= FrameFlag.GUESS;
    end -= 13;
    while (end > p && buf[end - 1] === CH.SPACE) end--;
  }
  // ` (T)` and friends: one capital letter in parentheses (arm64 kunwind_source).
  if (end - p >= 5 && buf[end - 1] === 41 && buf[end - 3] === 40 && buf[end - 4] === CH.SPACE && buf[end - 2] >= 65 && buf[end - 2] <= 90) {
    end -= 4;
    while (end > p && buf[end - 1] === CH.SPACE) end--;
  }
  if (endsWith(buf, p, end, "(null)")) {
    const q = skipSpaces(buf, p, end);
    if (end - q === 6) {
      const i = b.frames.push();
      b.frames.flags[i] = flags | FrameFlag.HAS_ADDRESS | FrameFlag.BARE_HEX;
      b.frames.addrLo[i] = lo;
      b.frames.addrHi[i] = hi;
      b.frames.line[i] = line;
      return TokenKind.Frame;
    }
  }
  if (endsWith(buf, p, end, " [inline]")) {
    // `name file.h:LINE [inline]`: a pseudo-frame without an address of its own.
    const q = skipSpaces(buf, p, end);
    let n = q;
    while (n < end && buf[n] !== CH.SPACE && buf[n] !== CH.PLUS) n++;
    if (n === q) return TokenKind.Bad;
    const i = b.frames.push();
    b.frames.symbol[i] = b.interner.intern(buf, q, n);
    b.frames.object[i] = b.interner.intern(VMLINUX_BYTES, 0, VMLINUX_BYTES.length);
    b.frames.flags[i] = flags | FrameFlag.INLINE | FrameFlag.SYMBOLIC;
    b.frames.line[i] = line;
    return TokenKind.Frame;
  }
  // ` path/file.c:LINE` (symbolized reports): the last word, `:` then digits to its end.
  const lastSpace = lastIndexOfByte(buf, CH.SPACE, p, end);
  if (lastSpace > p && isFileLine(buf, lastSpace + 1, end)) {
    end = lastSpace;
    while (end > p && buf[end - 1] === CH.SPACE) end--;
  }
  return b.addToken(buf, p, end, line, hasAddr, lo, hi, flags);
}

const VMLINUX_BYTES = new Uint8Array([118, 109, 108, 105, 110, 117, 120]);

function lastIndexOfByte(buf: Uint8Array, byte: number, start: number, end: number): number {
  for (let i = end - 1; i >= start; i--) if (buf[i] === byte) return i;
  return -1;
}

/** `something.c:123` or `x.S:12:3`: has a `.`, and ends in `:DIGITS` (optionally twice). */
function isFileLine(buf: Uint8Array, p: number, end: number): boolean {
  if (end - p < 4 || buf[p] === CH.LBRACKET) return false;
  let q = end;
  let groups = 0;
  for (;;) {
    const d = q;
    while (q > p && buf[q - 1] >= 48 && buf[q - 1] <= 57) q--;
    if (q === d || q <= p || buf[q - 1] !== CH.COLON) break;
    q--;
    groups++;
    if (groups === 2) break;
  }
  if (groups === 0) return false;
  return indexOfByte(buf, 46, p, q) >= 0;
}

/** Kinds of trace lines readFrameLine recognises besides plain frames. */
export const LineKind = {
  NotFrame: 0,
  Frame: 1,
  /** A line that looks like a frame but could not be read. */
  Bad: 2,
} as const;
export type LineKind = (typeof LineKind)[keyof typeof LineKind];

/**
 * Reads a trace line at buf[s, e) (blanks trimmed by the caller) into the current task. `strict`:
 * only lines that clearly are frames (an address bracket or `+0x…/0x…`) count; used outside a
 * `Call Trace:` block where a word could be anything. `armFirst`: the task has no frame yet, so an
 * ARM `from` line also contributes its callee.
 */
export function readFrameLine(b: CaptureBuilder, buf: Uint8Array, s: number, e: number, line: number, flags: number, strict: boolean): LineKind {
  if (s >= e) return LineKind.NotFrame;
  const c = buf[s];
  // s390 `([<addr>] token)`.
  if (c === 40 && s + 1 < e && buf[s + 1] === CH.LBRACKET && buf[e - 1] === 41) {
    if (!bracketAddr(buf, s + 1, e - 1)) return LineKind.NotFrame;
    const k = addDecoratedToken(b, buf, skipSpaces(buf, addrOut.end, e - 1), e - 1, line, addrOut.has, addrOut.lo, addrOut.hi, flags | FrameFlag.GUESS);
    return k === TokenKind.Bad ? LineKind.Bad : LineKind.Frame;
  }
  if (c === CH.LBRACKET) {
    if (!bracketAddr(buf, s, e)) return LineKind.NotFrame;
    let p = addrOut.end;
    let has = addrOut.has;
    let lo = addrOut.lo;
    let hi = addrOut.hi;
    const angled = buf[s + 1] === CH.LT;
    if (!angled) {
      // powerpc `[sp] [addr] token`: the second bracket is the return address.
      const q = skipSpaces(buf, p, e);
      if (!bracketAddr(buf, q, e)) return LineKind.NotFrame;
      p = addrOut.end;
      has = addrOut.has;
      lo = addrOut.lo;
      hi = addrOut.hi;
    }
    if (p < e && buf[p] !== CH.SPACE) return LineKind.Bad;
    p = skipSpaces(buf, p, e);
    if (p >= e) return LineKind.Bad;
    if (buf[p] === 40 && !endsWith(buf, p, p + 6 <= e ? p + 6 : e, "(null)")) return armLine(b, buf, p, e, line, has, lo, hi, flags);
    const k = addDecoratedToken(b, buf, p, e, line, has, lo, hi, flags);
    return k === TokenKind.Bad ? LineKind.Bad : LineKind.Frame;
  }
  if (strict && !looksSymbolic(buf, s, e)) return LineKind.NotFrame;
  const k = addDecoratedToken(b, buf, s, e, line, false, 0, 0, flags);
  return k === TokenKind.Bad ? LineKind.Bad : LineKind.Frame;
}

/** `sym+0xN/0xM` somewhere in the line, or a `? ` start, or ` [inline]`. */
export function looksSymbolic(buf: Uint8Array, s: number, e: number): boolean {
  if (e - s >= 2 && buf[s] === CH.QUESTION && buf[s + 1] === CH.SPACE) return true;
  if (endsWith(buf, s, e, " [inline]")) return true;
  for (let i = s; i + 3 < e; i++) {
    if (buf[i] === CH.PLUS && buf[i + 1] === CH.ZERO && buf[i + 2] === CH.x) {
      for (let j = i + 3; j + 2 < e && j < i + 24; j++) {
        if (buf[j] === CH.SLASH) return buf[j + 1] === CH.ZERO && buf[j + 2] === CH.x;
        if (hexDigit(buf[j]) < 0) break;
      }
    }
  }
  return false;
}

/** ARM: `(callee) from [<from>] (caller+off/size)` at p, the callee's address already read. */
function armLine(b: CaptureBuilder, buf: Uint8Array, p: number, e: number, line: number, has: boolean, lo: number, hi: number, flags: number): LineKind {
  const close = indexOfByte(buf, 41, p + 1, e);
  if (close < 0) return LineKind.Bad;
  let q = skipSpaces(buf, close + 1, e);
  if (e - q < 5 || buf[q] !== 102 || buf[q + 1] !== 114 || buf[q + 2] !== 111 || buf[q + 3] !== 109 || buf[q + 4] !== CH.SPACE) return LineKind.Bad;
  q = skipSpaces(buf, q + 5, e);
  if (!bracketAddr(buf, q, e)) return LineKind.Bad;
  const fromHas = addrOut.has;
  const fromLo = addrOut.lo;
  const fromHi = addrOut.hi;
  let r = skipSpaces(buf, addrOut.end, e);
  if (r >= e || buf[r] !== 40 || buf[e - 1] !== 41) return LineKind.Bad;
  r++;
  const t = b.current;
  const before = b.frames.length;
  if (t !== null && b.frames.length === t.frameStart) {
    if (b.addToken(buf, p + 1, close, line, has, lo, hi, flags) === TokenKind.Bad) return LineKind.Bad;
  }
  if (b.addToken(buf, r, e - 1, line, fromHas, fromLo, fromHi, flags) === TokenKind.Bad) {
    b.frames.length = before;
    return LineKind.Bad;
  }
  return LineKind.Frame;
}
