/**
 * `patchsafe synth` (src/cli/synth.ts) and the generator's shares: deterministic per seed, the
 * asked share of tasks in the chosen functions, every output parses and checks, psnap round trip.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { runSynth } from "../src/cli/synth.js";
import { generateProcDump } from "../src/generate/procDump.js";
import { parseProcText } from "../src/ingest/procText.js";
import { parseCaptures } from "../src/ingest/detect.js";
import { frameText } from "../src/ingest/nativeJson.js";
import type { Capture, Task } from "../src/model.js";
import { PatchsafeError } from "../src/errors.js";
import { decodeSnapshot } from "../src/snapshot/psnap.js";
import { fixturePath, hostCapture, hostKallsyms, hostTable, runCheck } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "patchsafe-synth-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const capturePath = fixturePath("host/capture.json");

function synth(args: string[]): { status: number; out: string; err: string } {
  const o = { out: [] as string[], err: [] as string[] };
  const status = runSynth(args, o);
  return { status, out: o.out.join(""), err: o.err.join("") };
}

describe("generator shares", () => {
  const source = hostCapture("capture.json");

  test("a chosen share of tasks is in the chosen function, the rest in none; deterministic", () => {
    const opts = { tasks: 4000, seed: 5, in: [{ object: "vmlinux", name: "do_epoll_wait", share: 0.25 }] };
    const a = generateProcDump(source, opts);
    expect(generateProcDump(source, opts).text).toBe(a.text);
    expect(a.inShare[0]).toBeGreaterThan(0.22);
    expect(a.inShare[0]).toBeLessThan(0.28);
    const r = runCheck(parseProcText(a.text), ["do_epoll_wait"]);
    expect(r.verdict.counts.blocked / 4000).toBeCloseTo(a.inShare[0], 10);
  });

  test("a function no source stack holds is put on top with the symbol table's size, and resolves", () => {
    const t = hostTable();
    const row = t.byName.get("ext4_file_read_iter")?.[0] ?? t.byName.get("vfs_read")![0];
    const name = t.names[row];
    const g = generateProcDump(source, { tasks: 1000, seed: 2, in: [{ object: "vmlinux", name, share: 0.1 }], symbols: t });
    expect(g.text).toContain(`${name}+0x`);
    const cap = parseProcText(g.text);
    const r = runCheck(cap, [name]);
    expect(r.resolved.counts.RESOLVED).toBe(cap.frames.length);
    expect(r.verdict.counts.blocked).toBe(Math.round(g.inShare[0] * 1000));
    expect(r.verdict.counts.undecided).toBe(0);
  });

  test("header shape carries comms", () => {
    const g = generateProcDump(source, { tasks: 30, seed: 1, shape: "header" });
    const cap = parseProcText(g.text);
    expect(cap.tasks).toHaveLength(30);
    expect(cap.tasks.every((x) => x.comm !== null && x.comm.length > 0)).toBe(true);
  });

  /** Per task: tid, pid, comm and its frames as text (what two shapes of one seed must agree on). */
  const tasksOf = (cap: Capture) =>
    [...cap.tasks].map((t) => ({
      tid: t.tid,
      pid: t.pid,
      comm: t.comm === null ? null : Buffer.from(t.comm).toString("latin1"),
      frames: Array.from({ length: t.frameCount }, (_, k) => frameText(cap, t.frameStart + k)),
    }));

  test("sysrq shape: a SysRq-t kernel log the dmesg reader reads back as the same tasks as the /proc shape", () => {
    const opts = { tasks: 600, seed: 4, in: [{ object: "vmlinux", name: "do_epoll_wait", share: 0.3 }] };
    const g = generateProcDump(source, { ...opts, shape: "sysrq" });
    expect(generateProcDump(source, { ...opts, shape: "sysrq" }).text).toBe(g.text);
    const lines = g.text.split("\n");
    expect(lines[0]).toBe("[  100.000000] sysrq: Show State");
    expect(lines[1]).toMatch(/^\[  100\.000001\] task:.{15} state:[RSDTtXZPI] stack:0     pid:\d+ +tgid:\d+ +ppid:\d+ +task_flags:0x[0-9a-f]{4,8} flags:0x00000000$/);
    const caps = parseCaptures(new TextEncoder().encode(g.text), "sysrq.txt");
    expect(caps.map((c) => c.source.format)).toEqual(["sysrq-t"]);
    const fromLog = caps[0];
    // Init and kthreadd are in it (the source's kthreadd, with its stack), and it ends as a real
    // dump does: nothing makes it partial.
    expect(fromLog.complete).toBe(true);
    expect(fromLog.completeness).toEqual([]);
    const log = tasksOf(fromLog);
    const kthreadd = [...source.tasks].find((t) => t.tid === 2)!;
    expect(log.slice(0, 2).map((t) => [t.tid, t.pid])).toEqual([[1, 1], [2, 2]]);
    expect(log[1].comm).toBe("kthreadd");
    expect(log[1].frames).toEqual(Array.from({ length: kthreadd.frameCount }, (_, k) => frameText(source, kthreadd.frameStart + k)));
    const fromProc = parseProcText(generateProcDump(source, { ...opts, shape: "header" }).text);
    // From the third on: the same tasks, comms (SysRq prints 15 bytes; ':' written as '_') and
    // frames as the /proc shape of the seed, in the same order.
    const expected = tasksOf(fromProc).map((t) => ({ ...t, comm: t.comm!.slice(0, 15).replaceAll(":", "_") }));
    expect(log.slice(2)).toEqual(expected.slice(2));
    expect(g.frames).toBe(fromLog.frames.length);
    // Each task keeps the facts of a source task it was resampled from (state, flags, ppid);
    // init's and kthreadd's parent is printed as the idle task, pid 0.
    const facts = new Set([...source.tasks].map((t) => `${t.state ?? "S"}/${t.flags ?? 0}/${t.ppid ?? 1}`));
    const logTasks = [...fromLog.tasks];
    for (const t of logTasks.slice(2)) expect(facts.has(`${t.state}/${t.flags}/${t.ppid}`), `tid ${t.tid}`).toBe(true);
    expect(logTasks.slice(0, 2).map((t) => t.ppid)).toEqual([0, 0]);
    expect(logTasks[1].flags).toBe(kthreadd.flags);
    // And the check finds the same tasks in do_epoll_wait either way.
    const blockedIn = (cap: Capture) => {
      const b = runCheck(cap, ["do_epoll_wait"]).verdict.blockers;
      return new Set([...b.task.subarray(0, b.length)].filter((t) => t >= 2));
    };
    expect(blockedIn(fromLog)).toEqual(blockedIn(fromProc));
    expect(blockedIn(fromLog).size).toBeGreaterThan(150);
  });

  test("sysrq shape: a hostile comm (newline, ' state:', escapes) cannot forge or break a header", () => {
    const evil = new TextEncoder().encode("x state:R\ntask:fake\x1b[31m");
    const tasks: Task[] = [...source.tasks].map((t) => ({ ...t, comm: evil }));
    const hostile = { ...source, tasks } as unknown as Capture;
    const g = generateProcDump(hostile, { tasks: 50, seed: 3, shape: "sysrq" });
    expect(g.text).not.toContain("\x1b");
    const cap = parseCaptures(new TextEncoder().encode(g.text), "sysrq.txt")[0];
    expect(cap.tasks).toHaveLength(50);
    for (const t of cap.tasks) expect(Buffer.from(t.comm!).toString("latin1")).toBe("x state_R_task_");
  });

  test("shares above 1 are refused", () => {
    expect(() => generateProcDump(source, { tasks: 10, seed: 1, in: [{ object: "vmlinux", name: "a", share: 0.6 }, { object: "vmlinux", name: "b", share: 0.6 }] })).toThrow(RangeError);
  });
});

describe("runSynth", () => {
  const kallsyms = join(dir, "kallsyms");
  writeFileSync(kallsyms, hostKallsyms(), "latin1");

  test("writes a /proc dump (mode 0600), reports distinct frames and shares; same seed, same bytes", () => {
    const a = join(dir, "a.txt");
    const b = join(dir, "b.txt");
    const r = synth(["--tasks", "2000", "--seed", "9", "--from", capturePath, "--in", "worker_thread:10%", "-o", a]);
    expect(r.status).toBe(0);
    expect(r.err).toMatch(/wrote 2000 tasks, \d+ frames .* to .*; \d+\.\d+% of frame lines are distinct; in: worker_thread \d+\.\d+% \(asked 10\.00%\)/);
    expect(statSync(a).mode & 0o777).toBe(0o600);
    expect(synth(["--tasks", "2000", "--seed", "9", "--from", capturePath, "--in", "worker_thread:0.1", "-o", b]).status).toBe(0);
    expect(readFileSync(a)).toEqual(readFileSync(b));
    expect(parseProcText(readFileSync(a)).tasks).toHaveLength(2000);
  });

  test("--as psnap writes a snapshot that decodes to the same tasks", () => {
    const p = join(dir, "s.psnap");
    const r = synth(["--tasks", "300", "--from", capturePath, "--kallsyms", kallsyms, "--as", "psnap", "-o", p]);
    expect(r.status).toBe(0);
    const snap = decodeSnapshot(new Uint8Array(readFileSync(p)), p);
    expect(snap.capture.tasks).toHaveLength(300);
    expect(snap.symbols?.count).toBe(hostTable().count);
  });

  test("--as sysrq writes a SysRq-t kernel log (mode 0600) of the asked tasks", () => {
    const p = join(dir, "sysrq.txt");
    const r = synth(["--tasks", "400", "--seed", "2", "--from", capturePath, "--in", "worker_thread:25%", "--as", "sysrq", "-o", p]);
    expect(r.status).toBe(0);
    expect(r.err).toMatch(/wrote 400 tasks, \d+ frames .*, sysrq\) to .*; in: worker_thread \d+\.\d+% \(asked 25\.00%\)/);
    expect(statSync(p).mode & 0o777).toBe(0o600);
    const caps = parseCaptures(new Uint8Array(readFileSync(p)), p);
    expect(caps.map((c) => [c.source.format, c.tasks.length])).toEqual([["sysrq-t", 400]]);
  });

  test("--shape with --as sysrq, bad arguments are usage errors; no write through a symlink", () => {
    const out = join(dir, "x.txt");
    const e = (args: string[]) => {
      try {
        synth(args);
      } catch (err) {
        return err as PatchsafeError;
      }
      throw new Error("no error");
    };
    expect(e(["--tasks", "5", "--from", capturePath, "--as", "sysrq", "--shape", "tail", "-o", out]).code).toBe("E_USAGE");
    expect(e(["--tasks", "5", "--from", capturePath, "--as", "dmesg", "-o", out]).code).toBe("E_USAGE");
    expect(e(["--tasks", "0", "-o", out]).code).toBe("E_USAGE");
    expect(e(["--tasks", "5", "--in", "worker_thread:2", "-o", out]).code).toBe("E_USAGE");
    expect(e(["--tasks", "5", "--in", "worker_thread", "-o", out]).code).toBe("E_USAGE");
    expect(e(["--tasks", "5", "--from", capturePath]).code).toBe("E_USAGE");
    const link = join(dir, "link");
    symlinkSync(join(dir, "target"), link);
    expect(e(["--tasks", "5", "--from", capturePath, "-o", link]).code).toBe("E_IO");
    expect(synth(["--help"]).out).toContain("--in [OBJ:]FUNC:SHARE");
  });
});
