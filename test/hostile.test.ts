/**
 * Hostile task names (SECURITY.md): any process can name itself anything (15 bytes, any byte but
 * NUL). A live test starts children that rename themselves, captures the host, and checks the
 * names can neither forge nor hide a task, and reach reports only escaped.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { check } from "../src/check.js";
import { parseProcText } from "../src/ingest/procText.js";
import { captureLive } from "../src/node/capture.js";
import { loadWasmScannerSync } from "../src/node/wasm.js";
import { toJsonReport } from "../src/report/json.js";
import { toTextReport } from "../src/report/text.js";
import { terminalSafe } from "../src/report/escape.js";
import { buildInventory, inventoryText } from "../src/report/inventory.js";
import { parseNativeJson } from "../src/ingest/nativeJson.js";
import { parseCrash } from "../src/ingest/crash.js";
import { parseSymbolTable } from "../src/symbols/table.js";
import { run } from "../src/cli/main.js";
import { hostTable, patchOf } from "./helpers.js";

const HOSTILE: [string, number[]][] = [
  ["newline + forged frame", [...Buffer.from("\n[<0>] worker_thread+0x98/0x310")]],
  ["forged tail header", [...Buffer.from("\n==> /proc/1/task/1/stack <==")]],
  ["sysrq header", [...Buffer.from("task:x state:S")]],
  ["ANSI colour", [0x1b, ...Buffer.from("[31mred")]],
  ["OSC title", [0x1b, ...Buffer.from("]0;pwned"), 0x07]],
  ["invalid UTF-8", [0xff, 0xfe, 0xc3, 0x28]],
  ["__proto__", [...Buffer.from("__proto__")]],
  ["constructor", [...Buffer.from("constructor")]],
];

function liveReadable(): string | null {
  try {
    readFileSync("/proc/self/stack");
    return null;
  } catch (e) {
    return `/proc/self/stack is not readable (${(e as { code?: string }).code}): live hostile-name test skipped`;
  }
}
const skip = liveReadable();
if (skip !== null) console.warn(skip);

describe.skipIf(skip !== null)("live: children that rename themselves", () => {
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    for (const [, bytes] of HOSTILE) {
      // The shell writes its own comm (a builtin, no fork), then waits in wait4 on a sleep.
      const octal = bytes.map((b) => `\\${b.toString(8).padStart(3, "0")}`).join("");
      children.push(spawn("sh", ["-c", `printf '${octal}' > /proc/self/comm; sleep 60; :`], { stdio: "ignore" }));
    }
    // Wait until every child has renamed itself.
    const deadline = Date.now() + 5000;
    for (const c of children) {
      for (;;) {
        const comm = readFileSync(`/proc/${c.pid}/comm`);
        if (comm.toString("latin1") !== "sh\n" || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
  afterAll(() => {
    for (const c of children) c.kill("SIGKILL");
  });

  it("each name is read as the raw bytes of its own task, never as structure", () => {
    const cap = captureLive();
    HOSTILE.forEach(([what, bytes], k) => {
      const pid = children[k].pid!;
      const mine = cap.tasks.filter((t) => t.pid === pid);
      expect(mine, what).toHaveLength(1);
      expect([...mine[0].comm!], what).toEqual(bytes.slice(0, 15));
      expect(mine[0].frameCount, what).toBeGreaterThan(0);
    });
    // No task was invented: every tid is unique and pid 1's threads stay as they are.
    expect(new Set(cap.tasks.map((t) => t.tid)).size).toBe(cap.tasks.length);
  });

  it("reports show the names escaped: no control byte reaches the terminal, JSON escapes them", () => {
    const cap = captureLive();
    const r = check({ capture: cap, symbols: hostTable(), patch: patchOf("do_wait"), scanner: loadWasmScannerSync(), options: { partialOk: true } });
    const text = toTextReport(r, { verbosity: 2 });
    // eslint-disable-next-line no-control-regex
    expect(text).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
    expect(text.split("\n").some((l) => l.startsWith("[<0>] worker_thread"))).toBe(false);
    const json = JSON.stringify(toJsonReport(r));
    expect(json).toContain("\\\\x1b]0;pwned\\\\x07");
    expect(json).toContain("\\\\x0a[<0>] worker_t\"");
    expect(JSON.parse(json).blockers.length).toBeGreaterThan(0); // the shells wait in do_wait
  });
});

describe("text formats that embed comm", () => {
  it("a `== /proc/PID/task/TID comm` header with a forged line cannot make a task look clean", () => {
    // The attacker's comm ends its own header line and forges another header: the attacker's
    // real frames then land under the forged task, and its own task is left empty (undecided).
    const dump = ["== /proc/500/task/500 evil", "== /proc/999/task/999 x", "[<0>] worker_thread+0x98/0x310", "[<0>] kthread+0xfa/0x240", "[<0>] ret_from_fork+0x166/0x190", "[<0>] ret_from_fork_asm+0x1a/0x30"].join("\n");
    const r = check({ capture: parseProcText(dump), symbols: hostTable(), patch: patchOf("worker_thread"), scanner: loadWasmScannerSync() });
    expect(r.verdict.verdict).not.toBe("safe");
    const evil = r.verdict.outcomes.find((o) => r.capture.tasks.get(o.task).tid === 500)!;
    expect(evil.status).toBe("undecided");
  });
});

/** A small vmlinux for crash dumps (which carry absolute addresses). */
const CRASH_KALLSYMS = [
  "ffffffff81000000 T _text",
  "ffffffff81001000 T __sched_text_start",
  "ffffffff81001000 T __schedule",
  "ffffffff81001400 T schedule",
  "ffffffff81001800 T __sched_text_end",
  "ffffffff81002000 T do_select",
  "ffffffff81002400 T sys_select",
  "ffffffff81002800 T entry_SYSCALL_64_after_hwframe",
  "ffffffff81002c00 T kthread",
  "ffffffff81003000 T ret_from_fork",
  "ffffffff81003400 T worker_thread",
  "ffffffff81003800 T target_func",
  "ffffffff81003c00 T crash_nmi_callback",
  "ffffffff81004000 T nmi_handle",
  "ffffffff81004400 T default_do_nmi",
  "ffffffff81004800 T exc_nmi",
  "ffffffff81004c00 T end_repeat_nmi",
  "ffffffff81005000 T busy_loop",
  "ffffffff81005400 T _etext",
].join("\n");

/** crash `foreach bt` tasks: pid 1 (user, in select) and pid 2 (kthread), both clean. */
const CRASH_BASE = [
  "crash> foreach bt",
  'PID: 1      TASK: ffff88000001  CPU: 0   COMMAND: "systemd"',
  " #0 [ffffc90000001e00] __schedule at ffffffff81001010",
  " #1 [ffffc90000001e40] schedule at ffffffff81001410",
  " #2 [ffffc90000001e80] do_select at ffffffff81002010",
  " #3 [ffffc90000001ec0] sys_select at ffffffff81002410",
  " #4 [ffffc90000001f00] entry_SYSCALL_64_after_hwframe at ffffffff81002810",
  "",
  'PID: 2      TASK: ffff88000002  CPU: 1   COMMAND: "kthreadd"',
  " #0 [ffffc90000002e00] __schedule at ffffffff81001010",
  " #1 [ffffc90000002e40] schedule at ffffffff81001410",
  " #2 [ffffc90000002e80] worker_thread at ffffffff81003410",
  " #3 [ffffc90000002ec0] kthread at ffffffff81002c10",
  " #4 [ffffc90000002f00] ret_from_fork at ffffffff81003010",
  "",
];

function checkCrash(lines: string[], func = "target_func") {
  const symbols = parseSymbolTable(CRASH_KALLSYMS, { file: "kallsyms" });
  return check({ capture: parseCrash(Buffer.from(lines.join("\n"), "latin1"))[0], symbols, patch: patchOf(func), scanner: loadWasmScannerSync() });
}

describe("crash bt: a comm that splits its task header", () => {
  it("a newline in COMMAND cannot drop the task's frames from the check", () => {
    // crash prints comm raw: `COMMAND: "evil\nx"` is two lines, neither a header. The frames
    // after them were skipped as noise, and the task sleeping in target_func vanished: SAFE.
    const r = checkCrash([
      ...CRASH_BASE,
      'PID: 77     TASK: ffff88000077  CPU: 1   COMMAND: "evil',
      'x"',
      " #0 [ffffc90000003e00] __schedule at ffffffff81001010",
      " #1 [ffffc90000003e40] schedule at ffffffff81001410",
      " #2 [ffffc90000003e80] target_func at ffffffff81003810",
      " #3 [ffffc90000003ec0] sys_select at ffffffff81002410",
      " #4 [ffffc90000003f00] entry_SYSCALL_64_after_hwframe at ffffffff81002810",
    ]);
    expect(r.verdict.verdict).not.toBe("safe");
    expect(r.capture.complete).toBe(false);
    expect(r.capture.completeness.map((x) => x.code)).toContain("anonymous-stacks");
    expect(r.verdict.counts.undecided).toBe(1);
    // Its reason says what happened (a cut head), not /proc's 64-entry cap.
    const anon = r.verdict.outcomes.find((o) => r.capture.tasks.get(o.task).tid === null)!;
    expect(anon.matches[0].code).toBe("truncated");
    expect(anon.matches[0].message).toContain("no task header");
  });
});

describe("crash bt: tasks that were on a CPU", () => {
  const spinner = [
    'PID: 77     TASK: ffff88000077  CPU: 1   COMMAND: "spin"',
    " #0 [fffffe0000001e00] crash_nmi_callback at ffffffff81003c10",
    " #1 [fffffe0000001e40] nmi_handle at ffffffff81004010",
    " #2 [fffffe0000001e80] default_do_nmi at ffffffff81004410",
    " #3 [fffffe0000001ec0] exc_nmi at ffffffff81004810",
    " #4 [fffffe0000001f00] end_repeat_nmi at ffffffff81004c10",
    "    [exception RIP: busy_loop+0x10]",
    "    RIP: ffffffff81005010  RSP: ffffc90000003e00  RFLAGS: 00000246",
    "    ORIG_RAX: ffffffffffffffff  CS: 0010  SS: 0018",
    "--- <NMI exception stack> ---",
    " #5 [ffffc90000003e00] busy_loop at ffffffff81005010",
    " #6 [ffffc90000003ec0] sys_select at ffffffff81002410",
    " #7 [ffffc90000003f00] entry_SYSCALL_64_after_hwframe at ffffffff81002810",
  ];
  it("a task stopped on its CPU by the crash NMI (stack switch, crash_nmi_callback) is running: undecided, not clean", () => {
    // crash prints no state: the active task read as a sleeper, its moving stack judged clean.
    const r = checkCrash([...CRASH_BASE, ...spinner]);
    expect(r.verdict.verdict).toBe("undecided");
    const spin = r.verdict.outcomes.find((o) => r.capture.tasks.get(o.task).tid === 77)!;
    expect(spin.matches[0].code).toBe("running");
  });
  it("every task of `bt -a` is an active one", () => {
    const r = checkCrash(["crash> bt -a", ...CRASH_BASE.slice(1, 7)]);
    expect(r.capture.tasks.get(0).running).toBe(true);
  });
});

describe("text from inputs other than comm, bound for a terminal", () => {
  it("terminalSafe escapes controls, bidi overrides and isolates, zero-width and line-separator characters, and keeps other text", () => {
    expect(terminalSafe("a\x1b[31mb\nc\x9b")).toBe("a\\x1b[31mb\\x0ac\\x9b");
    expect(terminalSafe("ok\u202etxt.exe \u2066x\u2069 \u200b\u200d\ufeff \u061c \u2028\u2029 \u{e0041}")).toBe("ok\\u{202e}txt.exe \\u{2066}x\\u{2069} \\u{200b}\\u{200d}\\u{feff} \\u{61c} \\u{2028}\\u{2029} \\u{e0041}");
    expect(terminalSafe("é 中文 ✓ 🙂 façade")).toBe("é 中文 ✓ 🙂 façade");
  });

  it("the inventory's host line, and errors naming a file, cannot forge lines or escapes", () => {
    const cap = parseNativeJson(readFileSync(new URL("./fixtures/host/capture.json", import.meta.url), "utf8"), "c.json");
    cap.host.arch = "x86\x1b[31m\nFAKE LINE\u202e";
    const text = inventoryText(cap, buildInventory(cap, hostTable()));
    expect(text.split("\n")[0]).toContain("x86\\x1b[31m\\x0aFAKE LINE\\u{202e})");
    expect(text.split("\n").filter((l) => l.startsWith("FAKE LINE"))).toEqual([]);
    const r = run(["check", "missing\x1b[31m\n\u202e.txt", "--func", "vfs_read"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("missing\\x1b[31m\\x0a\\u{202e}.txt");
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  });
});
