// patchsafe /proc stack-text tokenizer (AssemblyScript 0.28, runtime stub).
//
// The hot part of reading a `grep -H . /proc/*/task/*/stack` dump: millions of lines of the shape
//
//     /proc/PID/task/TID/stack:[<0>] FRAME TEXT
//
// with a few hundred distinct frame texts and stacks. This module splits lines, groups
// consecutive lines of one stack file into a *run*, interns each frame text (bytes after the
// colon) and each run's sequence of frame-text ids, and reports runs as (pid, tid, first line,
// line count, stack id). Every other line is reported as OTHER with its bytes' position, and the
// host (src/ingest/procTokenizer.ts) hands it to the TypeScript parser: this module decides
// nothing about the format beyond "is this a grep -H stack line", so the TypeScript parser stays
// the one definition of the grammar (and the differential tests compare the two paths).
//
// ABI: fixed buffers in linear memory, exports take and return i32/u32 only.
//   init(inputCapacity)            allocate everything (call once)
//   inputPtr()/inputCapacity()     the host writes bytes into INPUT[0..len)
//   growInput(cap)                 a longer line than the buffer: new INPUT, old bytes copied
//   run(start, len)                process complete lines of INPUT[start..len); returns the
//                                  offset of the first unprocessed byte (a partial line, or a
//                                  full event buffer: drain and call again from there)
//   finish()                       close the open run (needs one free event slot)
//   eventPtr()/eventCount()        events, EVENT_WORDS u32 each, in input order; the host
//                                  drains them after every run()/finish() (run resets count)
//   textPtr/textOffsetPtr/textLengthPtr/textCount     frame-text table (ids 0..count-1)
//   stackWordsPtr/stackOffsetPtr/stackLengthPtr/stackCount   stack table (frame-text ids)
// Pointers move when a table grows: the host re-reads them after every call.
//
// Memory: a bump allocator over __heap_base; a table that grows gets a new block and the old
// one is abandoned (wasm memory cannot shrink; growth doubles, so waste stays below 2x).

import { bumpAlloc } from "./bump";

const ABI_VERSION: u32 = 1;

export const EVENT_WORDS: u32 = 6;
const EV_RUN: u32 = 1;
const EV_OTHER: u32 = 2;
const EVENT_CAPACITY: u32 = 8192;
/** Bytes the tokenizer may read past the end of INPUT (8-byte loads of a line's tail). */
const PAD: usize = 16;
/** A path longer than this is not remembered (it is still parsed on every line). */
const PATH_CAP: u32 = 64;

function realloc(old: usize, oldBytes: usize, newBytes: usize): usize {
  const p = bumpAlloc(newBytes);
  memory.copy(p, old, oldBytes);
  return p;
}

let inPtr: usize = 0;
let inCap: u32 = 0;
let evPtr: usize = 0;
let evN: u32 = 0;
let lineNo: u32 = 0;

// Frame-text table: TEXT arena + per-id offset/length/hash, open-addressing slots (id + 1).
let txPtr: usize = 0;
let txCap: u32 = 0;
let txLen: u32 = 0;
let ftOff: usize = 0;
let ftLen: usize = 0;
let ftHash: usize = 0;
let ftCap: u32 = 0;
let ftN: u32 = 0;
let ftSlots: usize = 0;
let ftSlotCap: u32 = 0;

// Stack table: WORDS arena of frame-text ids + per-id offset (in words)/length/hash, slots.
let swPtr: usize = 0;
let swCap: u32 = 0;
let swLen: u32 = 0;
let stOff: usize = 0;
let stLen: usize = 0;
let stHash: usize = 0;
let stCap: u32 = 0;
let stN: u32 = 0;
let stSlots: usize = 0;
let stSlotCap: u32 = 0;

// The open run.
let runOpen: bool = false;
let runPid: u32 = 0;
let runTid: u32 = 0;
let runLine: u32 = 0;
let runHash: u32 = 0x811c9dc5; // the same seed closeRun() resets it to: the first run must hash like the rest
let curPtr: usize = 0;
let curCap: u32 = 0;
let curN: u32 = 0;
let pathPtr: usize = 0;
let pathLen: u32 = 0; // 0: no remembered path

// Stack prediction: a dump repeats a few hundred stacks, so once a run's first text is known, the
// stack most recently seen starting with it is a good guess for the rest. Each further line is
// then checked against the guess's text by one compare (no hash, no table probe); the first
// mismatch drops the guess and the run goes on through the tables. A run that matched its guess
// to the end is that stack (stacks are unique by their text ids).
/** Per text id: 1 + the last stack that started with it (0: none). ftCap entries. */
let firstStack: usize = 0;
let predStack: i32 = -1;
let predOff: u32 = 0;
let predLen: u32 = 0;

export function abiVersion(): u32 {
  return ABI_VERSION;
}

export function init(inputCapacity: u32): void {
  inCap = inputCapacity;
  inPtr = bumpAlloc(<usize>inCap + PAD);
  evPtr = bumpAlloc(<usize>EVENT_CAPACITY * EVENT_WORDS * 4);
  txCap = 1 << 16;
  txPtr = bumpAlloc(<usize>txCap + PAD);
  ftCap = 1024;
  ftOff = bumpAlloc(<usize>ftCap * 4);
  ftLen = bumpAlloc(<usize>ftCap * 4);
  ftHash = bumpAlloc(<usize>ftCap * 4);
  firstStack = bumpAlloc(<usize>ftCap * 4);
  memory.fill(firstStack, 0, <usize>ftCap * 4);
  ftSlotCap = 4096;
  ftSlots = bumpAlloc(<usize>ftSlotCap * 4);
  memory.fill(ftSlots, 0, <usize>ftSlotCap * 4);
  swCap = 1 << 14;
  swPtr = bumpAlloc(<usize>swCap * 4);
  stCap = 1024;
  stOff = bumpAlloc(<usize>stCap * 4);
  stLen = bumpAlloc(<usize>stCap * 4);
  stHash = bumpAlloc(<usize>stCap * 4);
  stSlotCap = 4096;
  stSlots = bumpAlloc(<usize>stSlotCap * 4);
  memory.fill(stSlots, 0, <usize>stSlotCap * 4);
  curCap = 256;
  curPtr = bumpAlloc(<usize>curCap * 4);
  pathPtr = bumpAlloc(PATH_CAP);
  leanInit();
}

export function inputPtr(): usize {
  return inPtr;
}
export function inputCapacity(): u32 {
  return inCap;
}

/** A new INPUT of `cap` bytes holding the old one's first `keep` bytes. */
export function growInput(cap: u32, keep: u32): void {
  assert(cap >= keep);
  inPtr = realloc(inPtr, keep, <usize>cap + PAD);
  inCap = cap;
}

export function eventPtr(): usize {
  return evPtr;
}
export function eventCount(): u32 {
  return evN;
}
export function lineCount(): u32 {
  return lineNo;
}
export function textPtr(): usize {
  return txPtr;
}
export function textOffsetPtr(): usize {
  return ftOff;
}
export function textLengthPtr(): usize {
  return ftLen;
}
export function textCount(): u32 {
  return ftN;
}
export function stackWordsPtr(): usize {
  return swPtr;
}
export function stackOffsetPtr(): usize {
  return stOff;
}
export function stackLengthPtr(): usize {
  return stLen;
}
export function stackCount(): u32 {
  return stN;
}

// ---- hashing and comparing -----------------------------------------------------------------

/**
 * Bytes [a, a+n) == [b, b+n): 16 at a time (wasm SIMD), the tail as one overlapping 16-, 8- or
 * 4-byte load (std's memory.compare goes byte by byte; a byte loop for the tail was a tenth of
 * the tokenizer's time). Reads only inside both ranges.
 */
@inline function equalBytes(a: usize, b: usize, n: usize): bool {
  if (n >= 16) {
    let i: usize = 0;
    while (i + 16 < n) {
      if (!i8x16.all_true(i8x16.eq(v128.load(a + i), v128.load(b + i)))) return false;
      i += 16;
    }
    return i8x16.all_true(i8x16.eq(v128.load(a + n - 16), v128.load(b + n - 16)));
  }
  if (n >= 8) return load<u64>(a) == load<u64>(b) && load<u64>(a + n - 8) == load<u64>(b + n - 8);
  if (n >= 4) return load<u32>(a) == load<u32>(b) && load<u32>(a + n - 4) == load<u32>(b + n - 4);
  for (let i: usize = 0; i < n; i++) if (load<u8>(a + i) != load<u8>(b + i)) return false;
  return true;
}

/** A 64-bit multiply-xorshift hash of bytes [p, p+n), 8 bytes per step (tail masked). */
@inline function hashBytes(p: usize, n: u32): u32 {
  let h: u64 = 0x9e3779b97f4a7c15 ^ <u64>n;
  let i: u32 = 0;
  while (i + 8 <= n) {
    h = (h ^ load<u64>(p + i)) * 0xff51afd7ed558ccd;
    h ^= h >> 32;
    i += 8;
  }
  if (i < n) {
    const w = load<u64>(p + i) & ((<u64>1 << (<u64>(n - i) << 3)) - 1);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53;
  }
  h ^= h >> 29;
  h *= 0xff51afd7ed558ccd;
  h ^= h >> 32;
  return <u32>h;
}

// ---- frame-text table ----------------------------------------------------------------------

function rehashTexts(): void {
  const cap = ftSlotCap << 1;
  const slots = bumpAlloc(<usize>cap * 4);
  memory.fill(slots, 0, <usize>cap * 4);
  const mask = cap - 1;
  for (let id: u32 = 0; id < ftN; id++) {
    let i = load<u32>(ftHash + (<usize>id << 2)) & mask;
    while (load<u32>(slots + (<usize>i << 2)) != 0) i = (i + 1) & mask;
    store<u32>(slots + (<usize>i << 2), id + 1);
  }
  ftSlots = slots;
  ftSlotCap = cap;
}

function internText(p: usize, n: u32): u32 {
  const h = hashBytes(p, n);
  const mask = ftSlotCap - 1;
  let i = h & mask;
  for (;;) {
    const v = load<u32>(ftSlots + (<usize>i << 2));
    if (v == 0) break;
    const id = v - 1;
    const a = <usize>id << 2;
    if (load<u32>(ftHash + a) == h && load<u32>(ftLen + a) == n && equalBytes(txPtr + load<u32>(ftOff + a), p, n)) return id;
    i = (i + 1) & mask;
  }
  // New text: append to the arena and the per-id columns.
  if (txLen + n > txCap) {
    let c = txCap << 1;
    while (txLen + n > c) c <<= 1;
    txPtr = realloc(txPtr, txLen, <usize>c + PAD);
    txCap = c;
  }
  if (ftN == ftCap) {
    const c = ftCap << 1;
    ftOff = realloc(ftOff, <usize>ftCap * 4, <usize>c * 4);
    ftLen = realloc(ftLen, <usize>ftCap * 4, <usize>c * 4);
    ftHash = realloc(ftHash, <usize>ftCap * 4, <usize>c * 4);
    firstStack = realloc(firstStack, <usize>ftCap * 4, <usize>c * 4);
    memory.fill(firstStack + <usize>ftCap * 4, 0, <usize>(c - ftCap) * 4);
    ftCap = c;
  }
  const id = ftN++;
  const a = <usize>id << 2;
  memory.copy(txPtr + txLen, p, n);
  store<u32>(ftOff + a, txLen);
  store<u32>(ftLen + a, n);
  store<u32>(ftHash + a, h);
  txLen += n;
  store<u32>(ftSlots + (<usize>i << 2), id + 1);
  if (ftN * 2 > ftSlotCap) rehashTexts();
  return id;
}

// ---- stack table ---------------------------------------------------------------------------

function rehashStacks(): void {
  const cap = stSlotCap << 1;
  const slots = bumpAlloc(<usize>cap * 4);
  memory.fill(slots, 0, <usize>cap * 4);
  const mask = cap - 1;
  for (let id: u32 = 0; id < stN; id++) {
    let i = load<u32>(stHash + (<usize>id << 2)) & mask;
    while (load<u32>(slots + (<usize>i << 2)) != 0) i = (i + 1) & mask;
    store<u32>(slots + (<usize>i << 2), id + 1);
  }
  stSlots = slots;
  stSlotCap = cap;
}

function internStack(): u32 {
  const n = curN;
  const h = runHash ^ (n * 0x9e3779b1);
  const mask = stSlotCap - 1;
  let i = h & mask;
  for (;;) {
    const v = load<u32>(stSlots + (<usize>i << 2));
    if (v == 0) break;
    const id = v - 1;
    const a = <usize>id << 2;
    if (load<u32>(stHash + a) == h && load<u32>(stLen + a) == n && equalBytes(swPtr + (<usize>load<u32>(stOff + a) << 2), curPtr, <usize>n << 2)) return id;
    i = (i + 1) & mask;
  }
  if (swLen + n > swCap) {
    let c = swCap << 1;
    while (swLen + n > c) c <<= 1;
    swPtr = realloc(swPtr, <usize>swLen << 2, <usize>c << 2);
    swCap = c;
  }
  if (stN == stCap) {
    const c = stCap << 1;
    stOff = realloc(stOff, <usize>stCap * 4, <usize>c * 4);
    stLen = realloc(stLen, <usize>stCap * 4, <usize>c * 4);
    stHash = realloc(stHash, <usize>stCap * 4, <usize>c * 4);
    leanGrow(c);
    stCap = c;
  }
  const id = stN++;
  const a = <usize>id << 2;
  memory.copy(swPtr + (<usize>swLen << 2), curPtr, <usize>n << 2);
  store<u32>(stOff + a, swLen);
  store<u32>(stLen + a, n);
  store<u32>(stHash + a, h);
  swLen += n;
  store<u32>(stSlots + (<usize>i << 2), id + 1);
  if (stN * 2 > stSlotCap) rehashStacks();
  return id;
}

// ---- events --------------------------------------------------------------------------------

@inline function event(kind: u32, a: u32, b: u32, c: u32, d: u32, e: u32): void {
  const p = evPtr + <usize>evN * EVENT_WORDS * 4;
  store<u32>(p, kind);
  store<u32>(p, a, 4);
  store<u32>(p, b, 8);
  store<u32>(p, c, 12);
  store<u32>(p, d, 16);
  store<u32>(p, e, 20);
  evN++;
}

function closeRun(): void {
  if (!runOpen) return;
  const id: u32 = predStack >= 0 && curN == predLen ? <u32>predStack : internStack();
  if (curN > 0) store<u32>(firstStack + (<usize>load<u32>(curPtr) << 2), id + 1);
  event(EV_RUN, runPid, runTid, runLine, curN, id);
  runOpen = false;
  curN = 0;
  runHash = 0x811c9dc5;
  predStack = -1;
}

/** The text id of line `curN` of the open run, text [p, p+n): the guessed stack's when it matches. */
@inline function runText(p: usize, n: u32): u32 {
  if (predStack >= 0) {
    if (curN < predLen) {
      const cand = load<u32>(swPtr + (<usize>(predOff + curN) << 2));
      const a = <usize>cand << 2;
      if (load<u32>(ftLen + a) == n && equalBytes(txPtr + load<u32>(ftOff + a), p, n)) return cand;
    }
    predStack = -1;
    return internText(p, n);
  }
  const id = internText(p, n);
  if (curN == 0) {
    const s = load<u32>(firstStack + (<usize>id << 2));
    if (s != 0) {
      predStack = <i32>(s - 1);
      predOff = load<u32>(stOff + (<usize>(s - 1) << 2));
      predLen = load<u32>(stLen + (<usize>(s - 1) << 2));
    }
  }
  return id;
}

@inline function pushFrame(id: u32): void {
  if (curN == curCap) {
    const c = curCap << 1;
    curPtr = realloc(curPtr, <usize>curCap * 4, <usize>c * 4);
    curCap = c;
  }
  store<u32>(curPtr + (<usize>curN << 2), id);
  curN++;
  runHash = (runHash ^ id) * 0x01000193;
}

// ---- lines ---------------------------------------------------------------------------------

/** Offset of the first LF in [p, end) (8 bytes per step), or -1. */
@inline function findLF(p: usize, end: usize): isize {
  const start = p;
  const lf = i8x16.splat(10);
  while (p + 16 <= end) {
    const m = i8x16.bitmask(i8x16.eq(v128.load(p), lf));
    if (m != 0) return <isize>(p - start) + <isize>ctz(m);
    p += 16;
  }
  while (p + 8 <= end) {
    const v = load<u64>(p) ^ 0x0a0a0a0a0a0a0a0a;
    const t = (v - 0x0101010101010101) & ~v & 0x8080808080808080;
    if (t != 0) return <isize>(p - start) + <isize>(ctz(t) >> 3);
    p += 8;
  }
  while (p < end) {
    if (load<u8>(p) == 10) return <isize>(p - start);
    p++;
  }
  return -1;
}

@inline function isDigit(c: u32): bool {
  return c - 48 < 10;
}

/** Decimal digits at [p, end): 1..9 of them (so the value fits u32); sets numEnd. -1 otherwise. */
let numEnd: usize = 0;
@inline function readNumber(p: usize, end: usize): i64 {
  let q = p;
  let v: u32 = 0;
  while (q < end && isDigit(load<u8>(q))) {
    v = v * 10 + (load<u8>(q) - 48);
    q++;
  }
  numEnd = q;
  const n = q - p;
  if (n == 0 || n > 9) return -1;
  return <i64>v;
}

// "/proc/", "/task/", "/stack" as little-endian words.
const W_PROC: u32 = 0x6f72702f; // "/pro"
const W_TASK: u32 = 0x7361742f; // "/tas"
const W_STAC: u32 = 0x6174732f; // "/sta"

/**
 * A grep -H stack line [s, e) (CRs and trailing blanks already cut): the end of the path when
 * it is `/proc/PID[/task/TID]/stack:` with both numbers of 1..9 digits, else 0. Sets linePid/Tid.
 */
let linePid: u32 = 0;
let lineTid: u32 = 0;
function parsePath(s: usize, e: usize): usize {
  if (e - s < 8 || load<u32>(s) != W_PROC || load<u16>(s + 4) != 0x2f63) return 0; // "/proc/"
  const pid = readNumber(s + 6, e);
  if (pid < 0) return 0;
  let q = numEnd;
  let tid = pid;
  if (q + 6 <= e && load<u32>(q) == W_TASK && load<u16>(q + 4) == 0x2f6b) {
    // "/task/"
    tid = readNumber(q + 6, e);
    if (tid < 0) return 0;
    q = numEnd;
  }
  if (!(q + 6 <= e && load<u32>(q) == W_STAC && load<u16>(q + 4) == 0x6b63)) return 0; // "/stack"
  q += 6;
  if (q >= e || load<u8>(q) != 58) return 0; // ':'
  linePid = <u32>pid;
  lineTid = <u32>tid;
  return q;
}

/**
 * Processes the complete lines of INPUT[start, len). Returns the offset of the first byte not
 * processed: the start of a partial last line, or where the event buffer filled up.
 */
export function run(start: u32, len: u32): u32 {
  evN = 0;
  let pos = <usize>start;
  const end = <usize>len;
  const base = inPtr;
  while (pos < end) {
    // Room for a run closed by this line plus an OTHER event.
    if (evN + 2 > EVENT_CAPACITY) break;
    // The common line: the open run's path, then the guessed stack's next text, then LF. Checked
    // by two compares and one byte, with no search for the LF: the line the general path below
    // would read the same way (the path and a text hold no LF, and a text never ends in a CR or
    // a blank, so a line with either is not this one and goes the general way).
    if (predStack >= 0 && curN < predLen && pathLen != 0) {
      const cand = load<u32>(swPtr + (<usize>(predOff + curN) << 2));
      const a = <usize>cand << 2;
      const n = load<u32>(ftLen + a);
      const s = base + pos;
      const lf = s + <usize>pathLen + <usize>n;
      if (lf < base + end && load<u8>(lf) == 10 && equalBytes(s, pathPtr, pathLen) && equalBytes(s + <usize>pathLen, txPtr + load<u32>(ftOff + a), n)) {
        lineNo++;
        pushFrame(cand);
        pos = lf + 1 - base;
        continue;
      }
    }
    const off = findLF(base + pos, base + end);
    if (off < 0) break;
    const s = base + pos;
    const nl = s + <usize>off;
    lineNo++;
    // The line as the TypeScript path sees it: one CR cut by each of its two line splitters,
    // then blanks trimmed (the fast shape starts with '/', so only the end needs it).
    let e = nl;
    if (e > s && load<u8>(e - 1) == 13) e--;
    const fastShape = e - s >= 2 && load<u8>(s) == 47 && load<u8>(s + 1) == 112; // "/p"
    if (e > s && load<u8>(e - 1) == 13) e--;
    while (e > s && (load<u8>(e - 1) == 32 || load<u8>(e - 1) == 9)) e--;
    let colon: usize = 0;
    if (fastShape) {
      // Same stack file as the previous line: compare the remembered path (with its colon).
      if (runOpen && pathLen != 0 && <usize>pathLen <= e - s && equalBytes(s, pathPtr, pathLen)) {
        colon = s + pathLen - 1;
      } else {
        colon = parsePath(s, e);
        if (colon != 0) {
          closeRun();
          runOpen = true;
          runPid = linePid;
          runTid = lineTid;
          runLine = lineNo;
          const plen = <u32>(colon + 1 - s);
          if (plen <= PATH_CAP) {
            memory.copy(pathPtr, s, plen);
            pathLen = plen;
          } else pathLen = 0;
        }
      }
    }
    if (colon != 0) {
      pushFrame(runText(colon + 1, <u32>(e - colon - 1)));
    } else {
      closeRun();
      pathLen = 0;
      event(EV_OTHER, lineNo, <u32>pos, <u32>(nl - s), 0, 0);
    }
    pos += <usize>off + 1;
  }
  return <u32>pos;
}

/** End of input: closes the open run. The host feeds a last line without LF as if it had one. */
export function finish(): void {
  evN = 0;
  closeRun();
  pathLen = 0;
}

// ---- lean tasks ----------------------------------------------------------------------------
//
// The host's commonest case, in wasm: a task that is exactly one run of a stack whose rows the
// host already shares (src/ingest/procText.ts leanRuns() is the definition, and the fallback).
// The host marks such stacks with leanMark(stack, frameStart, frameCount) once it has placed their
// rows; leanRuns() then walks run events and, for each run whose next run starts another task,
// writes that task's row (pid, tid, frameStart, frameCount, first line) into the LEAN_* columns,
// which the host copies into its task table with one set() per column. In TypeScript this loop
// ran interpreted for most of a 100k-task dump: V8's optimizing compile of it took ~15 ms here.
//
//   leanMark(stack, start, count)   count 0: not lean (never called for such a stack)
//   leanRuns(from, to, room)        events [from, to) (word indexes); reads and updates the lean
//                                   state block; returns the word index of the first event left
//   leanStatePtr()                  u32 × 7: pid, tid, line, stack, count, last line, rows written
//   leanPidPtr/leanTidPtr (f64) and leanStartPtr/leanCountPtr/leanLinePtr (u32): rows [0, written)

let lnCap: u32 = 0;
let lnStart: usize = 0;
let lnCount: usize = 0;
let lnState: usize = 0;
let lnPid: usize = 0;
let lnTid: usize = 0;
let lnRowStart: usize = 0;
let lnRowCount: usize = 0;
let lnRowLine: usize = 0;

// Allocated by init() and grown with the stack table (leanGrow from internStack): leanMark() and
// leanRuns() run while the host holds views of memory (a delivery) and must not allocate.
function leanInit(): void {
  lnState = bumpAlloc(7 * 4);
  memory.fill(lnState, 0, 7 * 4);
  lnPid = bumpAlloc(<usize>EVENT_CAPACITY * 8);
  lnTid = bumpAlloc(<usize>EVENT_CAPACITY * 8);
  lnRowStart = bumpAlloc(<usize>EVENT_CAPACITY * 4);
  lnRowCount = bumpAlloc(<usize>EVENT_CAPACITY * 4);
  lnRowLine = bumpAlloc(<usize>EVENT_CAPACITY * 4);
  leanGrow(stCap);
}

/** Lean marks for stack ids [0, cap): the new ones unmarked. */
function leanGrow(cap: u32): void {
  lnStart = realloc(lnStart, <usize>lnCap * 4, <usize>cap * 4);
  lnCount = realloc(lnCount, <usize>lnCap * 4, <usize>cap * 4);
  memory.fill(lnCount + (<usize>lnCap << 2), 0, <usize>(cap - lnCap) * 4);
  lnCap = cap;
}

/** Marks a stack the host shares as lean (count > 0); ids the tokenizer has not made are ignored. */
export function leanMark(stack: u32, start: u32, count: u32): void {
  if (stack >= stN) return;
  store<u32>(lnStart + (<usize>stack << 2), start);
  store<u32>(lnCount + (<usize>stack << 2), count);
}

export function leanStatePtr(): usize {
  return lnState;
}
export function leanPidPtr(): usize {
  return lnPid;
}
export function leanTidPtr(): usize {
  return lnTid;
}
export function leanStartPtr(): usize {
  return lnRowStart;
}
export function leanCountPtr(): usize {
  return lnRowCount;
}
export function leanLinePtr(): usize {
  return lnRowLine;
}

export function leanRuns(from: u32, to: u32, room: u32): u32 {
  let pid = load<u32>(lnState);
  let tid = load<u32>(lnState, 4);
  let line = load<u32>(lnState, 8);
  let stack = load<u32>(lnState, 12);
  let count = load<u32>(lnState, 16);
  let last = load<u32>(lnState, 20);
  if (room > EVENT_CAPACITY) room = EVENT_CAPACITY;
  let m: u32 = 0;
  let k = from;
  for (; k < to; k += EVENT_WORDS) {
    const e = evPtr + (<usize>k << 2);
    if (load<u32>(e) != EV_RUN) break;
    const p = load<u32>(e, 4);
    const t = load<u32>(e, 8);
    if (p == pid && t == tid) break;
    if (stack >= lnCap || m == room) break;
    const c = load<u32>(lnCount + (<usize>stack << 2));
    if (c == 0) break;
    store<f64>(lnPid + (<usize>m << 3), <f64>pid);
    store<f64>(lnTid + (<usize>m << 3), <f64>tid);
    store<u32>(lnRowStart + (<usize>m << 2), load<u32>(lnStart + (<usize>stack << 2)));
    store<u32>(lnRowCount + (<usize>m << 2), c);
    store<u32>(lnRowLine + (<usize>m << 2), line);
    m++;
    const l = load<u32>(e, 12);
    const n = load<u32>(e, 16);
    const end = l + n - 1;
    if (end > last) last = end;
    pid = p;
    tid = t;
    line = l;
    stack = load<u32>(e, 20);
    count = n;
  }
  store<u32>(lnState, pid);
  store<u32>(lnState, tid, 4);
  store<u32>(lnState, line, 8);
  store<u32>(lnState, stack, 12);
  store<u32>(lnState, count, 16);
  store<u32>(lnState, last, 20);
  store<u32>(lnState, m, 24);
  return k;
}

// ---- /proc/kallsyms -------------------------------------------------------------------------
//
// `ADDR TYPE NAME[\t[module]]` lines (src/symbols/table.ts parseSymbolTable is the definition):
// kallsymsParse(len) reads INPUT[0, len) into per-symbol columns. Any line it does not accept
// ends the parse with its line number; the host then runs the TypeScript parser, which owns
// every error message. Module names are interned by first appearance (1-based; 0 = none).
//
//   kallsymsParse(len) -> symbol count, or -(line number) of a line it does not accept
//   ksAddrLoPtr/ksAddrHiPtr/ksTypePtr/ksNameStartPtr/ksNameLenPtr/ksModulePtr   columns
//   ksModuleCount/ksModuleStartPtr/ksModuleLenPtr   module names (offsets into INPUT)

let ksCap: u32 = 0;
let ksLo: usize = 0;
let ksHi: usize = 0;
let ksType: usize = 0;
let ksNameStart: usize = 0;
let ksNameLen: usize = 0;
let ksModule: usize = 0;
let ksPfx: usize = 0;
let ksNonZero: bool = false;
let ksModCap: u32 = 0;
let ksModN: u32 = 0;
let ksModStart: usize = 0;
let ksModLen: usize = 0;

function ksGrow(): void {
  const c = ksCap == 0 ? 1 << 16 : ksCap << 1;
  ksLo = realloc(ksLo, <usize>ksCap * 4, <usize>c * 4);
  ksHi = realloc(ksHi, <usize>ksCap * 4, <usize>c * 4);
  ksType = realloc(ksType, <usize>ksCap, <usize>c);
  ksNameStart = realloc(ksNameStart, <usize>ksCap * 4, <usize>c * 4);
  ksNameLen = realloc(ksNameLen, <usize>ksCap * 4, <usize>c * 4);
  ksModule = realloc(ksModule, <usize>ksCap * 4, <usize>c * 4);
  ksPfx = realloc(ksPfx, <usize>ksCap, <usize>c);
  ksCap = c;
}

function ksModuleId(s: usize, n: u32): u32 {
  for (let m: u32 = 0; m < ksModN; m++) {
    const a = <usize>m << 2;
    if (load<u32>(ksModLen + a) == n && equalBytes(inPtr + load<u32>(ksModStart + a), s, n)) return m + 1;
  }
  if (ksModN == ksModCap) {
    const c = ksModCap == 0 ? 64 : ksModCap << 1;
    ksModStart = realloc(ksModStart, <usize>ksModCap * 4, <usize>c * 4);
    ksModLen = realloc(ksModLen, <usize>ksModCap * 4, <usize>c * 4);
    ksModCap = c;
  }
  const a = <usize>ksModN << 2;
  store<u32>(ksModStart + a, <u32>(s - inPtr));
  store<u32>(ksModLen + a, n);
  ksModN++;
  return ksModN;
}

@inline function hexValue(c: u32): i32 {
  if (c - 48 < 10) return <i32>(c - 48);
  if (c - 97 < 6) return <i32>(c - 87);
  if (c - 65 < 6) return <i32>(c - 55);
  return -1;
}

// "__pf" and "x_" as little-endian words: a leading `__pfx_` is folded into the pfx column (the
// name index of src/symbols/table.ts stores names that way).
const W_PFX: u32 = 0x66705f5f;
const H_PFX: u16 = 0x5f78;

export function kallsymsParse(len: u32): i32 {
  ksModN = 0;
  ksNonZero = false;
  let n: u32 = 0;
  let line: i32 = 0;
  let pos = inPtr;
  const end = inPtr + <usize>len;
  while (pos < end) {
    line++;
    const off = findLF(pos, end);
    const eol = off < 0 ? end : pos + <usize>off;
    let e = eol;
    if (e > pos && load<u8>(e - 1) == 13) e--;
    const s = pos;
    pos = eol + 1;
    if (e == s) continue;
    // ADDR: 1..16 hex digits up to the first space.
    let p = s;
    let lo: u32 = 0;
    let hi: u32 = 0;
    while (p < e && load<u8>(p) != 32) {
      const d = hexValue(load<u8>(p));
      if (d < 0) return -line;
      hi = (hi << 4) | (lo >>> 28);
      lo = (lo << 4) | <u32>d;
      p++;
    }
    if (p == s || p - s > 16 || p + 3 > e || load<u8>(p + 2) != 32) return -line;
    const type = load<u8>(p + 1);
    const nameStart = p + 3;
    let nameEnd = e;
    let mod: u32 = 0;
    let q = nameStart;
    // Names stay bytes on the host: only ASCII (anything else is the TypeScript parser's).
    while (q < e && load<u8>(q) != 9) {
      if (load<u8>(q) >= 128) return -line;
      q++;
    }
    if (q < e) {
      // TAB: a `[module]` column; the first '[' and first ']' after it, inside the line.
      nameEnd = q;
      let open = q;
      while (open < e && load<u8>(open) != 91) open++;
      let close = q;
      while (close < e && load<u8>(close) != 93) close++;
      if (open >= e || close >= e || open > close) return -line;
      for (let k = open + 1; k < close; k++) if (load<u8>(k) >= 128) return -line;
      mod = ksModuleId(open + 1, <u32>(close - open - 1));
    }
    while (nameEnd > nameStart && load<u8>(nameEnd - 1) == 32) nameEnd--;
    if (nameEnd <= nameStart) return -line;
    if (n == ksCap) ksGrow();
    let at = nameStart;
    let pfx: u32 = 0;
    while (nameEnd - at > 6 && load<u32>(at) == W_PFX && load<u16>(at + 4) == H_PFX) {
      if (pfx == 255) return -line;
      pfx++;
      at += 6;
    }
    if (lo != 0 || hi != 0) ksNonZero = true;
    store<u32>(ksLo + (<usize>n << 2), lo);
    store<u32>(ksHi + (<usize>n << 2), hi);
    store<u8>(ksType + <usize>n, type);
    store<u32>(ksNameStart + (<usize>n << 2), <u32>(at - inPtr));
    store<u32>(ksNameLen + (<usize>n << 2), <u32>(nameEnd - at));
    store<u8>(ksPfx + <usize>n, <u8>pfx);
    store<u32>(ksModule + (<usize>n << 2), mod);
    n++;
  }
  return <i32>n;
}

export function ksAddrLoPtr(): usize {
  return ksLo;
}
export function ksAddrHiPtr(): usize {
  return ksHi;
}
export function ksTypePtr(): usize {
  return ksType;
}
export function ksNameStartPtr(): usize {
  return ksNameStart;
}
export function ksNameLenPtr(): usize {
  return ksNameLen;
}
export function ksModulePtr(): usize {
  return ksModule;
}
export function ksPfxPtr(): usize {
  return ksPfx;
}
/** Whether any address of the last parse was non-zero (all zero: kallsyms read without privilege). */
export function ksAnyAddress(): u32 {
  return ksNonZero ? 1 : 0;
}
export function ksModuleCount(): u32 {
  return ksModN;
}
export function ksModuleStartPtr(): usize {
  return ksModStart;
}
export function ksModuleLenPtr(): usize {
  return ksModLen;
}
