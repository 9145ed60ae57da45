/**
 * The guarantee that matters most: never a false "safe". Over generated hosts, patches, models,
 * directions and patch stacks, whenever a task's stack is unreadable, truncated, unreliable,
 * running, hidden, unresolved, ambiguous, cold, possibly live or partly unparsed, and the patch
 * could touch it, the verdict is not `safe`; a task with a real frame in a patched function is
 * never clean. Mutation checks: dropping any one rule from the table makes the property fail.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { check } from "../src/check.js";
import { LIVEPATCH_RULES, type Rule } from "../src/decide/livepatch.js";
import type { AppliedPatch } from "../src/model.js";
import { emptyPatch } from "../src/patch/spec.js";
import { referenceScanner } from "../src/scan/reference.js";
import { hostTable, nativeCapture } from "./helpers.js";

const t = hostTable();
const size = (name: string) => t.size[t.byName.get(name)![0]];
const fr = (name: string, off = 0x10) => `${name}+0x${off.toString(16)}/0x${size(name).toString(16)}`;
const USER = [fr("do_syscall_64", 0x71), fr("entry_SYSCALL_64_after_hwframe", 0x76)];
const PATCHABLE = ["n_tty_read", "hrtimer_nanosleep", "do_epoll_wait", "futex_wait", "wait_for_initramfs"];
const typeShowSizes = t.byName.get("type_show")!.map((r) => t.size[r]);
const DUP_SIZE = typeShowSizes.find((s, i) => typeShowSizes.indexOf(s) !== i)!;

type Damage = "none" | "in-patched" | "hidden" | "unreadable" | "truncated" | "guess-only" | "no-bottom" | "unparsed" | "unknown-clone" | "ambiguous" | "cold" | "possibly-live" | "running" | "empty" | "no-reliable";

/** One task whose stack has the given damage, aimed at the patched function `target`. */
function task(i: number, damage: Damage, target: string): Record<string, unknown> {
  const base = { pid: 100 + i, tid: 100 + i, comm: `t${i}`, state: "S", flags: 0x400000 };
  // Asleep reading a pipe: a sleep quiesce knows to unwind (UNWINDING_SLEEPS), so a doubt below
  // the top frame is unwound away with the stack and only the captured-stack-doubt rule keeps it.
  const clean = [fr("anon_pipe_read", 0x10), fr("vfs_read", 0x170), fr("ksys_read", 0x70), ...USER];
  switch (damage) {
    case "none":
      return { ...base, frames: clean };
    case "in-patched":
      return { ...base, frames: [fr(target), ...clean] };
    case "unreadable":
      return { ...base, stackStatus: "unreadable", errno: "EPERM", frames: [] };
    case "truncated":
      // 64 entries that happen to end at a user entry: only the entry count says it may be cut.
      return { ...base, stackStatus: "truncated", frames: [...Array.from({ length: 62 }, () => fr("vfs_read", 0x170)), ...USER] };
    case "guess-only":
      return { ...base, frames: clean.map((f) => `? ${f}`) };
    case "no-bottom":
      return { ...base, frames: clean.slice(0, 2) };
    case "unparsed":
      return { ...base, frames: [clean[0], { unparsed: true }, ...clean.slice(1)] };
    case "unknown-clone":
      return { ...base, frames: [`${target}.isra.0+0x10/0x80`, ...clean] };
    case "ambiguous":
      return { ...base, frames: [`type_show+0x10/0x${DUP_SIZE.toString(16)}`, ...clean] };
    case "cold":
      return { ...base, frames: [fr(`${target}.cold`, 0x3), ...clean] };
    case "hidden":
      return { ...base, frames: clean };
    case "possibly-live":
      return { ...base, frames: [clean[0], `? ${fr(target)}`, ...clean.slice(1)] };
    case "running":
      return { ...base, state: "R", frames: clean };
    case "empty":
      return { ...base, frames: [] };
    case "no-reliable":
      return { ...base, frames: clean };
  }
}

const DAMAGES: Damage[] = ["hidden", "unreadable", "truncated", "guess-only", "no-bottom", "unparsed", "unknown-clone", "ambiguous", "cold", "possibly-live", "running", "empty", "no-reliable", "in-patched"];

const hostArb = fc.record({
  damaged: fc.constantFrom(...DAMAGES),
  healthy: fc.integer({ min: 0, max: 4 }),
  // Where the damaged task stands among the healthy ones (decisions shared between alike tasks
  // must never let the damaged one inherit a healthy one's answer).
  position: fc.nat(),
  target: fc.constantFrom(...PATCHABLE),
  extra: fc.subarray(PATCHABLE),
  model: fc.constantFrom("livepatch", "kpatch", "quiesce"),
  stacked: fc.boolean(),
  partialOk: fc.boolean(),
});

/** Runs the property; returns fast-check's report (failed or not) rather than throwing. */
function property(rules: Rule[] | undefined, numRuns: number) {
  return fc.check(
    fc.property(hostArb, (h) => {
      // The damaged task is aimed at a function of the patch; healthy tasks are clean.
      // Some damages need a particular target: a duplicate name, a function with a real .cold
      // part, a function in .sched.text (which /proc stacks never show).
      const target = h.damaged === "ambiguous" ? "type_show" : h.damaged === "cold" ? "wait_for_initramfs" : h.damaged === "hidden" ? "schedule_timeout" : h.target;
      const funcs = [...new Set([target, ...h.extra])];
      const tasks = Array.from({ length: h.healthy }, (_, i) => task(i + 1, "none", target));
      tasks.splice(h.position % (h.healthy + 1), 0, task(0, h.damaged, target));
      const capture = nativeCapture(tasks, h.damaged === "no-reliable" ? { host: { config: { reliableStacktrace: false } } } : {});
      const patch = { ...emptyPatch(), name: "p", funcs: funcs.map((f) => ({ object: "vmlinux", oldName: f, oldSympos: f === "type_show" ? 2 : 0, newName: null, newSize: null, force: false })) };
      // A stacked patch below (kpatch-built names): the target's previous top is then in module q.
      const applied: AppliedPatch[] = h.stacked ? [{ name: "q", enabled: true, transition: false, replace: false, forced: false, stackOrder: null, funcs: [{ object: "vmlinux", oldName: "meminfo_proc_show", oldSympos: 0, newName: null, newSize: null, force: false }] }] : [];
      if (h.damaged === "no-reliable" && h.model !== "livepatch") return true; // livepatch-only rule
      const r = check({ capture, symbols: t, patch, scanner: referenceScanner, options: { model: h.model as "livepatch", partialOk: h.partialOk }, applied, rules });
      const o = r.verdict.outcomes.find((x) => r.capture.tasks.get(x.task).tid === 100)!;
      if (h.partialOk && h.damaged === "unreadable") return o.status === "excluded";
      // quiesce's very point: an interruptible sleeper in the patched function is unwound out of it.
      if (h.model === "quiesce" && h.damaged === "in-patched") return true;
      return r.verdict.verdict !== "safe" && o.status !== "clean";
    }),
    { seed: 424242, numRuns },
  );
}

describe("never a false safe", () => {
  it("holds for every damage, model and patch stack", () => {
    const out = property(undefined, 600);
    expect(out.failed, out.failed ? JSON.stringify(out.counterexample) : "").toBe(false);
  });

  // Each rule whose removal could let a false safe through must be caught by the property.
  // `done` only ever clears tasks (removing it is stricter); `freeze-would-fail` is quiesce-only and
  // covered by test/semantics.test.ts; `captured-stack-doubt` re-applies, for quiesce, the other
  // rules to the captured stack, so dropping it alone is caught only where quiesce unwinds a
  // doubtful stack (the possibly-live case above, a doubt below a known unwinding sleep).
  const mutable = LIVEPATCH_RULES.filter((r) => r.code !== "done" && r.code !== "freeze-would-fail");
  for (const rule of mutable) {
    it(`dropping the ${rule.code} rule is caught`, () => {
      const out = property(LIVEPATCH_RULES.filter((r) => r !== rule), 300);
      expect(out.failed).toBe(true);
    });
  }
});

describe("a symbol table without addresses (a redacted snapshot's)", () => {
  it("cannot place scheduler sections, so a /proc capture is never safe with it", () => {
    const redacted = { ...t, hasAddresses: false, coverage: "names-only" as const };
    const capture = nativeCapture([task(0, "none", "n_tty_read")]);
    const r = check({ capture, symbols: redacted, patch: { ...emptyPatch(), funcs: [{ object: "vmlinux", oldName: "schedule_timeout", oldSympos: 0, newName: null, newSize: null, force: false }] }, scanner: referenceScanner });
    expect(r.verdict.verdict).not.toBe("safe");
    expect(r.verdict.reasons.map((x) => x.code)).toContain("no-symbol-table");
  });
});
