/**
 * Host side of the per-task kernels of the decision (assembly/tasks.ts): the arrays decide's
 * class loops and blocker placement read and write, laid out in the kernel's memory, and the
 * three loops (class membership, copying a class's outcome, placing blocker rows) run there.
 * Browser-clean (no `node:` imports). decide works without a kernel (its TypeScript loops, the
 * reference test/task-kernel.test.ts compares against); src/node/wasm.ts gives one to the wasm
 * Scanner it makes, and check() hands it to decide.
 */
import { PatchsafeError } from "../errors.js";
import type { TaskTable } from "../model.js";
import type { BlockerTemplate } from "./livepatch.js";
import { type Blockers, type Outcomes, TASK_KINDS } from "./verdict.js";

/** The arrays of one decision: views into the kernel's memory, valid until its next layout(). */
export interface TaskKernelArrays {
  kinds: Uint8Array;
  chainLen: Int32Array;
  taskClass: Int32Array;
  kindCount: Float64Array;
  /** Per span start (frame row): the span's latest class, -1 for none. */
  bySpan: Int32Array;
  /** Per class. */
  count: Uint32Array;
  sig: Uint32Array;
  kind: Uint8Array;
  chainLength: Int32Array;
  size: Float64Array;
  first: Uint32Array;
  /** The class's decided status code, -1 while it has none (set when the class is made). */
  status: Int32Array;
  /** The class's Outcomes.listRef, -1 until its first copy (set when the class is made). */
  ref: Int32Array;
  /** Tasks copied per class. */
  copied: Float64Array;
  /** copyDecided()'s rows of the last call. */
  outTask: Uint32Array;
  outKind: Uint8Array;
  outStatus: Uint8Array;
  outRef: Uint32Array;
  /** placeRows()'s inputs: the own outcomes, each entry's template rows and visibility, the rows. */
  own: Uint32Array;
  tplStart: Int32Array;
  visible: Uint8Array;
  tFunc: Uint32Array;
  tFrame: Uint32Array;
  tFrameIndex: Uint32Array;
  tRemedy: Uint32Array;
  tSees: Uint8Array;
  tRole: Uint8Array;
  /** placeRows()'s output chunk. */
  bTask: Uint32Array;
  bFunc: Uint32Array;
  bFrame: Uint32Array;
  bFrameIndex: Uint32Array;
  bRemedy: Uint32Array;
  bSees: Uint8Array;
  bRole: Uint8Array;
}

type ColumnType = "u8" | "i8" | "u32" | "i32" | "f64";
const VIEW = { u8: Uint8Array, i8: Int8Array, u32: Uint32Array, i32: Int32Array, f64: Float64Array } as const;

/*
 * The layout's sizes. Its memory counts as external memory to V8, which starts a full
 * mark-compact once external memory has grown by 64 MB: a 100k-task check comes near that with
 * the dump, the symbol file and the scan kernel, and a layout with room for a class and 4
 * template rows per task (25 MB) added two mark-compacts (~5 ms) it had not run before. Real
 * captures have a few hundred classes (a span of rows and the facts the rules read) and a few
 * template rows per class, not per task.
 */
/** Classes a layout has room for: a capture with more classes the rest of its tasks unclassed (decided through the rule memo, as without classes). */
export const TASK_KERNEL_MAX_CLASSES = 1 << 14;
/** Template rows per entry, and in all (more: placeRows() leaves it to the TypeScript loop). */
const TEMPLATE_ROWS_PER_ENTRY = 4;
const MAX_TEMPLATE_ROWS = 1 << 16;
/** Blocker rows per placeRows() chunk. */
const BLOCKER_CHUNK = 1 << 14;

/**
 * Captures with fewer tasks keep the class loops in TypeScript: the kernel's fixed cost per check
 * (laying out its arrays, copying the task columns in and the rows out) is more than those loops
 * cost once V8 has compiled them, which in a fleet worker it has after a few hosts (a fleet of
 * 1000 hosts of 1000 tasks took ~0.2 ms more per host with the kernel).
 */
export const TASK_KERNEL_MIN_TASKS = 32768;

export interface TaskKernel {
  /** decide uses the kernel for captures of at least this many tasks. */
  readonly minTasks: number;
  /** The classes decide makes with the kernel at most (TASK_KERNEL_MAX_CLASSES). */
  readonly maxClasses: number;
  /**
   * Lays out the arrays for the tasks of `tasks` (their columns copied in), `spans` span starts
   * and at most `classes` classes; every array of an earlier layout is dead.
   */
  layout(tasks: TaskTable, spans: number, classes: number): TaskKernelArrays;
  /** SpanClasses.classifyKnown for a capture without notes, PF flags or errnos; returns the first task left. */
  classifyKnown(from: number, to: number): number;
  /** TaskDecider.copyDecided: returns the first task left; the rows are outTask… [0, copiedRows()). */
  copyDecided(from: number, to: number): number;
  copiedRows(): number;
  /**
   * placeBlockers()'s per-outcome loop (src/decide/livepatch.ts placeRows, whose arguments these
   * are, `taskClass` being this layout's) after the class loops: writes the rows into `bl` (at
   * most `total`: its capacity), or returns null when the template does not fit the layout.
   */
  placeRows(out: Outcomes, ownOutcome: number[], classCount: number, tplStart: Int32Array, visibleId: Uint8Array, t: BlockerTemplate, bl: Blockers, total: number): { rows: number; first: number; firstId: number } | null;
}

interface TaskKernelExports {
  memory: WebAssembly.Memory;
  reset(): void;
  allocate(bytes: number, zero: number): number;
  bindTasks(fs: number, fc: number, p: number, t: number, ps: number, b: number, s: number, ss: number, k: number, cl: number, tc: number): void;
  bindClasses(span: number, count: number, sig: number, kind: number, chain: number, size: number, status: number, ref: number, copied: number, kc: number): void;
  bindOutcomes(task: number, kind: number, status: number, ref: number): void;
  classifyKnown(from: number, to: number): number;
  copyDecided(from: number, to: number): number;
  copiedRows(): number;
  bindPlacer(own: number, tplStart: number, visible: number): void;
  bindTemplate(func: number, frame: number, frameIndex: number, remedy: number, sees: number, role: number): void;
  bindBlockers(task: number, func: number, frame: number, frameIndex: number, remedy: number, sees: number, role: number): void;
  placeRows(outCount: number, classCount: number, ownCount: number, room: number): number;
  placeDone(): number;
  placedFirstTask(): number;
  placedFirstEntry(): number;
}

const EXPORTED = ["memory", "reset", "allocate", "bindTasks", "bindClasses", "bindOutcomes", "classifyKnown", "copyDecided", "copiedRows", "bindPlacer", "bindTemplate", "bindBlockers", "placeRows", "placeDone", "placedFirstTask", "placedFirstEntry"];

export function compileTaskKernelModule(bytes: Uint8Array<ArrayBuffer>): WebAssembly.Module {
  const module = new WebAssembly.Module(bytes);
  const names = WebAssembly.Module.exports(module).map((e) => e.name);
  for (const f of EXPORTED) if (!names.includes(f)) throw new PatchsafeError("E_INTERNAL", `task kernel module lacks export ${f} (rebuild with npm run asbuild)`);
  for (const i of WebAssembly.Module.imports(module)) {
    if (!(i.module === "env" && i.name === "abort")) throw new PatchsafeError("E_INTERNAL", `task kernel module imports ${i.module}.${i.name}: only env.abort is allowed`);
  }
  return module;
}

/** A kernel instance (its own memory; one decision at a time). */
function instantiate(module: WebAssembly.Module): TaskKernelExports {
  const instance = new WebAssembly.Instance(module, {
    env: {
      abort: (_m: number, _f: number, line: number, col: number) => {
        throw new PatchsafeError("E_INTERNAL", `task kernel aborted at assembly/tasks.ts:${line}:${col} (a patchsafe bug)`);
      },
    },
  });
  return instance.exports as unknown as TaskKernelExports;
}

/**
 * `minTasks`: TaskKernel.minTasks (tests give 0 to run the kernel on small captures);
 * `maxClasses`: TaskKernel.maxClasses (tests give a few, to fill it);
 * `blockerChunk`: blocker rows per placement chunk (tests give a few, to cross chunk boundaries).
 */
export function createWasmTaskKernel(module: WebAssembly.Module, opts: { minTasks?: number; maxClasses?: number; blockerChunk?: number } = {}): TaskKernel {
  const chunk = Math.max(1, opts.blockerChunk ?? BLOCKER_CHUNK);
  const x = instantiate(module);
  let arrays: TaskKernelArrays | null = null;
  return {
    minTasks: opts.minTasks ?? TASK_KERNEL_MIN_TASKS,
    maxClasses: Math.max(1, opts.maxClasses ?? TASK_KERNEL_MAX_CLASSES),
    layout(tasks: TaskTable, spans: number, classes: number): TaskKernelArrays {
      const n = tasks.length;
      const T = Math.max(n, 1);
      const C = Math.max(classes, 1);
      const S = Math.max(spans, 1);
      const E = C + T; // placement entries: classes, then own outcomes
      const R = Math.min(TEMPLATE_ROWS_PER_ENTRY * E, MAX_TEMPLATE_ROWS);
      // Every array as [type, length]; the task columns are copied in, the rest written by decide
      // and the loops. Nothing is zeroed but kindCount: decide writes every task's kind, chain
      // length and class, sets a class's slots when it makes the class and zeroes `copied` over
      // the classes made (the memory is reused), and the placer's arrays are reserved here (the
      // memory must not grow once views exist) and touched only as far as used.
      const spec = {
        frameStart: ["u32", T],
        frameCount: ["u32", T],
        pid: ["f64", T],
        tid: ["f64", T],
        patchState: ["i8", T],
        bits: ["u8", T],
        state: ["u8", T],
        stackStatus: ["u8", T],
        kinds: ["u8", T],
        chainLen: ["i32", T],
        taskClass: ["i32", T],
        kindCount: ["f64", TASK_KINDS.length],
        bySpan: ["i32", S],
        count: ["u32", C],
        sig: ["u32", C],
        kind: ["u8", C],
        chainLength: ["i32", C],
        size: ["f64", C],
        first: ["u32", C],
        status: ["i32", C],
        ref: ["i32", C],
        copied: ["f64", C],
        outTask: ["u32", T],
        outKind: ["u8", T],
        outStatus: ["u8", T],
        outRef: ["u32", T],
        own: ["u32", T],
        tplStart: ["i32", E + 1],
        visible: ["u8", E],
        tFunc: ["u32", R],
        tFrame: ["u32", R],
        tFrameIndex: ["u32", R],
        tRemedy: ["u32", R],
        tSees: ["u8", R],
        tRole: ["u8", R],
        bTask: ["u32", chunk],
        bFunc: ["u32", chunk],
        bFrame: ["u32", chunk],
        bFrameIndex: ["u32", chunk],
        bRemedy: ["u32", chunk],
        bSees: ["u8", chunk],
        bRole: ["u8", chunk],
      } as const satisfies Record<string, readonly [ColumnType, number]>;
      type Name = keyof typeof spec;
      x.reset();
      // Offsets first (memory may grow while allocating), views after.
      const at = {} as Record<Name, number>;
      for (const name of Object.keys(spec) as Name[]) {
        const [type, length] = spec[name];
        at[name] = x.allocate(length * VIEW[type].BYTES_PER_ELEMENT, name === "kindCount" ? 1 : 0);
      }
      const mem = x.memory.buffer;
      const view = {} as Record<Name, ArrayBufferView>;
      for (const name of Object.keys(spec) as Name[]) {
        const [type, length] = spec[name];
        view[name] = new VIEW[type](mem, at[name], length);
      }
      const v = view as unknown as TaskKernelArrays & Record<"frameStart" | "frameCount" | "pid" | "tid" | "patchState" | "bits" | "state" | "stackStatus", ArrayBufferView & { set(a: ArrayLike<number>): void }>;
      v.frameStart.set(tasks.frameStart.subarray(0, n));
      v.frameCount.set(tasks.frameCount.subarray(0, n));
      v.pid.set(tasks.pid.subarray(0, n));
      v.tid.set(tasks.tid.subarray(0, n));
      v.patchState.set(tasks.patchStateCode.subarray(0, n));
      v.bits.set(tasks.bits.subarray(0, n));
      v.state.set(tasks.state.subarray(0, n));
      v.stackStatus.set(tasks.stackStatusCode.subarray(0, n));
      x.bindTasks(at.frameStart, at.frameCount, at.pid, at.tid, at.patchState, at.bits, at.state, at.stackStatus, at.kinds, at.chainLen, at.taskClass);
      x.bindClasses(at.bySpan, at.count, at.sig, at.kind, at.chainLength, at.size, at.status, at.ref, at.copied, at.kindCount);
      x.bindOutcomes(at.outTask, at.outKind, at.outStatus, at.outRef);
      x.bindTemplate(at.tFunc, at.tFrame, at.tFrameIndex, at.tRemedy, at.tSees, at.tRole);
      x.bindBlockers(at.bTask, at.bFunc, at.bFrame, at.bFrameIndex, at.bRemedy, at.bSees, at.bRole);
      // The per-task and per-class views decide reads are as long as its tasks and classes.
      arrays = {
        ...v,
        kinds: v.kinds.subarray(0, n),
        chainLen: v.chainLen.subarray(0, n),
        taskClass: v.taskClass.subarray(0, n),
        bySpan: v.bySpan.subarray(0, spans),
        count: v.count.subarray(0, classes),
        sig: v.sig.subarray(0, classes),
        kind: v.kind.subarray(0, classes),
        chainLength: v.chainLength.subarray(0, classes),
        size: v.size.subarray(0, classes),
        first: v.first.subarray(0, classes),
        status: v.status.subarray(0, classes),
        ref: v.ref.subarray(0, classes),
        copied: v.copied.subarray(0, classes),
        outTask: v.outTask.subarray(0, n),
        outKind: v.outKind.subarray(0, n),
        outStatus: v.outStatus.subarray(0, n),
        outRef: v.outRef.subarray(0, n),
      };
      arrays.bySpan.fill(-1);
      return arrays;
    },
    classifyKnown: (from, to) => x.classifyKnown(from, to),
    copyDecided: (from, to) => x.copyDecided(from, to),
    copiedRows: () => x.copiedRows(),
    placeRows(out, ownOutcome, classCount, tplStart, visibleId, t, bl, total) {
      const a = arrays;
      const ids = visibleId.length;
      const rows = t.tFunc.length;
      if (a === null || ids + 1 > a.tplStart.length || rows > a.tFunc.length || out.length > a.outTask.length || ownOutcome.length > a.own.length) return null;
      a.outTask.set(out.task.subarray(0, out.length));
      a.own.set(ownOutcome);
      a.tplStart.set(tplStart);
      a.visible.set(visibleId);
      a.tFunc.set(t.tFunc);
      a.tFrame.set(t.tFrame);
      a.tFrameIndex.set(t.tFrameIndex);
      a.tRemedy.set(t.tRemedy);
      a.tSees.set(t.tSees);
      a.tRole.set(t.tRole);
      x.bindPlacer(a.own.byteOffset, a.tplStart.byteOffset, a.visible.byteOffset);
      let n = 0;
      while (x.placeDone() === 0) {
        const m = x.placeRows(out.length, classCount, ownOutcome.length, chunk);
        // At most `total` rows are copied (the columns hold that many); more is the caller's E_INTERNAL.
        const k = Math.max(0, Math.min(m, total - n));
        if (k === 0) {
          n += m;
          continue;
        }
        bl.task.set(a.bTask.subarray(0, k), n);
        bl.func.set(a.bFunc.subarray(0, k), n);
        bl.frame.set(a.bFrame.subarray(0, k), n);
        bl.frameIndex.set(a.bFrameIndex.subarray(0, k), n);
        bl.remedyRef.set(a.bRemedy.subarray(0, k), n);
        bl.kernelSees.set(a.bSees.subarray(0, k), n);
        bl.roleCode.set(a.bRole.subarray(0, k), n);
        n += m;
      }
      return { rows: n, first: x.placedFirstTask(), firstId: x.placedFirstEntry() };
    },
  };
}
