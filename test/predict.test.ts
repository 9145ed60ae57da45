/** Prediction over constructed capture series with known answers. */
import { describe, expect, it } from "vitest";
import { check, type CheckResult } from "../src/check.js";
import { predict } from "../src/predict/predict.js";
import { referenceScanner } from "../src/scan/reference.js";
import { hostTable, nativeCapture, patchOf } from "./helpers.js";

const t = hostTable();
const fr = (name: string, off = 0x10) => `${name}+0x${off.toString(16)}/0x${t.size[t.byName.get(name)![0]].toString(16)}`;
const USER = [fr("do_syscall_64", 0x71), fr("entry_SYSCALL_64_after_hwframe", 0x76)];
const KT = [fr("kthread", 0xfa), fr("ret_from_fork", 0x166), fr("ret_from_fork_asm", 0x1a)];
const inPatched = (tid: number) => ({ pid: tid, tid, comm: `u${tid}`, state: "S", flags: 0x400000, startTime: 1000 + tid, frames: [fr("n_tty_read", 0x200), fr("vfs_read", 0x170), ...USER] });
const elsewhere = (tid: number) => ({ pid: tid, tid, comm: `u${tid}`, state: "S", flags: 0x400000, startTime: 1000 + tid, frames: [fr("do_epoll_wait", 0x588), ...USER] });
const kworker = { pid: 9, tid: 9, comm: "kworker/0:0", state: "I", flags: 0x208040, startTime: 5, frames: [fr("worker_thread", 0x98), ...KT] };
const times = (n: number) => Array.from({ length: n }, (_, i) => new Date(Date.UTC(2026, 10, 30, 7, 0, 2 * i)).toISOString());

function series(caps: Record<string, unknown>[][], funcs: string[], model: "livepatch" | "kpatch" = "livepatch"): CheckResult[] {
  return caps.map((tasks) => check({ capture: nativeCapture(tasks), symbols: t, patch: patchOf(...funcs), scanner: referenceScanner, options: { model } }));
}

describe("prediction from a series of captures", () => {
  it("a task that leaves the patched function after capture 3: all clean by capture 4", () => {
    const caps = [1, 2, 3, 4, 5].map((c) => [c <= 3 ? inPatched(100) : elsewhere(100), elsewhere(101)]);
    const p = predict(series(caps, ["n_tty_read"]), times(5));
    expect(p.captures).toBe(5);
    expect(p.allCleanAt).toBe(4);
    expect(p.neverClean).toEqual([]);
    expect(p.allCleanShare).toBeCloseTo(2 / 5);
    expect(p.kpatchLoadChance).toBeCloseTo(1 - (3 / 5) ** 5);
    expect(p.completion).toMatchObject({ seconds: 6, low: 4, high: 6 });
    expect(p.tasks[0]).toMatchObject({ tid: 100, blocked: 3, clean: 2, firstCleanAt: 4 });
    expect(p.functions[0]).toMatchObject({ name: "n_tty_read", blockedIn: 3, tids: [[100], [100], [100], [], []] });
  });

  it("a kthread that never leaves: never clean, no completion, and it says why", () => {
    const caps = [1, 2, 3].map(() => [kworker, elsewhere(100)]);
    const p = predict(series(caps, ["worker_thread"]), times(3));
    expect(p.neverClean).toEqual([9]);
    expect(p.allCleanAt).toBeNull();
    expect(p.tasks[0]).toMatchObject({ tid: 9, neverLeaves: true, neverClean: true });
    expect(p.completion?.seconds).toBeNull();
    expect(p.completion?.estimator).toMatch(/never leave/);
    expect(p.kpatchLoadChance).toBe(0);
  });

  it("alternating blockers: no capture is all clean, yet every task is clean somewhere", () => {
    const caps = [1, 2, 3, 4].map((c) => (c % 2 === 1 ? [inPatched(100), elsewhere(101)] : [elsewhere(100), inPatched(101)]));
    const p = predict(series(caps, ["n_tty_read"]), times(4));
    expect(p.allCleanShare).toBe(0);
    expect(p.kpatchLoadChance).toBe(0);
    expect(p.allCleanAt).toBe(2);
    expect(p.neverClean).toEqual([]);
  });

  it("a task that exits counts as switched; a reused tid with another start time is another task", () => {
    const reused = { ...inPatched(100), startTime: 99999 };
    const caps = [[inPatched(100), elsewhere(101)], [elsewhere(101)], [elsewhere(101), reused], [elsewhere(101), { ...reused, frames: elsewhere(100).frames }]];
    const p = predict(series(caps, ["n_tty_read"]), times(4));
    const byStart = new Map(p.tasks.map((x) => [`${x.tid}:${x.startTime}`, x]));
    expect(byStart.get("100:1100")).toMatchObject({ seen: 1, clean: 0, statuses: ["blocked", null, null, null] });
    expect(byStart.get("100:99999")).toMatchObject({ seen: 2, firstCleanAt: 4 });
    expect(p.allCleanAt).toBe(4);
  });

  it("the kpatch load chance comes from the kpatch-model checks when given", () => {
    const caps = [1, 2].map(() => [elsewhere(100)]);
    const lp = series(caps, ["n_tty_read"]);
    const kp = series(caps, ["n_tty_read"], "kpatch");
    const p = predict(lp, times(2), kp);
    expect(p.kpatchLoadChance).toBe(1);
    expect(p.tasks.map((x) => x.tid)).toEqual([100]); // kpatch's added tasks are not host tasks
  });
});
