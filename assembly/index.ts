// patchsafe range-scan kernel (AssemblyScript 0.28, runtime stub).
//
// Finds every (frame, range) pair with  start[r] <= key[frame] <= last[r]  over u64 addresses,
// where ranges may overlap and arrive unsorted. Key 0 means "no key" and never matches.
//
// ABI: fixed buffers in linear memory, exports take and return i32/u32 numbers only. The host
// (src/scan/wasm.ts) is the only caller; it validates input before calling in (except each
// range's last >= start, which setRanges() checks and reports), so the checks here are
// invariants (assert: debug build only) plus a few cheap guards that trap with a message.
//
// Call sequence per scan:
//   reserve(rangeCount, keyCount, hitCount) -> may grow memory: the host re-takes its views
//   host writes caller-order ranges into  IN_START / IN_LAST,  then setRanges(rangeCount):
//   ranges equal to the installed ones (PREV_*) stay installed, memo included (RANGES_KEPT)
//   per chunk of keys: host writes KEYS[0..n), then scan(off, n - off, frameBase, hitOffset)
//   until it returns n - off. scan() appends hits to the columns HIT_FRAME / HIT_RANGE after
//   the first hitOffset entries (so hits of several chunks accumulate without a drain), and
//   hitCount() is the new total; when it stops early (hit buffer full) the host drains the
//   columns in bulk and continues with hitOffset 0.
//
// Memory layout (every buffer from heap.alloc, 16-byte aligned; all reallocated together by
// reserve() when any capacity must grow; heap.reset() first, so nothing else may allocate):
//
//   __heap_base
//   | MEMO     4096 x 16 B            memo of recent keys: (u64 key, u32 range, u32 advance)
//   | WALK_MEMO 1024 x 16 B           keys with several hits: (u64 key, u32 first, u32 count)
//   | HIT_LISTS 65536 x u32           their hits (caller range indexes), WALK_MEMO points in
//   | KEYS     keyCap   x u64             scan keys of the current chunk (host writes)
//   | HIT_FRAME hitCap  x u32             output column: frame of hit h (host reads)
//   | HIT_RANGE hitCap  x u32             output column: caller range index of hit h
//   |                                     (hitCap is STRIDE_HITS whenever the hit limit fits in it,
//   |                                     so HIT_RANGE[h] is at the constant HIT_FRAME[h] + STRIDE)
//   | IN_START rangeCap x u64             range starts, caller order (host writes)
//   | IN_LAST  rangeCap x u64             range lasts (inclusive), caller order (host writes)
//   | PREV_START, PREV_LAST rangeCap x u64  the installed ranges, caller order
//   | S_START  rangeCap x u64  \
//   | S_LAST   rangeCap x u64   |  sorted by start (stable: ties keep caller order)
//   | S_MAX    rangeCap x u64   |  S_MAX[j] = max(S_LAST[0..j])   (non-decreasing)
//   | S_IDX    rangeCap x u32   |  caller index of sorted position j
//   | TMP_IDX  rangeCap x u32  /   merge-sort scratch (S_MAX doubles as u64 scratch)
//   | TOP      rangeCap/64 x u64  TOP[b] = S_START[64 b]: a cache-resident first search level
//   | TREE     2P x u64            max-tree over S_LAST, P = next power of two >= rangeCap
//   | STACK    64 x u32            DFS stack of treeQuery()
//   v                             (both memos are zeroed when new ranges are installed)
//
//   TREE (implicit binary heap layout, node 1 = root, children 2v and 2v+1):
//
//                      [1] max of all
//             [2] max 0..P/2-1      [3] max P/2..P-1
//             ...                    ...
//     [P+0]=S_LAST[0]  [P+1]=S_LAST[1]  ...  [P+n-1]  [P+n..2P-1] = 0 (padding, never >= a key)
//
// Lookup for one key k (see scan()):
//   1. branchless upper bound: j = last sorted position with S_START[j] <= k (none: no hit).
//      Two levels: b = last block with TOP[b] <= k, then j inside block b's 64 starts. Same
//      result as one search over S_START, but with 1e6 ranges the first level stays in cache
//      and the second touches 8 cache lines instead of ~14 scattered ones.
//      Candidates are exactly positions 0..j; the hits among them are those with S_LAST >= k.
//   2. walk j, j-1, ... while S_MAX[j] >= k; emit j when S_LAST[j] >= k.
//      Every range before the first j with S_MAX[j] < k ends below k, so the walk is complete.
//      The common case (disjoint or lightly overlapping ranges) ends within a step or two.
//   3. if the walk is still going after WALK_LIMIT steps (a long range far back keeps S_MAX
//      high, or ranges nest deeply), finish positions 0..j with a TREE query instead: descend
//      only into nodes whose max >= k and whose first position <= j. Cost O((hits + 1) log R)
//      instead of O(positions between the first hit and j).
//   4. sort the key's hits by caller range index (the walk emits them by descending position,
//      the tree by ascending position; neither is caller order).
//   0. before all that, a direct-mapped memo: real stacks repeat a few hundred return addresses
//      across millions of frames. A key seen before with at most one hit is answered by the
//      memo alone, without a data-dependent branch: (frame, range) is written to the output
//      columns either way and the output cursor advances by the entry's `advance` (4 bytes for
//      one hit, 0 for none). An all-zero entry is (key 0, no hit), so key 0 needs no test
//      there. Only a memo miss leaves that loop (memoRun()): missRun() takes the misses that
//      come in a row, and lookup() runs steps 1-4 for each and fills the entry, or, for a key
//      with several hits (ranges that overlap: a function in two patches of a stack), WALK_MEMO
//      with its hit list, copied out the next time. Uniform keys miss the memo and pay one probe.

const ABI_VERSION: u32 = 2;

// ---- buffer pointers and capacities (element counts) ---------------------------------------
let keysPtr: usize = 0;
let hitFrameBuf: usize = 0;
let hitRangeBuf: usize = 0;
let inStartPtr: usize = 0;
let inLastPtr: usize = 0;
let prevStartPtr: usize = 0;
let prevLastPtr: usize = 0;
let sStartPtr: usize = 0;
let sLastPtr: usize = 0;
let sMaxPtr: usize = 0;
let sIdxPtr: usize = 0;
let tmpIdxPtr: usize = 0;
let treePtr: usize = 0;
let stackPtr: usize = 0;
let topPtr: usize = 0;

/** log2 of the memo's slots. */
const MEMO_LOG: u32 = 12;
const MEMO_SLOTS: usize = 1 << MEMO_LOG;
/** log2 of WALK_MEMO's slots (keys with several hits: rare with real kernel symbols). */
const WALK_LOG: u32 = 10;
const WALK_SLOTS: usize = 1 << WALK_LOG;
/** Bytes of one MEMO / WALK_MEMO entry. */
const MEMO_ENTRY_LOG: u32 = 4;
/** u32 entries of HIT_LISTS. */
const LIST_CAP: u32 = 1 << 16;
/** Bytes of MEMO + WALK_MEMO + HIT_LISTS (the first buffer of the arena). */
const MEMO_BYTES: usize = ((MEMO_SLOTS + WALK_SLOTS) << MEMO_ENTRY_LOG) + (<usize>LIST_CAP << 2);
/**
 * MEMO: MEMO_SLOTS x (u64 key, u32 range, u32 advance). advance = 4 (bytes of one u32) when the
 * key lies in exactly range `range`, 0 when it lies in none. All zero = (key 0, no hit): the
 * empty slot, and the right answer for key 0.
 * WALK_MEMO: WALK_SLOTS x (u64 key, u32 first, u32 count): keys with several hits, and where
 * their hits (caller range indexes, ascending) are in HIT_LISTS: [first, first + count).
 * HIT_LISTS: LIST_CAP x u32, filled from listN; when full, WALK_MEMO and HIT_LISTS start over.
 */
let memoPtr: usize = 0;
let walkMemoPtr: usize = 0;
let listPtr: usize = 0;
let listN: u32 = 0;
/** search() result when no range starts at or below the key. */
const NO_CANDIDATE: usize = 0xFFFF_FFFF;

let keyCap: u32 = 0;
let hitCap: u32 = 0;
let rangeCap: u32 = 0;

/**
 * Hit columns of this many entries (the host's default cap, DEFAULT_HIT_CAPACITY) are what
 * reserve() allocates for any hit limit up to it: HIT_RANGE then sits at the compile-time
 * distance STRIDE after HIT_FRAME, and memoRunFixed() writes the range with a store offset
 * instead of adding the column distance (V8 rematerialised that with two more instructions per
 * key): the whole scan ~7% faster, 1M realistic frames against 10k ranges (bench/KERNEL-NOTES.md).
 * 8 MiB of linear memory even for small scans, but untouched pages cost nothing; larger limits
 * get columns of their own size (headroom included) and the general loop, memoRun().
 */
const STRIDE_HITS: u32 = 1 << 20;
const STRIDE: usize = <usize>STRIDE_HITS << 2;

// ---- scan state -------------------------------------------------------------------------------
let rangeN: u32 = 0; // ranges installed by setRanges()
let hitLimit: u32 = 0; // hits one scan() call may emit; always >= rangeN, so any one key fits
let hitN: u32 = 0; // hits emitted by the last scan() call
let treeLeaves: u32 = 1; // P for the installed ranges (power of two >= rangeN)
let treeLog: u32 = 0; // log2(P)

/** log2 of the S_START block that one TOP entry stands for. */
const BLOCK_LOG: u32 = 6;
const BLOCK: u32 = 1 << BLOCK_LOG;
let topN: u32 = 0; // TOP entries for the installed ranges: ceil(rangeN / BLOCK)

/** Linear walk steps per key before switching to the tree query. */
const WALK_LIMIT: u32 = 16;
/** treeQuery() result when the hit limit was reached. */
const OVERFLOW: u32 = 0xFFFF_FFFF;
/** DFS stack entries: right-then-left pushes keep at most depth + 1 <= 33 nodes on it. */
const STACK_ENTRIES: usize = 64;

/** Bytes one range costs across IN_*, PREV_*, S_START, S_LAST, S_MAX, S_IDX, TMP_IDX. */
const BYTES_PER_RANGE: u64 = 8 * 7 + 4 * 2;


/** Smallest power of two >= v (v >= 1, v <= 2^31). */
@inline function pow2AtLeast(v: u32): u32 {
  return v <= 1 ? 1 : <u32>1 << (32 - clz<u32>(v - 1));
}

/** Arena bytes for the given capacities (tree: 2 * pow2AtLeast(rangeCap) u64). */
function arenaBytes(keyCap: u32, hitCap: u32, rangeCap: u32): u64 {
  return (<u64>keyCap << 3) + (<u64>hitCap << 3) + <u64>rangeCap * BYTES_PER_RANGE
    + (<u64>pow2AtLeast(rangeCap) << 4) + (<u64>STACK_ENTRIES << 2)
    + ((<u64>rangeCap + BLOCK - 1) >> BLOCK_LOG << 3) + <u64>MEMO_BYTES;
}
/** Keep the whole arena well under the 4 GiB wasm32 limit (and each block under 1 GiB). */
const MAX_ARENA_BYTES: u64 = 0xC000_0000;

/** ABI version of this kernel; the host refuses a module it does not know. */
export function abiVersion(): u32 {
  return ABI_VERSION;
}

@inline function grow(cap: u32, want: u32): u32 {
  // 1.5x headroom so a slowly growing workload does not reallocate on every call
  let next = <u64>cap + (<u64>cap >> 1);
  return <u32>max<u64>(<u64>want, min<u64>(next, 0x4000_0000));
}

/**
 * Ensures capacity for `rangeCount` ranges, a chunk of `keyCount` keys and `hitCount` hits per
 * scan() call (the effective hit limit is max(hitCount, rangeCount, 1) so that the hits of any
 * single key always fit). May grow memory: every host view of `memory.buffer` must be re-taken.
 * Discards installed ranges when it reallocates. Returns the effective hit limit. Hit columns
 * for a limit up to STRIDE_HITS are always STRIDE_HITS long (memoRunFixed()'s layout).
 */
export function reserve(rangeCount: u32, keyCount: u32, hitCount: u32): u32 {
  let limit = max<u32>(max<u32>(hitCount, rangeCount), 1);
  let kc = max<u32>(keyCount, 1);
  let rc = max<u32>(rangeCount, 1);
  if (kc > keyCap || limit > hitCap || rc > rangeCap) {
    let newKeyCap = kc > keyCap ? grow(keyCap, kc) : keyCap;
    let newHitCap = limit > hitCap ? (limit <= STRIDE_HITS ? STRIDE_HITS : grow(hitCap, limit)) : hitCap;
    let newRangeCap = rc > rangeCap ? grow(rangeCap, rc) : rangeCap;
    if (rc > 0x4000_0000) throw new Error("scan buffers exceed the wasm32 arena limit");
    if (arenaBytes(newKeyCap, newHitCap, newRangeCap) > MAX_ARENA_BYTES) {
      // retry without headroom before giving up
      newKeyCap = max<u32>(kc, keyCap);
      newHitCap = max<u32>(limit, hitCap);
      newRangeCap = max<u32>(rc, rangeCap);
      if (arenaBytes(newKeyCap, newHitCap, newRangeCap) > MAX_ARENA_BYTES) throw new Error("scan buffers exceed the wasm32 arena limit");
    }
    // Only reserve() allocates, so resetting the bump allocator frees exactly our buffers.
    // Globals are committed after every allocation succeeded: a trap (out of memory) mid-way
    // leaves the old layout intact (memory never shrinks).
    heap.reset();
    let mm = heap.alloc(MEMO_BYTES);
    let k = heap.alloc(<usize>newKeyCap << 3);
    let h = heap.alloc(<usize>newHitCap << 3);
    let is = heap.alloc(<usize>newRangeCap << 3);
    let il = heap.alloc(<usize>newRangeCap << 3);
    let ps = heap.alloc(<usize>newRangeCap << 3);
    let pl = heap.alloc(<usize>newRangeCap << 3);
    let ss = heap.alloc(<usize>newRangeCap << 3);
    let sl = heap.alloc(<usize>newRangeCap << 3);
    let sm = heap.alloc(<usize>newRangeCap << 3);
    let si = heap.alloc(<usize>newRangeCap << 2);
    let ti = heap.alloc(<usize>newRangeCap << 2);
    let tr = heap.alloc(<usize>pow2AtLeast(newRangeCap) << 4);
    let st = heap.alloc(STACK_ENTRIES << 2);
    let tp = heap.alloc(<usize>((newRangeCap + BLOCK - 1) >> BLOCK_LOG) << 3);
    memory.fill(mm, 0, MEMO_BYTES);
    memoPtr = mm; walkMemoPtr = mm + (MEMO_SLOTS << MEMO_ENTRY_LOG);
    listPtr = walkMemoPtr + (WALK_SLOTS << MEMO_ENTRY_LOG); listN = 0;
    keysPtr = k; hitFrameBuf = h; hitRangeBuf = h + (<usize>newHitCap << 2);
    inStartPtr = is; inLastPtr = il; prevStartPtr = ps; prevLastPtr = pl;
    sStartPtr = ss; sLastPtr = sl; sMaxPtr = sm; sIdxPtr = si; tmpIdxPtr = ti;
    treePtr = tr; stackPtr = st; topPtr = tp;
    keyCap = newKeyCap; hitCap = newHitCap; rangeCap = newRangeCap;
    rangeN = 0;
  }
  hitLimit = limit;
  hitN = 0;
  return limit;
}

/** Byte offset of KEYS (u64 x keyCapacity()). */
export function keyPtr(): usize { return keysPtr; }
/** Keys one chunk can hold. */
export function keyCapacity(): u32 { return keyCap; }
/** Byte offset of HIT_FRAME (u32 x hit limit): frame of each hit. */
export function hitFramePtr(): usize { return hitFrameBuf; }
/** Byte offset of HIT_RANGE (u32 x hit limit): caller range index of each hit. */
export function hitRangePtr(): usize { return hitRangeBuf; }
/** Byte offset of IN_START (u64 x rangeCapacity(), caller order). */
export function rangeStartPtr(): usize { return inStartPtr; }
/** Byte offset of IN_LAST (u64 x rangeCapacity(), caller order, inclusive). */
export function rangeLastPtr(): usize { return inLastPtr; }
/** Ranges the buffers can hold. */
export function rangeCapacity(): u32 { return rangeCap; }
/** Hits in HIT_FRAME / HIT_RANGE after the last scan() call (its hitOffset included). */
export function hitCount(): u32 { return hitN; }

// ---- setRanges: stable sort by start, then the search structures -------------------------------

/** setRanges() results. */
const RANGES_KEPT: u32 = 0;
const RANGES_INSTALLED: u32 = 1;
const RANGES_INVALID: u32 = 2;

/**
 * Installs the first `count` ranges of IN_START / IN_LAST (caller order). When they equal the
 * installed ranges (PREV_START / PREV_LAST, count included) nothing changes, the memo included,
 * and it returns RANGES_KEPT: a fleet or a benchmark checking one patch again pays one linear
 * compare. When some range has last < start it installs nothing and returns RANGES_INVALID (the
 * host reports which). Otherwise it sorts them by start (bottom-up merge sort on (start, index)
 * pairs, skipped if already sorted), builds S_LAST, S_MAX, TOP and TREE, clears the memo and
 * returns RANGES_INSTALLED. O(R log R), or O(R) for input already sorted by start.
 */
export function setRanges(count: u32): u32 {
  if (count > rangeCap) throw new Error("setRanges: count exceeds rangeCapacity");
  hitN = 0;
  let n = <usize>count;
  if (count == rangeN && count > 0) {
    let diff: u64 = 0;
    for (let i: usize = 0; i < n; i++) {
      diff |= (load<u64>(inStartPtr + (i << 3)) ^ load<u64>(prevStartPtr + (i << 3)))
        | (load<u64>(inLastPtr + (i << 3)) ^ load<u64>(prevLastPtr + (i << 3)));
    }
    if (diff == 0) return RANGES_KEPT;
  }
  rangeN = 0;
  // memoised results belong to the old ranges
  memory.fill(memoPtr, 0, MEMO_BYTES);
  listN = 0;
  let bad = false;
  for (let i: usize = 0; i < n; i++) {
    bad = bad | (load<u64>(inLastPtr + (i << 3)) < load<u64>(inStartPtr + (i << 3)));
  }
  if (bad) return RANGES_INVALID;
  if (n == 0) return RANGES_INSTALLED;

  // (start, index) pairs in caller order; note whether they are already sorted.
  let sorted = true;
  let prev: u64 = 0;
  for (let i: usize = 0; i < n; i++) {
    let s = load<u64>(inStartPtr + (i << 3));
    store<u64>(sStartPtr + (i << 3), s);
    store<u32>(sIdxPtr + (i << 2), <u32>i);
    sorted = sorted & (s >= prev);
    prev = s;
  }

  if (!sorted) {
    // Bottom-up merge sort, ping-ponging between (S_START, S_IDX) and (S_MAX, TMP_IDX).
    // Stable: on equal starts the left run wins, so ties keep caller order.
    let aKey = sStartPtr, aIdx = sIdxPtr, bKey = sMaxPtr, bIdx = tmpIdxPtr;
    for (let width: usize = 1; width < n; width <<= 1) {
      for (let lo: usize = 0; lo < n; lo += width << 1) {
        let mid = min<usize>(lo + width, n);
        let hi = min<usize>(lo + (width << 1), n);
        let i = lo, j = mid, o = lo;
        while (i < mid && j < hi) {
          let ki = load<u64>(aKey + (i << 3));
          let kj = load<u64>(aKey + (j << 3));
          if (kj < ki) {
            store<u64>(bKey + (o << 3), kj);
            store<u32>(bIdx + (o << 2), load<u32>(aIdx + (j << 2)));
            j++;
          } else {
            store<u64>(bKey + (o << 3), ki);
            store<u32>(bIdx + (o << 2), load<u32>(aIdx + (i << 2)));
            i++;
          }
          o++;
        }
        if (i < mid) {
          memory.copy(bKey + (o << 3), aKey + (i << 3), (mid - i) << 3);
          memory.copy(bIdx + (o << 2), aIdx + (i << 2), (mid - i) << 2);
        } else if (j < hi) {
          memory.copy(bKey + (o << 3), aKey + (j << 3), (hi - j) << 3);
          memory.copy(bIdx + (o << 2), aIdx + (j << 2), (hi - j) << 2);
        }
      }
      let tk = aKey; aKey = bKey; bKey = tk;
      let ti = aIdx; aIdx = bIdx; bIdx = ti;
    }
    if (aKey != sStartPtr) {
      memory.copy(sStartPtr, aKey, n << 3);
      memory.copy(sIdxPtr, aIdx, n << 2);
    }
  }

  // Gather lasts into sorted order and take the running max:
  //   S_MAX[j] = max(S_LAST[0], ..., S_LAST[j])
  let runMax: u64 = 0;
  for (let j: usize = 0; j < n; j++) {
    let idx = <usize>load<u32>(sIdxPtr + (j << 2));
    let last = load<u64>(inLastPtr + (idx << 3));
    assert(last >= load<u64>(sStartPtr + (j << 3)), "range last < start");
    store<u64>(sLastPtr + (j << 3), last);
    runMax = max<u64>(runMax, last);
    store<u64>(sMaxPtr + (j << 3), runMax);
  }

  // First search level: every BLOCK-th start.
  let nb = (count + BLOCK - 1) >> BLOCK_LOG;
  for (let b: usize = 0; b < <usize>nb; b++) {
    store<u64>(topPtr + (b << 3), load<u64>(sStartPtr + (b << (BLOCK_LOG + 3))));
  }
  topN = nb;

  // Max-tree over S_LAST: leaves at P.., padding leaves 0, then parents bottom-up.
  let P = <usize>pow2AtLeast(count);
  treeLeaves = <u32>P;
  treeLog = ctz<u32>(<u32>P);
  memory.copy(treePtr + (P << 3), sLastPtr, n << 3);
  memory.fill(treePtr + ((P + n) << 3), 0, (P - n) << 3);
  for (let v = P - 1; v >= 1; v--) {
    let a = load<u64>(treePtr + (v << 4));
    let b = load<u64>(treePtr + (v << 4), 8);
    store<u64>(treePtr + (v << 3), max<u64>(a, b));
  }
  memory.copy(prevStartPtr, inStartPtr, n << 3);
  memory.copy(prevLastPtr, inLastPtr, n << 3);
  rangeN = count;
  return RANGES_INSTALLED;
}

// ---- scan ---------------------------------------------------------------------------------------

/** Sorts HIT_RANGE[from, to) ascending (the hits of one frame: their HIT_FRAME entries are equal). */
function sortHitRanges(from: u32, to: u32): void {
  let base = hitRangeBuf;
  let n = to - from;
  if (n <= 32) {
    // insertion sort: the common case is 1-3 hits per key
    for (let i: u32 = from + 1; i < to; i++) {
      let v = load<u32>(base + (<usize>i << 2));
      let j = i;
      while (j > from) {
        let u = load<u32>(base + (<usize>(j - 1) << 2));
        if (u <= v) break;
        store<u32>(base + (<usize>j << 2), u);
        j--;
      }
      store<u32>(base + (<usize>j << 2), v);
    }
    return;
  }
  // heapsort: O(n log n) when many ranges nest around one key
  let p = base + (<usize>from << 2);
  for (let start = (n >> 1); start > 0; start--) siftDown(p, start - 1, n);
  for (let end = n - 1; end > 0; end--) {
    let t = load<u32>(p + (<usize>end << 2));
    store<u32>(p + (<usize>end << 2), load<u32>(p));
    store<u32>(p, t);
    siftDown(p, 0, end);
  }
}

@inline function siftDown(p: usize, root: u32, n: u32): void {
  let r = root;
  let v = load<u32>(p + (<usize>r << 2));
  while (true) {
    let c = (r << 1) + 1;
    if (c >= n) break;
    let cv = load<u32>(p + (<usize>c << 2));
    if (c + 1 < n) {
      let dv = load<u32>(p + (<usize>(c + 1) << 2));
      if (dv > cv) { c++; cv = dv; }
    }
    if (cv <= v) break;
    store<u32>(p + (<usize>r << 2), cv);
    r = c;
  }
  store<u32>(p + (<usize>r << 2), v);
}

/** Appends hit (frame, range) at index out of the output columns. */
@inline function emit(out: u32, frame: u32, range: u32): void {
  store<u32>(hitFrameBuf + (<usize>out << 2), frame);
  store<u32>(hitRangeBuf + (<usize>out << 2), range);
}

/**
 * Emits (frame, S_IDX[i]) for every position i in 0..j with S_LAST[i] >= key, by depth-first
 * descent of TREE, pruning nodes whose max is below key or whose first position is past j.
 * Returns the new hit count, or OVERFLOW if the hit limit was reached.
 */
function treeQuery(j: u32, key: u64, frame: u32, out: u32, limit: u32): u32 {
  let P = treeLeaves;
  let L = treeLog;
  let tree = treePtr;
  let stack = stackPtr;
  let sp: usize = 0;
  store<u32>(stack, 1);
  sp = 1;
  while (sp > 0) {
    sp--;
    let v = load<u32>(stack + (sp << 2));
    if (load<u64>(tree + (<usize>v << 3)) < key) continue; // nothing below reaches key
    // node v at depth d = floor(log2 v) covers positions [(v << (L - d)) - P, ...)
    let d = 31 - clz<u32>(v);
    let first = (v << (L - d)) - P;
    if (first > j) continue; // entirely past the candidates
    if (v >= P) {
      if (out == limit) return OVERFLOW;
      emit(out, frame, load<u32>(sIdxPtr + (<usize>(v - P) << 2)));
      out++;
    } else {
      assert(sp + 2 <= STACK_ENTRIES, "tree stack overflow");
      store<u32>(stack + (sp << 2), (v << 1) | 1); // right child first: it is popped last
      store<u32>(stack + (sp << 2), v << 1, 4);
      sp += 2;
    }
  }
  return out;
}

/**
 * 1. Branchless upper bound (unsigned u64 compares), first over TOP, then inside the block:
 * the last sorted position j with S_START[j] <= key, or NO_CANDIDATE when even S_START[0] > key.
 * Invariant of each loop: the answer lies in [base, base + len). Each step halves len without a
 * data-dependent branch: `select` compiles to a cmov-style wasm select.
 */
@inline function search(key: u64, top: usize, nb: u32, sStart: usize, n: u32): usize {
  let base: usize = 0;
  let len: usize = <usize>nb;
  while (len > 1) {
    let half = len >> 1;
    let mid = base + half;
    base = select<usize>(mid, base, load<u64>(top + (mid << 3)) <= key);
    len -= half;
  }
  // base = last block with TOP <= key, unless even block 0 starts above key: no candidates.
  if (load<u64>(top + (base << 3)) > key) return NO_CANDIDATE;
  // Inside block `base`: S_START[first] = TOP[base] <= key, and the next block starts above
  // key, so the answer lies in [first, first + min(BLOCK, n - first)).
  base <<= BLOCK_LOG;
  len = min<usize>(<usize>BLOCK, <usize>n - base);
  while (len > 1) {
    let half = len >> 1;
    let mid = base + half;
    base = select<usize>(mid, base, load<u64>(sStart + (mid << 3)) <= key);
    len -= half;
  }
  return base;
}

/**
 * Steps 1-4 for one key the memo (entry e, its slot) could not answer. Appends the key's hits
 * at `out` and remembers the answer: in MEMO when the key has at most one hit (the branchless
 * loop answers it next time), else its hit list in WALK_MEMO / HIT_LISTS (the next time costs
 * one probe and a copy). Returns the new hit count, or OVERFLOW when the hit limit was reached
 * (the caller drops the key's partial hits and resumes at this key after the host drained the
 * columns).
 */
@inline function lookup(key: u64, e: usize, frame: u32, out: u32, limit: u32): u32 {
  let w = walkMemoPtr + (<usize>((key * 0x9E37_79B9_7F4A_7C15) >> (64 - WALK_LOG)) << MEMO_ENTRY_LOG);
  if (load<u64>(w) == key && key != 0) {
    // a key with several hits seen before: copy its hit list
    let first = load<u32>(w, 8);
    let count = load<u32>(w, 12);
    if (count > limit - out) return OVERFLOW;
    let list = listPtr + (<usize>first << 2);
    for (let t: u32 = 0; t < count; t++) emit(out + t, frame, load<u32>(list + (<usize>t << 2)));
    return out + count;
  }
  if (key == 0) {
    // no key: never matches. (key 0, no hit) is also the empty slot: restore it.
    setMemo(e, 0, 0, 0);
    return out;
  }
  let j = search(key, topPtr, topN, sStartPtr, rangeN);
  // no candidate, or every candidate ends below key: no range holds this key
  if (j == NO_CANDIDATE || load<u64>(sMaxPtr + (j << 3)) < key) {
    setMemo(e, key, 0, 0);
    return out;
  }

  // 2. Walk back while some range at or before j can still reach key.
  let sLast = sLastPtr, sMax = sMaxPtr, sIdx = sIdxPtr;
  let from = out;
  let steps: u32 = 0;
  while (true) {
    if (load<u64>(sMax + (j << 3)) < key) break;
    if (steps == WALK_LIMIT) {
      // 3. Long walk: let the tree find the rest among positions 0..j.
      out = treeQuery(<u32>j, key, frame, out, limit);
      if (out == OVERFLOW) return OVERFLOW;
      break;
    }
    if (load<u64>(sLast + (j << 3)) >= key) {
      if (out == limit) return OVERFLOW;
      emit(out, frame, load<u32>(sIdx + (j << 2)));
      out++;
    }
    if (j == 0) break;
    j--;
    steps++;
  }
  // 4. Order this key's hits by caller range index, and remember them.
  // (A key whose candidates reach it has at least one hit.)
  let hits = out - from;
  if (hits == 1) setMemo(e, key, load<u32>(hitRangeBuf + (<usize>from << 2)), 4);
  else {
    sortHitRanges(from, out);
    if (hits <= LIST_CAP) {
      if (hits > LIST_CAP - listN) {
        // HIT_LISTS full: start over (entries still pointing into it are dropped with it)
        memory.fill(walkMemoPtr, 0, WALK_SLOTS << MEMO_ENTRY_LOG);
        listN = 0;
      }
      memory.copy(listPtr + (<usize>listN << 2), hitRangeBuf + (<usize>from << 2), <usize>hits << 2);
      store<u64>(w, key);
      store<u32>(w, listN, 8);
      store<u32>(w, hits, 12);
      listN += hits;
    }
  }
  return out;
}

/** Memo entry e := key -> (range, advance): advance 4 (bytes of one u32) = one hit, 0 = none. */
@inline function setMemo(e: usize, key: u64, range: u32, advance: u32): void {
  store<u64>(e, key);
  store<u32>(e, range, 8);
  store<u32>(e, advance, 12);
}

/**
 * Scans KEYS[keyOffset .. keyOffset + keyCount); key at buffer index i is frame frameBase + i.
 * Keeps the first hitOffset hits in HIT_FRAME / HIT_RANGE and appends this call's hits after
 * them, grouped by frame ascending, ranges ascending within a frame; hitCount() is the new total.
 * Stops before the first key whose hits would overflow the hit limit and returns how many keys
 * it consumed (== keyCount when done); the host drains the columns and calls again with the
 * remainder and hitOffset 0. Progress is guaranteed since hitLimit >= rangeN.
 */
export function scan(keyOffset: u32, keyCount: u32, frameBase: u32, hitOffset: u32): u32 {
  if (<u64>keyOffset + <u64>keyCount > <u64>keyCap) throw new Error("scan: keys exceed keyCapacity");
  if (hitOffset > hitLimit) throw new Error("scan: hitOffset exceeds the hit limit");
  hitN = hitOffset;
  if (rangeN == 0) return keyCount;

  let hf = hitFrameBuf;
  let fixed = hitRangeBuf - hitFrameBuf == STRIDE;
  let limit = hitLimit;
  let out = hitOffset;
  let p = keysPtr + (<usize>keyOffset << 3);
  let end = p + (<usize>keyCount << 3);
  // frame of the key at p (buffer index i = (p - keysPtr) / 8) is frameBase + i
  let frameAt = frameBase - <u32>(keysPtr >> 3);
  while (p < end) {
    // Keys that cannot overflow the columns even if each emits one hit: no limit check inside.
    let room = min<usize>(<usize>(limit - out), (end - p) >> 3);
    if (room == 0) break; // full
    let stop = p + (room << 3);
    p = fixed
      ? memoRunFixed(p, stop, hf + (<usize>out << 2), frameAt + <u32>(p >> 3))
      : memoRun(p, stop, hf + (<usize>out << 2), frameAt + <u32>(p >> 3));
    out = <u32>((runOut - hf) >> 2);
    if (p >= stop) continue;
    // a key the memo cannot answer, and the ones right after it that it cannot answer either
    let q = missRun(p, end, out, frameAt + <u32>(p >> 3));
    out = runHits;
    if (q == p) break; // hit buffer full at its first key: hand back control
    p = q;
  }
  hitN = out;
  return <u32>((p - keysPtr) >> 3) - keyOffset;
}

/** missRun()'s second result: the hit count after the run. */
let runHits: u32 = 0;

/**
 * Keys at [p, end) while the memo cannot answer them (uniform keys: nearly all of them), each
 * through lookup(), from hit count out. Returns where it stopped (end, the next key the memo
 * answers, or a key whose hits do not fit: its partial hits are dropped) and leaves the hit
 * count in runHits. Its own loop, so that a run of misses pays one call and memoRun()'s loop
 * stays small.
 */
function missRun(p: usize, end: usize, out: u32, frame: u32): usize {
  let memo = memoPtr;
  let limit = hitLimit;
  while (p < end) {
    let key = load<u64>(p);
    let e = memo + (<usize>((key * 0x9E37_79B9_7F4A_7C15) >> (64 - MEMO_LOG)) << MEMO_ENTRY_LOG);
    if (load<u64>(e) == key) break;
    let r = lookup(key, e, frame, out, limit);
    if (r == OVERFLOW) break;
    out = r;
    frame++;
    p += 8;
  }
  runHits = out;
  return p;
}

/** memoRun()'s second result: the HIT_FRAME cursor after the run. */
let runOut: usize = 0;

/**
 * The hot loop: keys at [p, stop) while the memo answers them, writing hits from the HIT_FRAME
 * cursor o (the caller guarantees room for one hit per key). Returns where it stopped (stop, or
 * a key the memo cannot answer) and leaves the cursor in runOut. Binaryen inlines it into
 * scan(); written this way (misses in missRun(), not here) V8 keeps the loop's few locals in
 * registers: 1.18 ns/key, against 1.25-1.37 for the same loop sharing a body with the misses.
 */
function memoRun(p: usize, stop: usize, o: usize, frame: u32): usize {
  let memo = memoPtr;
  let delta = hitRangeBuf - hitFrameBuf; // HIT_RANGE[h] is at HIT_FRAME[h] + delta
  while (p < stop) {
    let key = load<u64>(p);
    let e = memo + (<usize>((key * 0x9E37_79B9_7F4A_7C15) >> (64 - MEMO_LOG)) << MEMO_ENTRY_LOG);
    if (load<u64>(e) != key) break; // the memo cannot answer: missRun()
    // At most one hit: write it either way, advance past it only if it is one (advance 4 or 0).
    let v = load<u64>(e, 8);
    store<u32>(o, frame);
    store<u32>(o + delta, <u32>v);
    o += <usize>(v >> 32);
    frame++;
    p += 8;
  }
  runOut = o;
  return p;
}

/**
 * memoRun() for the usual layout, HIT_RANGE at HIT_FRAME + STRIDE (a store offset, so no column
 * distance to keep in a register and add per key). The same steps otherwise; scan() picks it
 * when the columns are laid out that way.
 */
function memoRunFixed(p: usize, stop: usize, o: usize, frame: u32): usize {
  let memo = memoPtr;
  while (p < stop) {
    let key = load<u64>(p);
    let e = memo + (<usize>((key * 0x9E37_79B9_7F4A_7C15) >> (64 - MEMO_LOG)) << MEMO_ENTRY_LOG);
    if (load<u64>(e) != key) break;
    let v = load<u64>(e, 8);
    store<u32>(o, frame);
    store<u32>(o, <u32>v, STRIDE);
    o += <usize>(v >> 32);
    frame++;
    p += 8;
  }
  runOut = o;
  return p;
}

// ---- memory floor ------------------------------------------------------------------------------

/**
 * Reads KEYS[keyOffset .. keyOffset + keyCount) once and returns the xor-folded u64 sum: the
 * least work any scan must do per frame. Benchmarks only ("memory floor"); never on the hot path.
 */
export function sumKeys(keyOffset: u32, keyCount: u32): u32 {
  if (<u64>keyOffset + <u64>keyCount > <u64>keyCap) throw new Error("sumKeys: keys exceed keyCapacity");
  let s: u64 = 0;
  let p = keysPtr + (<usize>keyOffset << 3);
  let end = p + (<usize>keyCount << 3);
  while (p < end) {
    s += load<u64>(p);
    p += 8;
  }
  return <u32>(s ^ (s >> 32));
}
