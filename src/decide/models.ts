/**
 * What the kpatch and quiesce models see, as captures the ordinary pipeline can check (SPEC §4).
 *
 * kpatch: two tasks no capture shows are always on the task list when kpatch.ko checks: the
 * stopper thread running the check, and the task loading the patch (or, on revert, writing
 * `enabled`). A patch of any function on their stacks always fails.
 *
 * quiesce (the seed's proposal: freeze user tasks with the PM freezer and park smpboot threads,
 * then one global check): each task's stack is replaced by what freezing/parking would leave.
 * Freezing or parking never unwinds an existing stack: a task frozen in place keeps every frame.
 */
import { type Capture, FrameColumns, FrameFlag, frameLine, type Task, TaskTable, VMLINUX } from "../model.js";
import type { SymbolTable } from "../symbols/table.js";
import { frameName, isParkable, realChain, taskKind } from "./kinds.js";
import type { Direction } from "./verdict.js";

/** Notes marking the two tasks kpatch's check always has and no capture shows. */
export const KPATCH_STOPPER_NOTE = "kpatch-stopper";
export const KPATCH_CALLER_NOTE = "kpatch-caller";
export const isKpatchAddedTask = (note: string | undefined): boolean => note === KPATCH_STOPPER_NOTE || note === KPATCH_CALLER_NOTE;

/** `kpatch_verify_activeness_safety` runs here, under stop_machine (SPEC §4). */
export const KPATCH_STOPPER_STACK = [
  "kpatch_verify_activeness_safety",
  "kpatch_apply_patch",
  "multi_cpu_stop",
  "cpu_stopper_thread",
  "smpboot_thread_fn",
  "kthread",
  "ret_from_fork",
  "ret_from_fork_asm",
];

export function kpatchCallerStack(direction: Direction): string[] {
  return direction === "apply"
    ? ["stop_machine", "kpatch_register", "do_one_initcall", "do_init_module", "load_module", "__do_sys_finit_module", "__x64_sys_finit_module", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"]
    : ["stop_machine", "kpatch_unregister", "kernfs_fop_write_iter", "vfs_write", "ksys_write", "__x64_sys_write", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"];
}

/**
 * Sleeps the PM freezer freezes in place (TASK_FREEZABLE since 6.1, freezable_schedule* before):
 * futex waits (every pthread wait), nanosleep, sigtimedwait, vfork parents, binder, NFS/SUNRPC
 * and CIFS waits. Data, by function name; kernels inline differently, so several names each.
 */
export const FREEZABLE_SLEEPS = new Set([
  "futex_wait",
  "__futex_wait",
  "futex_do_wait",
  "futex_wait_queue",
  "futex_wait_queue_me",
  "do_nanosleep",
  "hrtimer_nanosleep",
  "common_nsleep",
  "do_sigtimedwait",
  "__x64_sys_rt_sigtimedwait",
  "wait_for_vfork_done",
  "binder_thread_read",
  "binder_wait_for_work",
  "rpc_wait_bit_killable",
  "__rpc_execute",
  "nfs_wait_bit_killable",
  "wait_for_response",
  "cifs_wait_mtu_credits",
]);

/** What quiescing does to one task. */
export type QuiesceEffect = "frozen-in-place" | "unwound" | "parked" | "unchanged" | "freeze-fails" | "running";

export interface Transformed {
  capture: Capture;
  /** Per task of the new capture: the effect (quiesce) or why it was added (kpatch). */
  notes: Map<number, string>;
}

/**
 * Copies the capture with some tasks' stacks replaced and tasks appended; strings are shared.
 * `replace` null: no stack is replaced, and every row is copied as it is (same index, line and
 * flags), so tasks keep their rows and whatever sharing the capture had (kpatch's task list on
 * top of quiesce's predicted stacks keeps them shared). Tasks that get the same replacement
 * names share one copy of those rows (quiesce predicts a few hundred distinct stacks for a
 * million tasks); such rows carry no FrameFlag.SHARED, and their line is their own.
 */
function rebuild(
  cap: Capture,
  table: SymbolTable | null,
  replace: ((t: Task, index: number) => string[] | null) | null,
  extra: { task: Partial<Task>; frames: string[] }[],
): Capture {
  const frames = new FrameColumns(cap.frames.length + 64);
  const tasks = replace === null ? cap.tasks.copy(cap.tasks.length + extra.length) : new TaskTable(cap.tasks.length + extra.length);
  const vmlinux = cap.strings.intern(VMLINUX);
  const addNamed = (name: string): void => {
    // Names the symbol table lacks (inlined on this kernel) are left out: a patch cannot name them.
    if (table !== null && !table.byName.has(name)) return;
    const i = frames.push();
    frames.symbol[i] = cap.strings.intern(name);
    frames.object[i] = vmlinux;
    // Offset 1: inside the function, whatever its size (no size printed: resolved by name).
    frames.offset[i] = 1;
    frames.flags[i] = FrameFlag.SYMBOLIC;
  };
  const copyRow = (j: number, line: number, flagsOff = 0): void => {
    frames.pushCopy(cap.frames, j, line, cap.frames.flags[j] & ~flagsOff);
  };
  if (replace === null) {
    for (let j = 0; j < cap.frames.length; j++) frames.pushCopy(cap.frames, j, cap.frames.line[j]);
  } else {
    // Shared spans (Capture.sharedRows) stay shared: copied once, pointed at by every task of the span.
    const copiedSpans = new Map<number, number>();
    // Replacement stacks by their names (joined), for the tasks that get the same one.
    const replaced = new Map<string, { start: number; count: number }>();
    cap.tasks.forEach((t, idx) => {
      const start = frames.length;
      const names = replace(t, idx);
      if (names === null && cap.sharedRows && t.frameCount > 0 && cap.frames.flags[t.frameStart] & FrameFlag.SHARED) {
        let shared = copiedSpans.get(t.frameStart);
        if (shared === undefined) {
          shared = start;
          for (let j = t.frameStart; j < t.frameStart + t.frameCount; j++) copyRow(j, cap.frames.line[j]);
          copiedSpans.set(t.frameStart, shared);
        }
        tasks.push({ ...t, frameStart: shared, frameCount: t.frameCount });
        return;
      }
      if (names === null) for (let j = t.frameStart; j < t.frameStart + t.frameCount; j++) copyRow(j, frameLine(cap, t, j), FrameFlag.SHARED);
      else if (cap.sharedRows === true) {
        // Rows shared by tasks need a capture that says rows may be shared.
        const key = names.join("\n");
        const known = replaced.get(key);
        if (known !== undefined) {
          tasks.push({ ...t, frameStart: known.start, frameCount: known.count });
          return;
        }
        for (const n of names) addNamed(n);
        replaced.set(key, { start, count: frames.length - start });
      } else for (const n of names) addNamed(n);
      tasks.push({ ...t, frameStart: start, frameCount: frames.length - start });
    });
  }
  for (const e of extra) {
    const start = frames.length;
    for (const n of e.frames) addNamed(n);
    tasks.push({
      pid: null, tid: null, comm: null, state: "R", flags: null, ppid: null, startTime: null, cpu: null, patchState: null,
      stackStatus: "ok", errno: null, running: false, statusKthread: null, endMarker: false, line: 0,
      ...e.task,
      frameStart: start,
      frameCount: frames.length - start,
    });
  }
  return { ...cap, tasks, frames };
}

/** The capture as kpatch.ko's check sees the task list: plus the stopper and the loading task. */
export function withKpatchTasks(cap: Capture, table: SymbolTable | null, direction: Direction): Transformed {
  const enc = (s: string) => new Uint8Array([...s].map((c) => c.charCodeAt(0)));
  const n = cap.tasks.length;
  const out = rebuild(cap, table, null, [
    { task: { comm: enc("migration/0"), state: null, flags: 0x00200040 }, frames: KPATCH_STOPPER_STACK },
    { task: { comm: enc(direction === "apply" ? "insmod" : "sh"), state: null, flags: 0x00400000 }, frames: kpatchCallerStack(direction) },
  ]);
  const notes = new Map<number, string>([
    [n, KPATCH_STOPPER_NOTE],
    [n + 1, KPATCH_CALLER_NOTE],
  ]);
  return { capture: out, notes };
}

/** The entry frames a user task returns through, from the original stack's bottom. */
function entryTail(names: string[]): string[] {
  const k = names.findIndex((n) => n === "do_syscall_64" || n.startsWith("el0") || n.startsWith("entry_"));
  return k < 0 ? names.slice(-1) : names.slice(k);
}

/** Predicts every stack after freeze_processes() and parking the smpboot threads. */
export function predictQuiesce(cap: Capture, table: SymbolTable | null): Transformed {
  const notes = new Map<number, string>();
  const out = rebuild(
    cap,
    table,
    (t, idx) => {
      const chain = realChain(cap, t);
      const names = chain.map((i) => frameName(cap, i) ?? "?");
      const kind = taskKind(cap, t, chain);
      const note = (e: QuiesceEffect): void => {
        notes.set(idx, e);
      };
      if (t.running || t.state === "R") {
        note("running");
        return null;
      }
      if (names.includes("__refrigerator") || names.includes("__kthread_parkme")) {
        note("unchanged");
        return null;
      }
      if (kind === "kthread") {
        const comm = t.comm === null ? "" : String.fromCharCode(...t.comm);
        if (isParkable(cap, chain) && !comm.startsWith("migration/")) {
          note("parked");
          return ["__kthread_parkme", "kthread_parkme", "smpboot_thread_fn", "kthread", "ret_from_fork", "ret_from_fork_asm"];
        }
        note("unchanged");
        return null;
      }
      if (kind !== "user") {
        note("unchanged");
        return null;
      }
      if (t.state === "T" || t.state === "t" || names.some((n) => FREEZABLE_SLEEPS.has(n))) {
        note("frozen-in-place");
        return null;
      }
      if (t.state === "S") {
        note("unwound");
        return ["__refrigerator", "get_signal", "arch_do_signal_or_restart", "exit_to_user_mode_loop", "syscall_exit_to_user_mode", ...entryTail(names)];
      }
      if (t.state === "D") {
        note("freeze-fails");
        return null;
      }
      note("unchanged");
      return null;
    },
    [],
  );
  return { capture: out, notes };
}
