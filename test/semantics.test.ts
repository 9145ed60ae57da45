/**
 * The kernels' consistency rules, model by model, as the worked examples E1–E15 of SEMANTICS.md
 * §6 describe them (kernel/livepatch/transition.c, dynup/kpatch kmod/core/core.c). Stacks use
 * this host's real kallsyms; patch modules' symbols are appended as /proc/kallsyms lists them.
 */
import { describe, expect, it } from "vitest";
import { check, type CheckResult } from "../src/check.js";
import { toTextReport } from "../src/report/text.js";
import type { DecideOptions } from "../src/decide/livepatch.js";
import type { AppliedPatch, Capture } from "../src/model.js";
import { emptyPatch, type PatchSpec } from "../src/patch/spec.js";
import { referenceScanner } from "../src/scan/reference.js";
import { parseSymbolTable, type SymbolTable } from "../src/symbols/table.js";
import { appliedPatch, hostKallsyms, hostTable, nativeCapture, patchOf, runCheck, USER_EPOLL } from "./helpers.js";

const MODULE_SYMBOLS = [
  ["ffffffffc0001000", "busymod_work_func", "test_klp_callbacks_busy"],
  ["ffffffffc0001100", "busymod_exit", "test_klp_callbacks_busy"],
  ["ffffffffc0002000", "patched_work_func", "test_klp_callbacks_demo"],
  ["ffffffffc0002200", "demo_exit", "test_klp_callbacks_demo"],
  ["ffffffffc0003000", "livepatch_cmdline_proc_show", "test_klp_livepatch"],
  ["ffffffffc0003100", "lp_exit", "test_klp_livepatch"],
  ["ffffffffc0004000", "livepatch_meminfo_proc_show", "test_klp_atomic_replace"],
  ["ffffffffc0004100", "ar_exit", "test_klp_atomic_replace"],
  ["ffffffffc0005000", "cmdline_proc_show", "p1"],
  ["ffffffffc0005100", "p1_exit", "p1"],
  ["ffffffffc0006000", "cmdline_proc_show", "p2"],
  ["ffffffffc0006100", "p2_exit", "p2"],
];
let table: SymbolTable | null = null;
function symbols(): SymbolTable {
  table ??= parseSymbolTable(`${hostKallsyms()}${MODULE_SYMBOLS.map(([a, n, m]) => `${a} t ${n}\t[${m}]`).join("\n")}\n`);
  return table;
}
const host = hostTable();
/** A frame token with this host's printed size. */
function fr(name: string, off = 0x10, object = "vmlinux"): string {
  if (object === "vmlinux") {
    const row = host.byName.get(name)![0];
    return `${name}+0x${off.toString(16)}/0x${host.size[row].toString(16)}`;
  }
  const t = symbols();
  const row = t.byName.get(name)!.find((r) => t.objects[t.object[r]] === object)!;
  return `${name}+0x${off.toString(16)}/0x${t.size[row].toString(16)} [${object}]`;
}
const USER_BOTTOM = [fr("do_syscall_64", 0x71), fr("entry_SYSCALL_64_after_hwframe", 0x76)];
const KTHREAD_BOTTOM = [fr("kthread", 0xfa), fr("ret_from_fork", 0x166), fr("ret_from_fork_asm", 0x1a)];
let nextPid = 100;
const user = (frames: string[], extra: Record<string, unknown> = {}) => ({ pid: nextPid, tid: nextPid++, comm: "app", state: "S", flags: 0x400000, frames: [...frames, ...USER_BOTTOM], ...extra });
const kthread = (comm: string, frames: string[], extra: Record<string, unknown> = {}) => ({ pid: nextPid, tid: nextPid++, comm, state: "I", flags: 0x208040, frames: [...frames, ...KTHREAD_BOTTOM], ...extra });

function patch(name: string | null, funcs: [string, string][], replace = false): PatchSpec {
  return { ...emptyPatch(), name, replace, funcs: funcs.map(([object, oldName]) => ({ object, oldName, oldSympos: 0, newName: null, newSize: null, force: false })) };
}
const applied = appliedPatch;
function run(cap: Capture, p: PatchSpec, options: Partial<DecideOptions> = {}, stack: AppliedPatch[] = []): CheckResult {
  return check({ capture: cap, symbols: symbols(), patch: p, scanner: referenceScanner, options, applied: stack });
}
const status = (r: CheckResult) => r.verdict.outcomes.map((o) => o.status);

describe("E1–E3: a busy work function (selftest test_klp_callbacks_busy)", () => {
  const busy = () => kthread("kworker/0:1", [fr("msleep", 0x20), fr("busymod_work_func", 0x30, "test_klp_callbacks_busy"), fr("process_one_work", 0x1b0), fr("worker_thread", 0x98)], { state: "D" });
  const p = patch("test_klp_callbacks_demo", [["test_klp_callbacks_busy", "busymod_work_func"]]);

  it("E1: blocks apply, in every model; the kworker must be waited for", () => {
    for (const model of ["livepatch", "kpatch", "quiesce"] as const) {
      const r = run(nativeCapture([busy()]), p, { model });
      expect([model, r.verdict.verdict]).toEqual([model, "blocked"]);
      expect(r.verdict.blockers.get(0).remedy.code).toBe("wait");
      expect(r.verdict.kernelCheck.result).toBe("fail");
    }
  });

  it("E2: once the work finished the same host is safe", () => {
    const idle = kthread("kworker/0:1", [fr("worker_thread", 0x98)]);
    const r = run(nativeCapture([idle, user([fr("do_epoll_wait", 0x588), fr("__x64_sys_epoll_pwait", 0x8c)])]), patch("demo", [["vmlinux", "meminfo_proc_show"]]));
    expect(r.verdict.verdict).toBe("safe");
    expect(r.verdict.kernelCheck.result).toBe("pass");
  });

  it("E3: reversing the stalled apply: the kworker never switched (patch_state 0), so revert is safe", () => {
    const stack = [applied("test_klp_callbacks_demo", [["test_klp_callbacks_busy", "busymod_work_func", "patched_work_func"]], { transition: true })];
    const switched = user([fr("do_epoll_wait", 0x588)], { patchState: 1 });
    const r = run(nativeCapture([{ ...busy(), patchState: 0 }, switched]), p, { direction: "revert" }, stack);
    expect(r.verdict.verdict).toBe("safe");
    expect(status(r)).toEqual(["done", "clean"]);
    expect(r.ranges.functions[0].ranges[0].role).toBe("own-replacement");
    // A task that had switched and sits in the replacement blocks the revert.
    const inNew = user([fr("patched_work_func", 0x10, "test_klp_callbacks_demo")], { patchState: 1 });
    expect(run(nativeCapture([inNew]), p, { direction: "revert" }, stack).verdict.verdict).toBe("blocked");
    // While stalled, applying again offers the safe way out: reverse.
    const again = run(nativeCapture([{ ...busy(), patchState: 0 }]), p, {}, stack);
    expect(again.verdict.blockers.at(0)?.remedy.code).toBe("reverse");
  });
});

describe("E4–E6: replacements, atomic replace and stacks", () => {
  const p1 = applied("test_klp_livepatch", [["vmlinux", "cmdline_proc_show", "livepatch_cmdline_proc_show"]]);
  const inOriginal = () => user([fr("cmdline_proc_show", 0x10), fr("seq_read_iter", 0x20), fr("vfs_read", 0x30), fr("ksys_read", 0x40)]);
  const inP1 = () => user([fr("livepatch_cmdline_proc_show", 0x10, "test_klp_livepatch"), fr("seq_read_iter", 0x20), fr("vfs_read", 0x30), fr("ksys_read", 0x40)]);

  it("E4: a task in the original blocks apply; in the replacement it blocks revert", () => {
    const p = patch("test_klp_livepatch", [["vmlinux", "cmdline_proc_show"]]);
    expect(run(nativeCapture([inOriginal()]), p).verdict.verdict).toBe("blocked");
    expect(run(nativeCapture([inP1()]), p).verdict.verdict).toBe("safe");
    expect(run(nativeCapture([inP1()]), p, { direction: "revert" }, [p1]).verdict.verdict).toBe("blocked");
    expect(run(nativeCapture([inOriginal()]), p, { direction: "revert" }, [p1]).verdict.verdict).toBe("safe");
  });

  it("E5: atomic replace adds a nop: the old replacement blocks, the original does not (livepatch and kpatch)", () => {
    const p2 = patch("test_klp_atomic_replace", [["vmlinux", "meminfo_proc_show"]], true);
    for (const model of ["livepatch", "kpatch"] as const) {
      const r = run(nativeCapture([inOriginal(), inP1()]), p2, { model }, [p1]);
      const nop = r.ranges.functions.find((f) => f.kind === "nop")!;
      expect(nop.name).toBe("cmdline_proc_show");
      expect(nop.blockingName).toBe("livepatch_cmdline_proc_show");
      expect(r.verdict.outcomes.toArray().slice(0, 2).map((o) => o.status)).toEqual(["clean", "blocked"]);
      expect(r.verdict.blockers.get(0).role).toBe("nop");
    }
  });

  it("E6: a stacked repatch checks only the previous top (kpatch-built names, [module] suffix)", () => {
    const stack = [applied("p1", [["vmlinux", "cmdline_proc_show"]])];
    const inTop = user([fr("cmdline_proc_show", 0x10, "p1"), fr("vfs_read", 0x30)]);
    const p2 = patch("p2", [["vmlinux", "cmdline_proc_show"]]);
    const r = run(nativeCapture([inOriginal(), inTop]), p2, {}, stack);
    expect(status(r)).toEqual(["clean", "blocked"]);
    expect(r.verdict.blockers.get(0).role).toBe("previous-replacement");
    expect(r.verdict.warnings.map((w) => w.message).join(" ")).not.toMatch(/forced/);
    // stack_order decides the top when the applied list is not in order.
    const both = [applied("p2", [["vmlinux", "cmdline_proc_show"]], { stackOrder: 2 }), applied("p1", [["vmlinux", "cmdline_proc_show"]], { stackOrder: 1 })];
    const inP2 = user([fr("cmdline_proc_show", 0x10, "p2"), fr("vfs_read", 0x30)]);
    const p3 = patch("p3", [["vmlinux", "cmdline_proc_show"]]);
    expect(status(run(nativeCapture([inTop, inP2]), p3, {}, both))).toEqual(["clean", "blocked"]);
    // A forced transition in the stack is always warned about.
    const forced = run(nativeCapture([inOriginal()]), p2, {}, [{ ...stack[0], forced: true }]);
    expect(forced.verdict.warnings.map((w) => w.message).join(" ")).toMatch(/forced transition/);
  });
});

describe("E7–E12: sleepers, main loops, running, parked and frozen tasks", () => {
  it("E7: a sleeping nanosleep: blocked now, the fake signal resolves it (kpatch: wait)", () => {
    const sleeper = user([fr("do_nanosleep", 0x67), fr("hrtimer_nanosleep", 0x80), fr("common_nsleep", 0x40), fr("__x64_sys_clock_nanosleep", 0xb0)], { comm: "irqbalance" });
    const p = patch("p", [["vmlinux", "hrtimer_nanosleep"]]);
    expect(run(nativeCapture([sleeper]), p).verdict.blockers.get(0).remedy.code).toBe("signal");
    expect(run(nativeCapture([sleeper]), p, { model: "kpatch" }).verdict.blockers.get(0).remedy.code).toBe("wait");
  });

  it("E8: a tty reader in n_tty_read blocks until signalled", () => {
    const agetty = user([fr("n_tty_read", 0x200), fr("tty_read", 0xd0), fr("vfs_read", 0x170), fr("ksys_read", 0x70)], { comm: "agetty" });
    const r = run(nativeCapture([agetty]), patch("p", [["vmlinux", "n_tty_read"]]));
    expect(r.verdict.verdict).toBe("blocked");
    expect(r.verdict.blockers.get(0).remedy.code).toBe("signal");
  });

  it("a function on every kthread's stack never leaves for kthreads, but says nothing of a user task in it", () => {
    // 12 kthreads all sleeping in schedule_timeout's caller msleep, and one user task in msleep.
    const ks = Array.from({ length: 12 }, (_, i) => kthread(`worker${i}`, [fr("msleep", 0x20), fr("khugepaged", 0x3c2)], { state: "S" }));
    const u = user([fr("msleep", 0x20), fr("vfs_read", 0x170)], { comm: "reader" });
    const r = run(nativeCapture([...ks, u]), patch("p", [["vmlinux", "msleep"]]));
    const remedyOf = (comm: string) => r.verdict.blockers.find((b) => new TextDecoder().decode(r.capture.tasks.get(b.task).comm!) === comm)!.remedy;
    expect(remedyOf("worker0")).toMatchObject({ code: "never-leaves" });
    expect(remedyOf("worker0").message).toMatch(/every kthread task/);
    expect(remedyOf("reader").code).toBe("signal");
  });

  it("E9: a kthread main loop never leaves; the hint names the callees", () => {
    const k = kthread("khugepaged", [fr("msleep", 0x20), fr("khugepaged", 0x3c2)], { state: "S" });
    const r = run(nativeCapture([k]), patch("p", [["vmlinux", "khugepaged"]]));
    expect(r.verdict.blockers.get(0).remedy).toMatchObject({ code: "never-leaves", callees: ["msleep"] });
  });

  it("E10: a running task in the patched syscall is undecided, not blocked; kpatch does not care", () => {
    const spinner = user([fr("__x64_sys_getpid", 0x10)], { state: "R" });
    const p = patch("p", [["vmlinux", "__x64_sys_getpid"]]);
    const lp = run(nativeCapture([spinner]), p);
    expect(lp.verdict.outcomes.get(0).matches[0].code).toBe("running");
    expect(lp.verdict.verdict).toBe("undecided");
    expect(run(nativeCapture([spinner]), p, { model: "kpatch" }).verdict.kernelCheck.result).toBe("fail");
  });

  it("E11: a parked smpboot thread: run_ksoftirqd is safe, smpboot_thread_fn never leaves", () => {
    const parked = kthread("ksoftirqd/3", [fr("__kthread_parkme", 0x50), fr("smpboot_thread_fn", 0x18c)], { state: "P" });
    expect(run(nativeCapture([parked]), patch("p", [["vmlinux", "run_ksoftirqd"]])).verdict.verdict).toBe("safe");
    const r = run(nativeCapture([parked]), patch("p", [["vmlinux", "smpboot_thread_fn"]]));
    expect(r.verdict.blockers.get(0).remedy.code).toBe("never-leaves");
  });

  it("E12: a frozen task under get_signal blocks a get_signal patch, not an epoll one", () => {
    const frozen = user([fr("__refrigerator", 0x40), fr("get_signal", 0x90), fr("arch_do_signal_or_restart", 0x30), fr("exit_to_user_mode_loop", 0x60)], { state: "D" });
    expect(run(nativeCapture([frozen]), patch("p", [["vmlinux", "get_signal"]])).verdict.verdict).toBe("blocked");
    expect(run(nativeCapture([frozen]), patch("p", [["vmlinux", "do_epoll_wait"]])).verdict.verdict).toBe("safe");
  });
});

describe("E14–E15 and kpatch's own limits", () => {
  it("E14: schedule_timeout from /proc: undecided; kpatch's check passes (its walker is as blind)", () => {
    const t = user([fr("do_epoll_wait", 0x588)]);
    const p = patch("p", [["vmlinux", "schedule_timeout"]]);
    const k = run(nativeCapture([t]), p, { model: "kpatch" });
    expect(k.verdict.verdict).toBe("undecided");
    expect(k.verdict.kernelCheck.result).toBe("pass");
    // A sysrq-style capture shows the scheduler frames: kpatch still cannot see them.
    const shown = nativeCapture([user([fr("schedule_timeout", 0x20), fr("do_epoll_wait", 0x588)])], { hidesSchedFrames: false });
    const ks = run(shown, p, { model: "kpatch" });
    expect(ks.verdict.outcomes.get(0).matches[0].code).toBe("hidden");
    expect(ks.verdict.kernelCheck.result).toBe("pass");
    expect(run(shown, p).verdict.verdict).toBe("blocked"); // livepatch's reliable walker sees it
  });

  it("E15: a forced function is never checked by kpatch (module pinned); livepatch ignores force", () => {
    const t = user([fr("do_select", 0x65c), fr("core_sys_select", 0x231)]);
    const p = patch("p", [["vmlinux", "do_select"]]);
    p.funcs[0].force = true;
    const k = run(nativeCapture([t]), p, { model: "kpatch" });
    expect(k.verdict.verdict).toBe("safe");
    expect(k.verdict.warnings.map((w) => w.message).join(" ")).toMatch(/never be unloaded/);
    expect(run(nativeCapture([t]), p).verdict.verdict).toBe("blocked");
  });

  it("a 64-entry trace: undecided (truncated) and kpatch's check fails on it", () => {
    const deep = user(Array.from({ length: 62 }, () => fr("do_epoll_wait", 0x588)));
    expect(deep.frames).toHaveLength(64);
    const cap = nativeCapture([{ ...deep, stackStatus: "truncated" }]);
    const p = patch("p", [["vmlinux", "meminfo_proc_show"]]);
    expect(run(cap, p).verdict.outcomes.get(0).matches[0].code).toBe("truncated");
    const k = run(cap, p, { model: "kpatch" });
    expect(k.verdict.kernelCheck).toMatchObject({ result: "fail", first: { task: 0, func: null } });
  });

  it("kpatch always fails a patch of the functions its own check runs in", () => {
    const r = run(nativeCapture([user([fr("do_epoll_wait", 0x588)])]), patch("p", [["vmlinux", "multi_cpu_stop"]]), { model: "kpatch" });
    expect(r.verdict.verdict).toBe("blocked");
    expect(r.verdict.kernelCheck.result).toBe("fail");
    expect(r.capture.tasks).toHaveLength(3);
  });

  // From an adversarial review of the kpatch model: each of these read as safe.
  describe("stacked kpatch.ko modules (p1 and p2 both replace cmdline_proc_show)", () => {
    const inP1 = () => user([fr("cmdline_proc_show", 0x10, "p1"), fr("seq_read_iter", 0x120)]);
    const cmdline = (name: string, replace = false, force = false): PatchSpec => ({ ...patch(name, [["vmlinux", "cmdline_proc_show"]], replace), funcs: [{ object: "vmlinux", oldName: "cmdline_proc_show", oldSympos: 0, newName: null, newSize: null, force }] });
    const p1 = applied("p1", [["vmlinux", "cmdline_proc_show"]]);
    const p2 = (force = false): AppliedPatch => ({ ...applied("p2", [["vmlinux", "cmdline_proc_show"]]), funcs: [{ object: "vmlinux", oldName: "cmdline_proc_show", oldSympos: 0, newName: null, newSize: null, force }] });

    it("a replace module is checked against every other module's functions, also those it patches itself and also when it forces them", () => {
      for (const force of [false, true]) {
        const r = run(nativeCapture([inP1()]), cmdline("p3", true, force), { model: "kpatch" }, [p1, p2()]);
        expect([force, r.verdict.verdict, r.verdict.kernelCheck.result]).toEqual([force, "blocked", "fail"]);
      }
      // Without replace only the newest version (p2's) is what kpatch checks.
      expect(run(nativeCapture([inP1()]), cmdline("p3"), { model: "kpatch" }, [p1, p2()]).verdict.verdict).toBe("safe");
    });

    it("unloading a module that is not the newest frees code a task may still be in: blocked, though kpatch's own check passes", () => {
      const r = run(nativeCapture([inP1()]), cmdline("p1"), { model: "kpatch", direction: "revert" }, [p1, p2(true)]);
      expect([r.verdict.verdict, r.verdict.kernelCheck.result]).toEqual(["blocked", "pass"]);
      expect(r.verdict.blockers.get(0).kernelSees).toBe(false);
      // A newer module forced the function: the warning says what kpatch never checked.
      expect(r.verdict.warnings.map((w) => w.message)).toContainEqual(expect.stringMatching(/records forced functions \(cmdline_proc_show \[p2\]\)/));
    });
  });

  it("kpatch's loading or writing task runs the newest version of its path's functions, and every kernel's names for that path", () => {
    const mw = parseSymbolTable(`${hostKallsyms()}ffffffffc0009000 t ksys_write\t[mw]\nffffffffc0009100 t mw_exit\t[mw]\n`);
    const quiet = nativeCapture([user([fr("do_epoll_wait", 0x588)])]);
    const stack = [applied("mw", [["vmlinux", "ksys_write"]])];
    const revert = check({ capture: quiet, symbols: mw, patch: patch("mw", [["vmlinux", "ksys_write"]]), scanner: referenceScanner, options: { model: "kpatch", direction: "revert" }, applied: stack });
    expect([revert.verdict.verdict, revert.verdict.kernelCheck.result]).toEqual(["blocked", "fail"]);
    // Frames of the path that the first version of the caller's stack lacked (the writer's sysfs
    // store path; stop_machine's inner half).
    for (const [fn, direction] of [["stop_machine_cpuslocked", "apply"], ["sysfs_kf_write", "revert"], ["kobj_attr_store", "revert"]] as const) {
      const table = parseSymbolTable(`${hostKallsyms()}ffffffffc000a000 t ${fn}\t[pk]\nffffffffc000a100 t pk_exit\t[pk]\n`);
      const stackFor = direction === "revert" ? [applied("pk", [["vmlinux", fn]])] : [];
      const r = check({ capture: quiet, symbols: table, patch: patch("pk", [["vmlinux", fn]]), scanner: referenceScanner, options: { model: "kpatch", direction }, applied: stackFor });
      expect([fn, r.verdict.verdict, r.verdict.kernelCheck.result]).toEqual([fn, "blocked", "fail"]);
    }
  });

  it("kpatch never checks idle tasks: one in a patched function passes its check, with a warning", () => {
    const idle = { pid: 0, tid: 0, comm: "swapper/0", state: "S", flags: 0x00200042, frames: [fr("intel_idle", 0x10), fr("cpuidle_enter", 0x20), fr("do_idle", 0x10), fr("cpu_startup_entry", 0x20)] };
    const r = run(nativeCapture([idle]), patch("p", [["vmlinux", "cpuidle_enter"]]), { model: "kpatch" });
    expect([r.verdict.verdict, r.verdict.kernelCheck.result]).toEqual(["safe", "pass"]);
    expect(r.verdict.warnings.map((w) => w.code)).toContain("idle-unchecked");
    expect(run(nativeCapture([idle]), patch("p", [["vmlinux", "cpuidle_enter"]]), { model: "kpatch", strict: true }).verdict.verdict).toBe("undecided");
  });

  it("a user worker in its main function never leaves; idle tasks: do_idle never holds, panic is checked", () => {
    const worker = { ...kthread("iou-wrk-1234", [fr("io_wq_worker", 0x100)]), flags: 0x00404010 };
    worker.frames = [fr("io_wq_worker", 0x100), fr("ret_from_fork", 0x166), fr("ret_from_fork_asm", 0x1a)];
    const r = run(nativeCapture([worker]), patch("p", [["vmlinux", "io_wq_worker"]]));
    expect(r.verdict.outcomes.get(0).kind).toBe("user-worker");
    expect(r.verdict.blockers.get(0).remedy.code).toBe("never-leaves");
    const idle = (frames: string[]) => ({ pid: 0, tid: 0, comm: "swapper/1", state: "S", flags: 0x00200042, frames });
    const inIdle = idle([fr("do_idle", 0x10), fr("cpu_startup_entry", 0x20), fr("start_secondary", 0x30)]);
    const inPanic = idle([fr("panic", 0x10), fr("do_idle", 0x10), fr("cpu_startup_entry", 0x20), fr("start_secondary", 0x30)]);
    expect(status(run(nativeCapture([inIdle]), patch("p", [["vmlinux", "cpu_startup_entry"]])))).toEqual(["idle"]);
    expect(status(run(nativeCapture([inPanic]), patch("p", [["vmlinux", "panic"]])))).toEqual(["blocked"]);
  });
});

describe("what the table cannot place, from an adversarial review of the livepatch model", () => {
  const p = (name: string, fn: string) => patch(name, [["vmlinux", fn]]);

  it("a frame in a module the symbol table does not know could be a patched function (SPEC §3): undecided", () => {
    const t = user([`helper+0x10/0x100 [m9]`, fr("do_epoll_wait", 0x588)]);
    const r = run(nativeCapture([t]), p("q", "meminfo_proc_show"));
    expect([r.verdict.verdict, r.verdict.outcomes.get(0).matches[0].code]).toEqual(["undecided", "unresolved"]);
    expect(r.verdict.outcomes.get(0).matches[0].message).toMatch(/helper is in m9, an object the symbol table does not know/);
  });

  it("a replacement the table cannot place (a hand-named klpp_* function, recorded from sysfs without its name) leaves its module's frames undecided", () => {
    const table = parseSymbolTable(`${hostKallsyms()}ffffffffc000b000 t klpp_cmdline_proc_show\t[livepatch_sle_1]\nffffffffc000b100 t sle_exit\t[livepatch_sle_1]\n`);
    const t = user([`klpp_cmdline_proc_show+0x30/0x100 [livepatch_sle_1]`, fr("seq_read_iter", 0x120)]);
    const stack = [applied("livepatch_sle_1", [["vmlinux", "cmdline_proc_show"]])];
    for (const replace of [false, true]) {
      const r = check({ capture: nativeCapture([t]), symbols: table, patch: patch("livepatch_sle_2", [["vmlinux", replace ? "meminfo_proc_show" : "cmdline_proc_show"]], replace), scanner: referenceScanner, applied: stack });
      expect([replace, r.verdict.verdict, r.verdict.outcomes.get(0).matches[0].code]).toEqual([replace, "undecided", "unresolved"]);
      expect(r.verdict.outcomes.get(0).matches[0].message).toMatch(/livepatch_sle_1, a patch module whose replacement could not be placed/);
    }
  });

  it("patch_state 0 or 1 on a task means a transition is in progress: with none recorded, undecided", () => {
    const t = { ...user([fr("do_epoll_wait", 0x588)]), patchState: 1 };
    const r = run(nativeCapture([t]), p("q", "meminfo_proc_show"));
    expect(r.verdict.verdict).toBe("undecided");
    expect(r.verdict.reasons.map((x) => x.message).join(" ")).toMatch(/patch_state 0 or 1, so a live patch transition is in progress, but the recorded patch stack shows none/);
    expect(run(nativeCapture([{ ...t, patchState: -1 }]), p("q", "meminfo_proc_show")).verdict.verdict).toBe("safe");
  });

  it("when the capture could not learn the patches' order (no stack_order before 6.13), every enabled replacement of a function is checked", () => {
    const t = user([fr("cmdline_proc_show", 0x10, "p1"), fr("seq_read_iter", 0x120)]);
    const stack = [applied("p1", [["vmlinux", "cmdline_proc_show"]]), applied("p2", [["vmlinux", "cmdline_proc_show"]])];
    const captured = (warnings: { code: string; message: string }[]) => ({ ...nativeCapture([t]), livepatches: stack, warnings });
    const run2 = (cap: Capture) => check({ capture: cap, symbols: symbols(), patch: p("p3", "cmdline_proc_show"), scanner: referenceScanner });
    // In the order given p2 is the newest, and the task is in p1's older copy.
    expect(run2(captured([])).verdict.verdict).toBe("safe");
    const unknown = run2(captured([{ code: "livepatch-order-unknown", message: "listed by name" }]));
    expect(unknown.verdict.verdict).toBe("blocked");
    expect(unknown.verdict.warnings.map((w) => w.message)).toContainEqual(expect.stringMatching(/any of p2, p1 may hold the newest cmdline_proc_show/));
  });

  it("the kernel's own check: unknown when a task it checks holds a doubt, even one patchsafe blocks by a range the kernel does not see; an idle task in its idle loop is never the one it names", () => {
    const size = symbols().size[symbols().byName.get("x86_pmu_add")![0]];
    const t = user([`x86_pmu_add+0x${size.toString(16)}/0x${size.toString(16)}`, "x86_pmu_add.isra.0+0x10/0x80", fr("do_epoll_wait", 0x588)]);
    const r = run(nativeCapture([t]), p("q", "x86_pmu_add"));
    expect([r.verdict.verdict, r.verdict.kernelCheck.result]).toEqual(["blocked", "unknown"]);
    const idle = { pid: 0, tid: 0, comm: "swapper/1", state: "S", flags: 0x00200042, frames: [fr("do_idle", 0x10), fr("cpu_startup_entry", 0x20), fr("start_secondary", 0x30)] };
    const i = run(nativeCapture([idle]), p("q", "start_secondary"));
    expect([i.verdict.verdict, i.verdict.kernelCheck]).toEqual(["safe", { result: "pass", first: null }]);
  });

  it("cold code of an older version (the original's, with a replacement on top) is undecided too", () => {
    const t = user([fr("get_signal.cold", 0x3), fr("arch_do_signal_or_restart", 0x30)]);
    const r = run(nativeCapture([t]), p("p2", "get_signal"), {}, [applied("p1", [["vmlinux", "get_signal"]])]);
    expect(r.verdict.outcomes.get(0).matches.map((x) => x.code)).toContain("cold");
    expect(r.verdict.verdict).not.toBe("safe");
  });
});

describe("quiesce: what freezing and parking leave on each stack", () => {
  it("a futex waiter is frozen in place (still blocks), an epoll sleeper is unwound (cleared), a D sleeper fails the freeze", () => {
    const futex = user([fr("futex_do_wait", 0x46), fr("__futex_wait", 0x8a), fr("futex_wait", 0x9a)]);
    const epoll = user([fr("do_epoll_wait", 0x588), fr("__x64_sys_epoll_pwait", 0x8c)]);
    const dsleep = user([fr("msleep", 0x20), fr("do_epoll_wait", 0x588)], { state: "D" });
    const p = patch("p", [["vmlinux", "futex_wait"], ["vmlinux", "do_epoll_wait"]]);
    const r = run(nativeCapture([futex, epoll, dsleep]), p, { model: "quiesce" });
    expect([0, 1, 2].map((i) => r.notes.get(i))).toEqual(["frozen-in-place", "unwound", "freeze-fails"]);
    expect(status(r).slice(0, 3)).toEqual(["blocked", "clean", "undecided"]);
    expect(r.verdict.outcomes.get(2).matches[0].code).toBe("freeze-would-fail");
    expect(r.baseline?.outcomes.toArray().slice(0, 3).map((o) => o.status)).toEqual(["blocked", "blocked", "blocked"]);
  });

  // From an adversarial review: each of these read as safe, because the sleep was taken to unwind.
  it("a sleep on neither list may be frozen in place or unwound: both stacks are checked (an AF_UNIX read freezes in place)", () => {
    const unix = user([fr("unix_stream_read_generic", 0x80), fr("unix_stream_recvmsg", 0x90)]);
    const other = user([fr("futex_wait_setup", 0x20), fr("vfs_read", 0x170)]);
    const r = run(nativeCapture([unix, other]), patch("p", [["vmlinux", "unix_stream_read_generic"], ["vmlinux", "get_signal"], ["vmlinux", "vfs_read"]]), { model: "quiesce" });
    expect([r.notes.get(0), r.notes.get(1)]).toEqual(["frozen-in-place", "frozen-or-unwound"]);
    expect(status(r).slice(0, 2)).toEqual(["blocked", "blocked"]);
    // The second is blocked both in what it holds now and in the exit path it would freeze in.
    const o = r.verdict.outcomes.get(1);
    expect(new Set(o.matches.filter((x) => x.code === "blocked").map((x) => r.ranges.functions[x.func!].name))).toEqual(new Set(["get_signal", "vfs_read"]));
  });

  it("a user task whose state the input does not give is undecided (in D it would fail the freeze)", () => {
    const r = run(nativeCapture([{ ...user([fr("do_epoll_wait", 0x588)]), state: null }]), patch("p", [["vmlinux", "get_signal"]]), { model: "quiesce" });
    expect(r.notes.get(0)).toBe("state-unknown");
    expect([r.verdict.verdict, r.verdict.outcomes.get(0).matches[0].code, r.verdict.kernelCheck.result]).toEqual(["undecided", "freeze-would-fail", "unknown"]);
  });

  it("a D sleep is frozen in place only when the sleep itself is freezable, not when a freezable caller is further down", () => {
    const d = user([fr("folio_wait_bit_common", 0x100), fr("futex_wait_setup", 0x20), fr("__futex_wait", 0x8a), fr("futex_wait", 0x9a)], { state: "D" });
    const r = run(nativeCapture([d]), patch("p", [["vmlinux", "meminfo_proc_show"]]), { model: "quiesce" });
    expect([r.notes.get(0), r.verdict.verdict]).toEqual(["freeze-fails", "undecided"]);
  });

  it("the unwound exit path names both eras' entry code (before 5.8: do_signal, exit_to_usermode_loop); the table keeps its own", () => {
    const epoll = user([fr("do_epoll_wait", 0x588), fr("__x64_sys_epoll_pwait", 0x8c)]);
    const noTable = check({ capture: nativeCapture([epoll]), symbols: null, patch: patch("p", [["vmlinux", "exit_to_usermode_loop"]]), scanner: referenceScanner, options: { model: "quiesce" } });
    expect([noTable.notes.get(0), noTable.verdict.outcomes.get(0).status]).toEqual(["unwound", "blocked"]);
    // This host's table has the generic entry code only: the old names are left out of its stack.
    const r = run(nativeCapture([epoll]), patch("p", [["vmlinux", "arch_do_signal_or_restart"]]), { model: "quiesce" });
    expect(status(r)[0]).toBe("blocked");
  });

  it("io_uring and vhost workers are frozen in their own get_signal(), their stack kept", () => {
    const worker = { pid: nextPid, tid: nextPid++, comm: "iou-wrk-100", state: "S", flags: 0x404040, frames: [fr("io_wq_worker", 0x100), fr("ret_from_fork", 0x166), fr("ret_from_fork_asm", 0x1a)] };
    const r = run(nativeCapture([worker]), patch("p", [["vmlinux", "get_signal"]]), { model: "quiesce" });
    expect([r.notes.get(0), status(r)[0]]).toEqual(["frozen-in-place", "blocked"]);
    expect(run(nativeCapture([worker]), patch("p", [["vmlinux", "io_wq_worker"]]), { model: "quiesce" }).verdict.verdict).toBe("blocked");
  });

  it("smpboot threads park at the top of their loop, except migration/N", () => {
    const ks = kthread("ksoftirqd/0", [fr("run_ksoftirqd", 0x20), fr("smpboot_thread_fn", 0x18c)], { state: "S" });
    const mig = kthread("migration/0", [fr("run_ksoftirqd", 0x20), fr("smpboot_thread_fn", 0x18c)], { state: "S" });
    const r = run(nativeCapture([ks, mig]), patch("p", [["vmlinux", "run_ksoftirqd"]]), { model: "quiesce" });
    expect([r.notes.get(0), r.notes.get(1)]).toEqual(["parked", "unchanged"]);
    expect(status(r).slice(0, 2)).toEqual(["clean", "blocked"]);
  });
});

describe("traceability (available_filter_functions)", () => {
  it("a patched function ftrace cannot hook makes the verdict undecided (unpatchable)", () => {
    const t = user([fr("do_epoll_wait", 0x588)]);
    const p = patch("p", [["vmlinux", "meminfo_proc_show"]]);
    const traceable = new Set(["do_epoll_wait"]);
    const r = check({ capture: nativeCapture([t]), symbols: symbols(), patch: p, scanner: referenceScanner, traceable });
    expect(r.verdict.verdict).toBe("undecided");
    expect(r.verdict.reasons.find((x) => x.code === "unpatchable")?.message).toMatch(/available_filter_functions/);
    const ok = check({ capture: nativeCapture([t]), symbols: symbols(), patch: p, scanner: referenceScanner, traceable: new Set(["meminfo_proc_show"]) });
    expect(ok.verdict.verdict).toBe("safe");
  });

  it("reads available_filter_functions from a tracefs tree", async () => {
    const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import("node:fs");
    const { readTraceable } = await import("../src/node/live.js");
    const root = mkdtempSync(`${(await import("node:os")).tmpdir()}/ps-sys-`);
    try {
      expect(readTraceable(root)).toBeNull();
      mkdirSync(`${root}/kernel/tracing`, { recursive: true });
      writeFileSync(`${root}/kernel/tracing/available_filter_functions`, "meminfo_proc_show\nzfs_read [zfs]\n");
      expect([...readTraceable(root)!]).toEqual(["meminfo_proc_show", "zfs_read"]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("sympos as sysfs shows it", () => {
  it("an applied function read from sysfs as <name,1> is the same function as sympos 0 (klp_find_func)", () => {
    const stack = [applied("p1", [["vmlinux", "cmdline_proc_show"]])];
    stack[0].funcs[0].oldSympos = 1;
    const inTop = user([fr("cmdline_proc_show", 0x10, "p1"), fr("vfs_read", 0x30)]);
    const r = run(nativeCapture([inTop]), patch("p2", [["vmlinux", "cmdline_proc_show"]]), {}, stack);
    expect(r.verdict.blockers.at(0)?.role).toBe("previous-replacement");
  });
});

describe("an unreadable applied stack", () => {
  // A live capture whose /sys/kernel/livepatch (or kpatch) tree could not be read: a replacement
  // a task sleeps in could be missed, so only --applied makes the answer safe again.
  const tasks = [{ pid: 100, tid: 100, comm: "a", state: "S", flags: 0, frames: USER_EPOLL }];
  for (const code of ["livepatch-unreadable", "kpatch-unreadable"]) {
    it(`${code}: undecided even with --partial-ok; --applied decides`, () => {
      const cap = nativeCapture(tasks, { complete: false, completeness: [{ code, message: "the tree could not be read" }] });
      for (const partialOk of [false, true]) {
        const v = runCheck(cap, ["ksys_read"], { options: { partialOk } }).verdict;
        expect(v.verdict).toBe("undecided");
        expect(v.reasons.map((r) => r.message).join(" ")).toContain("--applied");
      }
      const given = check({ capture: cap, symbols: hostTable(), patch: patchOf("ksys_read"), scanner: referenceScanner, applied: [] });
      expect(given.verdict.verdict).toBe("safe");
    });
  }
});

describe("one transition at a time (kernel/livepatch/core.c: -EBUSY while klp_transition_patch is set)", () => {
  const p1 = (extra: Partial<AppliedPatch>) => applied("p1", [["vmlinux", "cmdline_proc_show"]], extra);
  // Nothing on any stack is near cmdline_proc_show or meminfo_proc_show: only the stack decides.
  const quiet = () => nativeCapture([user([fr("do_epoll_wait", 0x588), fr("__x64_sys_epoll_pwait", 0x8c)])]);
  const p2 = patch("p2", [["vmlinux", "meminfo_proc_show"]]);

  it("another patch in transition blocks applying this one, in the livepatch-based models, whatever the tasks do", () => {
    expect(run(quiet(), p2, {}, [p1({ transition: false })]).verdict.verdict).toBe("safe");
    for (const model of ["livepatch", "quiesce"] as const) {
      const v = run(quiet(), p2, { model }, [p1({ transition: true })]).verdict;
      expect([model, v.verdict, v.counts.blocked]).toEqual([model, "blocked", 0]);
      expect(v.reasons[0].code).toBe("blocked");
      expect(v.reasons[0].message).toMatch(/another live patch, p1, is in transition: .*refuses to enable this one \(-EBUSY\)/);
      // The kernel refuses before checking any stack: its own check does not pass.
      expect(v.kernelCheck).toEqual({ result: "fail", first: null });
    }
    expect(toTextReport(run(quiet(), p2, {}, [p1({ transition: true })]))).toMatch(/\n {2}kernel's own check: would not start \(see the reasons above\)\n/);
    // kpatch.ko loads under stop_machine: no transition to wait for.
    expect(run(quiet(), p2, { model: "kpatch" }, [p1({ transition: true })]).verdict.verdict).toBe("safe");
  });

  it("another patch in transition blocks disabling an enabled one; the patch in transition itself may be reversed", () => {
    const stack = [applied("p2", [["vmlinux", "meminfo_proc_show"]]), p1({ transition: true })];
    const v = run(quiet(), p2, { direction: "revert" }, stack).verdict;
    expect(v.verdict).toBe("blocked");
    expect(v.reasons[0].message).toMatch(/refuses to disable this one/);
    // Reversing p1's own transition is what the kernel allows (enabled_store → klp_reverse_transition).
    const own = patch("p1", [["vmlinux", "cmdline_proc_show"]]);
    expect(run(quiet(), own, { direction: "revert" }, [p1({ transition: true })]).verdict.verdict).toBe("safe");
  });

  it("a patch given without a name cannot be told from the one in transition: blocked, never safe", () => {
    const unnamed = patch(null, [["vmlinux", "meminfo_proc_show"]]);
    expect(run(quiet(), unnamed, {}, [p1({ transition: true })]).verdict.verdict).toBe("blocked");
  });

  it("before Linux 5.1 only the most recently registered enabled patch could be disabled: a warning (distributions backported the change), which --strict honours", () => {
    const stack = [applied("p2", [["vmlinux", "meminfo_proc_show"]]), p1({})];
    const at = (release: string | null) => nativeCapture([user([fr("do_epoll_wait", 0x588), fr("__x64_sys_epoll_pwait", 0x8c)])], { host: { release } });
    const old = run(at("4.19.0-25-amd64"), p2, { direction: "revert" }, stack).verdict;
    expect(old.verdict).toBe("safe");
    expect(old.warnings.map((w) => w.message)).toContainEqual(expect.stringMatching(/4\.19\.0-25-amd64 is older than 5\.1, .*other enabled patches \(p1\) may keep p2 from being disabled/));
    expect(run(at("4.19.0-25-amd64"), p2, { direction: "revert", strict: true }, stack).verdict.verdict).toBe("undecided");
    // Not from 5.1 on, not without another enabled patch, not when applying, not for kpatch.ko.
    for (const [release, st, options] of [
      ["5.1.0", stack, { direction: "revert" }],
      ["6.8.0", stack, { direction: "revert" }],
      [null, stack, { direction: "revert" }],
      ["4.18.0-553.el8_10.x86_64", [applied("p2", [["vmlinux", "meminfo_proc_show"]])], { direction: "revert" }],
      ["4.18.0-553.el8_10.x86_64", stack, { direction: "revert", model: "kpatch" }],
    ] as [string | null, AppliedPatch[], Partial<DecideOptions>][]) {
      const v = run(at(release), p2, options, st).verdict;
      expect([release, options.model, v.warnings.filter((w) => /older than 5\.1/.test(w.message))]).toEqual([release, options.model, []]);
    }
  });
});

describe("a kernel built without CONFIG_LIVEPATCH", () => {
  it("cannot load a live patch: never safe, with the reason; kpatch.ko does not need it", () => {
    const tasks = [user([fr("do_epoll_wait", 0x588), fr("__x64_sys_epoll_pwait", 0x8c)])];
    const p = patch("p", [["vmlinux", "meminfo_proc_show"]]);
    expect(run(nativeCapture(tasks), p).verdict.verdict).toBe("safe");
    const off = nativeCapture(tasks, { host: { config: { livepatch: false } } });
    expect(off.host.config.livepatch).toBe(false);
    for (const model of ["livepatch", "quiesce"] as const) {
      const v = run(off, p, { model }).verdict;
      expect([model, v.verdict]).toEqual([model, "undecided"]);
      expect(v.reasons).toContainEqual({ code: "unpatchable", message: expect.stringMatching(/without CONFIG_LIVEPATCH/) });
    }
    expect(run(off, p, { model: "kpatch" }).verdict.verdict).toBe("safe");
  });
});

describe("applying a patch the stack shows enabled already", () => {
  const p1 = patch("p1", [["vmlinux", "cmdline_proc_show"]]);
  const inP1 = () => user([fr("cmdline_proc_show", 0x10, "p1"), fr("vfs_read", 0x30)]);
  const inOriginal = () => user([fr("cmdline_proc_show", 0x10), fr("vfs_read", 0x30)]);

  it("has nothing to apply: every task is done, with a warning, in every model; --strict does not turn it undecided", () => {
    const stack = [applied("p1", [["vmlinux", "cmdline_proc_show"]])];
    for (const model of ["livepatch", "kpatch", "quiesce"] as const) {
      for (const strict of [false, true]) {
        const v = run(nativeCapture([inP1(), inOriginal()]), p1, { model, strict }, stack).verdict;
        expect([model, strict, v.verdict, v.counts.done, v.counts.blocked]).toEqual([model, strict, "safe", model === "kpatch" || model === "quiesce" ? v.counts.tasks : 2, 0]);
        expect(v.warnings.map((w) => w.code)).toContain("already-enabled");
      }
    }
    // Without it in the stack, the task in the original blocks.
    expect(run(nativeCapture([inP1(), inOriginal()]), p1).verdict.verdict).toBe("blocked");
  });

  it("only when its transition is complete: a stalled apply of it is checked task by task", () => {
    const stalled = [applied("p1", [["vmlinux", "cmdline_proc_show"]], { transition: true })];
    const v = run(nativeCapture([{ ...inOriginal(), patchState: 0 }]), p1, {}, stalled).verdict;
    expect(v.verdict).toBe("blocked");
    expect(v.warnings.map((w) => w.code)).not.toContain("already-enabled");
  });
});

describe("a dump that records no patch stack", () => {
  const inP1 = () => user([fr("cmdline_proc_show", 0x10, "p1"), fr("vfs_read", 0x30)]);
  const p2 = patch("p2", [["vmlinux", "cmdline_proc_show"]]);
  const bare = (cap: Capture) => check({ capture: cap, symbols: symbols(), patch: p2, scanner: referenceScanner });

  it("a patched function's name in a module may be an enabled patch's replacement: undecided until the stack is given", () => {
    const cap = nativeCapture([inP1()]);
    expect(cap.livepatches).toBeNull();
    const v = bare(cap).verdict;
    expect(v.verdict).toBe("undecided");
    expect(v.outcomes.get(0).matches[0]).toMatchObject({ code: "unresolved", message: expect.stringMatching(/cmdline_proc_show \[p1\] has the name of a patched function in another object/) });
    // --no-applied (an empty stack given) or a stack that names p1: decided as before.
    expect(run(cap, p2, {}, []).verdict.verdict).toBe("safe");
    expect(run(cap, p2, {}, [applied("p1", [["vmlinux", "cmdline_proc_show"]])]).verdict.verdict).toBe("blocked");
    // A capture that recorded the host's stack (a live capture, a snapshot) says there is none.
    expect(bare(nativeCapture([inP1()], { livepatches: [] })).verdict.verdict).toBe("safe");
  });
});
