/**
 * The command line (SPEC §7): exit statuses, one-line errors, --help/--version, the --json
 * contract, hostile task names (SPEC §8), and the live inventory. Mostly in-process through
 * `run()`; a few real runs of bin/patchsafe.cjs, the package's bin (built into dist/ by `npm run build`).
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../src/cli/main.js";
import { VERSION } from "../src/version.js";

const ROOT = new URL("..", import.meta.url).pathname;
const FIX = join(ROOT, "test/fixtures/host");
const BIN = join(ROOT, "bin/patchsafe.cjs");

let dir = "";
let kallsyms = "";
/** A /proc dump of two tasks copied from proc-grep.txt whose stacks reach a known bottom. */
let smallDump = "";
let smallDumpText = "";

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "patchsafe-cli-"));
  kallsyms = join(dir, "kallsyms");
  writeFileSync(kallsyms, gunzipSync(readFileSync(join(FIX, "kallsyms.gz"))));
  smallDumpText = `${readFileSync(join(FIX, "proc-grep.txt"), "latin1")
    .split("\n")
    .filter((l) => /^\/proc\/(10|1079)\/task\/(10|1079)\/stack:\[<0>\] /.test(l))
    .join("\n")}\n`;
  smallDump = join(dir, "small.txt");
  writeFileSync(smallDump, smallDumpText);
  if (!existsSync(join(ROOT, "dist/cli/main.js"))) {
    const b = spawnSync("npm", ["run", "build"], { cwd: ROOT, encoding: "utf8" });
    if (b.status !== 0) throw new Error(`npm run build failed:\n${b.stdout}\n${b.stderr}`);
  }
});

afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

const check = (...args: string[]) => run(["check", ...args]);

/** A usage or input error: status 2, nothing on stdout, one line on stderr, no stack trace. */
function expectError(r: { status: number; stdout: string; stderr: string }, pattern: RegExp): void {
  expect(r.status).toBe(2);
  expect(r.stdout).toBe("");
  expect(r.stderr).toMatch(/^patchsafe: /);
  expect(r.stderr.endsWith("\n")).toBe(true);
  expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stderr).not.toMatch(/internal error/);
  expect(r.stderr).toMatch(pattern);
}

describe("exit statuses", () => {
  it("0: safe on a small dump where the function is on no stack", () => {
    const r = check(smallDump, "--kallsyms", kallsyms, "--func", "meminfo_proc_show");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^✓ SAFE: /);
    // A text dump cannot prove it is complete: safe comes with a warning.
    expect(r.stdout).toMatch(/^warning: .*--strict/m);
  });

  it("3 instead of 0 with --strict on the same dump", () => {
    const r = check(smallDump, "--kallsyms", kallsyms, "--func", "meminfo_proc_show", "--strict");
    expect(r.status).toBe(3);
    expect(r.stdout).toMatch(/^\? UNDECIDED: /);
  });

  it("3 instead of 0 without --kallsyms (no-symbol-table)", () => {
    const r = check(smallDump, "--func", "meminfo_proc_show");
    expect(r.status).toBe(3);
    expect(r.stdout).toMatch(/\[no-symbol-table\]/);
  });

  it("1: blocked on worker_thread", () => {
    const r = check(join(FIX, "proc-grep.txt"), "--kallsyms", kallsyms, "--func", "worker_thread");
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^✗ BLOCKED: /);
    expect(r.stdout).toMatch(/^Blocked in worker_thread \[vmlinux\]: \d+ task\(s\)$/m);
    expect(r.stdout).toMatch(/remedy never-leaves: /);
  });

  it("1 on the small dump too (worker_thread on pid 10)", () => {
    const r = check(smallDump, "--kallsyms", kallsyms, "--func", "worker_thread");
    expect(r.status).toBe(1);
  });

  it("3: undecided when stacks are unreadable (proc-grep.txt, pid 1)", () => {
    const r = check(join(FIX, "proc-grep.txt"), "--kallsyms", kallsyms, "--func", "meminfo_proc_show");
    expect(r.status).toBe(3);
    expect(r.stdout).toMatch(/^\? UNDECIDED: /);
    expect(r.stdout).toMatch(/^Undecided \(unreadable\): 13 task\(s\)$/m);
  });

  it("3: a partial capture is never safe; --partial-ok leaves the unreadable tasks out", () => {
    const strict = check(join(FIX, "capture.json"), "--kallsyms", kallsyms, "--func", "meminfo_proc_show", "--json");
    expect(strict.status).toBe(3);
    const a = JSON.parse(strict.stdout) as { reasons: { code: string }[]; counts: { excluded: number } };
    expect(a.reasons.map((x) => x.code)).toContain("incomplete-capture");
    const ok = check(join(FIX, "capture.json"), "--kallsyms", kallsyms, "--func", "meminfo_proc_show", "--json", "--partial-ok");
    const b = JSON.parse(ok.stdout) as { reasons: { code: string }[]; counts: { excluded: number }; warnings: { code: string }[] };
    expect(b.reasons.map((x) => x.code)).not.toContain("incomplete-capture");
    expect(b.counts.excluded).toBe(a.counts.excluded + 13);
    expect(b.warnings.map((w) => w.code)).toContain("partial-ok");
  });
});

describe("exit 2: usage and input errors, one line each", () => {
  it("an unknown function (the kernel's 'not found')", () => {
    expectError(check(join(FIX, "proc-grep.txt"), "--kallsyms", kallsyms, "--func", "no_such_function_xyz"), /symbol 'no_such_function_xyz' not found/);
  });

  it("a duplicate without sympos (the kernel's 'unresolvable ambiguity')", () => {
    expectError(check(join(FIX, "proc-grep.txt"), "--kallsyms", kallsyms, "--func", "init_once"), /unresolvable ambiguity for symbol 'init_once' in object 'vmlinux'/);
  });

  it("a sympos out of range ('not found')", () => {
    expectError(check(join(FIX, "proc-grep.txt"), "--kallsyms", kallsyms, "--func", "init_once,99"), /symbol position 99 for symbol 'init_once' in object 'vmlinux' not found/);
  });

  it("a missing input file (the message names it)", () => {
    const missing = join(dir, "no-such-dump.txt");
    expectError(check(missing, "--func", "worker_thread"), new RegExp(`${missing.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
  });

  it("a missing --kallsyms file (the message names it)", () => {
    expectError(check(smallDump, "--kallsyms", join(dir, "nope.kallsyms"), "--func", "worker_thread"), /nope\.kallsyms/);
  });

  it("malformed native JSON (the message names the file and the line)", () => {
    const bad = join(dir, "bad-capture.json");
    writeFileSync(bad, '{\n "format": "patchsafe-capture",\n "version": 1,\n "tasks": [\n  {"pid": 1,, }\n ]\n}\n');
    expectError(check(bad, "--func", "worker_thread"), /bad-capture\.json:5: /);
  });

  it("a native capture with a bad frame (the message names the file and the field)", () => {
    const bad = join(dir, "bad-frame.json");
    writeFileSync(bad, JSON.stringify({ format: "patchsafe-capture", version: 1, tasks: [{ pid: 1, tid: 1, frames: ["not a frame at all"] }] }));
    expectError(check(bad, "--func", "worker_thread"), /bad-frame\.json: \$\.tasks\[0\]\.frames\[0\]/);
  });

  it("an unknown option", () => {
    expectError(check(smallDump, "--func", "worker_thread", "--frobnicate"), /--frobnicate/);
  });

  it("an unknown command", () => {
    expectError(run(["frobnicate"]), /unknown command "frobnicate"/);
  });

  it("check without a patch is the default job over that capture (the inventory)", () => {
    const r = check(smallDump, "--kallsyms", kallsyms);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^patchsafe inventory of /);
  });

  it("the inventory says first when the kernel cannot load a livepatch at all (the capture recorded CONFIG_LIVEPATCH off)", () => {
    const line = /this kernel is built without CONFIG_LIVEPATCH/;
    // This dev host's capture: /proc/config.gz has no CONFIG_LIVEPATCH.
    const off = check(join(FIX, "capture.json"));
    expect(off.status).toBe(0);
    expect(off.stdout).toMatch(line);
    // A /proc text dump records no kernel config: nothing is claimed.
    expect(check(smallDump, "--kallsyms", kallsyms).stdout).not.toMatch(line);
    // A patch check over it is never safe, and says why.
    const verdict = check(join(FIX, "capture.json"), "--func", "meminfo_proc_show", "--partial-ok", "--json");
    const doc = JSON.parse(verdict.stdout) as { verdict: string; reasons: { code: string; message: string }[] };
    expect(doc.verdict).toBe("undecided");
    expect(doc.reasons.find((x) => x.code === "unpatchable")?.message).toMatch(/without CONFIG_LIVEPATCH/);
  });

  it("an unknown model", () => {
    expectError(check(smallDump, "--func", "worker_thread", "--model", "kgraft"), /--model kgraft/);
  });

  it("--revert without the patch to disable", () => {
    expectError(check(smallDump, "--func", "worker_thread", "--revert"), /--revert needs --patch/);
  });

  it("--applied names a file that cannot be read", () => {
    expectError(check(smallDump, "--func", "worker_thread", "--applied", "/nonexistent/applied.json"), /\/nonexistent\/applied\.json: cannot read/);
  });

  for (const model of ["kpatch", "quiesce"]) {
    it(`--model ${model} decides (exit 0, 1 or 3, never an error)`, () => {
      const r = check(smallDump, "--kallsyms", kallsyms, "--func", "worker_thread", "--model", model, "--json");
      expect([0, 1, 3]).toContain(r.status);
      expect(JSON.parse(r.stdout).model).toBe(model);
    });
  }

  it("several INPUTs from different boots point to fleet", () => {
    const mk = (boot: string) => {
      const f = join(dir, `boot-${boot}.json`);
      writeFileSync(f, JSON.stringify({ format: "patchsafe-capture", version: 1, host: { bootId: boot }, tasks: [{ pid: 1, tid: 1, state: "S", frames: ["do_syscall_64+0x71/0x290", "entry_SYSCALL_64_after_hwframe+0x76/0x7e"] }] }));
      return f;
    };
    expectError(check(mk("aaaa"), mk("bbbb"), "--func", "worker_thread"), /different boots.*patchsafe fleet/);
  });

  it("a series given out of capture order is an error, not an older capture's verdict", () => {
    const mk = (name: string, at: string) => {
      const f = join(dir, `${name}.json`);
      writeFileSync(f, JSON.stringify({ format: "patchsafe-capture", version: 1, host: { bootId: "b1", capturedAt: at }, tasks: [{ pid: 1, tid: 1, state: "S", frames: ["do_syscall_64+0x71/0x290", "entry_SYSCALL_64_after_hwframe+0x76/0x7e"] }] }));
      return f;
    };
    const older = mk("older", "2026-12-01T06:29:00Z");
    const newer = mk("newer", "2026-12-01T06:30:00Z");
    expectError(check(newer, older, "--func", "worker_thread"), /not in capture order: .*older\.json was captured at 2026-12-01T06:29:00Z, before .*newer\.json .*oldest first/);
    expect(check(older, newer, "--func", "worker_thread").status).not.toBe(2);
  });
});

describe("--help and --version", () => {
  it("--help lists the exit statuses 0, 1, 2, 3", () => {
    for (const argv of [["--help"], ["check", "--help"]]) {
      const r = run(argv);
      expect(r.status).toBe(0);
      expect(r.stderr).toBe("");
      const exit = r.stdout.split("\n").find((l) => /exit status/i.test(l));
      expect(exit).toBeDefined();
      expect(exit).toMatch(/0 safe/);
      expect(exit).toMatch(/1 blocked/);
      expect(exit).toMatch(/2 usage or input error/);
      expect(exit).toMatch(/3 undecided/);
      expect(r.stdout).toMatch(/--func/);
      expect(r.stdout).toMatch(/--json/);
    }
  });

  it("--version prints the package version", () => {
    const r = run(["--version"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`patchsafe ${VERSION}\n`);
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    expect(VERSION).toBe(pkg.version);
  });
});

const TOP_LEVEL = [
  // SPEC §7
  "schema",
  "verdict",
  "reasons",
  "kernelCheck",
  "model",
  "direction",
  "complete",
  "completeness",
  "counts",
  "blockers",
  "undecided",
  "switchable",
  "functions",
  "warnings",
  "prediction",
  // patchsafe's own additions
  "tool",
  "input",
];

describe("--json", () => {
  it("prints exactly one JSON object and nothing else on stdout", () => {
    const r = check(join(FIX, "proc-grep.txt"), "--kallsyms", kallsyms, "--func", "worker_thread", "--json");
    expect(r.status).toBe(1);
    expect(r.stderr).toBe("");
    expect(r.stdout.startsWith("{")).toBe(true);
    expect(r.stdout.endsWith("}\n")).toBe(true);
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(doc !== null && typeof doc === "object" && !Array.isArray(doc)).toBe(true);
    expect(Object.keys(doc).sort()).toEqual([...TOP_LEVEL].sort());
    expect(doc.schema).toBe(1);
    expect(doc.verdict).toBe("blocked");
    // The text report's lines are not mixed in.
    expect(r.stdout).not.toMatch(/BLOCKED:|^warning:/m);
  });

  it("is deterministic: the same input gives the same bytes", () => {
    const a = check(join(FIX, "capture.json"), "--kallsyms", kallsyms, "--func", "smpboot_thread_fn", "--json");
    const b = check(join(FIX, "capture.json"), "--kallsyms", kallsyms, "--func", "smpboot_thread_fn", "--json");
    expect(a.stdout).toBe(b.stdout);
    const doc = JSON.parse(a.stdout) as { undecided: { pid: number | null; tid: number | null }[] };
    const keys = doc.undecided.map((u) => [u.pid ?? Infinity, u.tid ?? Infinity]);
    expect(keys).toEqual([...keys].sort((x, y) => x[0] - y[0] || x[1] - y[1]));
  });

  it("the exit status matches the verdict", () => {
    const cases: [string[], string, number][] = [
      [[smallDump, "--func", "meminfo_proc_show"], "undecided", 3],
      [[smallDump, "--kallsyms", kallsyms, "--func", "meminfo_proc_show"], "safe", 0],
      [[smallDump, "--kallsyms", kallsyms, "--func", "worker_thread"], "blocked", 1],
    ];
    for (const [args, verdict, status] of cases) {
      const r = check(...args, "--json");
      expect(r.status).toBe(status);
      expect((JSON.parse(r.stdout) as { verdict: string }).verdict).toBe(verdict);
    }
  });
});

describe("the text report", () => {
  it("starts with the verdict", () => {
    const r = check(join(FIX, "proc-tail.txt"), "--kallsyms", kallsyms, "--func", "smpboot_thread_fn");
    expect(r.status).toBe(1);
    expect(r.stdout.split("\n")[0]).toMatch(/^✗ BLOCKED: livepatch apply over \d+ task\(s\) from .*proc-tail\.txt/);
  });
});

describe("hostile task names (SPEC §8)", () => {
  const kthreadStack = ["worker_thread+0x98/0x310", "kthread+0xfa/0x240", "ret_from_fork+0x166/0x190", "ret_from_fork_asm+0x1a/0x30"];
  const comms = [
    "a\n[<0>] worker_thread+0x98/0x310",
    "red\u001b[31mX",
    "t\u001b]0;pwned\u0007",
    "__proto__",
    "back\\x1b",
    "hi\u00ff\u0080\u009b",
  ];
  let file = "";
  beforeAll(() => {
    const tasks: unknown[] = comms.map((comm, i) => ({ pid: 100 + i, tid: 100 + i, comm, state: "I", flags: 0x00208040, frames: kthreadStack }));
    // An undecided one (an empty stack in S) so the undecided section prints a hostile comm too.
    tasks.push({ pid: 200, tid: 200, comm: "\u001b[2J\u001b[H\n[<0>] x", state: "S", frames: [] });
    file = join(dir, "hostile.json");
    writeFileSync(file, JSON.stringify({ format: "patchsafe-capture", version: 1, complete: true, tasks }));
  });

  for (const verbosity of [[], ["-v"], ["-vv"]]) {
    it(`the text report ${verbosity.join(" ") || "(default)"} carries no raw control bytes and no forged frame line`, () => {
      const r = check(file, "--kallsyms", kallsyms, "--func", "worker_thread", ...verbosity);
      expect(r.status).toBe(1);
      expect(r.stdout).toMatch(/^✗ BLOCKED: /);
      expect(r.stdout.includes("\u001b")).toBe(false);
      expect(r.stdout.includes("\u0007")).toBe(false);
      expect(r.stdout.includes("\u009b")).toBe(false);
      expect(r.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
      expect(r.stdout.split("\n").filter((l) => l.startsWith("[<0>]"))).toEqual([]);
      // The names are there, escaped.
      expect(r.stdout).toContain("a\\x0a[<0>] worker_thread");
      expect(r.stdout).toContain("red\\x1b[31mX");
      expect(r.stdout).toContain("t\\x1b]0;pwned\\x07");
      expect(r.stdout).toContain("__proto__");
      expect(r.stdout).toContain("\\x1b[2J\\x1b[H\\x0a[<0>] x");
    });
  }

  it("--json shows comm with \\xNN escapes (backslash included, so it is reversible)", () => {
    const r = check(file, "--kallsyms", kallsyms, "--func", "worker_thread", "--json");
    expect(r.status).toBe(1);
    const doc = JSON.parse(r.stdout) as {
      blockers: { pid: number; comm: string }[];
      undecided: { pid: number; comm: string }[];
      kernelCheck: { first: { comm: string } | null };
    };
    const byPid = new Map(doc.blockers.map((b) => [b.pid, b.comm]));
    expect(byPid.get(100)).toBe("a\\x0a[<0>] worker_thread+0x98/0x310");
    expect(byPid.get(101)).toBe("red\\x1b[31mX");
    expect(byPid.get(102)).toBe("t\\x1b]0;pwned\\x07");
    expect(byPid.get(103)).toBe("__proto__");
    expect(byPid.get(104)).toBe("back\\x5cx1b");
    expect(byPid.get(105)).toBe("hi\\xff\\x80\\x9b");
    expect(doc.undecided.find((u) => u.pid === 200)?.comm).toBe("\\x1b[2J\\x1b[H\\x0a[<0>] x");
    expect(doc.kernelCheck.first?.comm).toBe("a\\x0a[<0>] worker_thread+0x98/0x310");
    // No raw control character anywhere in the output, escaped by JSON or not.
    expect(r.stdout).not.toMatch(/\\u00(1b|07|0a)|\u001b|\u0007/);
  });
});

describe("the real executable", () => {
  const node = (args: string[], input?: string) => spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: "utf8", input, timeout: 30_000 });

  it("--version and --help", () => {
    const v = node(["--version"]);
    expect(v.status).toBe(0);
    expect(v.stdout).toBe(`patchsafe ${VERSION}\n`);
    const h = node(["--help"]);
    expect(h.status).toBe(0);
    expect(h.stdout).toMatch(/0 safe, 1 blocked, 3 undecided, 2 usage or input error/);
  });

  it("exit 1 with --json: one object on stdout, nothing on stderr", () => {
    const r = node(["check", smallDump, "--kallsyms", kallsyms, "--func", "worker_thread", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(1);
    const doc = JSON.parse(r.stdout) as { schema: number; verdict: string };
    expect(doc.schema).toBe(1);
    expect(doc.verdict).toBe("blocked");
  });

  it("exit 0 reading the dump from standard input ('-')", () => {
    const r = node(["check", "-", "--kallsyms", kallsyms, "--func", "meminfo_proc_show"], smallDumpText);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^✓ SAFE: /);
  });

  it("exit 2 with one line on stderr and no stack trace", () => {
    const r = node(["check", smallDump, "--kallsyms", kallsyms, "--func", "no_such_function_xyz"]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^patchsafe: symbol 'no_such_function_xyz' not found in symbol table: [^\n]*inlined everywhere[^\n]*\n$/);
  });

  it("exit 3 on proc-grep.txt", () => {
    const r = node(["check", join(FIX, "proc-grep.txt"), "--kallsyms", kallsyms, "--func", "meminfo_proc_show"]);
    expect(r.status).toBe(3);
  });
});

function procSelfStackReadable(): boolean {
  try {
    accessSync("/proc/self/stack", constants.R_OK);
    readFileSync("/proc/self/stack");
    return true;
  } catch {
    return false;
  }
}

describe("no arguments: the live inventory", () => {
  const readable = procSelfStackReadable();
  if (!readable) console.warn("skipping the live inventory test: /proc/self/stack is unreadable here (needs root or CAP_SYS_ADMIN)");

  it.skipIf(!readable)("exits 0 and prints a header", () => {
    const r = run([]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout.split("\n")[0]).toMatch(/^patchsafe inventory of .*: \d+ threads/);
    expect(r.stdout).toMatch(/TASKS\s+KINDS\s+FUNCTION/);
  });
});
