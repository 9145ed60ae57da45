/** convert and the private output rules (0600, no symlink, never over an input), in-process. */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { runConvert } from "../src/cli/convert.js";
import { run } from "../src/cli/main.js";
import { checkSnapshotFile } from "../src/node/fleetCheck.js";
import { loadWasmScannerSync } from "../src/node/wasm.js";
import { PatchsafeError } from "../src/errors.js";
import { readSnapshotFile, writePrivateFile } from "../src/node/snapshotFile.js";
import { captureModel } from "../src/snapshot/compare.js";
import { fixturePath, hostCapture } from "./helpers.js";

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "patchsafe-convert-"));
});
afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

const io = () => ({ out: [] as string[], err: [] as string[] });

test("convert: text → psnap → JSON → psnap, same model; mode 0600", () => {
  const grep = fixturePath("host/proc-grep.txt");
  const a = join(dir, "a.psnap");
  const j = join(dir, "a.json");
  const b = join(dir, "b.psnap");
  let o = io();
  expect(runConvert([grep, "-o", a], o)).toBe(0);
  expect(o.err.join("")).toMatch(/proc-text, 125 task\(s\).*no symbol table/);
  expect(statSync(a).mode & 0o777).toBe(0o600);
  o = io();
  expect(runConvert([a, "-o", j], o)).toBe(0);
  expect(readFileSync(j, "utf8")).toMatch(/^\{\n "format": "patchsafe-snapshot"/);
  expect(runConvert([j, "-o", b, "--psnap"], io())).toBe(0);
  const fixture = hostCapture("proc-grep.txt");
  const want = captureModel({ ...fixture, source: { ...fixture.source, name: grep } });
  expect(captureModel(readSnapshotFile(a).capture)).toEqual(want);
  expect(captureModel(readSnapshotFile(b).capture)).toEqual(want);
  // Several inputs go to a directory, one snapshot each.
  const out = join(dir, "many");
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  expect(runConvert([grep, fixturePath("host/capture.json"), "-o", out], io())).toBe(0);
  expect(readSnapshotFile(join(out, "proc-grep.psnap")).capture.tasks.length).toBe(125);
  expect(readSnapshotFile(join(out, "capture.psnap")).header.source.format).toBe("patchsafe-capture");
  expect(() => runConvert([grep, grep, "-o", join(dir, "x.psnap")], io())).toThrow(/several INPUTs/);
});

test("output never goes through a symlink, over an input or a non-regular file; existing files become 0600", () => {
  const target = join(dir, "victim");
  writeFileSync(target, "keep");
  const link = join(dir, "link.psnap");
  symlinkSync(target, link);
  expect(() => writePrivateFile(link, "x")).toThrow(/symlink/);
  expect(readFileSync(target, "utf8")).toBe("keep");
  const input = join(dir, "in.txt");
  writeFileSync(input, readFileSync(fixturePath("host/proc-grep.txt")));
  expect(() => runConvert([input, "-o", input], io())).toThrow(/over the input/);
  expect(() => writePrivateFile(dir, "x")).toThrow(PatchsafeError);
  const loose = join(dir, "loose.psnap");
  writeFileSync(loose, "old");
  chmodSync(loose, 0o644);
  writePrivateFile(loose, "new");
  expect(statSync(loose).mode & 0o777).toBe(0o600);
});

/** A complete sysrq-t dump and a kallsyms whose .noinstr.text holds a function on no stack. */
const NOINSTR_KALLSYMS = `ffffffff81000000 T _text
ffffffff81001000 T do_syscall_64
ffffffff81001400 T __schedule
ffffffff81002400 T schedule
ffffffff81002500 T schedule_hrtimeout_range
ffffffff81002600 T do_epoll_wait
ffffffff81002c00 T __x64_sys_epoll_wait
ffffffff81002e00 T kthreadd
ffffffff81003200 T do_nanosleep
ffffffff81003400 T hrtimer_nanosleep
ffffffff81003600 T __x64_sys_nanosleep
ffffffff81003700 T ret_from_fork
ffffffff81003900 T ret_from_fork_asm
ffffffff81004000 T __noinstr_text_start
ffffffff81004000 T exc_nmi_handler_x
ffffffff81004200 T __noinstr_text_end
ffffffff81004200 T __entry_text_start
ffffffff81004200 T entry_SYSCALL_64_after_hwframe
ffffffff81004300 T __entry_text_end
ffffffff81004300 T _etext
`;

test("a redacted snapshot keeps the unpatchable verdict its full table gives (section rows are used)", () => {
  // (No frame at a function's end: without an addressed table its owner is unknown, see below.)
  const dump = join(dir, "sysrq-t-inside.txt");
  writeFileSync(dump, readFileSync(fixturePath("ingest-gaps/sysrq-t-base.txt"), "latin1").replace("schedule_hrtimeout_range+0x10/0x10", "schedule_hrtimeout_range+0x8/0x10"));
  const ks = join(dir, "noinstr-kallsyms");
  writeFileSync(ks, NOINSTR_KALLSYMS);
  const verdictOf = (...args: string[]) => {
    const r = run(["check", ...args, "--func", "exc_nmi_handler_x", "--json"]);
    return { status: r.status, reasons: (JSON.parse(r.stdout) as { reasons: { code: string }[] }).reasons.map((x) => x.code) };
  };
  // The original: exc_nmi_handler_x is in .noinstr.text, which cannot be live-patched.
  expect(verdictOf(dump, "--kallsyms", ks)).toEqual({ status: 3, reasons: ["unpatchable"] });
  for (const out of ["red.psnap", "red.json"]) {
    const file = join(dir, out);
    expect(runConvert([dump, "--kallsyms", ks, "--redact", "-o", file], io())).toBe(0);
    expect(readSnapshotFile(file).symbols?.hasAddresses).toBe(false);
    // Was: exit 0 (safe): the redacted table was dropped with its section rows.
    expect(verdictOf(file)).toEqual({ status: 3, reasons: ["unpatchable"] });
    expect(verdictOf(file, "--model", "kpatch").reasons).toContain("unpatchable");
    const host = checkSnapshotFile(file, { name: null, replace: false, funcs: [{ object: "vmlinux", oldName: "exc_nmi_handler_x", oldSympos: 0, newName: null, newSize: null, force: false }], ranges: [] }, { model: "livepatch", direction: "apply", partialOk: false, strict: false }, loadWasmScannerSync());
    expect(host.verdict).toBe("undecided");
  }
});

test("a frame at a function's end (off == size) is not called clean by a check without an addressed table (redacted snapshot)", () => {
  // do_nanosleep+0x100/0x100 is the first byte after do_nanosleep: the kernel attributes it to
  // next_fn_x, which starts there. With the full table the check says blocked.
  const dump = join(dir, "sysrq-t-end.txt");
  writeFileSync(dump, readFileSync(fixturePath("ingest-gaps/sysrq-t-base.txt"), "latin1").replace("schedule_hrtimeout_range+0x10/0x10", "schedule_hrtimeout_range+0x8/0x10").replace("do_nanosleep+0x10/0x180", "do_nanosleep+0x100/0x100"));
  const ks = join(dir, "next-kallsyms");
  writeFileSync(ks, NOINSTR_KALLSYMS.replace("ffffffff81003400 T hrtimer_nanosleep", "ffffffff81003300 T next_fn_x\nffffffff81003400 T hrtimer_nanosleep"));
  const statusOf = (...args: string[]) => run(["check", ...args, "--func", "next_fn_x"]).status;
  expect(statusOf(dump, "--kallsyms", ks)).toBe(1);
  for (const out of ["end-red.psnap", "end-red.json"]) {
    const file = join(dir, out);
    expect(runConvert([dump, "--kallsyms", ks, "--redact", "-o", file], io())).toBe(0);
    // Was: exit 0 (safe): the frame was attributed to do_nanosleep only.
    expect(statusOf(file)).toBe(3);
  }
  // The same dump without --kallsyms: the owner of that byte is just as unknown.
  expect(statusOf(dump)).toBe(3);
  // A frame inside its function stays clean.
  writeFileSync(dump, readFileSync(dump, "latin1").replace("do_nanosleep+0x100/0x100", "do_nanosleep+0xf0/0x100"));
  expect(statusOf(dump)).toBe(0);
});

test("a JSON snapshot without a kernel fact or a task's patch_state is refused, not read as harmless", () => {
  const dump = join(dir, "sysrq-t-facts.txt");
  writeFileSync(dump, readFileSync(fixturePath("ingest-gaps/sysrq-t-base.txt"), "latin1").replace("schedule_hrtimeout_range+0x10/0x10", "schedule_hrtimeout_range+0x8/0x10"));
  const file = join(dir, "facts.json");
  expect(runConvert([dump, "-o", file], io())).toBe(0);
  const text = readFileSync(file, "utf8");
  const statusOf = (json: string) => {
    writeFileSync(file, json);
    return run(["check", file, "--func", "nonexistent_fn_q"]).status;
  };
  expect(statusOf(text)).toBe(0);
  // No reliable stack traces: no task can be switched by a stack check.
  const unreliable = text.replace('"reliableStacktrace": null', '"reliableStacktrace": false');
  expect(statusOf(unreliable)).toBe(3);
  // Was: exit 0 (safe): the absent fact read as null, i.e. reliable.
  expect(statusOf(unreliable.replace('    "reliableStacktrace": false,\n', ""))).toBe(2);
  // patch_state 1 on a task with no transition recorded: the recorded stack is not the host's.
  const mid = text.replace('"patchState":null', '"patchState":1');
  expect(statusOf(mid)).toBe(3);
  // Was: exit 0 (safe): the absent patch_state read as unknown.
  expect(statusOf(mid.replace(',"patchState":1', ""))).toBe(2);
  // A task in state R: runnable or running, a capture cannot tell.
  const running = text.replace('"state":"S"', '"state":"R"');
  expect(statusOf(running)).toBe(3);
  // Was: exit 0 (safe): the absent state read as unknown, and a task with frames was clean.
  expect(statusOf(running.replace(',"state":"R"', ""))).toBe(2);
});
