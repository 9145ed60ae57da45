// patchsafe per-task kernels of the decision (AssemblyScript 0.28, runtime stub).
//
// decide (src/decide/livepatch.ts) gives most tasks of a shared-row capture the outcome of a
// class (a span of rows plus the facts the rules read) that an earlier task of the class was
// decided for. Two loops over every task do that: SpanClasses.classifyKnown (which class, kind
// and chain length) and TaskDecider.copyDecided (the class's outcome). In TypeScript each ran
// interpreted for most of a 100k-task check while V8 compiled it (~4 and ~3 ms of optimizing
// compile on this project's VMs, on the one core left). Here they are the same loops over the
// same arrays: the host allocates every array in this memory and reads and writes it through
// views, so the host's own code (a new class, a task decided by the rules) and these loops share
// state without copies. The TypeScript loops stay as the fallback and as the reference the
// differential tests compare against (test/task-kernel.test.ts).
//
// ABI (the host is src/decide/taskKernel.ts; every export takes and returns i32/u32/f64):
//   reset()                 forget every array (a new layout; the memory is kept)
//   allocate(bytes, zero)   a 16-byte aligned array (zeroed if asked: memory is reused after
//                           reset()); may grow memory: the host takes its views after its last
//                           allocate()
//   bindTasks(...)          the task columns and the per-task outputs (kinds, chainLen, taskClass)
//   bindClasses(...)        the class tables and kindCount
//   bindOutcomes(...)       copyDecided()'s output rows
//   classifyKnown(from, to) -> the first task it leaves to the host
//   copyDecided(from, to)   -> the first task it leaves; rows written: copiedRows()

import { bumpAlloc, bumpReset } from "./bump";

export function reset(): void {
  bumpReset();
}

export function allocate(bytes: u32, zero: bool): usize {
  const p = bumpAlloc(<usize>bytes);
  if (zero) memory.fill(p, 0, <usize>bytes);
  return p;
}

// Task columns (TaskTable's, copied in): u32, u32, f64, f64, i8, u8, u8, u8.
let frameStart: usize = 0;
let frameCount: usize = 0;
let pid: usize = 0;
let tid: usize = 0;
let patchState: usize = 0;
let bits: usize = 0;
let state: usize = 0;
let stackStatus: usize = 0;
// Per-task outputs: u8 kind code, i32 chain length, i32 class (-1: none).
let kinds: usize = 0;
let chainLen: usize = 0;
let taskClass: usize = 0;

export function bindTasks(fs: usize, fc: usize, p: usize, t: usize, ps: usize, b: usize, s: usize, ss: usize, k: usize, cl: usize, tc: usize): void {
  frameStart = fs;
  frameCount = fc;
  pid = p;
  tid = t;
  patchState = ps;
  bits = b;
  state = s;
  stackStatus = ss;
  kinds = k;
  chainLen = cl;
  taskClass = tc;
}

// Class tables: i32 class by span start (-1: none), then per class u32 row count, u32 facts
// signature, u8 kind, i32 chain length, f64 size (tasks), i32 status code (-1: not decided),
// i32 match-list ref (-1: none yet), f64 tasks copied; f64 kindCount per kind.
let bySpan: usize = 0;
let clsCount: usize = 0;
let clsSig: usize = 0;
let clsKind: usize = 0;
let clsChain: usize = 0;
let clsSize: usize = 0;
let clsStatus: usize = 0;
let clsRef: usize = 0;
let clsCopied: usize = 0;
let kindCount: usize = 0;

export function bindClasses(span: usize, count: usize, sig: usize, kind: usize, chain: usize, size: usize, status: usize, ref: usize, copied: usize, kc: usize): void {
  bySpan = span;
  clsCount = count;
  clsSig = sig;
  clsKind = kind;
  clsChain = chain;
  clsSize = size;
  clsStatus = status;
  clsRef = ref;
  clsCopied = copied;
  kindCount = kc;
}

// copyDecided()'s rows: u32 task, u8 kind code, u8 status code, u32 match-list ref.
let outTask: usize = 0;
let outKind: usize = 0;
let outStatus: usize = 0;
let outRef: usize = 0;
let rows: u32 = 0;

export function bindOutcomes(task: usize, kind: usize, status: usize, ref: usize): void {
  outTask = task;
  outKind = kind;
  outStatus = status;
  outRef = ref;
}

export function copiedRows(): u32 {
  return rows;
}

/** STACK_STATUS_CODE.vanished (src/model.ts). */
const VANISHED: u32 = 4;
/** decide's kinds[] code of a task without an outcome (a vanished one). */
const NO_KIND: u32 = 255;

/** SpanClasses' facts signature (src/decide/livepatch.ts factsSignature). */
@inline function factsSignature(patchStateCode: i32, b: u32, s: u32, st: u32): u32 {
  return <u32>(patchStateCode + 2) | (b << 4) | (s << 12) | (st << 20);
}

/**
 * SpanClasses.classifyKnown without notes, PF flags or errnos (the host's loop handles those):
 * from task `from` on, each task whose span's latest class has its row count and facts (and a
 * pid and tid other than 0) joins it; returns the first task that does not.
 */
export function classifyKnown(from: u32, to: u32): u32 {
  let i = from;
  for (; i < to; i++) {
    const a = <usize>i << 2;
    const c = load<i32>(bySpan + (<usize>load<u32>(frameStart + a) << 2));
    if (c < 0) break;
    const ca = <usize>c << 2;
    if (load<u32>(clsCount + ca) != load<u32>(frameCount + a)) break;
    if (load<f64>(pid + (<usize>i << 3)) == 0 || load<f64>(tid + (<usize>i << 3)) == 0) break;
    const st = <u32>load<u8>(stackStatus + i);
    if (st == VANISHED) break;
    if (load<u32>(clsSig + ca) != factsSignature(<i32>load<i8>(patchState + i), <u32>load<u8>(bits + i), <u32>load<u8>(state + i), st)) break;
    const sp = clsSize + (<usize>c << 3);
    store<f64>(sp, load<f64>(sp) + 1);
    store<i32>(taskClass + a, c);
    const kd = <u32>load<u8>(clsKind + <usize>c);
    store<u8>(kinds + i, <u8>kd);
    store<i32>(chainLen + a, load<i32>(clsChain + ca));
    const kp = kindCount + (<usize>kd << 3);
    store<f64>(kp, load<f64>(kp) + 1);
  }
  return i;
}

/**
 * TaskDecider.copyDecided: from task `from` on, each task of a decided class whose match list the
 * host has made (vanished tasks skipped) gets the class's outcome as the next row; returns the
 * first task it leaves to the host. The rows start at 0 on every call (copiedRows()).
 */
export function copyDecided(from: u32, to: u32): u32 {
  let m: u32 = 0;
  let i = from;
  for (; i < to; i++) {
    const kd = <u32>load<u8>(kinds + i);
    if (kd == NO_KIND) continue;
    const c = load<i32>(taskClass + (<usize>i << 2));
    if (c < 0) break;
    const ca = <usize>c << 2;
    const status = load<i32>(clsStatus + ca);
    if (status < 0) break;
    const ref = load<i32>(clsRef + ca);
    if (ref < 0) break;
    const ma = <usize>m << 2;
    store<u32>(outTask + ma, i);
    store<u8>(outKind + <usize>m, <u8>kd);
    store<u8>(outStatus + <usize>m, <u8>status);
    store<u32>(outRef + ma, <u32>ref);
    m++;
    const cp = clsCopied + (<usize>c << 3);
    store<f64>(cp, load<f64>(cp) + 1);
  }
  rows = m;
  return i;
}

// ---- blockers ---------------------------------------------------------------------------------
//
// placeBlockers()'s per-outcome loop (src/decide/livepatch.ts placeRows is the definition and the
// fallback): every outcome's entry (its class, or for the outcomes of `own`, in order, entry
// classCount + k) has template rows [tplStart[id], tplStart[id + 1]) that become the outcome's
// blockers, and the first outcome in task order (pid, then tid, null (NaN) last) whose entry holds
// a kernel-visible blocking match is found on the way. It runs in this instance, after the class
// loops, over arrays the host laid out with theirs (the outcomes' tasks in the copy loop's task
// column, the classes in taskClass, pid and tid as copied in): rows come out in chunks of at most
// `room` (placeRows() is called until placeDone()), so nothing here grows with the blocker count.

let plOwn: usize = 0;
let plTplStart: usize = 0;
let plVisible: usize = 0;
// Template columns: u32 func, frame, frame index, remedy ref; u8 kernel-sees, role.
let tFunc: usize = 0;
let tFrame: usize = 0;
let tFrameIndex: usize = 0;
let tRemedy: usize = 0;
let tSees: usize = 0;
let tRole: usize = 0;
// Blocker chunk columns (out): the same, with u32 task.
let bTask: usize = 0;
let bFunc: usize = 0;
let bFrame: usize = 0;
let bFrameIndex: usize = 0;
let bRemedy: usize = 0;
let bSees: usize = 0;
let bRole: usize = 0;
// Where the placement stands between chunks.
let plO: u32 = 0;
let plR: i32 = -1;
let plNext: u32 = 0;
let plDone: bool = false;
let placedFirst: i32 = -1;
let placedFirstId: i32 = -1;
let placedFirstPid: f64 = 0;
let placedFirstTid: f64 = 0;

export function bindPlacer(own: usize, tplStart: usize, visible: usize): void {
  plOwn = own;
  plTplStart = tplStart;
  plVisible = visible;
  plO = 0;
  plR = -1;
  plNext = 0;
  plDone = false;
  placedFirst = -1;
  placedFirstId = -1;
}

export function bindTemplate(func: usize, frame: usize, frameIndex: usize, remedy: usize, sees: usize, role: usize): void {
  tFunc = func;
  tFrame = frame;
  tFrameIndex = frameIndex;
  tRemedy = remedy;
  tSees = sees;
  tRole = role;
}

export function bindBlockers(task: usize, func: usize, frame: usize, frameIndex: usize, remedy: usize, sees: usize, role: usize): void {
  bTask = task;
  bFunc = func;
  bFrame = frame;
  bFrameIndex = frameIndex;
  bRemedy = remedy;
  bSees = sees;
  bRole = role;
}

export function placeDone(): bool {
  return plDone;
}
export function placedFirstTask(): i32 {
  return placedFirst;
}
export function placedFirstEntry(): i32 {
  return placedFirstId;
}

/** NaN (a null pid or tid) sorts last, as Number.MAX_SAFE_INTEGER does in the host's loop. */
@inline function orderKey(x: f64): f64 {
  return x != x ? 9007199254740991.0 : x;
}

/** The entry of outcome `o` (task `index`): its own entry, or its task's class. */
@inline function entryOf(o: u32, index: u32, classCount: u32, ownCount: u32): u32 {
  if (plNext < ownCount && load<u32>(plOwn + (<usize>plNext << 2)) == o) return classCount + plNext;
  return <u32>load<i32>(taskClass + (<usize>index << 2));
}

/**
 * Writes the next at most `room` blocker rows (from row 0 of the chunk columns) and returns how
 * many; placeDone() once every outcome is placed, placedFirstTask()/placedFirstEntry() then say
 * the first visible one (-1: none). The outcomes' tasks are in the copy loop's task column.
 */
export function placeRows(outCount: u32, classCount: u32, ownCount: u32, room: u32): u32 {
  let n: u32 = 0;
  while (plO < outCount) {
    const o = plO;
    const index = load<u32>(outTask + (<usize>o << 2));
    const id = entryOf(o, index, classCount, ownCount);
    const end = load<i32>(plTplStart + (<usize>(id + 1) << 2));
    if (plR < 0) plR = load<i32>(plTplStart + (<usize>id << 2));
    for (; plR < end; plR++) {
      if (n == room) return n;
      const ra = <usize>plR << 2;
      const na = <usize>n << 2;
      store<u32>(bTask + na, index);
      store<u32>(bFunc + na, load<u32>(tFunc + ra));
      store<u32>(bFrame + na, load<u32>(tFrame + ra));
      store<u32>(bFrameIndex + na, load<u32>(tFrameIndex + ra));
      store<u32>(bRemedy + na, load<u32>(tRemedy + ra));
      store<u8>(bSees + <usize>n, load<u8>(tSees + <usize>plR));
      store<u8>(bRole + <usize>n, load<u8>(tRole + <usize>plR));
      n++;
    }
    if (load<u8>(plVisible + <usize>id) != 0) {
      const p = orderKey(load<f64>(pid + (<usize>index << 3)));
      const q = orderKey(load<f64>(tid + (<usize>index << 3)));
      if (placedFirst < 0 || p < placedFirstPid || (p == placedFirstPid && q < placedFirstTid)) {
        placedFirst = <i32>index;
        placedFirstId = <i32>id;
        placedFirstPid = p;
        placedFirstTid = q;
      }
    }
    if (id >= classCount) plNext++;
    plO++;
    plR = -1;
  }
  plDone = true;
  return n;
}
