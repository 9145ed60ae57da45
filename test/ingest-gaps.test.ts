/**
 * Dumps that lost tasks or lines without saying so in the usual way (found by an adversarial
 * review of the readers): each must read as partial, or leave the damaged task undecided, never
 * as a complete capture over which the patch is safe.
 */
import { describe, expect, it } from "vitest";
import { check } from "../src/check.js";
import { parseCaptures } from "../src/ingest/detect.js";
import { referenceScanner } from "../src/scan/reference.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run as runCli } from "../src/cli/main.js";
import { fixturePath, fixtureText, hostKallsyms, patchOf } from "./helpers.js";

const BASE = fixtureText("ingest-gaps/sysrq-t-base.txt");
const lines = BASE.split("\n");
/** The dump with lines [from, to) (0-based) replaced. */
const edit = (from: number, to: number, ...put: string[]): string => [...lines.slice(0, from), ...put, ...lines.slice(to)].join("\n");
const SLEEP_BLOCK = [21, 32]; // task:sleep … </TASK>
const verdict = (text: string, format: "auto" | "sysrq-t" = "auto") => {
  const caps = parseCaptures(new TextEncoder().encode(text), "dump.txt", format);
  const cap = caps[caps.length - 1];
  return { cap, r: check({ capture: cap, symbols: null, patch: patchOf("hrtimer_nanosleep"), scanner: referenceScanner }) };
};

describe("a sysrq-t dump that lost a task", () => {
  it("the base dump is complete and blocked by the sleeping task", () => {
    const { cap, r } = verdict(BASE);
    expect([cap.complete, r.verdict.verdict]).toEqual([true, "blocked"]);
  });

  it("an omission mark between task blocks (`...`, `[...]`, `# (...omitted...)`) makes it partial", () => {
    for (const mark of ["[  100.000021] ...", "...", "[...]", "# (...omitted...)"]) {
      const { cap, r } = verdict(edit(SLEEP_BLOCK[0], SLEEP_BLOCK[1], mark));
      expect([mark, cap.complete, cap.completeness.map((c) => c.code)]).toEqual([mark, false, ["omission"]]);
      expect(r.verdict.verdict).toBe("undecided");
    }
  });

  it("journald's own loss marker (`Missed N kernel messages`) makes it partial", () => {
    const journal = lines.map((l) => l.replace(/^\[ *[\d.]+\] /, "Nov 07 20:31:22 host kernel: "));
    const text = [...journal.slice(0, SLEEP_BLOCK[0]), "Nov 07 20:31:22 host systemd-journald[312]: Missed 9 kernel messages", ...journal.slice(SLEEP_BLOCK[1])].join("\n");
    const { cap, r } = verdict(text);
    expect([cap.complete, cap.completeness.map((c) => c.code)]).toEqual([false, ["messages-dropped"]]);
    expect(r.verdict.verdict).toBe("undecided");
  });

  it("lines lost between two tasks join their traces: the joined task is undecided (frames below a user entry)", () => {
    // pid 1's `</TASK>` and the sleeper's header down to hrtimer_nanosleep are gone.
    const { r } = verdict(edit(11, 27));
    const o = r.verdict.outcomes.get(0);
    expect(o.status).toBe("undecided");
    expect(o.matches.map((x) => x.message).join(" ")).toMatch(/real frames continue below the user-mode entry entry_SYSCALL_64_after_hwframe/);
    expect(r.verdict.verdict).not.toBe("safe");
  });

  it("--format sysrq-t does not turn a `Show Blocked State` dump into a complete one", () => {
    const w = BASE.replace("sysrq: Show State", "sysrq: Show Blocked State");
    for (const format of ["auto", "sysrq-t"] as const) {
      const { cap } = verdict(edit(SLEEP_BLOCK[0], SLEEP_BLOCK[1]).replace("sysrq: Show State", "sysrq: Show Blocked State"), format);
      expect([format, cap.source.format, cap.complete]).toEqual([format, "sysrq-w", false]);
    }
    expect(verdict(w).cap.source.format).toBe("sysrq-w");
  });
});

describe("/proc dumps", () => {
  it("`grep -H . /proc/*/stack` (no /task/) shows main threads only: partial", () => {
    const text = "/proc/1/stack:[<0>] do_epoll_wait+0x10/0x5e0\n/proc/1/stack:[<0>] do_syscall_64+0x10/0x290\n/proc/1/stack:[<0>] entry_SYSCALL_64_after_hwframe+0x10/0x7e\n";
    const { cap, r } = verdict(text);
    expect([cap.complete, cap.completeness.map((c) => c.code)]).toEqual([false, ["text-dump", "main-threads-only"]]);
    expect(r.verdict.verdict).toBe("undecided");
    const tasks = text.replaceAll("/proc/1/stack", "/proc/1/task/1/stack");
    expect(verdict(tasks).cap.complete).toBe("unknown");
  });
});

describe("reports that interrupt or follow one another", () => {
  it("a report printed into a sysrq-t dump (an RCU stall, a WARNING) does not split it: the tasks before it still count", () => {
    for (const header of [["[  121.000000] rcu: INFO: rcu_preempt self-detected stall on CPU", "[  121.000001] rcu:     3-....: (21000 ticks this GP) idle=1234"], ["[  121.000000] WARNING: CPU: 3 PID: 0 at kernel/foo.c:1 bar+0x1/0x2"]]) {
      // The sleeper first, then the report, then the rest of the dump.
      const text = [lines[0], ...lines.slice(SLEEP_BLOCK[0], SLEEP_BLOCK[1]), ...header, ...lines.slice(1, SLEEP_BLOCK[0]), ...lines.slice(SLEEP_BLOCK[1])].join("\n");
      const caps = parseCaptures(new TextEncoder().encode(text), "dump.txt");
      // One capture, marked where the report cut in (its lines may have displaced the dump's).
      expect([header[0], caps.length, caps[0].completeness.map((c) => c.code)]).toEqual([header[0], 1, ["omission"]]);
      const r = check({ capture: caps[0], symbols: null, patch: patchOf("hrtimer_nanosleep"), scanner: referenceScanner, options: { partialOk: true } });
      expect(r.verdict.verdict).toBe("blocked");
    }
  });

  it("a task an earlier report showed blocked, absent from a later partial one, keeps the series from being safe, --partial-ok or not", () => {
    for (const extra of [[], ["--partial-ok"]]) {
      const r = runCli(["check", fixturePath("ingest-gaps/hung-task-twice.txt"), "--func", "hrtimer_nanosleep", "--json", ...extra]);
      const doc = JSON.parse(r.stdout) as { verdict: string; reasons: { message: string }[]; prediction: { allCleanAt: number | null } };
      expect([extra, r.status, doc.verdict]).toEqual([extra, 3, "undecided"]);
      expect(doc.reasons.map((x) => x.message).join(" ")).toMatch(/1 task\(s\) \(tid 300\) were blocked or undecided in an earlier capture of the series, and the last capture, which is partial, does not show them/);
      // Nor does the prediction count its absence as an exit.
      expect(doc.prediction.allCleanAt).toBeNull();
    }
  });

  it("a blocked task without a tid (a bare /proc/PID/stack paste) in an earlier capture keeps the series from being safe", () => {
    // Found by review: boundSeriesVerdict skipped tasks with no tid, so `check a.txt b.txt` read
    // safe (b's verdict) though a.txt, a capture of the same host, was blocked, while the same
    // pastes with `==> /proc/N/task/N/stack <==` headers were undecided.
    const dir = mkdtempSync(join(tmpdir(), "ps-gaps-"));
    try {
      const ks = join(dir, "kallsyms");
      writeFileSync(ks, hostKallsyms());
      const a = join(dir, "a.txt");
      const b = join(dir, "b.txt");
      writeFileSync(a, "[<0>] anon_pipe_read+0x393/0x440\n[<0>] vfs_read+0x397/0x3d0\n[<0>] ksys_read+0xc3/0xf0\n[<0>] do_syscall_64+0x71/0x290\n[<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e\n");
      writeFileSync(b, "[<0>] do_select+0x65c/0x940\n[<0>] core_sys_select+0x231/0x4d0\n[<0>] do_pselect.constprop.0+0xe9/0x1a0\n[<0>] __x64_sys_pselect6+0x46/0xa0\n[<0>] do_syscall_64+0x71/0x290\n[<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e\n");
      const one = (...files: string[]) => runCli(["check", ...files, "--kallsyms", ks, "--func", "anon_pipe_read", "--json"]);
      // Each alone: a blocked, b safe (for the tasks given).
      expect([one(a).status, one(b).status]).toEqual([1, 0]);
      const r = one(a, b);
      const doc = JSON.parse(r.stdout) as { verdict: string; reasons: { code: string; message: string }[] };
      expect([r.status, doc.verdict]).toEqual([3, "undecided"]);
      expect(doc.reasons.map((x) => x.message).join(" ")).toMatch(/1 without a tid/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a trace without its task header (the excerpt starts mid-trace) is truncated: undecided, --partial-ok or not", () => {
    const dir = mkdtempSync(join(tmpdir(), "ps-gaps-"));
    try {
      const f = join(dir, "tail.txt");
      writeFileSync(f, lines.slice(27, 31).join("\n"));
      for (const extra of [[], ["--partial-ok"]]) {
        const r = runCli(["check", f, "--format", "dmesg", "--func", "hrtimer_nanosleep", "--json", ...extra]);
        const doc = JSON.parse(r.stdout) as { verdict: string; undecided: { reason: { code: string } }[] };
        expect([extra, doc.verdict, doc.undecided.map((u) => u.reason.code)]).toEqual([extra, "undecided", ["truncated"]]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
