/**
 * The livepatch model, apply direction (SPEC §3; kernel/livepatch/transition.c
 * `klp_try_switch_task` → `klp_check_and_switch_task` → `klp_check_stack`).
 *
 * Each task is run through an ordered rule table. Every rule that matches is recorded (reports
 * explain with them; a mutation test drops one rule at a time); the first decides the outcome.
 * The host verdict is then bounded by what the capture can prove (completeness, hidden frames).
 */
import { PatchsafeError } from "../errors.js";
import { FrameFlag, Interner, STACK_STATUS_CODE, VMLINUX, type Capture, type NameSet, type Reason, type Task, type TaskTable } from "../model.js";
import { coldParent, couldBePatched, type RangeTable, strippedForm } from "../patch/ranges.js";
import { SpanScanHits, type TaskHits } from "../scan/spanHits.js";
import type { ScanHits } from "../scan/types.js";
import { FrameStatus, type ResolvedFrames } from "../symbols/resolve.js";
import { isPaddingName } from "../symbols/table.js";
import type { SymbolTable } from "../symbols/table.js";
import { symbolAddress } from "../symbols/table.js";
import {
  frameName,
  IDLE_LOOP,
  isKnownBottom,
  isParkable,
  NEVER_RETURNS,
  NOTRACE,
  realChain,
  type TaskKind,
  taskKind,
  TRAMPOLINES,
  USER_ENTRIES,
} from "./kinds.js";
import { isKpatchAddedTask } from "./models.js";
import type { TaskKernel, TaskKernelArrays } from "./taskKernel.js";
import { type Blocker, Blockers, type Direction, type Model, Outcomes, roleCode, TASK_KINDS, TASK_STATUSES, type Remedy, type RuleMatch, type TaskOutcome, type Verdict } from "./verdict.js";

export interface DecideOptions {
  model: Model;
  direction: Direction;
  /** Decide over the tasks that were read even though the capture is partial. */
  partialOk: boolean;
  /** Every warning that weakens `safe` makes it `undecided`. */
  strict: boolean;
}

/** Which unpatchable code section (`.entry.text`, …) a function lies in, from a source other than an addressed table (a redacted snapshot's section rows); null: none known. */
export type SectionOfName = (object: string, name: string) => string | null;

export interface DecideInput {
  capture: Capture;
  table: SymbolTable | null;
  resolved: ResolvedFrames;
  ranges: RangeTable;
  hits: ScanHits;
  /** Per task: what the model's transformation did (quiesce effect, kpatch's added tasks). */
  notes?: ReadonlyMap<number, string>;
  /** The patch being applied is already in an unfinished transition (a stalled apply). */
  inTransition?: boolean;
  /**
   * The name of another patch of the applied stack whose transition is in progress: the kernel
   * runs one transition at a time and refuses to start this one (-EBUSY) until it ends.
   */
  otherTransition?: string | null;
  /** This patch's own transition is in progress (either direction): patch_state is about it. */
  ownTransition?: boolean;
  /** Applying a patch the stack shows enabled with its transition complete: every task is done. */
  alreadyEnabled?: boolean;
  /** available_filter_functions, when known. */
  traceable?: NameSet | null;
  /** Without a table with addresses: the unpatchable section of a function by name (redacted snapshots). */
  sectionOfName?: SectionOfName | null;
  /** quiesce: doubts about a task's captured stack, which its predicted stack inherits. */
  doubts?: Map<number, RuleMatch>;
  /** The user gave the applied stack (--applied/--applied-module/--no-applied): the capture's record of it does not matter. */
  appliedGiven?: boolean;
  /** Runs the per-task class loops in wasm (src/decide/taskKernel.ts); without it, their TypeScript versions. */
  taskKernel?: TaskKernel | null;
}

/** Everything a rule may look at for one task. */
export interface TaskContext {
  cap: Capture;
  task: Task;
  index: number;
  kind: TaskKind;
  chain: number[];
  /** Hits on this task: [frame, range index]. */
  hits: [number, number][];
  input: DecideInput;
  opts: DecideOptions;
  /** A blocking range overlaps .sched.text/.spinlock.text and the walker hides those frames. */
  hiddenOverlap: string | null;
}

export interface Rule {
  code: string;
  /** Returns the matches of this rule for the task (empty: the rule does not apply). */
  test(ctx: TaskContext): RuleMatch[];
}

const m = (code: string, message: string, frame: number | null = null, func: number | null = null, kernelSees = false): RuleMatch => ({
  code,
  message,
  frame,
  func,
  kernelSees,
});

function funcLabel(ranges: RangeTable, fi: number): string {
  const f = ranges.functions[fi];
  if (f.name === null) {
    const r = f.ranges[0];
    return `range 0x${r.start.toString(16)}-0x${r.end.toString(16)}`;
  }
  return f.object === "vmlinux" ? f.name : `${f.name} [${f.object}]`;
}

/** Frame i's object when it is a module the symbol table does not list (null: known, vmlinux, or no table). */
function objectUnknownToTable(cap: Capture, table: SymbolTable | null, i: number): string | null {
  if (table === null) return null;
  const o = cap.frames.object[i];
  if (o < 0) return null;
  const obj = cap.strings.get(o);
  return obj === VMLINUX || table.objects.includes(obj) ? null : obj;
}

/**
 * An ambiguous `foo+0x40/0x40` (offset == printed size) is the first byte after one of the copies
 * of foo of that size: whatever starts there, which the kernel's check finds (SPEC §2). Whether
 * that byte, after any of those copies, lies in a blocking range.
 */
function ambiguousEndInRange(cap: Capture, table: SymbolTable | null, ranges: RangeTable, i: number): boolean {
  const f = cap.frames;
  if (table === null || (f.flags[i] & FrameFlag.HAS_SIZE) === 0 || f.offset[i] < f.size[i] || f.symbol[i] < 0 || f.object[i] < 0) return false;
  const name = cap.strings.get(f.symbol[i]);
  const object = cap.strings.get(f.object[i]);
  for (const r of table.byName.get(name) ?? []) {
    if (table.objects[table.object[r]] !== object || table.size[r] !== f.size[i]) continue;
    const end = symbolAddress(table, r) + BigInt(f.size[i]);
    if (ranges.ranges.some((x) => end >= x.start && end < x.end)) return true;
  }
  return false;
}

/** The rule table, in SPEC §3 order. */
export const LIVEPATCH_RULES: Rule[] = [
  {
    code: "done",
    test: ({ task, opts, input }) => {
      // Nothing to switch: the patch is in effect already (loading its module again fails).
      if (input.alreadyEnabled === true) return [m("done", "the patch is already enabled on this host: the task runs its code already")];
      // patch_state speaks of the transition in progress: only when that is this patch's (the
      // applied stack says so) has a task at the target switched to it.
      if (opts.model !== "livepatch" || input.ownTransition !== true) return [];
      const target = opts.direction === "apply" ? 1 : 0;
      return task.patchState === target ? [m("done", `patch_state is already ${target}: the task has switched`)] : [];
    },
  },
  {
    code: "no-reliable-stacktrace",
    test: ({ cap, opts }) =>
      opts.model === "livepatch" && cap.host.config.reliableStacktrace === false
        ? [m("no-reliable-stacktrace", "the kernel has no HAVE_RELIABLE_STACKTRACE: no task can be switched by a stack check; kthreads can never switch")]
        : [],
  },
  {
    code: "running",
    test: ({ task }) => {
      if (task.running) return [m("running", "on a CPU when captured: the kernel skips it this round; it switches at its next return to user space (or cond_resched() since 6.4)")];
      if (task.state === "R") {
        return [m("running", "state R (runnable or running): a capture cannot tell which, and a task on a CPU cannot be checked")];
      }
      return [];
    },
  },
  {
    code: "unreadable",
    test: ({ task }) =>
      task.stackStatus === "unreadable" ? [m("unreadable", `its stack could not be read (${task.errno ?? "error"})`)] : [],
  },
  {
    code: "truncated",
    test: ({ task, chain, opts }) => {
      if (task.stackStatus === "truncated") {
        // A trace with no task header is the tail of a stack whose head (its innermost frames)
        // was cut off, not one that ran into /proc's cap.
        if (task.tid === null && task.pid === null && task.frameCount < 64) return [m("truncated", `a trace of ${task.frameCount} entries with no task header: the rest of a stack whose head, with its innermost frames, was cut off`)];
        return [m("truncated", `the trace has ${task.frameCount} entries and no end marker: /proc stops at 64, so it may be cut (livepatch refuses 100 or more)`)];
      }
      // Inputs without /proc's cap (sysrq, crash, JSON) can show deeper stacks than the kernel's
      // own walk keeps: livepatch saves at most MAX_STACK_ENTRIES (100) and cannot switch such a
      // task; kpatch's walk keeps 64 entries with the end marker (kpatchKernelCheck).
      if (opts.model === "livepatch" && chain.length >= LIVEPATCH_MAX_ENTRIES) {
        return [m("truncated", `the trace has ${chain.length} entries: livepatch's reliable unwinder keeps at most ${LIVEPATCH_MAX_ENTRIES}, so the kernel cannot check this task and does not switch it`)];
      }
      if (opts.model !== "livepatch" && chain.length >= KPATCH_MAX_REAL_FRAMES) {
        return [m("truncated", `the trace has ${chain.length} real frames: kpatch's stack walk keeps 64 entries with the end marker, so its check fails on this task`)];
      }
      return [];
    },
  },
  {
    code: "unreliable",
    test: ({ cap, task, chain, input }) => {
      const out: RuleMatch[] = [];
      if (task.frameCount === 0) return out;
      const f = cap.frames;
      if (chain.length === 0) {
        let guesses = 0;
        let unparsed = 0;
        for (let i = task.frameStart; i < task.frameStart + task.frameCount; i++) {
          if (f.flags[i] & FrameFlag.GUESS) guesses++;
          else if (f.flags[i] & FrameFlag.UNPARSED) unparsed++;
        }
        if (guesses > 0) out.push(m("unreliable", "the trace is only `? ` guesses: the unwinder found no real chain"));
        // Only `[inline]` pseudo-frames (no address of their own; a symbolizer prints them above
        // the real frame they were inlined into): the real frames are missing, so nothing shows
        // the trace reaches a bottom. Was clean. (Only unparsed lines: the unparsed-line rule.)
        else if (unparsed < task.frameCount) out.push(m("unreliable", "the trace holds no real frame (only inline pseudo-frames): the unwind it came from cannot be seen"));
        return out;
      }
      for (const i of chain) {
        const name = frameName(cap, i);
        const obj = f.object[i] < 0 ? null : cap.strings.get(f.object[i]);
        if (f.flags[i] & FrameFlag.BARE_HEX) out.push(m("unreliable", "a frame in code without a symbol (BPF, a trampoline or garbage): the reliable unwinder stops there", i));
        else if (obj === "bpf" || (name !== null && (name.startsWith("bpf_trampoline_") || name.startsWith("bpf_prog_")))) {
          out.push(m("unreliable", "a frame in BPF-generated code: not reliably unwindable", i));
        } else if ((name !== null && TRAMPOLINES.has(name)) || obj === "__builtin__kprobes") {
          out.push(m("unreliable", `a return-address trampoline (${name}): the real return address is hidden`, i));
        } else if (f.flags[i] & FrameFlag.REGS && input.capture.host.config.unwinder === "frame-pointer") {
          out.push(m("unreliable", "a kernel-mode interrupt/exception frame under the frame-pointer unwinder", i));
        }
      }
      const last = chain[chain.length - 1];
      // A user-mode entry is the bottom of a task's kernel stack: real frames below it mean two
      // traces ran together (a dmesg that lost the lines between two tasks).
      for (let k = 0; k < chain.length - 1; k++) {
        const name = frameName(cap, chain[k]);
        if (name !== null && USER_ENTRIES.has(name) && !USER_ENTRIES.has(frameName(cap, chain[k + 1]) ?? "")) {
          out.push(m("unreliable", `real frames continue below the user-mode entry ${name}: two traces joined (lines lost between two tasks?)`, chain[k + 1]));
          break;
        }
      }
      const bottom = frameName(cap, last);
      if (bottom === null || !isKnownBottom(bottom)) {
        out.push(m("unreliable", `the trace ends in ${bottom ?? "an unknown frame"}, not at a known bottom (user entry, ret_from_fork, idle start): the unwind may have stopped early`, last));
      }
      return out;
    },
  },
  {
    code: "captured-stack-doubt",
    test: ({ index, input, opts }) => {
      const d = opts.model === "quiesce" ? input.doubts?.get(index) : undefined;
      return d === undefined ? [] : [m(d.code, `as captured: ${d.message} (quiescing is predicted from that stack)`, null, d.func)];
    },
  },
  {
    code: "freeze-would-fail",
    test: ({ index, input }) => {
      const note = input.notes?.get(index);
      if (note === "freeze-fails") return [m("freeze-would-fail", "a user task in a non-freezable uninterruptible sleep: the freezer cannot stop it, and after the 20 s timeout the whole freeze fails and everything thaws")];
      if (note === "state-unknown") return [m("freeze-would-fail", "a user task whose state the input does not give: in an uninterruptible sleep it would make the whole freeze fail, and whether freezing unwinds its stack cannot be told")];
      return [];
    },
  },
  {
    code: "blocked",
    test: ({ cap, hits, input, opts }) => {
      const out: RuleMatch[] = [];
      const seen = new Set<number>();
      for (const [frame, ri] of hits) {
        if (cap.frames.flags[frame] & FrameFlag.GUESS) continue;
        if (opts.model === "kpatch" && inSchedText(input, frame)) continue;
        const r = input.ranges.ranges[ri];
        if (r.role === "conservative-extra") continue;
        if (seen.has(r.func)) continue;
        seen.add(r.func);
        out.push(m("blocked", `sleeping in ${funcLabel(input.ranges, r.func)}`, frame, r.func, r.kernelSees));
      }
      // `foo+0x40/0x40`: the byte after foo. The kernel matches what starts there; patchsafe also
      // counts it against foo.
      for (const [frame, ri] of hits) {
        if (cap.frames.flags[frame] & FrameFlag.GUESS) continue;
        if (opts.model === "kpatch" && inSchedText(input, frame)) continue;
        const r = input.ranges.ranges[ri];
        if (r.role !== "conservative-extra" || seen.has(r.func)) continue;
        seen.add(r.func);
        out.push(
          m(
            "blocked",
            `a return address at the first byte after ${funcLabel(input.ranges, r.func)} (offset == size): the kernel's check attributes it to the next symbol and does not see this; counted against ${funcLabel(input.ranges, r.func)} to be safe`,
            frame,
            r.func,
            false,
          ),
        );
      }
      return out;
    },
  },
  {
    code: "unparsed-line",
    test: ({ cap, task }) => {
      for (let i = task.frameStart; i < task.frameStart + task.frameCount; i++) {
        if (cap.frames.flags[i] & FrameFlag.UNPARSED) {
          return [m("unparsed-line", `line ${cap.frames.line[i] || "?"} of the task's block could not be read: it may have been a frame`, i)];
        }
      }
      return [];
    },
  },
  {
    code: "possibly-live",
    test: ({ cap, hits, input }) => {
      const out: RuleMatch[] = [];
      for (const [frame, ri] of hits) {
        if ((cap.frames.flags[frame] & FrameFlag.GUESS) === 0) continue;
        const r = input.ranges.ranges[ri];
        out.push(m("possibly-live", `a \`? \` entry names ${funcLabel(input.ranges, r.func)}: a stale word the kernel never checks, or a live return address the unwinder missed`, frame, r.func));
        break;
      }
      return out;
    },
  },
  {
    code: "hidden",
    test: ({ cap, task, hits, hiddenOverlap, input, opts }) => {
      if (opts.model === "kpatch") {
        for (const [frame, ri] of hits) {
          if (cap.frames.flags[frame] & FrameFlag.GUESS || !inSchedText(input, frame)) continue;
          const label = funcLabel(input.ranges, input.ranges.ranges[ri].func);
          return [m("hidden", `sleeping under ${label}, in scheduler/lock code kpatch's stack walker never sees: kpatch would patch it anyway (unsafe)`, frame, input.ranges.ranges[ri].func)];
        }
      }
      if (hiddenOverlap === null) return [];
      if (task.state === "Z" || task.state === "X") return [];
      return [m("hidden", `${hiddenOverlap} lies in .sched.text/.spinlock.text, which /proc stacks never show: a sleeping task may be inside it`)];
    },
  },
  {
    code: "cold",
    test: ({ cap, task, input }) => {
      for (let i = task.frameStart; i < task.frameStart + task.frameCount; i++) {
        const name = frameName(cap, i);
        if (name === null) continue;
        const parent = name.includes(".cold") ? coldParent(name) : null; // skip the regex for the 99.9%
        if (parent === null) continue;
        const obj = cap.strings.get(cap.frames.object[i]);
        // The current version's cold part, or any older version's (the original's, an earlier
        // replacement's): a task got into those while nothing checked cold code (SPEC §2).
        const fi = input.ranges.functions.findIndex((f) => f.kind !== "range" && ((f.ranges.length > 0 && f.blockingName === parent && f.blockingObject === obj) || f.name === parent));
        if (fi >= 0) return [m("cold", `old cold code of ${parent} on the stack (${name}), which the kernel does not check`, i, fi)];
      }
      return [];
    },
  },
  {
    code: "unresolved",
    test: ({ cap, task, input }) => {
      const st = input.resolved.status;
      // A raw --range has no name to compare: a frame the table cannot place (not in it, a
      // duplicate the size does not single out, another size) may lie inside the range.
      const rawRange = input.ranges.functions.some((g) => g.kind === "range");
      for (let i = task.frameStart; i < task.frameStart + task.frameCount; i++) {
        const s = st[i];
        if (s !== FrameStatus.UNRESOLVED && s !== FrameStatus.AMBIGUOUS && s !== FrameStatus.SIZE_MISMATCH && s !== FrameStatus.CONTRADICTED) continue;
        const name = frameName(cap, i);
        // SPEC §3: a frame could be a patched function by its name, or when its object is one the
        // symbol table does not know (a patch module missing from it, another boot's module).
        const unknownObject = objectUnknownToTable(cap, input.table, i);
        if (name !== null && !rawRange && !couldBePatched(name, input.ranges.names) && unknownObject === null && !(s === FrameStatus.AMBIGUOUS && ambiguousEndInRange(cap, input.table, input.ranges, i))) continue;
        if (s === FrameStatus.AMBIGUOUS) {
          return [m("ambiguous", `${name} has several symbols of that name and the printed size does not single one out: it may be the patched one`, i)];
        }
        const why =
          name === null
            ? "a bare address outside every known object"
            : s === FrameStatus.SIZE_MISMATCH
              ? `${name}'s printed size differs from the symbol table's (another kernel build?)`
              : s === FrameStatus.CONTRADICTED
                ? `the line names ${name} but prints an address outside it, while other lines agree with the symbol table (an edited or damaged line; the address is what the kernel checks)`
              : unknownObject !== null && !couldBePatched(name, input.ranges.names)
                ? `${name} is in ${unknownObject}, an object the symbol table does not know`
              : `${name} is not in the symbol table`;
        return [m("unresolved", `${why}: it could be a patched function`, i)];
      }
      // A frame in a patch module where a replacement could not be placed: the kernel knows its
      // address, patchsafe does not, so any of that module's frames may be in it.
      if (input.ranges.unplaced.size > 0) {
        const f = cap.frames;
        for (let i = task.frameStart; i < task.frameStart + task.frameCount; i++) {
          if (f.flags[i] & (FrameFlag.GUESS | FrameFlag.UNPARSED) || f.object[i] < 0) continue;
          const why = input.ranges.unplaced.get(cap.strings.get(f.object[i]));
          if (why !== undefined) return [m("unresolved", `${frameName(cap, i) ?? "a frame"} is in ${cap.strings.get(f.object[i])}, a patch module whose replacement could not be placed (${why}): it may be in it`, i)];
        }
      }
      // `foo+0x40/0x40` is the first byte after foo: the kernel's check attributes it to the
      // symbol that starts there (SPEC §2), which only a table with addresses names. Without one
      // (no --kallsyms, or a redacted snapshot's table, which the check cannot place) that symbol
      // could be a patched function: a capture whose table told it was blocked was called safe.
      // A `? ` frame too (possibly live); not a padding symbol's end, which is its function's
      // start (ranges.ts keys it there).
      if ((input.table === null || !input.table.hasAddresses) && input.ranges.functions.some((g) => g.kind !== "range" && g.loaded)) {
        const f = cap.frames;
        const AT_END = FrameFlag.HAS_OFFSET | FrameFlag.HAS_SIZE;
        for (let i = task.frameStart; i < task.frameStart + task.frameCount; i++) {
          if (f.flags[i] & (FrameFlag.UNPARSED | FrameFlag.BARE_HEX | FrameFlag.INLINE) || (f.flags[i] & AT_END) !== AT_END) continue;
          if (f.size[i] === 0 || f.offset[i] !== f.size[i]) continue;
          const name = frameName(cap, i) ?? "a frame";
          if (isPaddingName(name)) continue;
          return [m("unresolved", `${name}+0x${f.offset[i].toString(16)}/0x${f.size[i].toString(16)} is the first byte after ${name}: the kernel attributes it to the symbol that starts there, which is unknown without a symbol table with addresses: it could be a patched function`, i)];
        }
      }
      // Without a symbol table frames are matched by name alone, and a Clang-LTO kernel prints a
      // promoted symbol without its suffix (kernel/kallsyms.c cleanup_symbol_name(): `foo.llvm.N`
      // as `foo`; early ThinLTO cut everything from the first `.`). A frame `foo` may then be the
      // patched `foo.llvm.N`: with a table it does not resolve and the loop above catches it; here
      // it matched no range and was clean.
      if (input.table === null) {
        const f = cap.frames;
        for (let i = task.frameStart; i < task.frameStart + task.frameCount; i++) {
          if (f.flags[i] & (FrameFlag.UNPARSED | FrameFlag.BARE_HEX | FrameFlag.INLINE)) continue;
          const name = frameName(cap, i);
          if (name === null || input.ranges.names.has(name)) continue;
          for (const p of input.ranges.names) {
            if (strippedForm(name, p)) {
              return [m("unresolved", `${name} may be the patched ${p} printed without its suffix (a Clang-LTO kernel's kallsyms strips it): without a symbol table the two cannot be told apart`, i)];
            }
          }
        }
      }
      // A patched function's name in another module may be an enabled patch's replacement
      // (kpatch-built ones keep the name, SPEC §1), and then the kernel checks that instead of
      // the original (SPEC §2). With the applied stack unknown (a dump records none, and no
      // --applied / --no-applied was given) nothing says it is not one.
      if (cap.livepatches === null && input.appliedGiven !== true) {
        const f = cap.frames;
        for (let i = task.frameStart; i < task.frameStart + task.frameCount; i++) {
          if (f.flags[i] & (FrameFlag.GUESS | FrameFlag.UNPARSED | FrameFlag.BARE_HEX) || f.object[i] < 0) continue;
          const obj = cap.strings.get(f.object[i]);
          if (obj === VMLINUX) continue;
          const name = frameName(cap, i);
          if (name === null || !input.ranges.names.has(name)) continue;
          const fi = input.ranges.functions.findIndex((g) => g.kind === "patch" && g.name === name && g.object !== obj);
          if (fi < 0) continue;
          return [
            m(
              "unresolved",
              `${name} [${obj}] has the name of a patched function in another object: it may be an enabled patch's replacement, which the kernel would check instead of the original; the applied patch stack is unknown (--applied FILE describes it, --no-applied says there is none)`,
              i,
              fi,
            ),
          ];
        }
      }
      return [];
    },
  },
  {
    code: "empty-stack",
    test: ({ task }) => {
      // A task with no frame at all, whatever status the input gave it: readers turn "ok" without
      // frames into "empty", but a snapshot (JSON or binary) keeps the file's status, and an "ok"
      // stack with no frame proves no more than an empty one (SPEC §3 rule 8). Unreadable and
      // truncated stacks have rules of their own; vanished tasks are never decided.
      if (task.frameCount > 0 || (task.stackStatus !== "empty" && task.stackStatus !== "ok")) return [];
      if (task.state === "Z" || task.state === "X") return [];
      return [m("empty-stack", `an empty stack in state ${task.state ?? "unknown"}: nothing proves the task is outside the patched code`)];
    },
  },
];

/** Completeness reasons that say the applied patch stack (not the task list) is unknown. */
export const APPLIED_STACK_UNKNOWN = new Set(["livepatch-unreadable", "kpatch-unreadable"]);

/** "On the stack of every task of some kind" needs at least this many tasks of that kind. */
const EVERY_TASK_MIN = 10;

const VANISHED = STACK_STATUS_CODE.vanished;
const EXCLUDED = TASK_STATUSES.indexOf("excluded");
const DONE = TASK_STATUSES.indexOf("done");
/** kinds[] code of a task that has no outcome (vanished). */
const NO_KIND = 255;
const KIND_CODE: Record<TaskKind, number> = { user: 0, kthread: 1, "user-worker": 2, idle: 3 };

const UNDECIDED_BEFORE_BLOCKED = new Set(["no-reliable-stacktrace", "running", "unreadable", "truncated", "unreliable", "freeze-would-fail"]);

function remedyFor(ctx: TaskContext, frame: number, func: number, everyTaskOfKind: Set<number>, unpatchable: Set<number>): Remedy {
  const { cap, task, kind, chain, input, opts } = ctx;
  const f = input.ranges.functions[func];
  const name = f.blockingName ?? funcLabel(input.ranges, func);
  const pos = chain.indexOf(frame);
  const callees = pos > 0 ? [...new Set(chain.slice(Math.max(0, pos - 5), pos).map((i) => frameName(cap, i) ?? "?"))] : [];
  const aboveKthread = pos >= 0 && pos + 1 < chain.length && frameName(cap, chain[pos + 1]) === "kthread";
  if (unpatchable.has(func)) {
    return { code: "unpatchable", message: `${name} cannot be live-patched at all (entry, noinstr or notrace code): change the patch` };
  }
  // Every task of *this* task's kind: a function all kthreads sleep in says nothing of a user task.
  const onEveryTask = everyTaskOfKind.has(kindFuncKey(KIND_CODE[kind], func));
  if (NEVER_RETURNS.has(name) || aboveKthread || onEveryTask) {
    const why = onEveryTask && !NEVER_RETURNS.has(name) && !aboveKthread ? `${name} is on the stack of every ${kind} task` : `${name} is a thread's main loop`;
    const r: Remedy = {
      code: "never-leaves",
      message: `${why}: the task never leaves it and the ${opts.model === "livepatch" ? "transition" : "check"} will never pass; patch a callee instead${callees.length > 0 ? " (the frames below it are listed)" : ""}; forcing is the last word (it pins the module for ever)`,
    };
    if (callees.length > 0) r.callees = callees;
    return r;
  }
  if (input.inTransition && opts.model === "livepatch") {
    return { code: "reverse", message: "this patch's transition is stalled: `echo 0 > /sys/kernel/livepatch/<patch>/enabled` reverses it safely" };
  }
  if (isParkable(cap, chain)) {
    return {
      code: "park-offline-cpu",
      message: "a per-CPU smpboot thread: taking its CPU offline (/sys/devices/system/cpu/cpuN/online) parks it and lets the transition go on",
    };
  }
  if (kind === "user" && task.state === "S" && opts.model === "livepatch") {
    return { code: "signal", message: "an interruptible sleeper: livepatch's fake signal (every ~15 s since 5.1) makes its syscall return and it switches on the way to user space" };
  }
  if (opts.model === "kpatch") {
    return { code: "wait", message: `kpatch has no fake signal: retry after it leaves ${name} (kpatch load retries 5 times, 2 s apart)` };
  }
  return { code: "wait", message: `${task.state === "D" ? "an uninterruptible sleeper: never woken by the fake signal; " : ""}wait for it to leave ${name}, then retry` };
}

function sectionOf(table: SymbolTable | null, start: bigint): string | null {
  if (table === null) return null;
  const s = table.sections;
  const inside = (b: [bigint, bigint] | null): boolean => b !== null && start >= b[0] && start < b[1];
  if (inside(s.entry)) return ".entry.text";
  if (inside(s.noinstr)) return ".noinstr.text";
  if (inside(s.cpuidle)) return ".cpuidle.text";
  return null;
}

export function decideLivepatch(input: DecideInput, opts: DecideOptions, rules: Rule[] = LIVEPATCH_RULES): Verdict {
  const { capture: cap, table, ranges, hits } = input;
  /** Host-level limits: each keeps the verdict from being `safe`, whatever the tasks say. */
  const bounds: Reason[] = [];
  const warnings: Reason[] = [...cap.warnings, ...ranges.warnings.map((message) => ({ code: "patch", message })), ...input.resolved.warnings.map((message) => ({ code: "resolve", message }))];

  const byTask = groupHitsByTask(cap, hits);

  // Rule 5 precondition: a blocking range inside the sections /proc hides.
  let hiddenOverlap: string | null = null;
  // A table without addresses (a redacted snapshot's) cannot place frames in .sched.text: it
  // counts as no table here, never as "nothing hidden".
  const placeable = table !== null && table.hasAddresses && table.sections.sched !== null;
  if (cap.hidesSchedFrames && placeable) {
    const { sched, lock } = table!.sections;
    for (const r of ranges.ranges) {
      if (r.role === "conservative-extra") continue;
      const overlaps = (b: [bigint, bigint] | null): boolean => b !== null && r.start < b[1] && r.end > b[0];
      if (overlaps(sched) || overlaps(lock)) {
        hiddenOverlap = funcLabel(ranges, r.func);
        break;
      }
    }
  } else if (cap.hidesSchedFrames) {
    bounds.push({ code: "no-symbol-table", message: "without a symbol table the .sched.text/.spinlock.text bounds are unknown, and /proc stacks hide those frames: give --kallsyms" });
  }

  // Unpatchable code: entry/noinstr/cpuidle text, notrace functions.
  const unpatchable = new Set<number>();
  for (const [fi, f] of ranges.functions.entries()) {
    if (f.name === null || f.kind !== "patch") continue;
    const sec = table !== null && f.symbol >= 0 ? sectionOf(table, symbolAddress(table, f.symbol)) : (input.sectionOfName?.(f.object, f.name) ?? null);
    const untraceable = input.traceable != null && f.loaded && !input.traceable.has(f.name);
    if (sec !== null || NOTRACE.has(f.name) || untraceable) {
      unpatchable.add(fi);
      const why = sec !== null ? `is in ${sec}` : untraceable ? "is not in available_filter_functions (notrace or inlined): ftrace cannot hook it" : "is notrace";
      bounds.push({ code: "unpatchable", message: `${f.name} ${why}: it cannot be live-patched at all` });
    }
  }

  // Without CONFIG_LIVEPATCH there is no klp_enable_patch(): a livepatch module does not load at
  // all, whatever the tasks do (kpatch.ko patches through ftrace and needs no livepatch core).
  // SPEC §3 rule 0: without HAVE_RELIABLE_STACKTRACE no task is cleared by its stack. A capture
  // that could not read the kernel's config (a dump, a host without /proc/config.gz or
  // /boot/config-*) leaves that unknown: assumed reliable, never silently. (A patch enabled
  // already needs no stack checked.)
  if (opts.model === "livepatch" && cap.host.config.reliableStacktrace === null && input.alreadyEnabled !== true) {
    warnings.push({ code: "reliable-stacktrace-unknown", message: "whether the kernel has reliable stack traces (HAVE_RELIABLE_STACKTRACE) is unknown: assumed; without them no task is cleared by its stack and the transition never completes" });
  }
  if (opts.model !== "kpatch" && cap.host.config.livepatch === false) {
    bounds.push({ code: "unpatchable", message: "the kernel is built without CONFIG_LIVEPATCH: no live patch module can load on it" });
  }

  // The rule table's results depend only on a task's frames, hits and a few facts: tasks that
  // agree on all of them share the matches (real hosts repeat a few hundred stacks). Only for
  // the built-in table, whose inputs are known (a custom rule may read anything).
  const memo = rules === LIVEPATCH_RULES ? new RuleMemo(cap, input) : null;
  // With shared rows, most tasks are a span already met with the same facts: a class, found
  // with a few typed-array reads, decided once (see SpanClasses).
  // The model's notes on tasks (kpatch's stopper and loader, quiesce's effect on each task) are
  // part of a class: its tasks have the same note, or none.
  // The class loops' arrays live in the kernel's memory when there is one (its loops and ours
  // then share them).
  const classed = memo !== null && cap.sharedRows === true && (input.doubts?.size ?? 0) === 0;
  const arrays = classed && input.taskKernel != null && cap.tasks.length >= input.taskKernel.minTasks ? input.taskKernel.layout(cap.tasks, cap.frames.length + 1, Math.min(cap.tasks.length + 1, input.taskKernel.maxClasses)) : null;
  const classes = classed ? new SpanClasses(cap, input.notes ?? null, arrays === null ? null : { kernel: input.taskKernel!, arrays }) : null;
  const chains = new ChainCache(cap);
  const k = classifyTasks(cap, chains, classes);
  const { kinds, chainLen, vanished } = k;

  if (cap.excluded.length > 0) {
    const helper = cap.excluded.filter((e) => e.reason.includes("helper")).length;
    const why = helper === 0 ? "the capturing thread is always running" : `${cap.excluded.length - helper} of the capturing process, always running, and ${helper} of its stack-reading helper`;
    warnings.push({ code: "own-threads-excluded", message: `${cap.excluded.length} thread(s) of patchsafe itself were left out of the capture (${why})` });
  }
  if (vanished > 0) warnings.push({ code: "vanished", message: `${vanished} task(s) exited while the input was captured: they are gone and hold nothing` });

  const everyTaskOfKind = neverLeavingFunctions(k, byTask, ranges, classes);
  const decider = new TaskDecider(input, opts, rules, memo, classes, chains, k, byTask, hiddenOverlap, everyTaskOfKind, unpatchable);
  decider.run();
  const { outcomes, blockers, functionBlocking, partialExcluded } = decider;
  const counts = { tasks: outcomes.length, clean: 0, done: 0, blocked: 0, undecided: 0, idle: 0, excluded: cap.excluded.length + partialExcluded };
  const byStatus = decider.byStatus;
  TASK_STATUSES.forEach((s, code) => {
    if (s !== "excluded") counts[s] += byStatus[code];
  });
  counts.tasks -= partialExcluded;

  // Host verdict, then the bounds the capture sets on it.
  const completeness = [...cap.completeness];
  // Tracing formats are aggregates over time, not a snapshot: never safe, --partial-ok or not.
  const aggregate = cap.completeness.find((r) => r.code === "tracing-aggregate");
  // An unreadable applied stack is not a matter of tasks: --partial-ok does not waive it; only
  // --applied (the user describing the stack) does.
  const appliedUnknown = cap.completeness.filter((r) => APPLIED_STACK_UNKNOWN.has(r.code));
  const taskGaps = cap.completeness.filter((r) => !APPLIED_STACK_UNKNOWN.has(r.code));
  if (appliedUnknown.length > 0 && !input.appliedGiven) {
    bounds.push({ code: "incomplete-capture", message: `${appliedUnknown.map((r) => r.message).join("; ")}: a replacement a task sleeps in could be missed; --applied FILE describes the stack` });
  }
  if (aggregate !== undefined) bounds.push({ code: "incomplete-capture", message: aggregate.message });
  // A capture marked partial is partial even when it records no reason (another tool's JSON).
  else if (cap.complete === false && (taskGaps.length > 0 || appliedUnknown.length === 0)) {
    const why = taskGaps.length > 0 ? taskGaps.map((r) => r.message).join("; ") : "it is marked incomplete and records no reason";
    if (opts.partialOk) {
      warnings.push({ code: "partial-ok", message: `--partial-ok: deciding over the tasks that were read; ${partialExcluded} unreadable task(s) left out (${why})` });
    } else bounds.push({ code: "incomplete-capture", message: `the capture is partial (${why}): a verdict over it cannot be safe; --partial-ok decides over the tasks that were read` });
  } else if (cap.complete === "unknown") {
    if (opts.strict) bounds.push({ code: "incomplete-capture", message: "--strict: the input cannot prove it holds every task" });
    else warnings.push({ code: "completeness-unknown", message: "the input cannot prove it holds every task: the verdict speaks only for the tasks given (--strict makes this undecided)" });
  }
  // klp_complete_transition() resets every task's patch_state to -1 (KLP_UNDEFINED): 0 or 1 on
  // a task means some patch is in transition, which the kernel lets nothing else start beside
  // (-EBUSY) and during which unswitched tasks run older code. With no transition recorded, the
  // recorded stack is not the host's.
  if (opts.model === "livepatch" && input.ownTransition !== true && input.otherTransition == null) {
    const ps = cap.tasks.patchStateCode;
    let mid = 0;
    for (let i = 0; i < cap.tasks.length; i++) if (ps[i] === 0 || ps[i] === 1) mid++;
    if (mid > 0) {
      bounds.push({ code: "incomplete-capture", message: `${mid} task(s) carry patch_state 0 or 1, so a live patch transition is in progress, but the recorded patch stack shows none: which code unswitched tasks run is unknown, and the kernel refuses to start another transition meanwhile` });
    }
  }
  // A verdict over no task says nothing (every stack unreadable and --partial-ok, an empty input).
  // kpatch's stopper and loading task are the model's, not the capture's.
  let modelTasks = 0;
  for (let i = Math.max(0, cap.tasks.length - 2); i < cap.tasks.length; i++) if (isKpatchAddedTask(input.notes?.get(i))) modelTasks++;
  if (counts.tasks - modelTasks <= 0) bounds.push({ code: "incomplete-capture", message: "no task of the capture was decided over: a verdict over none cannot be safe" });
  if (hiddenOverlap !== null) warnings.push({ code: "hidden-overlap", message: `${hiddenOverlap} is in .sched.text/.spinlock.text, which /proc stacks hide` });
  // SPEC §4: kpatch never checks idle tasks, so a patch of code they sit in passes its check.
  if (opts.model === "kpatch" && counts.idle > 0) {
    const IDLE_STATUS = TASK_STATUSES.indexOf("idle");
    let inPatched = 0;
    for (let i = 0; i < outcomes.length; i++) if (outcomes.statusCode[i] === IDLE_STATUS && (byTask.of(outcomes.task[i])?.length ?? 0) > 0) inPatched++;
    if (inPatched > 0) warnings.push({ code: "idle-unchecked", message: `${inPatched} idle task(s) are in a patched function as captured: kpatch never checks idle tasks, so its check passes whatever they run (at stop_machine time they usually sit in schedule_idle)` });
  }
  if (input.alreadyEnabled === true) {
    warnings.push({ code: "already-enabled", message: "this patch is already enabled on this host and its transition has completed: there is nothing to apply (loading its module again fails)" });
  }
  const weakening = warnings.filter((w) => w.code !== "completeness-unknown" && w.code !== "own-threads-excluded" && w.code !== "vanished" && w.code !== "already-enabled");
  if (opts.strict && weakening.length > 0) {
    bounds.push({ code: "incomplete-capture", message: `--strict: ${weakening.length} warning(s) weaken the answer (${weakening[0].message})` });
  }
  const reasons: Reason[] = [];
  // kernel/livepatch/core.c: __klp_enable_patch() and __klp_disable_patch() return -EBUSY while
  // klp_transition_patch is set, whatever the tasks are doing; only the patch in transition
  // itself may be reversed (inTransition). kpatch.ko loads under stop_machine, with no transition.
  const busy = input.otherTransition != null && opts.model !== "kpatch";
  if (busy) {
    reasons.push({
      code: "blocked",
      message: `another live patch, ${input.otherTransition}, is in transition: the kernel runs one transition at a time and refuses to ${opts.direction === "apply" ? "enable" : "disable"} this one (-EBUSY) until that transition completes or is reversed; \`patchsafe\` on the host shows which tasks hold it`,
    });
  }
  if (counts.blocked > 0) reasons.push({ code: "blocked", message: `${counts.blocked} task(s) are inside a patched function` });
  const byCode = new Map<string, number>();
  const UNDECIDED = TASK_STATUSES.indexOf("undecided");
  for (let i = 0; counts.undecided > 0 && i < outcomes.length; i++) {
    if (outcomes.statusCode[i] !== UNDECIDED) continue;
    const code = outcomes.matches(i)[0].code;
    byCode.set(code, (byCode.get(code) ?? 0) + 1);
  }
  for (const [code, n] of [...byCode].sort()) reasons.push({ code, message: `${n} task(s) undecided: ${describeUndecided(code)}` });
  reasons.push(...bounds);
  const verdict: Verdict["verdict"] = counts.blocked > 0 || busy ? "blocked" : counts.undecided > 0 || bounds.length > 0 ? "undecided" : "safe";

  // What the kernel's own check would do now.
  // With another transition in progress the kernel refuses before any stack is checked.
  const { result: kernelResult, first: firstFail } = busy
    ? { result: "fail" as const, first: null }
    : opts.model === "livepatch"
      ? livepatchKernelCheck(cap, table, outcomes, hiddenOverlap, decider.firstVisible)
      : kpatchKernelCheck(cap, outcomes, chainLen, input.notes);

  return {
    verdict,
    reasons,
    kernelCheck: { result: kernelResult, first: firstFail },
    model: opts.model,
    direction: opts.direction,
    complete: cap.complete,
    completeness,
    outcomes,
    blockers,
    functionBlocking,
    warnings,
    counts,
  };
}

/** Per task index: its hits as [frame, range index] pairs (read-only, shared), or undefined. */
interface HitsByTask {
  of(task: number): TaskHits | undefined;
}

/**
 * Hits grouped by task. Hits of shared rows (SpanScanHits) are found per span when a task asks;
 * others are grouped here in one pass (tasks that share rows get one read-only list). An array,
 * not a Map: a million lookups by dense task index. (Each phase of decide is its own function:
 * V8 optimises and deoptimises a function as a whole, and one long function of many loops kept
 * falling back to the interpreter whenever a loop met code the earlier ones had not warmed.)
 */
function groupHitsByTask(cap: Capture, hits: ScanHits): HitsByTask {
  if (hits instanceof SpanScanHits) return hits;
  const byTask: (TaskHits | undefined)[] = new Array(cap.tasks.length).fill(undefined);
  const byRows: (TaskHits | undefined)[] | null = cap.sharedRows ? new Array(cap.frames.length + 1).fill(undefined) : null;
  for (let k = 0; k < hits.count; ) {
    const t = hits.task[k];
    let end = k + 1;
    while (end < hits.count && hits.task[end] === t) end++;
    const start = cap.tasks.frameStart[t];
    let l = byRows?.[start];
    if (l === undefined || l.length !== end - k || (end > k && l[0][0] !== hits.frame[k])) {
      l = [];
      for (let j = k; j < end; j++) l.push([hits.frame[j], hits.range[j]]);
      if (byRows !== null) byRows[start] = l;
    }
    const prev = byTask[t];
    byTask[t] = prev === undefined ? l : [...prev, ...l];
    k = end;
  }
  return { of: (t) => byTask[t] };
}

/** Per task: kind code (TASK_KINDS index; NO_KIND for a vanished task), chain length, class. */
interface TaskKinds {
  kinds: Uint8Array;
  chainLen: Int32Array;
  kindCount: Float64Array;
  /** SpanClasses class per task (-1: none); empty without classes. */
  taskClass: Int32Array;
  /** With classes: the tasks (not vanished) in no class, in order; the per-task passes read only these. */
  unclassed: number[];
  vanished: number;
}

function classifyTasks(cap: Capture, chains: ChainCache, classes: SpanClasses | null): TaskKinds {
  const T = cap.tasks.length;
  const shared = classes?.kernel?.arrays ?? null;
  const kinds = shared?.kinds ?? new Uint8Array(T);
  const chainLen = shared?.chainLen ?? new Int32Array(T);
  const kindCount = shared?.kindCount ?? new Float64Array(TASK_KINDS.length);
  const taskClass = shared?.taskClass ?? new Int32Array(classes === null ? 0 : T);
  const stackStatusCode = cap.tasks.stackStatusCode;
  const out: TaskKinds = { kinds, chainLen, kindCount, taskClass, unclassed: [], vanished: 0 };
  for (let index = 0; index < T; index++) {
    // Tasks of a known class in a small loop of their own (see TaskDecider.copyDecided).
    if (classes !== null && (index = classes.classifyKnown(index, out)) >= T) break;
    if (stackStatusCode[index] === VANISHED) {
      kinds[index] = NO_KIND;
      chainLen[index] = 0;
      if (classes !== null) taskClass[index] = -1;
      out.vanished++;
      continue;
    }
    const k = chains.classify(index);
    chainLen[index] = chains.lastChainLength;
    if (classes !== null && (taskClass[index] = classes.add(index, k, chains.lastChainLength)) < 0) out.unclassed.push(index);
    kinds[index] = k;
    kindCount[k]++;
  }
  return out;
}

/** everyTaskOfKind's key for (TASK_KINDS index, function index). */
function kindFuncKey(kind: number, func: number): number {
  return func * TASK_KINDS.length + kind;
}

/**
 * "On the stack of every task of some kind": such a function never leaves (SPEC §5), for tasks of
 * that kind. Keys are kindFuncKey(kind, function).
 */
function neverLeavingFunctions(k: TaskKinds, byTask: HitsByTask, ranges: RangeTable, classes: SpanClasses | null): Set<number> {
  const everyTaskOfKind = new Set<number>();
  // (kind, function) -> tasks of that kind with a hit in it; per list of hits, its functions.
  const kindFunc = new Map<number, Map<number, number>>();
  const funcsOf = new Map<[number, number][], number[]>();
  const add = (kind: number, hits: [number, number][], tasks: number): void => {
    let funcs = funcsOf.get(hits);
    if (funcs === undefined) funcsOf.set(hits, (funcs = [...new Set(hits.map(([, ri]) => ranges.ranges[ri].func))]));
    let perFunc = kindFunc.get(kind);
    if (perFunc === undefined) kindFunc.set(kind, (perFunc = new Map()));
    for (const fi of funcs) perFunc.set(fi, (perFunc.get(fi) ?? 0) + tasks);
  };
  // Tasks of a class have its first task's kind and hits: counted per class, and only the tasks
  // in none one by one (not a pass over every task).
  if (classes === null) {
    for (let index = 0; index < k.kinds.length; index++) {
      const kind = k.kinds[index];
      if (kind === NO_KIND) continue;
      const hits = byTask.of(index);
      if (hits !== undefined) add(kind, hits, 1);
    }
  } else {
    for (const index of k.unclassed) {
      const hits = byTask.of(index);
      if (hits !== undefined) add(k.kinds[index], hits, 1);
    }
    for (let c = 0; c < classes.classCount; c++) {
      const hits = byTask.of(classes.first[c]);
      if (hits !== undefined) add(classes.kind[c], hits, classes.size[c]);
    }
  }
  for (const [kind, perFunc] of kindFunc) {
    // Only meaningful over a real host: a handful of tasks sharing a frame is a coincidence.
    for (const [fi, n] of perFunc) if (n >= EVERY_TASK_MIN && n === k.kindCount[kind]) everyTaskOfKind.add(kindFuncKey(kind, fi));
  }
  return everyTaskOfKind;
}

const NO_HITS: [number, number][] = [];

/** Template rows of placeBlockers(), per row (tRemedy: the row's remedy as an index into the remedies its Blockers was made with). */
export interface BlockerTemplate {
  tFunc: number[];
  tFrame: number[];
  tFrameIndex: number[];
  tSees: number[];
  tRole: number[];
  tRemedy: number[];
}

/**
 * placeBlockers()'s per-outcome loop, on its own: each outcome's entry (its class, or for the
 * outcomes in `ownOutcome`, in order, entry classCount + k) has template rows
 * [tplStart[id], tplStart[id + 1]) written as the outcome's blockers; returns the rows written
 * and the first outcome in taskOrder whose entry holds a kernel-visible blocking match. A small
 * function of typed arrays: V8 installs its loop's OSR code in ~0.1 ms of main-thread time (the
 * loop inside placeBlockers(): ~7 ms).
 */
export function placeRows(out: Outcomes, taskClass: Int32Array, tasks: TaskTable, ownOutcome: number[], classCount: number, tplStart: Int32Array, visibleId: Uint8Array, t: BlockerTemplate, bl: Blockers): { rows: number; first: number; firstId: number } {
  const { tFunc, tFrame, tFrameIndex, tSees, tRole, tRemedy } = t;
  const { task: bTask, func: bFunc, frame: bFrame, frameIndex: bFrameIndex, kernelSees: bSees, roleCode: bRole, remedyRef: bRemedy } = bl;
  const outTask = out.task;
  const outCount = out.length;
  const { pid, tid } = tasks;
  const ownCount = ownOutcome.length;
  let n = 0;
  let first = -1;
  let firstId = -1;
  let firstPid = 0;
  let firstTid = 0;
  let next = 0;
  let nextOwn = ownCount > 0 ? ownOutcome[0] : -1;
  for (let o = 0; o < outCount; o++) {
    const index = outTask[o];
    let id: number;
    if (o === nextOwn) {
      id = classCount + next++;
      nextOwn = next < ownCount ? ownOutcome[next] : -1;
    } else id = taskClass[index];
    for (let r = tplStart[id], end = tplStart[id + 1]; r < end; r++, n++) {
      bTask[n] = index;
      bFunc[n] = tFunc[r];
      bFrame[n] = tFrame[r];
      bFrameIndex[n] = tFrameIndex[r];
      bSees[n] = tSees[r];
      bRole[n] = tRole[r];
      bRemedy[n] = tRemedy[r];
    }
    if (visibleId[id] === 0) continue;
    // The first in taskOrder (pid, then tid, null (NaN) last; then index: outcomes come in index
    // order, so an equal pid and tid never replaces), compared here: a call per blocked task was
    // most of this loop while V8 still interprets it.
    const p = pid[index] === pid[index] ? pid[index] : Number.MAX_SAFE_INTEGER;
    const q = tid[index] === tid[index] ? tid[index] : Number.MAX_SAFE_INTEGER;
    if (first < 0 || p < firstPid || (p === firstPid && q < firstTid)) {
      first = index;
      firstId = id;
      firstPid = p;
      firstTid = q;
    }
  }
  return { rows: n, first, firstId };
}

/**
 * The per-task loop: a task of a decided class or memo signature copies that outcome; any other
 * runs the rule table (decideOne, out of the hot loop: it runs once per distinct stack).
 */
class TaskDecider {
  readonly outcomes: Outcomes;
  /** Made by placeBlockers(), at the end of run(). */
  blockers = new Blockers(1);
  readonly functionBlocking: number[];
  /** Outcomes emit() made (not copied from a class): outcome index, entry, row delta, in order. */
  private readonly own = { outcome: [] as number[], entry: [] as MemoEntry[], delta: [] as number[] };
  partialExcluded = 0;
  /** Outcomes per TASK_STATUSES code (what Outcomes.countByStatus() counts, without a pass over the outcomes): own ones by emit(), copied ones per class at the end of run(). */
  readonly byStatus = new Float64Array(TASK_STATUSES.length);
  /**
   * The kernel's own livepatch check fails on the first task in taskOrder (not done) whose matches
   * hold a blocking frame the kernel sees: that task and function, or null. Set by placeBlockers().
   */
  firstVisible: { task: number; func: number | null } | null = null;
  private readonly cap: Capture;

  constructor(
    private readonly input: DecideInput,
    private readonly opts: DecideOptions,
    private readonly rules: Rule[],
    private readonly memo: RuleMemo | null,
    private readonly classes: SpanClasses | null,
    private readonly chains: ChainCache,
    private readonly k: TaskKinds,
    private readonly byTask: HitsByTask,
    private readonly hiddenOverlap: string | null,
    private readonly everyTaskOfKind: Set<number>,
    private readonly unpatchable: Set<number>,
  ) {
    this.cap = input.capture;
    // Sized up front: growing a million-element column by doubling copies it ~20 times.
    this.outcomes = new Outcomes(Math.max(this.cap.tasks.length - k.vanished, 1));
    this.functionBlocking = input.ranges.functions.map(() => 0);
  }

  run(): void {
    const kinds = this.k.kinds;
    const taskClass = this.k.taskClass;
    const classes = this.classes;
    const classCount = classes === null ? 0 : classes.classCount;
    const kernel = classes?.kernel ?? null;
    // Tasks copied per class, and each decided class's Outcomes.listRef, made on its first copy
    // (-1: none yet): the kernel's arrays when it runs the loop.
    const copied = kernel !== null ? kernel.arrays.copied.subarray(0, classCount).fill(0) : new Float64Array(classCount);
    const listRefs = kernel !== null ? kernel.arrays.ref.subarray(0, classCount) : new Int32Array(classCount).fill(-1);
    if (classes === null) {
      for (let index = 0; index < kinds.length; index++) if (kinds[index] !== NO_KIND) this.decideOne(index, kinds[index], -1);
    } else {
      // Tasks of a decided class take its outcome in copyDecided(), which stops at the first task
      // that needs the rule table: V8 compiles a loop as a whole (OSR), and one that also held the
      // rule table's code took ~16 ms to compile and deoptimised whenever a path it had not seen
      // came up, so a 100k-task check ran it interpreted nearly to the end.
      for (let index = 0; index < kinds.length; index++) {
        index = kernel !== null ? this.copyDecidedInKernel(index, kernel) : this.copyDecided(index, copied, listRefs);
        if (index >= kinds.length) break;
        const cls = taskClass[index];
        // The kernel stops at a decided class's first copy: its match list is made here.
        if (kernel !== null && cls >= 0 && kernel.arrays.status[cls] >= 0 && listRefs[cls] < 0) {
          listRefs[cls] = this.outcomes.listRef(classes.entry[cls]!.matches);
          index--;
          continue;
        }
        this.decideOne(index, kinds[index], cls);
      }
      for (let c = 0; c < copied.length; c++) if (copied[c] > 0) this.byStatus[classes.entry[c]!.statusCode] += copied[c];
    }
    this.placeBlockers(copied);
  }

  /**
   * From task `from` on, each task of a decided class gets the class's outcome (vanished tasks
   * are skipped); returns the first task that must be decided (the task count at the end).
   * `copied` counts the tasks copied per class. Only the outcome columns: blockers and the
   * kernel check's first task come after, in placeBlockers().
   */
  private copyDecided(from: number, copied: Float64Array, listRefs: Int32Array): number {
    const kinds = this.k.kinds;
    const taskClass = this.k.taskClass;
    const entries = this.classes!.entry;
    const out = this.outcomes;
    const T = kinds.length;
    let index = from;
    for (; index < T; index++) {
      const kindCode = kinds[index];
      if (kindCode === NO_KIND) continue;
      const cls = taskClass[index];
      if (cls < 0) break;
      const e = entries[cls];
      if (e === null || e.status === null) break;
      if (out.length === out.task.length) out.grow(out.length * 2);
      const i = out.length++;
      out.task[i] = index;
      out.kindCode[i] = kindCode;
      out.statusCode[i] = e.statusCode;
      let ref = listRefs[cls];
      if (ref < 0) ref = listRefs[cls] = out.listRef(e.matches);
      out.matchRef[i] = ref;
      copied[cls]++;
    }
    return index;
  }

  /**
   * copyDecided() by the task kernel (assembly/tasks.ts copyDecided, the same loop over the same
   * arrays), which also stops at a decided class's first copy (run() makes its match list); its
   * rows are copied into the outcome columns.
   */
  private copyDecidedInKernel(from: number, kernel: { kernel: TaskKernel; arrays: TaskKernelArrays }): number {
    const index = kernel.kernel.copyDecided(from, this.k.kinds.length);
    const m = kernel.kernel.copiedRows();
    if (m > 0) {
      const out = this.outcomes;
      if (out.length + m > out.task.length) out.grow(Math.max(out.length * 2, out.length + m));
      const a = kernel.arrays;
      out.task.set(a.outTask.subarray(0, m), out.length);
      out.kindCode.set(a.outKind.subarray(0, m), out.length);
      out.statusCode.set(a.outStatus.subarray(0, m), out.length);
      out.matchRef.set(a.outRef.subarray(0, m), out.length);
      out.length += m;
    }
    return index;
  }

  /** Task `index` gets representative `e`'s outcome, its frames moved by `delta` rows (blockers: placeBlockers()). */
  private emit(index: number, kindCode: number, e: MemoEntry, delta: number): void {
    // Matches are read-only once made: the same list when the rows are the same.
    const matches = delta === 0 ? e.matches : e.matches.map((x) => ({ ...x, frame: x.frame === null ? null : x.frame + delta }));
    this.own.outcome.push(this.outcomes.length);
    this.own.entry.push(e);
    this.own.delta.push(delta);
    this.outcomes.pushCodes(index, kindCode, e.statusCode, this.outcomes.listRef(matches));
    this.byStatus[e.statusCode]++;
    if (e.statusCode === EXCLUDED) this.partialExcluded++;
    if (e.blockers !== null) this.countBlocking(e.blockers, 1);
  }

  /**
   * Blockers in outcome order, each outcome's from its entry (its own, or its class's); the
   * per-class sums of copied tasks; the kernel check's first task. Counted first, so the columns
   * are made once at their size.
   */
  private placeBlockers(copied: Float64Array): void {
    const entries = this.classes === null ? [] : this.classes.entry;
    const own = this.own;
    const classCount = entries.length;
    const ownCount = own.entry.length;
    // Every entry an outcome refers to (classes with copied tasks, then each own outcome's, its
    // row delta applied) as rows of one template, and whether it holds a kernel-visible blocking
    // match: the per-outcome loop below then reads typed arrays only. With the entries' objects
    // read in that loop, V8 took ~9 ms to compile it (OSR) and ~7 more to install the code, while
    // interpreting it for most of a 100k-task check.
    const ids = classCount + ownCount;
    const tplStart = new Int32Array(ids + 1);
    const visibleId = new Uint8Array(ids);
    const tFunc: number[] = [];
    const tFrame: number[] = [];
    const tFrameIndex: number[] = [];
    const tSees: number[] = [];
    const tRole: number[] = [];
    const tRemedy: number[] = [];
    // The rows' remedies, each once (the blockers' remedy table; tRemedy indexes it).
    const remedies = new Interner<Remedy>();
    let total = 0;
    for (let id = 0; id < ids; id++) {
      tplStart[id] = tFunc.length;
      const isOwn = id >= classCount;
      const e = isOwn ? own.entry[id - classCount] : entries[id];
      if (e === null || (!isOwn && copied[id] === 0)) continue;
      const uses = isOwn ? 1 : copied[id];
      if (!isOwn && e.statusCode === EXCLUDED) this.partialExcluded += uses;
      if (e.visible === undefined) e.visible = e.statusCode === DONE ? null : visibleMatch(e.matches);
      if (e.visible !== null && e.statusCode !== DONE) visibleId[id] = 1;
      const mine = e.blockers;
      if (mine === null) continue;
      // An own outcome's blockers were counted by emit().
      if (!isOwn) this.countBlocking(mine, uses);
      total += uses * mine.length;
      const delta = isOwn ? own.delta[id - classCount] : 0;
      const roles = (e.roleCodes ??= mine.map((b) => roleCode(b.role)));
      for (let j = 0; j < mine.length; j++) {
        const b = mine[j];
        tFunc.push(b.func);
        tFrame.push(b.frame + delta);
        tFrameIndex.push(b.frameIndex);
        tSees.push(b.kernelSees ? 1 : 0);
        tRole.push(roles[j]);
        tRemedy.push(remedies.intern(b.remedy));
      }
    }
    tplStart[ids] = tFunc.length;
    const template = { tFunc, tFrame, tFrameIndex, tSees, tRole, tRemedy };
    // Exactly `total` rows, so the columns never grow.
    const bl = (this.blockers = new Blockers(total, remedies.values));
    const kernel = this.classes?.kernel?.kernel ?? null;
    const placed =
      (kernel !== null && total > 0 ? kernel.placeRows(this.outcomes, own.outcome, classCount, tplStart, visibleId, template, bl, total) : null) ??
      placeRows(this.outcomes, this.k.taskClass, this.cap.tasks, own.outcome, classCount, tplStart, visibleId, template, bl);
    const n = placed.rows;
    const first = placed.first;
    const firstId = placed.firstId;
    // Counted and placed from the same entries: a difference is a bug, and typed arrays drop
    // writes past their end silently (a blocker lost from every report), so it stops here.
    if (n !== total) throw new PatchsafeError("E_INTERNAL", `decide placed ${n} blocker(s) of ${total} counted (a patchsafe bug)`);
    bl.length = n;
    const firstEntry = firstId < 0 ? null : firstId < classCount ? entries[firstId] : own.entry[firstId - classCount];
    const firstMatch = firstEntry?.visible ?? null;
    this.firstVisible = firstMatch === null ? null : { task: first, func: firstMatch.func };
  }

  /** functionBlocking counts a task once per function it is blocked in (`tasks` tasks with these blockers). */
  private countBlocking(mine: Blocker[], tasks: number): void {
    for (let j = 0; j < mine.length; j++) {
      let seen = false;
      for (let i = 0; i < j && !seen; i++) seen = mine[i].func === mine[j].func;
      if (!seen) this.functionBlocking[mine[j].func] += tasks;
    }
  }

  private decideOne(index: number, kindCode: number, cls: number): void {
    const { cap, input, opts, memo, classes } = this;
    const ranges = input.ranges;
    const kind = TASK_KINDS[kindCode];
    const hits = this.byTask.of(index) ?? NO_HITS;
    const rep = memo === null ? null : memo.find(index, kindCode, hits);
    if (rep !== null && rep.status !== null) {
      // Same stack and facts as an earlier task.
      const delta = cap.tasks.frameStart[index] - cap.tasks.frameStart[rep.index];
      if (cls >= 0 && delta === 0) classes!.setEntry(cls, rep);
      this.emit(index, kindCode, rep, delta);
      return;
    }
    const task = cap.tasks.get(index);
    const chain = this.chains.chain(index);
    const c: TaskContext = { cap, task, index, kind, chain, hits, input, opts, hiddenOverlap: this.hiddenOverlap };
    const matches: RuleMatch[] = [];
    for (const rule of this.rules) {
      const r = rule.test(c);
      for (let k = 0; k < r.length; k++) matches.push(r[k]);
    }
    let status: TaskOutcome["status"];
    // An idle task *in* the idle loop (its innermost frame) switches at the idle-loop switch point
    // without a stack check; one elsewhere (in panic, say) is checked like any task.
    const idleLoop = c.kind === "idle" && c.chain.length > 0 && IDLE_LOOP.has(frameName(cap, c.chain[0]) ?? "");
    const first = matches[0];
    if (first?.code === "done") status = "done";
    else if (c.kind === "idle" && opts.model === "kpatch") status = "idle"; // kpatch never checks idle tasks
    else if (idleLoop && opts.model === "livepatch") status = "idle";
    else if (first === undefined) status = "clean";
    else if (first.code === "unreadable" && opts.partialOk) status = "excluded";
    else if (first.code === "blocked") status = "blocked";
    else status = "undecided";
    // Blocked wins over undecided causes that come after it in the table.
    if (status === "undecided" && !UNDECIDED_BEFORE_BLOCKED.has(first.code) && matches.some((x) => x.code === "blocked")) status = "blocked";
    let mine: Blocker[] | null = null;
    if (status === "blocked") {
      mine = [];
      for (const x of matches) {
        if (x.code !== "blocked" || x.func === null || x.frame === null) continue;
        const frameIndex = x.frame - c.task.frameStart;
        const hit = c.hits.find(([fr, ri]) => fr === x.frame && ranges.ranges[ri].func === x.func)!;
        mine.push({
          task: c.index,
          func: x.func,
          frame: x.frame,
          frameIndex,
          kernelSees: x.kernelSees,
          role: ranges.ranges[hit[1]].role,
          remedy: remedyFor(c, x.frame, x.func, this.everyTaskOfKind, this.unpatchable),
        });
      }
    }
    // A remedy depends on the frames, kind and state, which the memo's signature covers. A task
    // the memo does not keep gets an entry of its own, emitted once.
    const statusCode = TASK_STATUSES.indexOf(status);
    const entry = memo?.remember(index, matches) ?? { index, kind: kindCode, hits, matches, status: null, statusCode, visible: undefined, blockers: null };
    entry.status = status;
    entry.statusCode = statusCode;
    entry.blockers = mine;
    // The kernel checks neither a switched task nor an idle task in its idle loop (switched there
    // by klp_update_patch_state() without a stack check): neither can be the one it names.
    entry.visible = status === "done" || status === "idle" ? null : visibleMatch(entry.matches);
    if (cls >= 0) classes!.setEntry(cls, entry);
    this.emit(index, kindCode, entry, 0);
  }
}

/**
 * realChain/taskKind per task, computed once per shared row span (Capture.sharedRows): a kind
 * that the task's own facts do not fix (pid 0, stat flags, status Kthread) follows from the
 * chain's names alone, so tasks of one span share it.
 */
class ChainCache {
  // Indexed by the span's first row; the count is checked too (an empty task's frameStart is
  // just where the next rows would go, and a snapshot may share a prefix).
  private readonly chains: ({ count: number; chain: number[]; kindCode: number } | undefined)[];

  constructor(private readonly cap: Capture) {
    this.chains = cap.sharedRows ? new Array(cap.frames.length + 1).fill(undefined) : [];
  }

  private rows(index: number): { frameStart: number; frameCount: number } {
    return { frameStart: this.cap.tasks.frameStart[index], frameCount: this.cap.tasks.frameCount[index] };
  }

  private entry(index: number): { count: number; chain: number[]; kindCode: number } | null {
    const start = this.cap.tasks.frameStart[index];
    const count = this.cap.tasks.frameCount[index];
    if (!this.cap.sharedRows || count === 0) return null;
    let e = this.chains[start];
    if (e === undefined) this.chains[start] = e = { count, chain: realChain(this.cap, this.rows(index)), kindCode: -1 };
    return e.count === count ? e : null;
  }

  chain(index: number): number[] {
    return this.entry(index)?.chain ?? realChain(this.cap, this.rows(index));
  }

  /** The chain length of the task last given to classify(). */
  lastChainLength = 0;

  /** Task `index`'s kind as a TASK_KINDS code; sets lastChainLength. */
  classify(index: number): number {
    const e = this.entry(index);
    const chain = e?.chain ?? realChain(this.cap, this.rows(index));
    this.lastChainLength = chain.length;
    const tasks = this.cap.tasks;
    const pid = tasks.pidOf(index) ?? tasks.tidOf(index);
    const byChainOnly = e !== null && pid !== 0 && tasks.flagsOf(index) === null && tasks.statusKthreadOf(index) !== true;
    if (!byChainOnly) return KIND_CODE[taskKind(this.cap, tasks.get(index), chain)];
    if (e.kindCode < 0) e.kindCode = KIND_CODE[taskKind(this.cap, tasks.get(index), e.chain)];
    return e.kindCode;
  }
}

/**
 * Tasks of a capture with shared rows (Capture.sharedRows) in classes: one span of rows (so the
 * same frames and hits) and the same facts the rules read (patch state, running / Kthread / end
 * marker bits, state letter, stack status), with no errno, no PF flags and a pid other than 0
 * (those decide the kind by themselves, and go the slower way). Such tasks get the same kind,
 * chain and rule results as the class's first task: RuleMemo's equality, found with a few
 * typed-array reads per task instead of a memo lookup. Spans holding an unparsed row are never
 * classed (their messages carry line numbers). A note of the model's on a task is one more fact:
 * a class's tasks have the same note, or none.
 */
class SpanClasses {
  /** Classes made so far. */
  classCount = 0;
  /**
   * Per class: its kind code, chain length, row count, facts signature, first task and size (how
   * many tasks it holds); typed arrays with room for a class per task (classes are only made
   * while tasks are classified), in the task kernel's memory when there is one.
   */
  readonly kind: Uint8Array;
  readonly chainLength: Int32Array;
  readonly first: Uint32Array;
  readonly size: Float64Array;
  private readonly count: Uint32Array;
  private readonly sig: Uint32Array;
  /** Per class: its decided entry (setEntry()). */
  readonly entry: (MemoEntry | null)[] = [];
  /** The last class made for a span, by its first row (-1: none). */
  private readonly bySpan: Int32Array;
  private readonly tasks: TaskTable;

  /** TaskTable.flagsColumn() and whether any task has an errno, read once. */
  private readonly flags: Float64Array | null;
  private readonly anyErrno: boolean;

  /** The model's notes by task (null: none), and each class's note (undefined: none). */
  private readonly notes: ReadonlyMap<number, string> | null;
  private readonly note: (string | undefined)[] = [];
  /** The task kernel whose memory holds these arrays; its loop runs classifyKnown() when there are no notes, PF flags or errnos. */
  readonly kernel: { kernel: TaskKernel; arrays: TaskKernelArrays } | null;
  private readonly kernelLoop: boolean;

  constructor(
    private readonly cap: Capture,
    notes: ReadonlyMap<number, string> | null = null,
    kernel: { kernel: TaskKernel; arrays: TaskKernelArrays } | null = null,
  ) {
    this.tasks = cap.tasks;
    const C = cap.tasks.length + 1;
    const a = kernel?.arrays ?? null;
    this.kind = a?.kind ?? new Uint8Array(C);
    this.chainLength = a?.chainLength ?? new Int32Array(C);
    this.first = a?.first ?? new Uint32Array(C);
    this.size = a?.size ?? new Float64Array(C);
    this.count = a?.count ?? new Uint32Array(C);
    this.sig = a?.sig ?? new Uint32Array(C);
    this.bySpan = a?.bySpan ?? new Int32Array(cap.frames.length + 1).fill(-1);
    this.flags = cap.tasks.flagsColumn();
    this.anyErrno = cap.tasks.errnoCount() > 0;
    this.notes = notes !== null && notes.size > 0 ? notes : null;
    this.kernel = kernel;
    this.kernelLoop = kernel !== null && this.flags === null && !this.anyErrno && this.notes === null;
  }

  /** -1 when the task cannot be classed at all (see above). */
  private signature(i: number): number {
    const t = this.tasks;
    if (t.frameCount[i] === 0 || t.pid[i] === 0 || t.tid[i] === 0 || t.flagsOf(i) !== null || t.errnoOf(i) !== null) return -1;
    return factsSignature(t.patchStateCode[i], t.bits[i], t.state[i], t.stackStatusCode[i]);
  }

  /** Class `c` is decided by `e` (the kernel's copy loop reads its status). */
  setEntry(c: number, e: MemoEntry): void {
    this.entry[c] = e;
    if (this.kernel !== null) this.kernel.arrays.status[c] = e.status === null ? -1 : e.statusCode;
  }

  /**
   * From task `from` on, each task of a class already made gets its class, kind and chain length
   * in `k`; returns the first task that is not (vanished, unclassable or of a new class: classify
   * it and call add()), or the task count. One small loop over the columns, read directly; the
   * task kernel's (the same loop without notes, PF flags and errnos) when there is one.
   */
  classifyKnown(from: number, k: TaskKinds): number {
    if (this.kernelLoop) return this.kernel!.kernel.classifyKnown(from, this.tasks.length);
    const t = this.tasks;
    const { frameStart, frameCount, pid, tid, patchStateCode, bits, state, stackStatusCode } = t;
    const { kinds, chainLen, kindCount, taskClass } = k;
    const { bySpan, count, sig, kind, chainLength, size, flags, anyErrno, notes, note } = this;
    const T = t.length;
    let i = from;
    for (; i < T; i++) {
      const c = bySpan[frameStart[i]];
      if (c < 0 || count[c] !== frameCount[i] || pid[i] === 0 || tid[i] === 0) break;
      if ((flags !== null && flags[i] === flags[i]) || (anyErrno && t.errnoOf(i) !== null) || (notes !== null && notes.get(i) !== note[c])) break;
      const st = stackStatusCode[i];
      if (st === VANISHED || sig[c] !== factsSignature(patchStateCode[i], bits[i], state[i], st)) break;
      size[c]++;
      taskClass[i] = c;
      const kd = kind[c];
      kinds[i] = kd;
      chainLen[i] = chainLength[c];
      kindCount[kd]++;
    }
    return i;
  }

  /** Makes task i (kind `kind`, chain length `chainLength`) the first of a new class; -1 when it cannot be classed. */
  add(i: number, kind: number, chainLength: number): number {
    const sig = this.signature(i);
    if (sig < 0) return -1;
    const start = this.tasks.frameStart[i];
    const n = this.tasks.frameCount[i];
    const f = this.cap.frames;
    for (let r = start; r < start + n; r++) if (f.flags[r] & FrameFlag.UNPARSED) return -1;
    // No room for another class (the task kernel's layout has a bound): the task stays unclassed.
    if (this.classCount === this.kind.length) return -1;
    const c = this.classCount++;
    this.kind[c] = kind;
    this.chainLength[c] = chainLength;
    this.count[c] = n;
    this.sig[c] = sig;
    this.entry.push(null);
    this.first[c] = i;
    this.size[c] = 1;
    this.note.push(this.notes === null ? undefined : this.notes.get(i));
    this.bySpan[start] = c;
    if (this.kernel !== null) {
      this.kernel.arrays.status[c] = -1;
      this.kernel.arrays.ref[c] = -1;
    }
    return c;
  }
}

/** The match the kernel's own check fails on: a blocking frame it sees, or null. */
/** SpanClasses' facts signature: patch state, running / Kthread / end-marker bits, state letter, stack status. */
function factsSignature(patchStateCode: number, bits: number, state: number, stackStatusCode: number): number {
  return ((patchStateCode + 2) | (bits << 4) | (state << 12) | (stackStatusCode << 20)) >>> 0;
}

function visibleMatch(matches: RuleMatch[]): RuleMatch | null {
  return matches.find((x) => x.code === "blocked" && x.kernelSees) ?? null;
}

/** One FNV-1a step (a function, not a closure: the memo hashes a million tasks). */
function mixHash(h: number, v: number): number {
  return Math.imul(h ^ (v | 0), 0x01000193);
}

/** A memo representative: the first task of a signature and what deciding it produced. */
interface MemoEntry {
  index: number;
  /** TASK_KINDS index. */
  kind: number;
  hits: [number, number][];
  matches: RuleMatch[];
  status: TaskOutcome["status"] | null;
  statusCode: number;
  /** Its kernel-visible blocking match (visibleMatch), once asked; undefined before. */
  visible: RuleMatch | null | undefined;
  /** Its blockers (status blocked), to copy with this task's index and frames. */
  blockers: Blocker[] | null;
  /** Blockers.roleCode of each of its blockers, once placeBlockers() has asked. */
  roleCodes?: number[];
}

/**
 * Memo of rule results by task "signature": kind, the task facts the rules read (patchState,
 * running, state, stackStatus, errno, the model's note), and per frame every column the rules
 * or the resolver read, plus hits relative to the task's first frame. A hash picks candidates;
 * equality is checked field by field against the representative. Tasks with an unparsed line
 * are never shared (their messages carry line numbers).
 */
class RuleMemo {
  private readonly buckets = new Map<number, MemoEntry[]>();
  private size = 0;
  private pending: { index: number; hash: number; kind: number; hits: [number, number][] } | null = null;
  /** Shared row spans known to hold no unparsed row: by first row, the row count (0: unknown). */
  private readonly clean: Int32Array;
  /** Shared rows: representatives by their span's first row (same() checks the count and facts). */
  private readonly bySpan: (MemoEntry[] | undefined)[];
  /** Representatives kept at most (a host of all-distinct stacks gains nothing from more). */
  private static readonly MAX = 1 << 16;

  constructor(
    private readonly cap: Capture,
    private readonly input: DecideInput,
  ) {
    this.clean = new Int32Array(cap.sharedRows ? cap.frames.length + 1 : 0);
    this.bySpan = cap.sharedRows ? new Array(cap.frames.length + 1).fill(undefined) : [];
  }

  private hash(index: number, kind: number, hits: [number, number][]): number {
    const tasks = this.cap.tasks;
    const frameStart = tasks.frameStart[index];
    const frameCount = tasks.frameCount[index];
    const f = this.cap.frames;
    const keys = this.input.resolved.keys;
    let h = 0x811c9dc5;
    h = mixHash(h, kind);
    h = mixHash(h, frameCount);
    h = mixHash(h, tasks.patchStateCode[index]);
    h = mixHash(h, tasks.bits[index]);
    h = mixHash(h, tasks.state[index]);
    h = mixHash(h, tasks.stackStatusCode[index]);
    if (this.cap.sharedRows) {
      // Tasks of one stack share rows: the span names the frames (equal stacks in other rows
      // hash apart and are merely decided again).
      h = mixHash(h, frameStart);
    } else {
      for (let i = frameStart; i < frameStart + frameCount; i++) {
        h = mixHash(h, f.symbol[i]);
        h = mixHash(h, f.offset[i]);
        h = mixHash(h, f.flags[i]);
        h = mixHash(h, keys[2 * i]);
      }
    }
    for (let k = 0; k < hits.length; k++) {
      h = mixHash(h, hits[k][0] - frameStart);
      h = mixHash(h, hits[k][1]);
    }
    return h >>> 0;
  }

  private same(e: MemoEntry, b: number, kind: number, hits: [number, number][]): boolean {
    const a = e.index;
    const tasks = this.cap.tasks;
    if (e.kind !== kind) return false;
    // bits: running, status Kthread, end marker (the rules read the first two; the third only splits more).
    if (tasks.frameCount[a] !== tasks.frameCount[b] || tasks.patchStateCode[a] !== tasks.patchStateCode[b] || tasks.bits[a] !== tasks.bits[b] || tasks.state[a] !== tasks.state[b]) return false;
    if (tasks.stackStatusCode[a] !== tasks.stackStatusCode[b] || tasks.errnoOf(a) !== tasks.errnoOf(b)) return false;
    const notes = this.input.notes;
    if (notes !== undefined && notes.size > 0 && (notes.get(a) ?? null) !== (notes.get(b) ?? null)) return false;
    // quiesce: a doubt about the captured stack is per task, even when predicted stacks agree.
    const doubts = this.input.doubts;
    if (doubts !== undefined && doubts.size > 0 && (doubts.get(a) ?? null) !== (doubts.get(b) ?? null)) return false;
    if (tasks.flagsOf(a) !== tasks.flagsOf(b)) return false;
    const f = this.cap.frames;
    const keys = this.input.resolved.keys;
    const st = this.input.resolved.status;
    const sa = tasks.frameStart[a];
    const sb = tasks.frameStart[b];
    const count = tasks.frameCount[a];
    for (let k = sa === sb ? count : 0; k < count; k++) {
      const i = sa + k;
      const j = sb + k;
      if (f.symbol[i] !== f.symbol[j] || f.object[i] !== f.object[j] || f.buildId[i] !== f.buildId[j]) return false;
      if (f.offset[i] !== f.offset[j] || f.size[i] !== f.size[j] || f.flags[i] !== f.flags[j]) return false;
      if (f.addrLo[i] !== f.addrLo[j] || f.addrHi[i] !== f.addrHi[j] || st[i] !== st[j]) return false;
      if (keys[2 * i] !== keys[2 * j] || keys[2 * i + 1] !== keys[2 * j + 1]) return false;
    }
    const ha = e.hits;
    if (ha === hits) return true;
    if (ha.length !== hits.length) return false;
    for (let k = 0; k < hits.length; k++) {
      if (ha[k][1] !== hits[k][1] || ha[k][0] - sa !== hits[k][0] - sb) return false;
    }
    return true;
  }

  /** A representative with the same signature as task `index`, or null (then call remember()). */
  find(index: number, kind: number, hits: [number, number][]): MemoEntry | null {
    this.pending = null;
    const frameStart = this.cap.tasks.frameStart[index];
    const frameCount = this.cap.tasks.frameCount[index];
    const f = this.cap.frames;
    // A shared span is checked for unparsed rows once.
    if (!this.cap.sharedRows || frameCount === 0 || this.clean[frameStart] !== frameCount) {
      for (let i = frameStart; i < frameStart + frameCount; i++) if (f.flags[i] & FrameFlag.UNPARSED) return null;
      if (this.cap.sharedRows && frameCount > 0) this.clean[frameStart] = frameCount;
    }
    // Shared rows: the representatives of this span, by direct index (no hash, no Map).
    const span = this.cap.sharedRows && frameCount > 0 ? this.bySpan[frameStart] : undefined;
    if (span !== undefined) for (const e of span) if (this.same(e, index, kind, hits)) return e;
    const hash = this.hash(index, kind, hits);
    const list = this.buckets.get(hash);
    if (list !== undefined) for (const e of list) if (this.same(e, index, kind, hits)) return e;
    if (this.size < RuleMemo.MAX && (list === undefined || list.length < 8)) this.pending = { index, hash, kind, hits };
    return null;
  }

  /** Records task `index` (just missed by find()) as a representative; null when it is not kept. */
  remember(index: number, matches: RuleMatch[]): MemoEntry | null {
    const p = this.pending;
    if (p === null || p.index !== index) return null;
    this.pending = null;
    const e: MemoEntry = { index, kind: p.kind, hits: p.hits, matches: matches.map((x) => ({ ...x })), status: null, statusCode: 0, visible: undefined, blockers: null };
    const list = this.buckets.get(p.hash);
    if (list === undefined) this.buckets.set(p.hash, [e]);
    else list.push(e);
    const frameStart = this.cap.tasks.frameStart[index];
    if (this.cap.sharedRows && this.cap.tasks.frameCount[index] > 0) {
      const span = this.bySpan[frameStart];
      if (span === undefined) this.bySpan[frameStart] = [e];
      else if (span.length < 8) span.push(e);
    }
    this.size++;
    return e;
  }
}

function describeUndecided(code: string): string {
  const d: Record<string, string> = {
    running: "on a CPU or runnable when captured",
    unreliable: "the trace is not reliable",
    truncated: "the trace may be cut",
    unreadable: "the stack could not be read",
    "possibly-live": "a `? ` entry names a patched function",
    hidden: "/proc hides scheduler frames and the patch touches them",
    cold: "old .cold code of a patched function on the stack",
    unresolved: "a frame that could be a patched function is not in the symbol table",
    ambiguous: "a duplicate symbol the printed size does not single out",
    "unparsed-line": "a line of the stack could not be read",
    "empty-stack": "an empty stack proves nothing",
    "no-reliable-stacktrace": "the kernel has no reliable stack traces",
  };
  return d[code] ?? code;
}

/** Tasks by pid then tid (nulls last), then input order. */
export function taskOrder(cap: Capture, a: number, b: number): number {
  const pid = cap.tasks.pid;
  const tid = cap.tasks.tid;
  return nullLast(pid[a]) - nullLast(pid[b]) || nullLast(tid[a]) - nullLast(tid[b]) || a - b;
}

/** A pid or tid column value with null (NaN) ordered after every number. */
function nullLast(v: number): number {
  return v === v ? v : Number.MAX_SAFE_INTEGER;
}

/** Whether the frame's resolved address lies in .sched.text or .spinlock.text. */
function inSchedText(input: DecideInput, frame: number): boolean {
  const t = input.table;
  if (t === null || input.resolved.keySpace !== "addresses") return false;
  const key = (BigInt(input.resolved.keys[2 * frame + 1]) << 32n) | BigInt(input.resolved.keys[2 * frame]);
  const inside = (b: [bigint, bigint] | null): boolean => b !== null && key >= b[0] && key < b[1];
  return inside(t.sections.sched) || inside(t.sections.lock);
}

/** livepatch: per task; fails on the first task with a kernel-visible blocking frame. */
/**
 * livepatch: per task; fails on the first task (in taskOrder) with a kernel-visible blocking
 * frame, which TaskDecider found while it decided (`first`).
 */
function livepatchKernelCheck(cap: Capture, table: SymbolTable | null, outcomes: Outcomes, hiddenOverlap: string | null, first: { task: number; func: number | null } | null): Verdict["kernelCheck"] {
  const UNDECIDED = TASK_STATUSES.indexOf("undecided");
  if (first !== null) return { result: "fail", first };
  const kernelBlind = new Set(["possibly-live", "cold", "blocked", "excluded"]);
  const BLOCKED = TASK_STATUSES.indexOf("blocked");
  // Any doubt the kernel would meet (unresolved, unreliable, …) on a task it checks, also one
  // that patchsafe blocks only by a range the kernel does not see: its own result is unknown.
  for (let i = 0; i < outcomes.length; i++) {
    const st = outcomes.statusCode[i];
    if (st !== UNDECIDED && st !== BLOCKED) continue;
    const ms = outcomes.matches(i);
    for (let k = 0; k < ms.length; k++) if (!kernelBlind.has(ms[k].code)) return { result: "unknown", first: null };
  }
  if (cap.hidesSchedFrames && (table === null || !table.hasAddresses || table.sections.sched === null || hiddenOverlap !== null)) return { result: "unknown", first: null };
  return { result: "pass", first: null };
}

/**
 * kpatch.ko (and quiesce's global check over predicted stacks): all tasks but idle ones, with
 * the nosched walker; -EBUSY on the first task with a visible blocking frame or a walk that fills
 * its 64 slots (63 real frames plus the end marker). It knows nothing of running or unreliable.
 */
function kpatchKernelCheck(cap: Capture, outcomes: Outcomes, chainLen: Int32Array, notes: ReadonlyMap<number, string> | undefined): Verdict["kernelCheck"] {
  // The first failing task in taskOrder (a minimum over the failing ones, not a sort), with the
  // cause checked in the same order as the kernel meets it on that task.
  let first: { task: number; func: number | null } | null = null;
  // quiesce: a task whose state is unknown may make the freeze fail before any check.
  let unknown = false;
  const IDLE_KIND = TASK_KINDS.indexOf("idle");
  // Columns, not outcome objects: kpatch and quiesce checks see a million tasks too.
  for (let i = 0; i < outcomes.length; i++) {
    if (outcomes.kindCode[i] === IDLE_KIND || outcomes.statusCode[i] === EXCLUDED) continue;
    const task = outcomes.task[i];
    if (notes?.get(task) === "state-unknown") unknown = true;
    if (first !== null && taskOrder(cap, task, first.task) > 0) continue;
    let fail: { task: number; func: number | null } | null = null;
    if (notes?.get(task) === "freeze-fails") fail = { task, func: null };
    else {
      const visible = outcomes.matches(i).find((x) => x.code === "blocked" && x.kernelSees);
      if (visible !== undefined) fail = { task, func: visible.func };
      else if (cap.tasks.stackStatusCode[task] === STACK_STATUS_CODE.truncated || chainLen[task] >= KPATCH_MAX_REAL_FRAMES) fail = { task, func: null };
    }
    if (fail !== null) first = fail;
  }
  return first !== null ? { result: "fail", first } : unknown ? { result: "unknown", first: null } : { result: "pass", first: null };
}

/** kpatch's walk has 64 slots, one of them the x86 end marker. */
const KPATCH_MAX_REAL_FRAMES = 63;
/** kernel/livepatch/transition.c MAX_STACK_ENTRIES; a deeper stack is refused (counted conservatively). */
const LIVEPATCH_MAX_ENTRIES = 100;
