/**
 * The wasm kernel's algorithm (assembly/index.ts) in plain TypeScript: the benchmark's "best
 * pure-TS" contender and a fallback where WebAssembly is unavailable. Same results as the BigInt
 * reference (differential tests), same steps as the kernel:
 *
 *   1. sort ranges by start (stable), S_MAX[j] = max(S_LAST[0..j]), TOP[b] = S_START[64 b]
 *   2. per key: branchless upper bound over TOP, then inside the 64-start block
 *   3. walk j, j-1, … while S_MAX[j] >= key (at most WALK_LIMIT steps), then a max-tree query
 *   4. order the key's hits by caller range index
 *   0. first, a direct-mapped memo of recent keys (real stacks repeat a few hundred return
 *      addresses across millions of frames): a key with at most one hit is answered by the memo
 *      alone (range, and 0 or 1 hits); a key with several hits keeps its search result j in a
 *      second memo
 *
 * Like the wasm scanner, it keeps the prepared ranges and the memo of the last call and reuses
 * them when the next call's ranges are equal (one linear compare).
 *
 * u64 values stay as u32 halves (no BigInt). Branchless steps use the mask trick
 * `base += half & -cond`, which V8 compiles without a data-dependent branch (a `?:` does not).
 * When every range start/last and every key share one high half (x86-64 kernel and module text
 * all live at 0xffffffff_xxxxxxxx) the search runs on the low halves alone.
 */
import { validateScanInput } from "./reference.js";
import type { ScanHits, ScanHitsView, ScanInput, ViewScanner } from "./types.js";

const BLOCK_LOG = 6;
const BLOCK = 1 << BLOCK_LOG;
const WALK_LIMIT = 16;
const MEMO_LOG = 12;
const WALK_LOG = 10;
/** Entries of the hit-list arena (the kernel's HIT_LISTS). */
const LIST_CAP = 1 << 16;

/**
 * The memo: key halves per slot and the answer: range (caller index) and advance (1 when the
 * key lies in exactly that range, 0 when in none). All zero = key 0 with no hit: the empty slot,
 * and the right answer for key 0. The walk memo: keys with several hits -> their hit list.
 */
class Memo {
  readonly lo = new Uint32Array(1 << MEMO_LOG);
  readonly hi = new Uint32Array(1 << MEMO_LOG);
  readonly range = new Uint32Array(1 << MEMO_LOG);
  readonly advance = new Int32Array(1 << MEMO_LOG);
  readonly walkLo = new Uint32Array(1 << WALK_LOG);
  readonly walkHi = new Uint32Array(1 << WALK_LOG);
  /** the key's hits (caller range indexes, ascending) are list[walkFirst, walkFirst + walkCount) */
  readonly walkFirst = new Int32Array(1 << WALK_LOG);
  readonly walkCount = new Int32Array(1 << WALK_LOG);
  readonly list = new Uint32Array(LIST_CAP);
  listN = 0;
}
const hashOf = (lo: number, hi: number): number => Math.imul(lo ^ Math.imul(hi, 0x27d4eb2d), 0x9e3779b1) >>> 0;
const slotOf = (h: number): number => h >>> (32 - MEMO_LOG);
const walkSlotOf = (h: number): number => h >>> (32 - WALK_LOG);

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

/** Hit columns; `frame`/`range` always have room for one more hit (branchless writes). */
class Hits {
  frame = new Uint32Array(1024);
  range = new Uint32Array(1024);
  count = 0;
  /** Makes room for at least `n` more hits. */
  reserve(n: number): void {
    if (this.count + n <= this.frame.length) return;
    let cap = this.frame.length * 2;
    while (cap < this.count + n) cap *= 2;
    const f = new Uint32Array(cap);
    f.set(this.frame.subarray(0, this.count));
    this.frame = f;
    const r = new Uint32Array(cap);
    r.set(this.range.subarray(0, this.count));
    this.range = r;
  }
  push(frame: number, range: number): void {
    this.reserve(1);
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

/**
 * Steps 2-4 for a key whose search gave candidate j (S_MAX[j] >= key): appends its hits and
 * remembers the answer in the memo (one hit, slot) or the walk memo (several, slot w).
 */
function walk(p: Prepared, memo: Memo, j: number, kHi: number, kLo: number, f: number, out: Hits, slot: number, w: number): void {
  const { lLo, lHi, mLo, mHi, idx } = p;
  const from = out.count;
  for (let steps = 0; ; steps++) {
    if (!le(kHi, kLo, mHi[j]!, mLo[j]!)) break;
    if (steps === WALK_LIMIT) {
      treeQuery(p, j, kHi, kLo, f, out);
      break;
    }
    if (le(kHi, kLo, lHi[j]!, lLo[j]!)) out.push(f, idx[j]!);
    if (j === 0) break;
    j--;
  }
  const hits = out.count - from;
  if (hits === 1) {
    memo.lo[slot] = kLo;
    memo.hi[slot] = kHi;
    memo.range[slot] = out.range[from]!;
    memo.advance[slot] = 1;
  } else {
    out.sortTail(from);
    if (hits <= LIST_CAP) {
      if (hits > LIST_CAP - memo.listN) {
        // arena full: start over (walk memo entries pointing into it are dropped with it)
        memo.walkLo.fill(0);
        memo.walkHi.fill(0);
        memo.listN = 0;
      }
      memo.list.set(out.range.subarray(from, out.count), memo.listN);
      memo.walkLo[w] = kLo;
      memo.walkHi[w] = kHi;
      memo.walkFirst[w] = memo.listN;
      memo.walkCount[w] = hits;
      memo.listN += hits;
    }
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

/**
 * The scan loop. The memo answers a key with at most one hit: its range and whether it is a
 * hit (advance 0 or 1). Other keys (memo misses, keys with several hits) are searched here and
 * walked by walk(). With every range in one 4 GiB window (commonHi), a key outside it can lie
 * in no range and is skipped (key 0 included).
 */
function scanKeys(p: Prepared, memo: Memo, keys: Uint32Array, out: Hits): void {
  const frames = keys.length >>> 1;
  const { lo: mLo, hi: mHi, range: mRange, advance: mAdv, walkLo, walkHi } = memo;
  const { n, sLo, topLo, mLo: maxLo, mHi: maxHi } = p;
  const nb = topLo.length;
  const narrow = p.commonHi >= 0;
  const hi0 = p.commonHi;
  let f = 0;
  while (f < frames) {
    // room for one hit per key before `stop`: no capacity check on the memo path
    out.reserve(Math.min(frames - f, 65536));
    let oFrame = out.frame;
    let oRange = out.range;
    let count = out.count;
    let stop = Math.min(frames, f + (oFrame.length - count));
    for (; f < stop; f++) {
      const kLo = keys[2 * f]!;
      const kHi = keys[2 * f + 1]!;
      if (narrow && kHi !== hi0) continue; // outside the window (or no key): no range holds it
      const h = hashOf(kLo, kHi);
      const slot = slotOf(h);
      if (mLo[slot] === kLo && mHi[slot] === kHi) {
        // The kernel writes the hit unconditionally and advances by 0 or 1 (branchless); in V8
        // the branch measured faster (typed-array stores are bounds-checked; 4% of realistic
        // frames hit at 10 and 1k ranges: 5.5 vs 6.7 ns/frame, 27% at 10k: within noise).
        if (mAdv[slot] !== 0) {
          oFrame[count] = f;
          oRange[count] = mRange[slot]!;
          count++;
        }
        continue;
      }
      if ((kLo | kHi) === 0) continue; // no key (its memo slot was taken by another key)
      // a key with several hits seen before: copy its hit list
      const w = walkSlotOf(h);
      if (walkLo[w] === kLo && walkHi[w] === kHi) {
        const first = memo.walkFirst[w]!;
        const cnt = memo.walkCount[w]!;
        out.count = count;
        out.reserve(cnt + 1);
        oFrame = out.frame;
        oRange = out.range;
        const list = memo.list;
        for (let t = 0; t < cnt; t++) {
          oFrame[count + t] = f;
          oRange[count + t] = list[first + t]!;
        }
        count += cnt;
        stop = Math.min(frames, f + 1 + (oFrame.length - count));
        continue;
      }
      // 1. search
      let j: number;
      if (narrow) {
        // branchless upper bound on the low halves (every range shares the key's high half)
        let base = 0;
        let len = nb;
        while (len > 1) {
          const half = len >>> 1;
          const mid = base + half;
          base += half & -((topLo[mid]! <= kLo) as unknown as number);
          len -= half;
        }
        if (topLo[base]! > kLo) j = -1;
        else {
          base <<= BLOCK_LOG;
          len = Math.min(BLOCK, n - base);
          while (len > 1) {
            const half = len >>> 1;
            const mid = base + half;
            base += half & -((sLo[mid]! <= kLo) as unknown as number);
            len -= half;
          }
          j = base;
        }
      } else j = searchWide(p, kHi, kLo);
      if (j < 0 || !le(kHi, kLo, maxHi[j]!, maxLo[j]!)) {
        // no candidate, or every candidate ends below key: no range holds this key
        mLo[slot] = kLo;
        mHi[slot] = kHi;
        mAdv[slot] = 0;
        continue;
      }
      out.count = count;
      walk(p, memo, j, kHi, kLo, f, out, slot, w); // may grow the columns
      count = out.count;
      oFrame = out.frame;
      oRange = out.range;
      stop = Math.min(frames, f + 1 + (oFrame.length - count));
    }
    out.count = count;
  }
}

function tasksOfFrames(taskFrameStart: Uint32Array, frame: Uint32Array): Uint32Array {
  const task = new Uint32Array(frame.length);
  if (taskFrameStart.length === 2) return task; // one task: every hit is task 0
  let t = 0;
  for (let i = 0; i < frame.length; i++) {
    const f = frame[i]!;
    while (taskFrameStart[t + 1]! <= f) t++;
    task[i] = t;
  }
  return task;
}

/** The last call's ranges, prepared, with their memo: reused while the ranges are equal. */
let cached: { start: Uint32Array; last: Uint32Array; prepared: Prepared; memo: Memo } | null = null;

function sameRanges(a: Uint32Array, b: Uint32Array): boolean {
  const n = a.length;
  if (b.length !== n) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Validates `input` and scans it into new hit columns (with spare room past `count`). */
function scanAll(input: ScanInput): Hits {
  validateScanInput(input);
  const out = new Hits();
  const n = input.rangeStart.length >>> 1;
  if (n > 0 && input.keys.length > 0) {
    let c = cached;
    if (c === null || !sameRanges(c.start, input.rangeStart) || !sameRanges(c.last, input.rangeLast)) {
      cached = null;
      c = { start: input.rangeStart.slice(), last: input.rangeLast.slice(), prepared: prepare(input.rangeStart, input.rangeLast), memo: new Memo() };
      cached = c;
    }
    scanKeys(c.prepared, c.memo, input.keys, out);
  }
  return out;
}

/**
 * Pure-TypeScript scanner with the kernel's algorithm; results equal the reference's. Its
 * scanView() returns subarrays of the columns the scan filled (new per call, so they even
 * outlive the next call; the ScanHitsView contract does not promise that).
 */
export const tsScanner: ViewScanner = {
  kind: "typescript",
  scan(input: ScanInput): ScanHits {
    const out = scanAll(input);
    const frame = out.frame.slice(0, out.count);
    return { count: out.count, task: tasksOfFrames(input.taskFrameStart, frame), frame, range: out.range.slice(0, out.count) };
  },
  scanView(input: ScanInput): ScanHitsView {
    const out = scanAll(input);
    const frame = out.frame.subarray(0, out.count);
    return { count: out.count, task: tasksOfFrames(input.taskFrameStart, frame), frame, range: out.range.subarray(0, out.count) };
  },
};
