/**
 * Host side of the per-task kernels of the decision (assembly/tasks.ts): the arrays decide's
 * class loops read and write, laid out in the kernel's memory, and the two loops run there.
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
  /** The class's decided status code, -1 while it has none. */
  status: Int32Array;
  /** The class's Outcomes.listRef, -1 until its first copy. */
  ref: Int32Array;
  /** Tasks copied per class. */
  copied: Float64Array;
  /** copyDecided()'s rows of the last call. */
  outTask: Uint32Array;
  outKind: Uint8Array;
  outStatus: Uint8Array;
  outRef: Uint32Array;
}

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
   * are): writes exactly `total` rows into `bl` (capacity at least `total`), in a memory of its own.
   */
  placeRows(out: Outcomes, taskClass: Int32Array, tasks: TaskTable, ownOutcome: number[], classCount: number, tplStart: Int32Array, visibleId: Uint8Array, t: BlockerTemplate, bl: Blockers, total: number): { rows: number; first: number; firstId: number };
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
  bindPlacer(outTask: number, taskClass: number, own: number, tplStart: number, visible: number, pid: number, tid: number): void;
  bindTemplate(func: number, frame: number, frameIndex: number, remedy: number, sees: number, role: number): void;
  bindBlockers(task: number, func: number, frame: number, frameIndex: number, remedy: number, sees: number, role: number): void;
  placeRows(outCount: number, classCount: number, ownCount: number): number;
  placedFirstTask(): number;
  placedFirstEntry(): number;
}

const EXPORTED = ["memory", "reset", "allocate", "bindTasks", "bindClasses", "bindOutcomes", "classifyKnown", "copyDecided", "copiedRows", "bindPlacer", "bindTemplate", "bindBlockers", "placeRows", "placedFirstTask", "placedFirstEntry"];

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

/** `minTasks`: TaskKernel.minTasks (tests give 0 to run the kernel on small captures). */
export function createWasmTaskKernel(module: WebAssembly.Module, opts: { minTasks?: number } = {}): TaskKernel {
  const x = instantiate(module);
  // The placer's own instance (made on first use): its arrays never move the class loops' ones.
  let placer: TaskKernelExports | null = null;
  return {
    minTasks: opts.minTasks ?? TASK_KERNEL_MIN_TASKS,
    layout(tasks: TaskTable, spans: number, classes: number): TaskKernelArrays {
      const T = Math.max(tasks.length, 1);
      const C = Math.max(classes, 1);
      const S = Math.max(spans, 1);
      x.reset();
      // Offsets first (memory may grow while allocating), views after. Only kindCount is zeroed
      // here: decide writes every task's kind, chain length and class, sets a class's slots when
      // it makes the class, and zeroes `copied` over the classes made (the memory is reused).
      const at = {
        frameStart: x.allocate(T * 4, 0),
        frameCount: x.allocate(T * 4, 0),
        pid: x.allocate(T * 8, 0),
        tid: x.allocate(T * 8, 0),
        patchState: x.allocate(T, 0),
        bits: x.allocate(T, 0),
        state: x.allocate(T, 0),
        stackStatus: x.allocate(T, 0),
        kinds: x.allocate(T, 0),
        chainLen: x.allocate(T * 4, 0),
        taskClass: x.allocate(T * 4, 0),
        kindCount: x.allocate(TASK_KINDS.length * 8, 1),
        bySpan: x.allocate(S * 4, 0),
        count: x.allocate(C * 4, 0),
        sig: x.allocate(C * 4, 0),
        kind: x.allocate(C, 0),
        chainLength: x.allocate(C * 4, 0),
        size: x.allocate(C * 8, 0),
        first: x.allocate(C * 4, 0),
        status: x.allocate(C * 4, 0),
        ref: x.allocate(C * 4, 0),
        copied: x.allocate(C * 8, 0),
        outTask: x.allocate(T * 4, 0),
        outKind: x.allocate(T, 0),
        outStatus: x.allocate(T, 0),
        outRef: x.allocate(T * 4, 0),
      };
      const mem = x.memory.buffer;
      const n = tasks.length;
      new Uint32Array(mem, at.frameStart, T).set(tasks.frameStart.subarray(0, n));
      new Uint32Array(mem, at.frameCount, T).set(tasks.frameCount.subarray(0, n));
      new Float64Array(mem, at.pid, T).set(tasks.pid.subarray(0, n));
      new Float64Array(mem, at.tid, T).set(tasks.tid.subarray(0, n));
      new Int8Array(mem, at.patchState, T).set(tasks.patchStateCode.subarray(0, n));
      new Uint8Array(mem, at.bits, T).set(tasks.bits.subarray(0, n));
      new Uint8Array(mem, at.state, T).set(tasks.state.subarray(0, n));
      new Uint8Array(mem, at.stackStatus, T).set(tasks.stackStatusCode.subarray(0, n));
      x.bindTasks(at.frameStart, at.frameCount, at.pid, at.tid, at.patchState, at.bits, at.state, at.stackStatus, at.kinds, at.chainLen, at.taskClass);
      x.bindClasses(at.bySpan, at.count, at.sig, at.kind, at.chainLength, at.size, at.status, at.ref, at.copied, at.kindCount);
      x.bindOutcomes(at.outTask, at.outKind, at.outStatus, at.outRef);
      const arrays: TaskKernelArrays = {
        kinds: new Uint8Array(mem, at.kinds, n),
        chainLen: new Int32Array(mem, at.chainLen, n),
        taskClass: new Int32Array(mem, at.taskClass, n),
        kindCount: new Float64Array(mem, at.kindCount, TASK_KINDS.length),
        bySpan: new Int32Array(mem, at.bySpan, spans),
        count: new Uint32Array(mem, at.count, classes),
        sig: new Uint32Array(mem, at.sig, classes),
        kind: new Uint8Array(mem, at.kind, classes),
        chainLength: new Int32Array(mem, at.chainLength, classes),
        size: new Float64Array(mem, at.size, classes),
        first: new Uint32Array(mem, at.first, classes),
        status: new Int32Array(mem, at.status, classes),
        ref: new Int32Array(mem, at.ref, classes),
        copied: new Float64Array(mem, at.copied, classes),
        outTask: new Uint32Array(mem, at.outTask, n),
        outKind: new Uint8Array(mem, at.outKind, n),
        outStatus: new Uint8Array(mem, at.outStatus, n),
        outRef: new Uint32Array(mem, at.outRef, n),
      };
      arrays.bySpan.fill(-1);
      arrays.status.fill(-1);
      arrays.ref.fill(-1);
      return arrays;
    },
    classifyKnown: (from, to) => x.classifyKnown(from, to),
    copyDecided: (from, to) => x.copyDecided(from, to),
    copiedRows: () => x.copiedRows(),
    placeRows(out, taskClass, tasks, ownOutcome, classCount, tplStart, visibleId, t, bl, total) {
      const p = (placer ??= instantiate(module));
      const outCount = out.length;
      const T = Math.max(tasks.length, 1);
      const ids = visibleId.length;
      const R = Math.max(t.tFunc.length, 1);
      const B = Math.max(total, 1);
      p.reset();
      const at = {
        outTask: p.allocate(Math.max(outCount, 1) * 4, 0),
        taskClass: p.allocate(T * 4, 0),
        own: p.allocate(Math.max(ownOutcome.length, 1) * 4, 0),
        tplStart: p.allocate((ids + 1) * 4, 0),
        visible: p.allocate(Math.max(ids, 1), 0),
        pid: p.allocate(T * 8, 0),
        tid: p.allocate(T * 8, 0),
        tFunc: p.allocate(R * 4, 0),
        tFrame: p.allocate(R * 4, 0),
        tFrameIndex: p.allocate(R * 4, 0),
        tRemedy: p.allocate(R * 4, 0),
        tSees: p.allocate(R, 0),
        tRole: p.allocate(R, 0),
        bTask: p.allocate(B * 4, 0),
        bFunc: p.allocate(B * 4, 0),
        bFrame: p.allocate(B * 4, 0),
        bFrameIndex: p.allocate(B * 4, 0),
        bRemedy: p.allocate(B * 4, 0),
        bSees: p.allocate(B, 0),
        bRole: p.allocate(B, 0),
      };
      const mem = p.memory.buffer;
      const n = tasks.length;
      new Uint32Array(mem, at.outTask, outCount).set(out.task.subarray(0, outCount));
      new Int32Array(mem, at.taskClass, taskClass.length).set(taskClass);
      new Uint32Array(mem, at.own, ownOutcome.length).set(ownOutcome);
      new Int32Array(mem, at.tplStart, ids + 1).set(tplStart);
      new Uint8Array(mem, at.visible, ids).set(visibleId);
      new Float64Array(mem, at.pid, n).set(tasks.pid.subarray(0, n));
      new Float64Array(mem, at.tid, n).set(tasks.tid.subarray(0, n));
      const rows = t.tFunc.length;
      new Uint32Array(mem, at.tFunc, rows).set(t.tFunc);
      new Uint32Array(mem, at.tFrame, rows).set(t.tFrame);
      new Uint32Array(mem, at.tFrameIndex, rows).set(t.tFrameIndex);
      new Uint32Array(mem, at.tRemedy, rows).set(t.tRemedy);
      new Uint8Array(mem, at.tSees, rows).set(t.tSees);
      new Uint8Array(mem, at.tRole, rows).set(t.tRole);
      p.bindPlacer(at.outTask, at.taskClass, at.own, at.tplStart, at.visible, at.pid, at.tid);
      p.bindTemplate(at.tFunc, at.tFrame, at.tFrameIndex, at.tRemedy, at.tSees, at.tRole);
      p.bindBlockers(at.bTask, at.bFunc, at.bFrame, at.bFrameIndex, at.bRemedy, at.bSees, at.bRole);
      const written = p.placeRows(outCount, classCount, ownOutcome.length);
      // At most the rows counted are copied (the columns hold `total`); a difference is the caller's E_INTERNAL.
      const m = Math.min(written, total);
      bl.task.set(new Uint32Array(mem, at.bTask, m));
      bl.func.set(new Uint32Array(mem, at.bFunc, m));
      bl.frame.set(new Uint32Array(mem, at.bFrame, m));
      bl.frameIndex.set(new Uint32Array(mem, at.bFrameIndex, m));
      bl.remedyRef.set(new Uint32Array(mem, at.bRemedy, m));
      bl.kernelSees.set(new Uint8Array(mem, at.bSees, m));
      bl.roleCode.set(new Uint8Array(mem, at.bRole, m));
      return { rows: written, first: p.placedFirstTask(), firstId: p.placedFirstEntry() };
    },
  };
}
