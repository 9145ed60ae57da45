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
import { type AppliedPatch, type Capture, FrameColumns, FrameFlag, type Task, TaskTable, VMLINUX } from "../model.js";
import { stackOrder, topReplacement } from "../patch/ranges.js";
import type { SymbolTable } from "../symbols/table.js";
import { frameName, isParkable, realChain, type TaskKind, taskKind } from "./kinds.js";
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

/**
 * The task loading the patch (apply) or writing its `enabled` file (revert), every name any kernel
 * kpatch.ko runs on has used for the path (rebuild() keeps those the table has): the init_module
 * and finit_module syscalls, kernfs_fop_write before 5.10 and __vfs_write before 5.9.
 */
export function kpatchCallerStack(direction: Direction): string[] {
  return direction === "apply"
    ? ["stop_machine_cpuslocked", "stop_machine", "kpatch_register", "do_one_initcall", "do_init_module", "load_module", "init_module_from_file", "idempotent_init_module", "__do_sys_finit_module", "__x64_sys_finit_module", "__do_sys_init_module", "__x64_sys_init_module", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"]
    : ["stop_machine_cpuslocked", "stop_machine", "kpatch_unregister", "kobj_attr_store", "sysfs_kf_write", "kernfs_fop_write_iter", "kernfs_fop_write", "vfs_write", "__vfs_write", "ksys_write", "__x64_sys_write", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"];
}

/**
 * Sleeps the PM freezer freezes in place (TASK_FREEZABLE since 6.1, freezable_schedule* before):
 * futex waits (every pthread wait), nanosleep, sigtimedwait, vfork parents, binder, NFS/SUNRPC
 * and CIFS waits. Data, by function name; kernels inline differently, so several names each.
 */
export const FREEZABLE_SLEEPS = new Set([
  // The pre-6.1 helpers themselves (include/linux/freezer.h): whoever called them sleeps freezable.
  "freezable_schedule",
  "freezable_schedule_timeout",
  "freezable_schedule_timeout_interruptible",
  "freezable_schedule_timeout_killable",
  "freezable_schedule_timeout_killable_unsafe",
  "freezable_schedule_hrtimeout_range",
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
  // AF_UNIX stream reads (unix_stream_data_wait: freezable_schedule_timeout, then TASK_FREEZABLE).
  "unix_stream_data_wait",
  "unix_stream_read_generic",
  "alarmtimer_do_nsleep",
]);

/**
 * Interruptible sleeps known not to be freezable (plain TASK_INTERRUPTIBLE): the fake signal ends
 * the syscall and the task freezes on its way out (SPEC §4). Only these are predicted unwound; a
 * sleep on neither list may be either, and both stacks are checked.
 */
export const UNWINDING_SLEEPS = new Set([
  "do_epoll_wait",
  "ep_poll",
  "do_sys_poll",
  "do_poll",
  "do_select",
  "core_sys_select",
  "pipe_read",
  "anon_pipe_read",
  "pipe_wait",
  "pipe_wait_readable",
  "do_wait",
  "kernel_wait4",
  "sk_wait_data",
  "inet_csk_accept",
  "n_tty_read",
  "wait_for_completion_interruptible",
  "do_signalfd4",
  "signalfd_dequeue",
  "inotify_read",
  "eventfd_read",
  "timerfd_read",
]);

/**
 * Scheduling and wait primitives that say nothing of which sleep this is: the sleep is decided by
 * the first frame below them. (/proc hides .sched.text, so most stacks start below them anyway.)
 */
const WAIT_PRIMITIVES = new Set([
  "__schedule",
  "schedule",
  "schedule_timeout",
  "schedule_timeout_interruptible",
  "schedule_timeout_killable",
  "schedule_timeout_uninterruptible",
  "schedule_hrtimeout",
  "schedule_hrtimeout_range",
  "schedule_hrtimeout_range_clock",
  "schedule_preempt_disabled",
  "io_schedule",
  "io_schedule_timeout",
  "wait_woken",
  "bit_wait",
  "bit_wait_io",
  "__wait_on_bit",
  "out_of_line_wait_on_bit",
]);

/** Which sleep a stack is in: the first frame that is not a scheduling primitive, or null. */
function sleepSite(names: string[]): string | null {
  for (const n of names) {
    if (FREEZABLE_SLEEPS.has(n)) return n;
    if (!WAIT_PRIMITIVES.has(n)) return n;
  }
  return null;
}

/**
 * What quiescing does to one task. `frozen-or-unwound`: a sleep on neither list, so the task is
 * checked with both stacks. `state-unknown`: a user task whose state the input does not give
 * (it could be in a sleep that makes the freeze fail): undecided.
 */
export type QuiesceEffect = "frozen-in-place" | "unwound" | "frozen-or-unwound" | "parked" | "unchanged" | "freeze-fails" | "state-unknown" | "running";

export interface Transformed {
  capture: Capture;
  /** Per task of the new capture: the effect (quiesce) or why it was added (kpatch). */
  notes: TaskNotes;
}

/**
 * A model's note per task, read as a ReadonlyMap from task index to note. quiesce notes every
 * task with one of six effects: a Map of a million entries was ~60 MB and most of a 1M-task
 * quiesce check's GC; here a note is a byte per task. Iterates in task order.
 */
export class TaskNotes implements ReadonlyMap<number, string> {
  private codes: Uint8Array;
  private readonly labels: string[] = [""];
  private count = 0;

  constructor(capacity = 0) {
    this.codes = new Uint8Array(capacity);
  }

  /** A copy with the other notes added (they win where both note a task). */
  static merged(a: ReadonlyMap<number, string>, b: ReadonlyMap<number, string>): TaskNotes {
    const out = new TaskNotes(a instanceof TaskNotes ? a.codes.length : 0);
    for (const [i, n] of a) out.set(i, n);
    for (const [i, n] of b) out.set(i, n);
    return out;
  }

  set(task: number, note: string): this {
    if (!Number.isSafeInteger(task) || task < 0) throw new RangeError(`note for task ${task}`);
    let code = this.labels.indexOf(note, 1);
    if (code < 0) {
      if (this.labels.length > 255) throw new RangeError("more than 255 distinct notes");
      code = this.labels.push(note) - 1;
    }
    if (task >= this.codes.length) {
      const grown = new Uint8Array(Math.max(task + 1, this.codes.length * 2, 16));
      grown.set(this.codes);
      this.codes = grown;
    }
    if (this.codes[task] === 0) this.count++;
    this.codes[task] = code;
    return this;
  }

  get(task: number): string | undefined {
    const c = this.codes[task];
    return c === undefined || c === 0 ? undefined : this.labels[c];
  }

  has(task: number): boolean {
    return this.get(task) !== undefined;
  }

  get size(): number {
    return this.count;
  }

  *entries(): MapIterator<[number, string]> {
    const { codes, labels } = this;
    for (let i = 0; i < codes.length; i++) if (codes[i] !== 0) yield [i, labels[codes[i]]];
  }

  *keys(): MapIterator<number> {
    for (const [i] of this.entries()) yield i;
  }

  *values(): MapIterator<string> {
    for (const [, n] of this.entries()) yield n;
  }

  forEach(fn: (note: string, task: number, map: ReadonlyMap<number, string>) => void): void {
    for (const [i, n] of this.entries()) fn(n, i, this);
  }

  [Symbol.iterator](): MapIterator<[number, string]> {
    return this.entries();
  }

  get [Symbol.toStringTag](): string {
    return "TaskNotes";
  }
}

/**
 * Copies the capture with some tasks' stacks replaced and tasks appended; strings are shared.
 * `replace` null: no stack is replaced, and every row is copied as it is (same index, line and
 * flags), so tasks keep their rows and whatever sharing the capture had (kpatch's task list on
 * top of quiesce's predicted stacks keeps them shared). Otherwise `replace(i)` gives task i's new
 * stack by function names, or null to keep its own; it may return the same array for many tasks.
 * Tasks that get the same replacement names share one copy of those rows (quiesce predicts a few
 * hundred distinct stacks for a million tasks); such rows carry no FrameFlag.SHARED, and their
 * line is their own. The task table is copied as columns (TaskTable.copy): only the frame
 * columns of each task change, and no task becomes an object.
 */
/** A replacement that keeps the task's own rows (module frames, offsets and all) under some named frames. */
interface Prepend {
  prepend: string[];
}

function rebuild(
  cap: Capture,
  table: SymbolTable | null,
  replace: ((index: number) => string[] | Prepend | null) | null,
  extra: { task: Partial<Task>; frames: (string | { name: string; object: string })[] }[],
): Capture {
  const frames = new FrameColumns(cap.frames.length + 64);
  const tasks = cap.tasks.copy(cap.tasks.length + extra.length);
  const vmlinux = cap.strings.intern(VMLINUX);
  /** A replacement in a patch module: kept whatever the table knows (a patch may name it). */
  const addModuleFrame = (name: string, object: string): void => {
    const i = frames.push();
    frames.symbol[i] = cap.strings.intern(name);
    frames.object[i] = cap.strings.intern(object);
    frames.offset[i] = 1;
    frames.flags[i] = FrameFlag.SYMBOLIC;
  };
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
  if (replace === null) {
    for (let j = 0; j < cap.frames.length; j++) frames.pushCopy(cap.frames, j, cap.frames.line[j]);
  } else {
    const src = cap.frames;
    const { frameStart: oldStart, frameCount: oldCount, line: taskLine } = cap.tasks;
    const { frameStart, frameCount } = tasks;
    // Shared spans (Capture.sharedRows) stay shared: copied once, pointed at by every task of the span.
    // Keyed by first row: a span's first task made the rows, and tasks of a shorter stack that
    // starts there point into its prefix (a longer one never follows: its rows would not exist).
    const copiedSpans = new Map<number, { start: number; count: number }>();
    // Replacement stacks: by the array replace() returned, then by their names (joined).
    const byArray = new Map<string[], { start: number; count: number }>();
    const byNames = new Map<string, { start: number; count: number }>();
    for (let idx = 0; idx < cap.tasks.length; idx++) {
      const start = frames.length;
      const s0 = oldStart[idx];
      const n0 = oldCount[idx];
      const got = replace(idx);
      if (got !== null && !Array.isArray(got)) {
        for (const n of got.prepend) addNamed(n);
        for (let j = s0; j < s0 + n0; j++) {
          const own = !cap.sharedRows || (src.flags[j] & FrameFlag.SHARED) === 0;
          frames.pushCopy(src, j, own ? src.line[j] : taskLine[idx] + (j - s0), src.flags[j] & ~FrameFlag.SHARED);
        }
        frameStart[idx] = start;
        frameCount[idx] = frames.length - start;
        continue;
      }
      const names = got;
      if (names === null) {
        if (cap.sharedRows && n0 > 0 && src.flags[s0] & FrameFlag.SHARED) {
          let shared = copiedSpans.get(s0);
          if (shared === undefined || shared.count < n0) {
            shared = { start, count: n0 };
            for (let j = s0; j < s0 + n0; j++) frames.pushCopy(src, j, src.line[j], src.flags[j]);
            copiedSpans.set(s0, shared);
          }
          frameStart[idx] = shared.start;
          frameCount[idx] = n0;
          continue;
        }
        // Own rows: their lines made explicit (frameLine), no longer marked shared.
        for (let j = s0; j < s0 + n0; j++) {
          const own = !cap.sharedRows || (src.flags[j] & FrameFlag.SHARED) === 0;
          frames.pushCopy(src, j, own ? src.line[j] : taskLine[idx] + (j - s0), src.flags[j] & ~FrameFlag.SHARED);
        }
      } else if (cap.sharedRows === true) {
        // Rows shared by tasks need a capture that says rows may be shared.
        let known = byArray.get(names);
        if (known === undefined) {
          const key = names.join("\n");
          known = byNames.get(key);
          if (known === undefined) {
            for (const n of names) addNamed(n);
            known = { start, count: frames.length - start };
            byNames.set(key, known);
          }
          byArray.set(names, known);
        }
        frameStart[idx] = known.start;
        frameCount[idx] = known.count;
        continue;
      } else for (const n of names) addNamed(n);
      frameStart[idx] = start;
      frameCount[idx] = frames.length - start;
    }
  }
  for (const e of extra) {
    const start = frames.length;
    for (const n of e.frames) {
      if (typeof n === "string") addNamed(n);
      else addModuleFrame(n.name, n.object);
    }
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

/**
 * The capture as kpatch.ko's check sees the task list: plus the stopper and the loading task.
 * Where an enabled module of `applied` replaces one of their functions, they run that module's
 * version (kpatch checks the newest): its frame is added beside the original's.
 */
export function withKpatchTasks(cap: Capture, table: SymbolTable | null, direction: Direction, applied: AppliedPatch[] = []): Transformed {
  const enc = (s: string) => new Uint8Array([...s].map((c) => c.charCodeAt(0)));
  const n = cap.tasks.length;
  const ordered = stackOrder(applied);
  const current = (names: string[]): (string | { name: string; object: string })[] =>
    names.flatMap((name) => {
      const top = topReplacement(ordered, { object: VMLINUX, oldName: name, oldSympos: 0 });
      return top === null ? [name] : [{ name: top.func.newName ?? name, object: top.patch.name }, name];
    });
  const out = rebuild(cap, table, null, [
    { task: { comm: enc("migration/0"), state: null, flags: 0x00200040 }, frames: current(KPATCH_STOPPER_STACK) },
    { task: { comm: enc(direction === "apply" ? "insmod" : "sh"), state: null, flags: 0x00400000 }, frames: current(kpatchCallerStack(direction)) },
  ]);
  const notes = new TaskNotes(n + 2).set(n, KPATCH_STOPPER_NOTE).set(n + 1, KPATCH_CALLER_NOTE);
  return { capture: out, notes };
}

/** The entry frames a user task returns through, from the original stack's bottom. */
function entryTail(names: string[]): string[] {
  const k = names.findIndex((n) => n === "do_syscall_64" || n.startsWith("el0") || n.startsWith("entry_"));
  return k < 0 ? names.slice(-1) : names.slice(k);
}

/** What quiesce needs of a stack, the same for every task of a shared span. */
interface StackFacts {
  chain: number[];
  names: string[];
  /** Already at a freeze or park point. */
  atFreezePoint: boolean;
  parkable: boolean;
  /** In a sleep the freezer freezes in place (by the sleep's own frame, not any frame below it). */
  freezableSleep: boolean;
  /** In a sleep known to unwind (UNWINDING_SLEEPS). */
  unwindingSleep: boolean;
  /** taskKind of a task known only by this stack (no PF flags, no Kthread line, pid not 0). */
  kindByStack: TaskKind;
  /** The stack an unwound user task is left with (made on first use). */
  unwound: string[] | null;
}

const PARKED_STACK = ["__kthread_parkme", "kthread_parkme", "smpboot_thread_fn", "kthread", "ret_from_fork", "ret_from_fork_asm"];
/**
 * The exit path a task unwound by the fake signal freezes in, both eras' names (the generic entry
 * code since 5.8-5.10: arch_do_signal_or_restart…; x86 before it: do_signal,
 * exit_to_usermode_loop, prepare_exit_to_usermode/syscall_return_slowpath). Names the table lacks
 * are dropped by rebuild(), so each kernel keeps its own.
 */
const UNWOUND_TOP = [
  "__refrigerator",
  "get_signal",
  "arch_do_signal_or_restart",
  "do_signal",
  "exit_to_user_mode_loop",
  "exit_to_usermode_loop",
  "syscall_exit_to_user_mode",
  "prepare_exit_to_usermode",
  "syscall_return_slowpath",
];
/** io_uring and vhost workers are not kthreads: the freezer stops them in their own get_signal(). */
const WORKER_FROZEN: Prepend = { prepend: ["__refrigerator", "get_signal"] };
/** A sleep on neither list: the exit path on top of the captured stack, so both are checked. */
const EITHER: Prepend = { prepend: UNWOUND_TOP };
const MIGRATION_PREFIX = [..."migration/"].map((c) => c.charCodeAt(0));

function stackFacts(cap: Capture, frameStart: number, frameCount: number): StackFacts {
  const chain = realChain(cap, { frameStart, frameCount });
  const names = chain.map((i) => frameName(cap, i) ?? "?");
  const site = sleepSite(names);
  return {
    chain,
    names,
    atFreezePoint: names.includes("__refrigerator") || names.includes("__kthread_parkme"),
    parkable: isParkable(cap, chain),
    freezableSleep: site !== null && FREEZABLE_SLEEPS.has(site),
    unwindingSleep: site !== null && UNWINDING_SLEEPS.has(site),
    kindByStack: taskKind(cap, { pid: 1, tid: 1, flags: null, statusKthread: null }, chain),
    unwound: null,
  };
}

/**
 * Predicts every stack after freeze_processes() and parking the smpboot threads. A stack's facts
 * are worked out once per shared span (a million tasks share a few thousand stacks); each task
 * then reads only its columns. test/quiesce-differential.test.ts holds this to the first,
 * object-per-task version (test/quiesce-reference.ts).
 */
export function predictQuiesce(cap: Capture, table: SymbolTable | null): Transformed {
  const T = cap.tasks.length;
  const notes = new TaskNotes(T);
  const tasks = cap.tasks;
  const spans = new Map<number, StackFacts>();
  const factsOf = (idx: number): StackFacts => {
    const s0 = tasks.frameStart[idx];
    const n0 = tasks.frameCount[idx];
    if (!(cap.sharedRows && n0 > 0 && cap.frames.flags[s0] & FrameFlag.SHARED)) return stackFacts(cap, s0, n0);
    const key = s0 * 0x200000 + n0;
    let f = spans.get(key);
    if (f === undefined) spans.set(key, (f = stackFacts(cap, s0, n0)));
    return f;
  };
  const kindOf = (idx: number, f: StackFacts): TaskKind => {
    const flags = tasks.flagsOf(idx);
    const statusKthread = tasks.statusKthreadOf(idx);
    const pid = tasks.pidOf(idx);
    // taskKind's own order; only the last step (the stack's shape) is shared per span.
    if ((pid ?? tasks.tidOf(idx)) === 0 || flags !== null || statusKthread === true) return taskKind(cap, { pid, tid: tasks.tidOf(idx), flags, statusKthread }, f.chain);
    return f.kindByStack;
  };
  const isMigration = (idx: number): boolean => {
    const comm = tasks.commOf(idx);
    if (comm === null || comm.length < MIGRATION_PREFIX.length) return false;
    for (let k = 0; k < MIGRATION_PREFIX.length; k++) if (comm[k] !== MIGRATION_PREFIX[k]) return false;
    return true;
  };
  const out = rebuild(
    cap,
    table,
    (idx) => {
      const state = tasks.stateOf(idx);
      if (tasks.runningOf(idx) || state === "R") {
        notes.set(idx, "running");
        return null;
      }
      const f = factsOf(idx);
      if (f.atFreezePoint) {
        notes.set(idx, "unchanged");
        return null;
      }
      const kind = kindOf(idx, f);
      if (kind === "kthread") {
        if (f.parkable && !isMigration(idx)) {
          notes.set(idx, "parked");
          return PARKED_STACK;
        }
        notes.set(idx, "unchanged");
        return null;
      }
      if (kind === "user-worker") {
        // Frozen where it sleeps, under get_signal() (io_wq_worker, vhost_task_fn handle the
        // freezer there): the captured stack stays, with the freezer's frames on top.
        if (state === null || state === "S") {
          notes.set(idx, "frozen-in-place");
          return WORKER_FROZEN;
        }
        notes.set(idx, "unchanged");
        return null;
      }
      if (kind !== "user") {
        notes.set(idx, "unchanged");
        return null;
      }
      if (state === null) {
        // In D it would make the freeze fail; in S it may unwind: nothing to predict from.
        notes.set(idx, "state-unknown");
        return null;
      }
      if (state === "T" || state === "t" || (f.freezableSleep && (state === "S" || state === "D"))) {
        notes.set(idx, "frozen-in-place");
        return null;
      }
      if (state === "S") {
        if (f.unwindingSleep) {
          notes.set(idx, "unwound");
          return (f.unwound ??= [...UNWOUND_TOP, ...entryTail(f.names)]);
        }
        // A sleep on neither list: frozen in place or unwound, so both stacks are checked.
        notes.set(idx, "frozen-or-unwound");
        return EITHER;
      }
      if (state === "D") {
        notes.set(idx, "freeze-fails");
        return null;
      }
      notes.set(idx, "unchanged");
      return null;
    },
    [],
  );
  return { capture: out, notes };
}
