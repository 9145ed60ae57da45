/**
 * The wasm kernel's algorithm (assembly/index.ts) in plain TypeScript: the benchmark's "best
 * pure-TS" contender and a fallback where WebAssembly is unavailable. Same results as the BigInt
 * reference (differential tests), same steps as the kernel:
 *
 *   1. sort ranges by start (stable), S_MAX[j] = max(S_LAST[0..j]), TOP[b] = S_START[64 b]
 *   2. per key: branchless upper bound over TOP, then inside the 64-start block
 *   3. walk j, j-1, … while S_MAX[j] >= key (at most WALK_LIMIT steps), then a max-tree query
 *   4. order the key's hits by caller range index
 *   0. first, a direct-mapped memo of recent keys -> their search result (real stacks repeat a
 *      few hundred return addresses across millions of frames)
 *
 * u64 values stay as u32 halves (no BigInt). Branchless steps use the mask trick
 * `base += half & -cond`, which V8 compiles without a data-dependent branch (a `?:` does not).
 * When every range start/last and every key share one high half (x86-64 kernel and module text
 * all live at 0xffffffff_xxxxxxxx) the search runs on the low halves alone.
 */
import { validateScanInput } from "./reference.js";
import type { ScanHits, ScanInput, Scanner } from "./types.js";

const BLOCK_LOG = 6;
const BLOCK = 1 << BLOCK_LOG;
const WALK_LIMIT = 16;
const MEMO_LOG = 12;
const NO_HIT = -2;
/** memo.pos of a key with exactly one hit: -(caller range index) - 3. */
const SINGLE_BASE = -3;

/** The memo: key halves per slot (0/0 = empty: key 0 is never looked up) and the result. */
class Memo {
  readonly lo = new Uint32Array(1 << MEMO_LOG);
  readonly hi = new Uint32Array(1 << MEMO_LOG);
  readonly pos = new Int32Array(1 << MEMO_LOG);
}
const slotOf = (lo: number, hi: number): number => Math.imul(lo ^ Math.imul(hi, 0x27d4eb2d), 0x9e3779b1) >>> (32 - MEMO_LOG);

/** Ranges prepared for lookups (sorted by start, with prefix max, TOP level and max-tree). */
interface Prepared {
  n: number;
  /** caller index of sorted position j */
  idx: Uint32Array;
  sLo: Uint32Array;
  sHi: Uint32Array;
  lLo: Uint32Array;
  lHi: Uint32Array;
  mLo: Uint32Array;
  mHi: Uint32Array;
  topLo: Uint32Array;
  topHi: Uint32Array;
  /** max-tree over S_LAST (implicit heap, leaves at P..2P-1), lo/hi halves */
  tLo: Uint32Array;
  tHi: Uint32Array;
  P: number;
  /** every start/last has this high half (then keys with another high half never hit), else -1 */
  commonHi: number;
}

/** a <= b for u64 (aHi, aLo), (bHi, bLo) as 0/1 without branching. */
function le(aHi: number, aLo: number, bHi: number, bLo: number): number {
  return ((aHi < bHi) as unknown as number) | (((aHi === bHi) as unknown as number) & ((aLo <= bLo) as unknown as number));
}

function prepare(rangeStart: Uint32Array, rangeLast: Uint32Array): Prepared {
  const n = rangeStart.length >>> 1;
  const order = new Uint32Array(n);
  let sorted = true;
  for (let i = 0; i < n; i++) {
    order[i] = i;
    if (i > 0) {
      const ph = rangeStart[2 * i - 1]!;
      const h = rangeStart[2 * i + 1]!;
      if (h < ph || (h === ph && rangeStart[2 * i]! < rangeStart[2 * i - 2]!)) sorted = false;
    }
  }
  if (!sorted) {
    // Array.prototype.sort is stable; ties keep caller order like the kernel's merge sort.
    const a = Array.from(order);
    a.sort((x, y) => rangeStart[2 * x + 1]! - rangeStart[2 * y + 1]! || rangeStart[2 * x]! - rangeStart[2 * y]!);
    order.set(a);
  }
  const sLo = new Uint32Array(n);
  const sHi = new Uint32Array(n);
  const lLo = new Uint32Array(n);
  const lHi = new Uint32Array(n);
  const mLo = new Uint32Array(n);
  const mHi = new Uint32Array(n);
  let maxLo = 0;
  let maxHi = 0;
  let commonHi = n > 0 ? rangeStart[1]! : -1;
  for (let j = 0; j < n; j++) {
    const c = order[j]!;
    sLo[j] = rangeStart[2 * c]!;
    sHi[j] = rangeStart[2 * c + 1]!;
    const lo = rangeLast[2 * c]!;
    const hi = rangeLast[2 * c + 1]!;
    lLo[j] = lo;
    lHi[j] = hi;
    if (hi > maxHi || (hi === maxHi && lo > maxLo)) {
      maxHi = hi;
      maxLo = lo;
    }
    mLo[j] = maxLo;
    mHi[j] = maxHi;
    if (sHi[j] !== commonHi || hi !== commonHi) commonHi = -1;
  }
  const nb = (n + BLOCK - 1) >>> BLOCK_LOG;
  const topLo = new Uint32Array(nb);
  const topHi = new Uint32Array(nb);
  for (let b = 0; b < nb; b++) {
    topLo[b] = sLo[b << BLOCK_LOG]!;
    topHi[b] = sHi[b << BLOCK_LOG]!;
  }
  let P = 1;
  while (P < n) P <<= 1;
  const tLo = new Uint32Array(2 * P);
  const tHi = new Uint32Array(2 * P);
  tLo.set(lLo, P);
  tHi.set(lHi, P);
  for (let v = P - 1; v >= 1; v--) {
    const a = 2 * v;
    const b = a + 1;
    if (tHi[b]! > tHi[a]! || (tHi[b] === tHi[a] && tLo[b]! > tLo[a]!)) {
      tHi[v] = tHi[b]!;
      tLo[v] = tLo[b]!;
    } else {
      tHi[v] = tHi[a]!;
      tLo[v] = tLo[a]!;
    }
  }
  return { n, idx: order, sLo, sHi, lLo, lHi, mLo, mHi, topLo, topHi, tLo, tHi, P, commonHi };
}

/** Growable hit columns. */
class Hits {
  frame = new Uint32Array(1024);
  range = new Uint32Array(1024);
  count = 0;
  push(frame: number, range: number): void {
    if (this.count === this.frame.length) {
      const f = new Uint32Array(this.count * 2);
      f.set(this.frame);
      this.frame = f;
      const r = new Uint32Array(this.count * 2);
      r.set(this.range);
      this.range = r;
    }
    this.frame[this.count] = frame;
    this.range[this.count] = range;
    this.count++;
  }
  /** Sorts the range fields of hits [from, count) ascending (all of one frame). */
  sortTail(from: number): void {
    const r = this.range;
    for (let i = from + 1; i < this.count; i++) {
      const v = r[i]!;
      let j = i;
      while (j > from && r[j - 1]! > v) {
        r[j] = r[j - 1]!;
        j--;
      }
      r[j] = v;
    }
  }
}

/** Positions 0..j whose last >= key, by max-tree descent (the kernel's treeQuery). */
function treeQuery(p: Prepared, j: number, kHi: number, kLo: number, frame: number, out: Hits): void {
  const stack: number[] = [1];
  const L = Math.log2(p.P);
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (!le(kHi, kLo, p.tHi[v]!, p.tLo[v]!)) continue;
    const d = 31 - Math.clz32(v);
    const first = (v << (L - d)) - p.P;
    if (first > j) continue;
    if (v >= p.P) out.push(frame, p.idx[v - p.P]!);
    else stack.push(2 * v + 1, 2 * v);
  }
}

/** Scans with ranges of mixed high halves: full (hi, lo) compares. */
function scanWide(p: Prepared, keys: Uint32Array, out: Hits): void {
  const { lLo, lHi, mLo, mHi, idx } = p;
  const frames = keys.length >>> 1;
  const memo = new Memo();
  for (let f = 0; f < frames; f++) {
    const kLo = keys[2 * f]!;
    const kHi = keys[2 * f + 1]!;
    if ((kLo | kHi) === 0) continue;
    const slot = slotOf(kLo, kHi);
    let j: number;
    if (memo.lo[slot] === kLo && memo.hi[slot] === kHi) {
      j = memo.pos[slot]!;
      if (j === NO_HIT) continue;
      if (j <= SINGLE_BASE) {
        out.push(f, SINGLE_BASE - j);
        continue;
      }
    } else {
      j = searchWide(p, kHi, kLo);
      memo.lo[slot] = kLo;
      memo.hi[slot] = kHi;
      if (j < 0 || !le(kHi, kLo, mHi[j]!, mLo[j]!)) {
        memo.pos[slot] = NO_HIT;
        continue;
      }
      memo.pos[slot] = j;
    }
    const from = out.count;
    const start = j;
    let steps = 0;
    for (; ; steps++) {
      if (!le(kHi, kLo, mHi[j]!, mLo[j]!)) break;
      if (steps === WALK_LIMIT) {
        treeQuery(p, j, kHi, kLo, f, out);
        break;
      }
      if (le(kHi, kLo, lHi[j]!, lLo[j]!)) out.push(f, idx[j]!);
      if (j === 0) break;
      j--;
    }
    if (out.count - from > 1) out.sortTail(from);
    else if (out.count - from === 1 && steps < WALK_LIMIT && memo.pos[slot] === start) memo.pos[slot] = SINGLE_BASE - out.range[from]!;
  }
}

/** Last sorted position with start <= key, or -1. */
function searchWide(p: Prepared, kHi: number, kLo: number): number {
  const { n, sLo, sHi, topLo, topHi } = p;
  const nb = topLo.length;
  let base = 0;
  let len = nb;
  while (len > 1) {
    const half = len >>> 1;
    const mid = base + half;
    base += half & -le(topHi[mid]!, topLo[mid]!, kHi, kLo);
    len -= half;
  }
  if (!le(topHi[base]!, topLo[base]!, kHi, kLo)) return -1;
  base <<= BLOCK_LOG;
  len = Math.min(BLOCK, n - base);
  while (len > 1) {
    const half = len >>> 1;
    const mid = base + half;
    base += half & -le(sHi[mid]!, sLo[mid]!, kHi, kLo);
    len -= half;
  }
  return base;
}

/** Scans when every range lies in one 4 GiB window (common high half hi): low halves only. */
function scanNarrow(p: Prepared, hi: number, keys: Uint32Array, out: Hits): void {
  const { n, sLo, mLo, topLo } = p;
  const nb = topLo.length;
  const frames = keys.length >>> 1;
  const memo = new Memo();
  for (let f = 0; f < frames; f++) {
    if (keys[2 * f + 1] !== hi) continue; // outside the window (or no key): no range can hold it
    const k = keys[2 * f]!;
    const slot = slotOf(k, hi);
    if (memo.lo[slot] === k && memo.hi[slot] === hi) {
      const pos = memo.pos[slot]!;
      if (pos === NO_HIT) continue;
      if (pos <= SINGLE_BASE) {
        out.push(f, SINGLE_BASE - pos);
        continue;
      }
      walkNarrow(p, pos, hi, k, f, out, memo, slot);
      continue;
    }
    memo.lo[slot] = k;
    memo.hi[slot] = hi;
    memo.pos[slot] = NO_HIT;
    let base = 0;
    let len = nb;
    while (len > 1) {
      const half = len >>> 1;
      const mid = base + half;
      base += half & -((topLo[mid]! <= k) as unknown as number);
      len -= half;
    }
    if (topLo[base]! > k) continue;
    base <<= BLOCK_LOG;
    len = Math.min(BLOCK, n - base);
    while (len > 1) {
      const half = len >>> 1;
      const mid = base + half;
      base += half & -((sLo[mid]! <= k) as unknown as number);
      len -= half;
    }
    if (mLo[base]! < k) continue;
    memo.pos[slot] = base;
    walkNarrow(p, base, hi, k, f, out, memo, slot);
  }
}

/** Steps 2-4 for a key whose search gave j (narrow: low halves). */
function walkNarrow(p: Prepared, j: number, hi: number, k: number, f: number, out: Hits, memo: Memo, slot: number): void {
  const { lLo, mLo, idx } = p;
  const from = out.count;
  const start = j;
  let steps = 0;
  for (; ; steps++) {
    if (mLo[j]! < k) break;
    if (steps === WALK_LIMIT) {
      treeQuery(p, j, hi, k, f, out);
      break;
    }
    if (lLo[j]! >= k) out.push(f, idx[j]!);
    if (j === 0) break;
    j--;
  }
  if (out.count - from > 1) out.sortTail(from);
  else if (out.count - from === 1 && steps < WALK_LIMIT && memo.pos[slot] === start) memo.pos[slot] = SINGLE_BASE - out.range[from]!;
}

function tasksOfFrames(taskFrameStart: Uint32Array, frame: Uint32Array): Uint32Array {
  const task = new Uint32Array(frame.length);
  let t = 0;
  for (let i = 0; i < frame.length; i++) {
    const f = frame[i]!;
    while (taskFrameStart[t + 1]! <= f) t++;
    task[i] = t;
  }
  return task;
}

/** Pure-TypeScript scanner with the kernel's algorithm; results equal the reference's. */
export const tsScanner: Scanner = {
  kind: "typescript",
  scan(input: ScanInput): ScanHits {
    validateScanInput(input);
    const out = new Hits();
    const n = input.rangeStart.length >>> 1;
    if (n > 0 && input.keys.length > 0) {
      const p = prepare(input.rangeStart, input.rangeLast);
      // key 0 has hi 0: with a nonzero common hi it is skipped by the window test; with hi 0 the
      // narrow loop would test lo 0, which must never match, so use the wide loop then.
      if (p.commonHi > 0) scanNarrow(p, p.commonHi, input.keys, out);
      else scanWide(p, input.keys, out);
    }
    const frame = out.frame.slice(0, out.count);
    return { count: out.count, task: tasksOfFrames(input.taskFrameStart, frame), frame, range: out.range.slice(0, out.count) };
  },
};
