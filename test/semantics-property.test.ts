/**
 * Property tests of the decision against the transcription of klp_check_stack_func
 * (test/klp-reference.ts): for random patch stacks and random tasks, patchsafe's kernelCheck
 * equals the kernel's, `safe` always comes with a kernel pass, and no task whose stack cannot be
 * decided is ever reported clean.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { check } from "../src/check.js";
import type { AppliedPatch } from "../src/model.js";
import { emptyPatch } from "../src/patch/spec.js";
import { referenceScanner } from "../src/scan/reference.js";
import { parseSymbolTable, type SymbolTable, symbolAddress } from "../src/symbols/table.js";
import { hostKallsyms, nativeCapture } from "./helpers.js";
import { klpCheckStack, type KlpPatch } from "./klp-reference.js";

const FUNCS = ["cmdline_proc_show", "meminfo_proc_show", "do_epoll_wait", "n_tty_read", "hrtimer_nanosleep"];
/** Which functions each patch module replaces (kpatch-built: same names in the module). */
const MODULES: Record<string, string[]> = {
  p1: ["cmdline_proc_show", "meminfo_proc_show"],
  p2: ["cmdline_proc_show", "do_epoll_wait", "hrtimer_nanosleep"],
  p3: ["cmdline_proc_show", "n_tty_read", "meminfo_proc_show", "do_epoll_wait"],
};
let table: SymbolTable | null = null;
function symbols(): SymbolTable {
  if (table !== null) return table;
  const lines: string[] = [];
  let base = 0xffffffffc0100000n;
  for (const [mod, names] of Object.entries(MODULES)) {
    for (const n of names) {
      lines.push(`${base.toString(16)} t ${n}\t[${mod}]`);
      base += 0x180n;
    }
    lines.push(`${base.toString(16)} t ${mod}_exit\t[${mod}]`);
    base += 0x1000n;
  }
  table = parseSymbolTable(`${hostKallsyms()}${lines.join("\n")}\n`);
  return table;
}
const row = (t: SymbolTable, name: string, object: string) => t.byName.get(name)!.find((r) => t.objects[t.object[r]] === object)!;

function klpPatch(t: SymbolTable, name: string, funcs: string[]): KlpPatch {
  return {
    name,
    funcs: funcs.map((f) => {
      const o = row(t, f, "vmlinux");
      const n = row(t, f, name);
      return { oldName: f, oldAddr: symbolAddress(t, o), oldSize: BigInt(t.size[o]), newAddr: symbolAddress(t, n), newSize: BigInt(t.size[n]) };
    }),
  };
}

/** A frame anywhere in a function or its replacement, including the byte after it (off == size). */
const frameArb = fc.tuple(fc.constantFrom(...FUNCS, "vfs_read", "ksys_read", "seq_read_iter"), fc.constantFrom("vmlinux", "p1", "p2", "p3"), fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean());
const taskArb = fc.record({
  frames: fc.array(frameArb, { minLength: 1, maxLength: 5 }),
  state: fc.constantFrom("S", "S", "D", "I", "R"),
  patchState: fc.constantFrom(null, 0, 1),
  damage: fc.constantFrom("none", "none", "none", "guess-only", "no-bottom", "unparsed", "unknown-name"),
});
const worldArb = fc.record({
  stack: fc.subarray(["p1", "p2"]).chain((s) => fc.shuffledSubarray(s, { minLength: s.length, maxLength: s.length })),
  patchFuncs: fc.subarray(MODULES.p3, { minLength: 1 }),
  direction: fc.constantFrom("apply", "revert"),
  tasks: fc.array(taskArb, { minLength: 1, maxLength: 6 }),
  transition: fc.boolean(),
});

describe("decision vs the transcription of klp_check_stack_func", () => {
  it("kernelCheck equals the kernel's; safe implies a kernel pass; undecidable stacks are never clean", () => {
    const t = symbols();
    const bottom = ["do_syscall_64+0x71/0x290", "entry_SYSCALL_64_after_hwframe+0x76/0x7e"];
    fc.assert(
      fc.property(worldArb, (w) => {
        const stackPatches = w.stack.map((n) => klpPatch(t, n, MODULES[n]));
        const p3 = klpPatch(t, "p3", w.patchFuncs);
        const applied: AppliedPatch[] = w.stack.map((n) => ({
          name: n, enabled: true, transition: false, replace: false, forced: false, stackOrder: null,
          funcs: MODULES[n].map((f) => ({ object: "vmlinux", oldName: f, oldSympos: 0, newName: null, newSize: null, force: false })),
        }));
        // p3's own transition in progress (apply: patching; revert: unpatching), or none: task
        // patch states speak of p3 only while it is in transition, and the stack says so.
        if (w.direction === "revert" || w.transition) {
          applied.push({ name: "p3", enabled: true, transition: w.transition, replace: false, forced: false, stackOrder: null, funcs: w.patchFuncs.map((f) => ({ object: "vmlinux", oldName: f, oldSympos: 0, newName: null, newSize: null, force: false })) });
        }
        // Tasks, and the raw return addresses the kernel would walk.
        const raw: bigint[][] = [];
        const tasks = w.tasks.map((task, i) => {
          const frames: string[] = [];
          const entries: bigint[] = [];
          for (const [name, object, where] of task.frames) {
            const r = t.byName.get(name)?.find((x) => t.objects[t.object[x]] === object);
            if (r === undefined) continue;
            const size = t.size[r];
            const off = Math.min(size, Math.floor(where * (size + 1)));
            frames.push(`${name}+0x${off.toString(16)}/0x${size.toString(16)}${object === "vmlinux" ? "" : ` [${object}]`}`);
            entries.push(symbolAddress(t, r) + BigInt(off));
          }
          if (frames.length === 0) frames.push("vfs_read+0x10/0x" + t.size[row(t, "vfs_read", "vmlinux")].toString(16)), entries.push(symbolAddress(t, row(t, "vfs_read", "vmlinux")) + 0x10n);
          let all = [...frames, ...bottom];
          if (task.damage === "guess-only") all = all.map((f) => `? ${f}`);
          if (task.damage === "no-bottom") all = frames;
          if (task.damage === "unknown-name") all = ["cmdline_proc_show.isra.0+0x1/0x10", ...all];
          raw.push(entries);
          const out: Record<string, unknown> = { pid: 10 + i, tid: 10 + i, comm: `t${i}`, state: task.state, flags: 0x400000, patchState: task.patchState, frames: all };
          if (task.damage === "unparsed") (out.frames as unknown[]).splice(1, 0, { unparsed: true });
          return out;
        });
        const patch = { ...emptyPatch(), name: "p3", funcs: w.patchFuncs.map((f) => ({ object: "vmlinux", oldName: f, oldSympos: 0, newName: null, newSize: null, force: false })) };
        const r = check({ capture: nativeCapture(tasks), symbols: t, patch, scanner: referenceScanner, options: { direction: w.direction as "apply" | "revert" }, applied });
        const target = w.direction === "apply" ? "patched" : "unpatched";
        const targetState = w.direction === "apply" ? 1 : 0;
        const inTransition = w.transition;

        // The kernel, during p3's transition: tasks already at the target are skipped; the others
        // are checked by stack. With no transition of p3 recorded, a patch state is another
        // patch's (or stale) and nothing is skipped.
        let kernelFirst: number | null = null;
        w.tasks.forEach((task, i) => {
          if (kernelFirst !== null) return;
          if (inTransition && task.patchState === targetState) return;
          if (klpCheckStack(raw[i], p3, target, w.direction === "apply" ? stackPatches : []) !== null) kernelFirst = i;
        });
        const reliableWorld = w.tasks.every((x) => x.damage === "none" && x.state !== "R");
        if (reliableWorld) {
          expect(r.verdict.kernelCheck.result).toBe(kernelFirst === null ? "pass" : "fail");
          if (kernelFirst !== null) expect(r.verdict.kernelCheck.first?.task).toBe(kernelFirst);
        } else if (r.verdict.kernelCheck.result === "fail") {
          expect(kernelFirst).not.toBeNull();
        }
        if (r.verdict.verdict === "safe") expect(kernelFirst).toBeNull();
        // Undecidable stacks are never clean.
        r.verdict.outcomes.toArray().forEach((o, i) => {
          const task = w.tasks[i];
          if (task.state === "R" || task.damage === "guess-only" || task.damage === "no-bottom" || task.damage === "unparsed") {
            expect(["clean"]).not.toContain(o.status);
          }
        });
        void inTransition;
      }),
      { seed: 20261130, numRuns: 400 },
    );
  });
});
