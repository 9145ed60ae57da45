/** The command line of the semantics issue: models, --revert/--applied, --func help, filters, wait, the default job. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../src/cli/main.js";
import { fixturePath, hostKallsyms } from "./helpers.js";

let dir = "";
let kallsyms = "";
const grep = fixturePath("host/proc-grep.txt");
const captureJson = fixturePath("host/capture.json");

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "patchsafe-cli3-"));
  kallsyms = join(dir, "kallsyms");
  writeFileSync(kallsyms, hostKallsyms());
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, doc: unknown): string => {
  const f = join(dir, name);
  writeFileSync(f, typeof doc === "string" ? doc : JSON.stringify(doc));
  return f;
};

describe("--func help", () => {
  it("suggests compiler clones and explains functions with no symbol", () => {
    const clone = run(["check", grep, "--kallsyms", kallsyms, "--func", "do_pselect"]);
    expect(clone.status).toBe(2);
    expect(clone.stderr).toMatch(/did you mean `do_pselect\.constprop\.0`/);
    const none = run(["check", grep, "--kallsyms", kallsyms, "--func", "no_such_function_xyz"]);
    expect(none.stderr).toMatch(/inlined everywhere/);
    expect(none.stderr.trim().split("\n")).toHaveLength(1);
  });
});

describe("--applied and --revert from files", () => {
  it("reverting a patch checks its own replacement; an unknown patch is a usage error", () => {
    const appliedFile = write("p1.json", { name: "p1", enabled: 1, transition: 0, objects: [{ name: "vmlinux", funcs: [{ old_name: "worker_thread", old_sympos: 0 }] }] });
    const patchFile = write("p1-patch.json", { name: "p1", objects: [{ name: "vmlinux", funcs: [{ old_name: "worker_thread" }] }] });
    const r = run(["check", grep, "--kallsyms", kallsyms, "--patch", patchFile, "--applied", appliedFile, "--revert", "--json"]);
    const j = JSON.parse(r.stdout);
    expect(j.direction).toBe("revert");
    // The replacement lives in module p1, which this kallsyms does not have: nothing to match
    // by address, and the report says so.
    expect(j.warnings.map((w: { message: string }) => w.message).join(" ")).toMatch(/worker_thread \[p1\] is not in the symbol table/);
    const other = write("p2-patch.json", { name: "p2", objects: [{ name: "vmlinux", funcs: [{ old_name: "worker_thread" }] }] });
    const bad = run(["check", grep, "--kallsyms", kallsyms, "--patch", other, "--applied", appliedFile, "--revert"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/'p2' is not applied/);
  });

  it("a malformed applied file names the field", () => {
    const f = write("bad-applied.json", { objects: [{ name: "vmlinux", funcs: [{ old_name: "x" }] }] });
    const r = run(["check", grep, "--kallsyms", kallsyms, "--func", "worker_thread", "--applied", f]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/\$\.name: an applied patch needs its module name/);
  });
});

describe("models on the command line", () => {
  it("kpatch names the one task kpatch would report; quiesce says what it clears", () => {
    const k = JSON.parse(run(["check", captureJson, "--kallsyms", kallsyms, "--func", "worker_thread", "--model", "kpatch", "--json"]).stdout);
    expect(k.model).toBe("kpatch");
    expect(k.kernelCheck.result).toBe("fail");
    expect(k.kernelCheck.first.comm).toMatch(/^kworker\//);
    expect(k.switchable).toEqual([]);
    const q = run(["check", captureJson, "--kallsyms", kallsyms, "--func", "do_epoll_wait", "--model", "quiesce", "--partial-ok", "--json"]);
    const qj = JSON.parse(q.stdout);
    expect(qj.quiesce.cleared.length).toBeGreaterThan(0);
    expect(qj.quiesce.effects.unwound).toBeGreaterThan(0);
    const text = run(["check", captureJson, "--kallsyms", kallsyms, "--func", "do_epoll_wait", "--model", "quiesce", "--partial-ok"]).stdout;
    expect(text).toMatch(/quiesce: .*clears \d+ of the \d+ task\(s\)/);
  });
});

describe("filters", () => {
  it("--tid/--comm/--state narrow the lists, not the verdict", () => {
    const all = JSON.parse(run(["check", captureJson, "--kallsyms", kallsyms, "--func", "worker_thread", "--json"]).stdout);
    const one = all.blockers[0].tid;
    const f = JSON.parse(run(["check", captureJson, "--kallsyms", kallsyms, "--func", "worker_thread", "--tid", String(one), "--json"]).stdout);
    expect(f.blockers.map((b: { tid: number }) => b.tid)).toEqual([one]);
    expect(f.counts).toEqual(all.counts);
    expect(f.verdict).toBe(all.verdict);
    expect(f.warnings.map((w: { code: string }) => w.code)).toContain("filtered");
    const byState = JSON.parse(run(["check", captureJson, "--kallsyms", kallsyms, "--func", "worker_thread", "--state", "S", "--json"]).stdout);
    expect(byState.blockers).toEqual([]);
    const byComm = JSON.parse(run(["check", captureJson, "--kallsyms", kallsyms, "--func", "smpboot_thread_fn", "--comm", "ksoftirqd", "--json"]).stdout);
    expect(byComm.blockers.length).toBeGreaterThan(0);
    expect(byComm.blockers.every((b: { comm: string }) => b.comm.startsWith("ksoftirqd"))).toBe(true);
  });
});

describe("the default job over a capture with a stalled transition", () => {
  it("shows the transition first: its stalled tasks, why, and the remedy", () => {
    const cap = {
      format: "patchsafe-capture",
      version: 1,
      complete: true,
      livepatches: [{ name: "lp", enabled: true, transition: true, funcs: [{ object: "vmlinux", oldName: "worker_thread" }] }],
      tasks: [
        { pid: 9, tid: 9, comm: "kworker/0:0", state: "I", flags: 0x208040, patchState: 0, frames: ["worker_thread+0x98/0x310", "kthread+0xfa/0x240", "ret_from_fork+0x166/0x190", "ret_from_fork_asm+0x1a/0x30"] },
        { pid: 10, tid: 10, comm: "bash", state: "S", flags: 0x400000, patchState: 1, frames: ["do_syscall_64+0x71/0x290", "entry_SYSCALL_64_after_hwframe+0x76/0x7e"] },
      ],
    };
    const f = write("transition.json", cap);
    const r = run(["check", f, "--kallsyms", kallsyms]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/A livepatch transition is in progress: lp \(patching\), 1 task\(s\) holding it/);
    expect(r.stdout).toMatch(/kworker\/0:0 .* sleeping in worker_thread → never-leaves/);
    const j = JSON.parse(run(["check", f, "--kallsyms", kallsyms, "--json"]).stdout);
    expect(j.transition.stalled.map((s: { tid: number }) => s.tid)).toEqual([9]);
  });
});

describe("wait", () => {
  it("rejects bad durations and inputs; otherwise returns a check's status with its report", () => {
    expect(run(["wait", "--func", "worker_thread", "--timeout", "soon"]).stderr).toMatch(/--timeout "soon": expected a duration/);
    expect(run(["wait", grep, "--func", "worker_thread"]).stderr).toMatch(/takes no INPUT/);
    const r = run(["wait", "--func", "worker_thread", "--timeout", "1s", "--interval", "500ms"]);
    // The kworkers sit in worker_thread for ever: never safe.
    expect([1, 3]).toContain(r.status);
    expect(r.stdout).toMatch(/^(✗ BLOCKED|\? UNDECIDED)/);
  });
});

describe("a series of captures", () => {
  it("predicts from several dumps of one host and validates against the schema", async () => {
    const { Ajv2020 } = await import("ajv/dist/2020.js");
    const schema = JSON.parse((await import("node:fs")).readFileSync(new URL("../schema/verdict.schema.json", import.meta.url), "utf8"));
    const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);
    const r = run(["check", grep, fixturePath("host/proc-tail.txt"), "--kallsyms", kallsyms, "--func", "worker_thread", "--json"]);
    expect(r.status).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(validate(j), JSON.stringify(validate.errors)).toBe(true);
    expect(j.prediction.captures).toBe(2);
    expect(j.prediction.allCleanAt).toBeNull();
    expect(j.prediction.neverClean.length).toBeGreaterThan(5);
    expect(j.warnings.map((w: { code: string }) => w.code)).toContain("series-one-host");
    const text = run(["check", grep, fixturePath("host/proc-tail.txt"), "--kallsyms", kallsyms, "--func", "worker_thread"]).stdout;
    expect(text).toMatch(/Prediction over 2 capture\(s\) of this host/);
    expect(text).toMatch(/estimator: first passage/);
  });
});

describe("--no-applied", () => {
  it("ignores the patch stack a capture recorded", () => {
    const cap = {
      format: "patchsafe-capture",
      version: 1,
      complete: true,
      livepatches: [{ name: "p1", enabled: true, funcs: [{ object: "vmlinux", oldName: "worker_thread" }] }],
      tasks: [{ pid: 9, tid: 9, comm: "kworker/0:0", state: "I", flags: 0x208040, frames: ["worker_thread+0x98/0x310", "kthread+0xfa/0x240", "ret_from_fork+0x166/0x190", "ret_from_fork_asm+0x1a/0x30"] }],
    };
    const f = write("stacked.json", cap);
    const withStack = JSON.parse(run(["check", f, "--kallsyms", kallsyms, "--func", "worker_thread", "--json"]).stdout);
    expect(withStack.functions[0].ranges[0]?.role ?? "none").not.toBe("original");
    const without = JSON.parse(run(["check", f, "--kallsyms", kallsyms, "--func", "worker_thread", "--no-applied", "--json"]).stdout);
    expect(without.functions[0].ranges[0].role).toBe("original");
    expect(without.verdict).toBe("blocked");
  });
});
