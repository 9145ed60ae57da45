/** Inputs too big or too odd (SECURITY.md promise 4): a clear error or a clear result, nothing else. */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../src/cli/main.js";
import { captureLive } from "../src/node/capture.js";
import { check } from "../src/check.js";
import { loadWasmScannerSync } from "../src/node/wasm.js";
import { fixturePath, hostKallsyms, hostTable, patchOf } from "./helpers.js";

let dir = "";
let kallsyms = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "patchsafe-odd-"));
  kallsyms = join(dir, "kallsyms");
  writeFileSync(kallsyms, hostKallsyms());
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const oneLineError = (r: { status: number; stderr: string }, re: RegExp) => {
  expect(r.status).toBe(2);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(re);
  expect(r.stderr).not.toMatch(/\n\s+at /);
};

describe("odd inputs", () => {
  it("an empty file, binary garbage, a NUL byte: a clear error naming the file", () => {
    const empty = join(dir, "empty.txt");
    writeFileSync(empty, "");
    oneLineError(run(["check", empty, "--func", "worker_thread"]), /empty\.txt/);
    const garbage = join(dir, "garbage.bin");
    writeFileSync(garbage, Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 256)));
    oneLineError(run(["check", garbage, "--func", "worker_thread"]), /garbage\.bin/);
    const nul = join(dir, "nul.txt");
    writeFileSync(nul, "[<0>] worker_thread+0x98/0x310\n[<0>] kth\0read+0xfa/0x240\n");
    const r = run(["check", nul, "--kallsyms", kallsyms, "--func", "worker_thread", "--json"]);
    expect([1, 3]).toContain(r.status); // read: the NUL line is an unparsed frame, never dropped
  });

  it("a 10 MB single line is an error or a result, in bounded time", () => {
    const big = join(dir, "line.txt");
    writeFileSync(big, `[<0>] ${"a".repeat(10 * 1024 * 1024)}+0x1/0x2\n`);
    const t0 = Date.now();
    const r = run(["check", big, "--kallsyms", kallsyms, "--func", "worker_thread"]);
    expect([1, 2, 3]).toContain(r.status);
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it("a JSON capture or snapshot too large to be one string: a clear error naming the file, not an internal error", () => {
    // Sparse files of 600 MiB that start like each JSON form (the rest reads as NULs).
    for (const [name, head] of [
      ["big-snapshot.json", '{\n "format": "patchsafe-snapshot",\n "version": 1,'],
      ["big-capture.json", '{"format": "patchsafe-capture", "version": 1, "tasks": ['],
    ]) {
      const file = join(dir, name);
      writeFileSync(file, head);
      execFileSync("truncate", ["-s", "600M", file]);
      oneLineError(run(["check", file, "--func", "worker_thread"]), new RegExp(`${name.replace(".", "\\.")}: a JSON (snapshot|capture) of 600 MiB.* is larger than the 512 MiB`));
      rmSync(file);
    }
  });

  it("a directory and a FIFO", () => {
    oneLineError(run(["check", dir, "--func", "worker_thread"]), /is a directory|cannot read/);
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    // A writer feeds the FIFO and closes it: the dump streams through like any file.
    const writer = spawn("sh", ["-c", `cat '${fixturePath("host/proc-grep.txt")}' > '${fifo}'`]);
    const r = run(["check", fifo, "--kallsyms", kallsyms, "--func", "worker_thread"]);
    writer.kill();
    expect(r.status).toBe(1);
  });

  it("a file that cannot be read (permission) names the file", () => {
    if (process.getuid?.() === 0) {
      console.warn("running as root: permission-denied files are readable, test covers a missing file instead");
      oneLineError(run(["check", join(dir, "missing.txt"), "--func", "worker_thread"]), /missing\.txt: cannot read: no such file/);
      return;
    }
    const f = join(dir, "secret.txt");
    writeFileSync(f, "x", { mode: 0o000 });
    oneLineError(run(["check", f, "--func", "worker_thread"]), /secret\.txt: cannot read: permission denied/);
  });

  it("-o never overwrites an input or writes through a symlink", () => {
    const input = join(dir, "input.txt");
    writeFileSync(input, readFileSync(fixturePath("host/proc-grep.txt")));
    const before = readFileSync(input);
    const r = run(["synth", "--tasks", "10", "--from", input, "-o", input]);
    expect(r.status).toBe(2);
    expect(readFileSync(input)).toEqual(before);
    const link = join(dir, "link");
    execFileSync("ln", ["-s", join(dir, "target"), link]);
    const r2 = run(["synth", "--tasks", "10", "--from", input, "-o", link]);
    expect(r2.status).toBe(2);
    expect(existsSync(join(dir, "target"))).toBe(false);
  });
});

function liveReadable(): boolean {
  try {
    readFileSync("/proc/self/stack");
    return true;
  } catch {
    console.warn("/proc/self/stack unreadable: churn test skipped");
    return false;
  }
}

describe.skipIf(!liveReadable())("capture under churn", () => {
  it("finishes while hundreds of short-lived tasks come and go, and never calls an unread stack clean", () => {
    const churn = spawn("sh", ["-c", "while :; do /bin/true & /bin/true & /bin/true & wait; done"], { stdio: "ignore" });
    try {
      execFileSync("sleep", ["0.3"]);
      for (let round = 0; round < 5; round++) {
        const cap = captureLive();
        const r = check({ capture: cap, symbols: hostTable(), patch: patchOf("meminfo_proc_show"), scanner: loadWasmScannerSync() });
        for (const o of r.verdict.outcomes) {
          if (o.status !== "clean") continue;
          const t = cap.tasks.get(o.task);
          expect(t.stackStatus === "ok" || ((t.state === "Z" || t.state === "X") && t.stackStatus === "empty")).toBe(true);
        }
      }
    } finally {
      churn.kill("SIGKILL");
    }
  });
});
