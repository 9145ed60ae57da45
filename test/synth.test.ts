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

  test("--as sysrq says it is not supported; bad arguments are usage errors; no write through a symlink", () => {
    const out = join(dir, "x.txt");
    const e = (args: string[]) => {
      try {
        synth(args);
      } catch (err) {
        return err as PatchsafeError;
      }
      throw new Error("no error");
    };
    expect(e(["--tasks", "5", "--from", capturePath, "--as", "sysrq", "-o", out]).code).toBe("E_UNSUPPORTED");
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
