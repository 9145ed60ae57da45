/**
 * kpatch.ko's applied stack from /sys/kernel/kpatch (test/fixtures/sysfs-kpatch: two kpatch-built
 * patch modules as kpatch-patch-hook.c lays them out), used like /sys/kernel/livepatch: read into
 * AppliedPatch entries (oldest first by /proc/modules), recorded by the capture, and checked as
 * SPEC §2 says (kpatch apply: only the newest loaded module's replacement blocks). An unreadable
 * or unrecognised tree is an error or an incomplete capture, never "no patches".
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { check, type CheckResult } from "../src/check.js";
import { run } from "../src/cli/main.js";
import { type AppliedPatch, type Capture, emptyHostFacts } from "../src/model.js";
import { captureHost, directReader, readModules } from "../src/node/capture.js";
import { loadedKpatchModules, readKpatchPatches, type SysReadResult } from "../src/node/live.js";
import { emptyPatch, parseFuncArg, type PatchSpec } from "../src/patch/spec.js";
import { referenceScanner } from "../src/scan/reference.js";
import { encodeSnapshot } from "../src/snapshot/psnap.js";
import { parseSymbolTable, type SymbolTable } from "../src/symbols/table.js";
import { fixturePath, hostKallsyms } from "./helpers.js";

const SYS = fixturePath("sysfs-kpatch/sys");
const PROC = fixturePath("sysfs-kpatch/proc");

/** The patch modules' symbols as /proc/kallsyms lists them (sizes: the distance to the next one). */
const MODULE_SYMBOLS = [
  ["ffffffffc0a01000", "meminfo_proc_show", "kpatch_meminfo"],
  ["ffffffffc0a01b00", "do_epoll_wait", "kpatch_meminfo"],
  ["ffffffffc0a02100", "patch_exit", "kpatch_meminfo"],
  ["ffffffffc0b01000", "do_epoll_wait", "kpatch_ext4_fix"],
  ["ffffffffc0b01600", "ext4_sync_fs", "kpatch_ext4_fix"],
  ["ffffffffc0b01800", "patch_exit", "kpatch_ext4_fix"],
];
const KALLSYMS = () => `${hostKallsyms()}${MODULE_SYMBOLS.map(([a, n, m]) => `${a} t ${n}\t[${m}]`).join("\n")}\n`;
let table: SymbolTable | null = null;
const symbols = (): SymbolTable => (table ??= parseSymbolTable(KALLSYMS(), { file: "kallsyms" }));

const fn = (object: string, oldName: string, oldSympos: number) => ({ object, oldName, oldSympos, newName: null, newSize: null, force: false });
const EXPECTED: AppliedPatch[] = [
  {
    name: "kpatch_meminfo",
    enabled: true,
    transition: false,
    replace: false,
    forced: false,
    stackOrder: null,
    funcs: [fn("vmlinux", "do_epoll_wait", 1), fn("vmlinux", "meminfo_proc_show", 1)],
  },
  {
    name: "kpatch_ext4_fix",
    enabled: true,
    transition: false,
    replace: false,
    forced: false,
    stackOrder: null,
    funcs: [fn("ext4", "ext4_sync_fs", 2), fn("vmlinux", "do_epoll_wait", 1)],
  },
];

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "patchsafe-kpatch-"));
});
afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

/** A copy of the fixture's sys tree to break. */
function sysCopy(name: string): string {
  const to = join(dir, name);
  cpSync(SYS, to, { recursive: true });
  return to;
}

function capture(sysRoot: string): Capture {
  const host = { ...emptyHostFacts(), capSysAdmin: true, initPidNamespace: true, hostname: "kpatch-host", bootId: "b0" };
  return captureHost({ procRoot: PROC, sysRoot, selfPid: -1, hostFacts: host, reader: directReader() }).capture;
}

function patchOf(...funcs: string[]): PatchSpec {
  const p = emptyPatch();
  for (const f of funcs) p.funcs.push(parseFuncArg(f));
  return p;
}

function checkKpatch(cap: Capture, p: PatchSpec, applied?: AppliedPatch[]): CheckResult {
  return check({ capture: cap, symbols: symbols(), patch: p, scanner: referenceScanner, options: { model: "kpatch" }, applied });
}

const blockedTids = (r: CheckResult): number[] => r.verdict.blockers.map((b) => r.capture.tasks.get(b.task).tid ?? -1).sort((a, b) => a - b);

describe("reading /sys/kernel/kpatch", () => {
  it("two patch modules: objects, <function,sympos>, oldest first by /proc/modules", () => {
    const st = readKpatchPatches(SYS, { loadOrder: readModules(PROC) });
    expect(st.problems).toEqual([]);
    expect(st.patches).toEqual(EXPECTED);
    const codes = st.warnings.map((w) => w.code);
    expect(codes).toContain("kpatch-forced-unknown");
    // Both replace do_epoll_wait: the order is taken from /proc/modules, and said so.
    expect(st.warnings.find((w) => w.code === "kpatch-order-assumed")?.message).toMatch(/vmlinux:do_epoll_wait,1 \(kpatch_meminfo, kpatch_ext4_fix\)/);
  });

  it("no /sys/kernel/kpatch: kpatch.ko is not loaded, no patches", () => {
    mkdirSync(join(dir, "bare", "kernel"), { recursive: true });
    expect(readKpatchPatches(join(dir, "bare"))).toEqual({ patches: [], problems: [], warnings: [] });
    expect(loadedKpatchModules(join(dir, "bare"), PROC)).toEqual([]);
    // A readable tree leaves nothing unread for check's live-host guard either.
    expect(loadedKpatchModules(SYS, PROC)).toEqual([]);
  });

  it("replace from the module parameter; a disabled module is recorded, not on the stack", () => {
    const sys = sysCopy("disabled");
    writeFileSync(join(sys, "kernel/kpatch/kpatch_ext4_fix/enabled"), "0\n");
    writeFileSync(join(sys, "module/kpatch_meminfo/parameters/replace"), "Y\n");
    const st = readKpatchPatches(sys, { loadOrder: readModules(PROC) });
    expect(st.patches!.map((p) => [p.name, p.enabled, p.replace])).toEqual([
      ["kpatch_meminfo", true, true],
      ["kpatch_ext4_fix", false, false],
    ]);
    // One enabled module per function: no order question.
    expect(st.warnings.map((w) => w.code)).toEqual(["kpatch-forced-unknown"]);
  });
});

describe("unreadable or unrecognised trees are errors, never 'no patches'", () => {
  const problemsOf = (sys: string, read?: (path: string) => SysReadResult): string[] => {
    const st = readKpatchPatches(sys, { loadOrder: readModules(PROC), read });
    expect(st.patches).toBeNull();
    expect(st.problems.length).toBeGreaterThan(0);
    if (read === undefined) expect(loadedKpatchModules(sys, PROC)).toEqual(st.problems);
    return st.problems;
  };

  it("a function directory without ,sympos", () => {
    const sys = sysCopy("nosympos");
    cpSync(join(sys, "kernel/kpatch/kpatch_meminfo/vmlinux/do_epoll_wait,1"), join(sys, "kernel/kpatch/kpatch_meminfo/vmlinux/do_epoll_wait"), { recursive: true });
    rmSync(join(sys, "kernel/kpatch/kpatch_meminfo/vmlinux/do_epoll_wait,1"), { recursive: true });
    expect(problemsOf(sys)).toEqual([`${sys}/kernel/kpatch/kpatch_meminfo/vmlinux/do_epoll_wait: not a <function,sympos> directory`]);
  });

  it("enabled that is not 0 or 1; enabled unreadable; a function without old_addr/new_addr", () => {
    const sys = sysCopy("badenabled");
    writeFileSync(join(sys, "kernel/kpatch/kpatch_meminfo/enabled"), "maybe\n");
    expect(problemsOf(sys)).toEqual([`${sys}/kernel/kpatch/kpatch_meminfo/enabled: "maybe" is not 0 or 1`]);
    const denied = (p: string) => (p.endsWith("kpatch_ext4_fix/enabled") ? ({ ok: false, errno: "EACCES" } as const) : { ok: true as const, data: new TextEncoder().encode("1\n") });
    expect(problemsOf(SYS, denied)).toEqual([`${SYS}/kernel/kpatch/kpatch_ext4_fix/enabled could not be read (EACCES)`]);
    const sys2 = sysCopy("noaddr");
    rmSync(join(sys2, "kernel/kpatch/kpatch_ext4_fix/ext4/ext4_sync_fs,2/old_addr"));
    rmSync(join(sys2, "kernel/kpatch/kpatch_ext4_fix/ext4/ext4_sync_fs,2/new_addr"));
    expect(problemsOf(sys2)[0]).toMatch(/ext4_sync_fs,2: no old_addr\/new_addr/);
  });

  it("kpatch < 0.4's layout (patches/<module>/functions/<function>) says no object: refused", () => {
    const sys = join(dir, "legacy");
    const f = join(sys, "kernel/kpatch/patches/kpatch_meminfo/functions/meminfo_proc_show");
    mkdirSync(f, { recursive: true });
    writeFileSync(join(sys, "kernel/kpatch/patches/kpatch_meminfo/enabled"), "1\n");
    writeFileSync(join(f, "old_addr"), "0xffffffff817a9f90\n");
    writeFileSync(join(f, "new_addr"), "0xffffffffc0a01000\n");
    expect(problemsOf(sys)[0]).toMatch(/patches\/ is kpatch < 0\.4's layout \(kpatch_meminfo\): it does not say which object/);
    // The same core with no patch module loaded: nothing to read, nothing missed.
    const empty = join(dir, "legacy-empty");
    mkdirSync(join(empty, "kernel/kpatch/patches"), { recursive: true });
    expect(readKpatchPatches(empty).patches).toEqual([]);
  });

  it("an unlistable root, a stray file, an unknown order with two modules on one function", () => {
    const file = join(dir, "rootfile");
    mkdirSync(join(file, "kernel"), { recursive: true });
    writeFileSync(join(file, "kernel/kpatch"), "");
    expect(problemsOf(file)).toEqual([`${file}/kernel/kpatch could not be listed (ENOTDIR)`]);
    const stray = sysCopy("stray");
    writeFileSync(join(stray, "kernel/kpatch/notes"), "x\n");
    expect(problemsOf(stray)[0]).toMatch(/kpatch\/notes: not a patch module directory/);
    for (const loadOrder of [null, ["kpatch_meminfo", "ext4"]]) {
      const st = readKpatchPatches(SYS, { loadOrder });
      expect(st.patches).toBeNull();
      expect(st.problems[0]).toMatch(/vmlinux:do_epoll_wait,1 \(.*\) and their load order is unknown/);
    }
  });
});

describe("the capture records kpatch's stack; check uses it as the applied stack", () => {
  it("apply of do_epoll_wait: only the newest module's replacement blocks (SPEC §2 kpatch apply)", () => {
    const cap = capture(SYS);
    expect(cap.complete).toBe(true);
    expect(cap.livepatches).toEqual(EXPECTED);
    expect(cap.warnings.map((w) => w.code)).toEqual(expect.arrayContaining(["kpatch-order-assumed", "kpatch-forced-unknown"]));
    const comm = (r: CheckResult, tid: number) => new TextDecoder().decode(r.capture.tasks.find((t) => t.tid === tid)!.comm!);

    const r = checkKpatch(cap, patchOf("do_epoll_wait"));
    expect(r.verdict.verdict).toBe("blocked");
    expect(blockedTids(r)).toEqual([500]);
    expect(comm(r, 500)).toBe("app_new");
    const f = r.ranges.functions[0];
    expect([f.blockingObject, f.blockingName, f.ranges[0].role]).toEqual(["kpatch_ext4_fix", "do_epoll_wait", "previous-replacement"]);
    const status = new Map(r.verdict.outcomes.map((o) => [r.capture.tasks.get(o.task).tid, o.status]));
    // The older replacement and the original are not checked by kpatch once a newer module patched it.
    expect([status.get(501), status.get(502)]).toEqual(["clean", "clean"]);

    // --no-applied: the original is what blocks.
    expect(blockedTids(checkKpatch(cap, patchOf("do_epoll_wait"), []))).toEqual([502]);
    // meminfo_proc_show: kpatch_meminfo's replacement is the only (so the newest) one.
    expect(blockedTids(checkKpatch(cap, patchOf("meminfo_proc_show")))).toEqual([503]);
  });

  it("with the newest module disabled, the older module's replacement is what blocks", () => {
    const sys = sysCopy("disabled-check");
    writeFileSync(join(sys, "kernel/kpatch/kpatch_ext4_fix/enabled"), "0\n");
    expect(blockedTids(checkKpatch(capture(sys), patchOf("do_epoll_wait")))).toEqual([501]);
  });

  it("through the CLI: a snapshot of that host carries the stack to check", () => {
    const snap = join(dir, "kpatch-host.psnap");
    writeFileSync(snap, encodeSnapshot(capture(SYS), null));
    const ks = join(dir, "kallsyms");
    writeFileSync(ks, KALLSYMS());
    const r = run(["check", snap, "--kallsyms", ks, "--func", "do_epoll_wait", "--model", "kpatch", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.blockers.map((b: { tid: number; frame: { text: string } }) => [b.tid, b.frame.text])).toEqual([[500, "do_epoll_wait+0x588/0x600 [kpatch_ext4_fix]"]]);
    const none = run(["check", snap, "--kallsyms", ks, "--func", "do_epoll_wait", "--model", "kpatch", "--no-applied", "--json"]);
    expect(JSON.parse(none.stdout).blockers.map((b: { tid: number }) => b.tid)).toEqual([502]);
  });

  it("an unreadable kpatch tree: no stack recorded, the capture is incomplete, the verdict never safe", () => {
    const sys = sysCopy("broken-capture");
    writeFileSync(join(sys, "kernel/kpatch/kpatch_meminfo/enabled"), "?\n");
    const cap = capture(sys);
    expect(cap.livepatches).toBeNull();
    expect(cap.complete).toBe(false);
    expect(cap.completeness.map((c) => c.code)).toEqual(["kpatch-unreadable"]);
    expect(cap.completeness[0].message).toMatch(/kpatch_meminfo\/enabled: "\?" is not 0 or 1\): the applied patch stack is unknown/);
    // No task is in ksys_write: safe over a readable tree, not over this one.
    expect(checkKpatch(capture(SYS), patchOf("ksys_write")).verdict.verdict).toBe("safe");
    const r = checkKpatch(cap, patchOf("ksys_write"));
    expect(r.verdict.verdict).toBe("undecided");
    expect(r.verdict.reasons.map((x) => x.code)).toContain("incomplete-capture");
  });
});
