/**
 * The quiesce prediction as it was written first (one Task object per task, a note per task in a
 * Map): the obviously-correct reference src/decide/models.ts predictQuiesce is compared with
 * (test/quiesce-differential.test.ts). Copied from src/decide/models.ts at ceddad5.
 */
import { type Capture, FrameColumns, FrameFlag, frameLine, type Task, TaskTable, VMLINUX } from "../src/model.js";
import type { SymbolTable } from "../src/symbols/table.js";
import { frameName, isParkable, realChain, taskKind } from "../src/decide/kinds.js";
// The data (which sleeps freeze in place) is the model's; the algorithm is what this file keeps.
import { FREEZABLE_SLEEPS, UNWINDING_SLEEPS } from "../src/decide/models.js";

export type QuiesceEffect = "frozen-in-place" | "unwound" | "frozen-or-unwound" | "parked" | "unchanged" | "freeze-fails" | "state-unknown" | "running";

const WAITS = ["__schedule", "schedule", "schedule_timeout", "schedule_timeout_interruptible", "schedule_timeout_killable", "schedule_timeout_uninterruptible", "schedule_hrtimeout", "schedule_hrtimeout_range", "schedule_hrtimeout_range_clock", "schedule_preempt_disabled", "io_schedule", "io_schedule_timeout", "wait_woken", "bit_wait", "bit_wait_io", "__wait_on_bit", "out_of_line_wait_on_bit"];
const EXIT_PATH = ["__refrigerator", "get_signal", "arch_do_signal_or_restart", "do_signal", "exit_to_user_mode_loop", "exit_to_usermode_loop", "syscall_exit_to_user_mode", "prepare_exit_to_usermode", "syscall_return_slowpath"];

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
  replace: ((t: Task, index: number) => string[] | { prepend: string[] } | null) | null,
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
      const got = replace(t, idx);
      if (got !== null && !Array.isArray(got)) {
        // Named frames on top of the task's own rows.
        for (const n of got.prepend) addNamed(n);
        for (let j = t.frameStart; j < t.frameStart + t.frameCount; j++) copyRow(j, frameLine(cap, t, j), FrameFlag.SHARED);
        tasks.push({ ...t, frameStart: start, frameCount: frames.length - start });
        return;
      }
      const names = got;
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

/** The entry frames a user task returns through, from the original stack's bottom. */
function entryTail(names: string[]): string[] {
  const k = names.findIndex((n) => n === "do_syscall_64" || n.startsWith("el0") || n.startsWith("entry_"));
  return k < 0 ? names.slice(-1) : names.slice(k);
}

/** Predicts every stack after freeze_processes() and parking the smpboot threads. */
export function referencePredictQuiesce(cap: Capture, table: SymbolTable | null): { capture: Capture; notes: Map<number, string> } {
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
      if (kind === "user-worker") {
        if (t.state === null || t.state === "S") {
          note("frozen-in-place");
          return { prepend: ["__refrigerator", "get_signal"] };
        }
        note("unchanged");
        return null;
      }
      if (kind !== "user") {
        note("unchanged");
        return null;
      }
      if (t.state === null) {
        note("state-unknown");
        return null;
      }
      // The sleep: the first frame that is a known freezable sleep or not a scheduling primitive.
      const site = names.find((n) => FREEZABLE_SLEEPS.has(n) || !WAITS.includes(n)) ?? null;
      if (t.state === "T" || t.state === "t" || (site !== null && FREEZABLE_SLEEPS.has(site) && (t.state === "S" || t.state === "D"))) {
        note("frozen-in-place");
        return null;
      }
      if (t.state === "S") {
        if (site !== null && UNWINDING_SLEEPS.has(site)) {
          note("unwound");
          return [...EXIT_PATH, ...entryTail(names)];
        }
        note("frozen-or-unwound");
        return { prepend: EXIT_PATH };
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
