import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PatchsafeError } from "../src/errors.js";
import { latin1 } from "../src/ingest/bytes.js";
import { captureToNativeJson, frameText, parseNativeJson } from "../src/ingest/nativeJson.js";
import { parseProcText, ProcTextParser } from "../src/ingest/procText.js";
import { parseProcTextReference } from "../src/ingest/procTextReference.js";
import { type Capture, FrameFlag } from "../src/model.js";
import { fixtureBytes, hostCapture, normalize } from "./helpers.js";


function parseInChunks(bytes: Uint8Array, cuts: number[]): Capture {
  const p = new ProcTextParser("chunks");
  let prev = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    p.push(bytes.subarray(prev, c));
    prev = c;
  }
  p.push(bytes.subarray(prev));
  return p.finish();
}

const enc = (s: string) => new Uint8Array([...s].map((c) => c.charCodeAt(0) & 0xff));

describe("/proc text shapes", () => {
  it("grep -H: one task per path, EPERM lines become unreadable tasks", () => {
    const cap = hostCapture("proc-grep.txt");
    const unreadable = cap.tasks.filter((t) => t.stackStatus === "unreadable");
    expect(unreadable.length).toBe(13);
    expect(unreadable.every((t) => t.pid === 1 && t.errno === "EPERM")).toBe(true);
    const kthreadd = cap.tasks.find((t) => t.tid === 2)!;
    expect(kthreadd.frameCount).toBe(3);
    expect(frameText(cap, kthreadd.frameStart)).toMatch(/^kthreadd\+0x[0-9a-f]+\/0x[0-9a-f]+$/);
    expect(new Set(cap.tasks.map((t) => `${t.pid}/${t.tid}`)).size).toBe(cap.tasks.length);
  });

  it("tail -n +1: ==> headers; an error after its own header marks that task, not a new one", () => {
    const cap = hostCapture("proc-tail.txt");
    const last = cap.tasks.get(cap.tasks.length - 1);
    expect(last.pid).toBe(1);
    expect(last.stackStatus).toBe("unreadable");
    expect(cap.tasks.filter((t) => t.pid === 1 && t.tid === 1)).toHaveLength(1);
    // The same host, a few seconds apart: the same kthread stacks.
    const grep = hostCapture("proc-grep.txt");
    const t2 = (c: Capture) => c.tasks.find((t) => t.tid === 2)!;
    expect(frameText(cap, t2(cap).frameStart)).toBe(frameText(grep, t2(grep).frameStart));
  });

  it("== /proc/PID/task/TID comm headers keep the comm bytes raw", () => {
    const cap = parseProcText(enc("== /proc/12/task/13 my comm\xff\n[<0>] do_nanosleep+0x67/0x190\n== /proc/12/task/14\n[<0>] futex_wait+0x9a/0x150\n"));
    expect(cap.tasks).toHaveLength(2);
    expect([...cap.tasks.get(0).comm!]).toEqual([...enc("my comm\xff")]);
    expect(cap.tasks.get(0).pid).toBe(12);
    expect(cap.tasks.get(0).tid).toBe(13);
    expect(cap.tasks.get(1).comm).toBeNull();
  });

  it("bare lines form one anonymous task; module and build-id brackets", () => {
    const cap = parseProcText("[<0>] zfs_read+0x1a/0x80 [zfs 73d1d70efcde0e1153031d2c7f442a604a96f657]\n[<0>] vfs_read+0x9/0x20\n");
    expect(cap.tasks).toHaveLength(1);
    expect(cap.tasks.get(0).pid).toBeNull();
    expect(cap.strings.get(cap.frames.object[0])).toBe("zfs");
    expect(cap.strings.get(cap.frames.buildId[0])).toBe("73d1d70efcde0e1153031d2c7f442a604a96f657");
    expect(cap.strings.get(cap.frames.object[1])).toBe("vmlinux");
  });

  it("a trace without a header in a dump that has headers is the tail of a cut stack: truncated", () => {
    // `tail -n +1 /proc/*/task/*/stack | tail -n 300`: the first task's head (its innermost
    // frames, maybe in the patched function) is gone; the rest reached its bottom and read clean.
    const text = [
      "[<0>] ksys_read+0x6b/0xe0",
      "[<0>] do_syscall_64+0x82/0x850",
      "[<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e",
      "==> /proc/2/task/2/stack <==",
      "[<0>] kthreadd+0x1b2/0x240",
      "[<0>] ret_from_fork+0x166/0x190",
    ].join("\n");
    const cap = parseProcText(text);
    expect(cap.tasks.map((t) => [t.tid, t.stackStatus])).toEqual([[null, "truncated"], [2, "ok"]]);
    expect(cap.completeness.map((r) => r.code)).toContain("anonymous-stacks");
    expect(normalize(cap)).toEqual(parseProcTextReference(text));
    // Bare lines alone (`cat /proc/PID/stack`) have no header by design: not truncated.
    expect(parseProcText(text.split("\n").slice(0, 3).join("\n")).tasks.get(0).stackStatus).toBe("ok");
  });

  it("old kernels: real addresses, the 0xffffffffffffffff end marker, 64 lines without it = truncated", () => {
    const old = "[<ffffffff8112291c>] pipe_wait+0x61/0x7b\n[<ffffffff81122a4c>] pipe_read+0x13c/0x2d0\n[<ffffffffffffffff>] 0xffffffffffffffff\n";
    const a = parseProcText(`/proc/5/stack:${old.split("\n").filter(Boolean).join("\n/proc/5/stack:")}\n`);
    expect(a.tasks.get(0).endMarker).toBe(true);
    expect(a.tasks.get(0).frameCount).toBe(2);
    expect(a.frames.address(0)).toBe(0xffffffff8112291cn);
    expect(a.warnings.map((w) => w.code)).toContain("real-addresses");
    const long = Array.from({ length: 64 }, (_, i) => `[<ffffffff81000${(100 + i).toString(16)}>] f${i}+0x1/0x10`).join("\n");
    expect(parseProcText(long).tasks.get(0).stackStatus).toBe("truncated");
    expect(parseProcText(`${long}\n[<ffffffffffffffff>] 0xffffffffffffffff\n`).tasks.get(0).stackStatus).toBe("ok");
    const newEra = Array.from({ length: 64 }, (_, i) => `[<0>] f${i}+0x1/0x10`).join("\n");
    expect(parseProcText(newEra).tasks.get(0).stackStatus).toBe("truncated");
    expect(parseProcText(Array.from({ length: 63 }, (_, i) => `[<0>] f${i}+0x1/0x10`).join("\n")).tasks.get(0).stackStatus).toBe("ok");
  });

  it("a line inside a task that is not a frame is kept as an unparsed frame; lines outside are counted", () => {
    const cap = parseProcText("some shell prompt $\n==> /proc/3/task/3/stack <==\n[<0>] rescuer_thread+0x2fd/0x420\nGARBAGE here\n");
    expect(cap.warnings.map((w) => w.code)).toContain("ignored-lines");
    const t = cap.tasks.get(0);
    expect(t.frameCount).toBe(2);
    expect(cap.frames.flags[t.frameStart + 1] & FrameFlag.UNPARSED).toBeTruthy();
    expect(cap.frames.line[t.frameStart + 1]).toBe(4);
  });

  it("CRLF line ends and trailing blanks are tolerated", () => {
    const cap = parseProcText("[<0>] kthread+0xfa/0x240   \r\n[<0>] ret_from_fork+0x166/0x190\r\n");
    expect(cap.frames.length).toBe(2);
    expect(frameText(cap, 0)).toBe("kthread+0xfa/0x240");
  });
});

describe("streaming: chunk boundaries anywhere", () => {
  const dump = fixtureBytes("host/proc-grep.txt");
  const whole = normalize(parseProcText(dump));

  it("every single cut position in a small dump gives the same capture", () => {
    const small = dump.subarray(0, 2000);
    const ref = normalize(parseProcText(small));
    for (let c = 0; c <= small.length; c++) expect(normalize(parseInChunks(small, [c]))).toEqual(ref);
  });

  it("random multi-cut splits of the real dump give the same capture", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: dump.length }), { maxLength: 40 }), (cuts) => {
        expect(normalize(parseInChunks(dump, cuts))).toEqual(whole);
      }),
      { seed: 20261130, numRuns: 60 },
    );
  });
});

// A generator of /proc text dumps in every shape, with noise, for the differential test.
const name = fc.stringMatching(/^[a-z_][a-z0-9_]{0,10}(\.(isra|part|constprop)\.[0-9])?$/);
const hex = (max: number) => fc.integer({ min: 0, max }).map((n) => n.toString(16));
const frameLine = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(name, hex(0xfff), hex(0xfff)).map(([n, o, s]) => `[<0>] ${n}+0x${o}/0x${s}`) },
  { weight: 2, arbitrary: fc.tuple(name, hex(0xfff), hex(0xfff), fc.constantFrom("zfs", "nfs", "ext4")).map(([n, o, s, m]) => `[<0>] ${n}+0x${o}/0x${s} [${m}]`) },
  { weight: 1, arbitrary: fc.tuple(hex(0xffffff), name, hex(0xfff), hex(0xfff)).map(([a, n, o, s]) => `[<ffffffff81${a.padStart(6, "0")}>] ${n}+0x${o}/0x${s}`) },
  { weight: 1, arbitrary: fc.constant("[<ffffffffffffffff>] 0xffffffffffffffff") },
  { weight: 1, arbitrary: hex(0xffffff).map((a) => `[<0>] 0xffffffffc0${a.padStart(6, "0")}`) },
  { weight: 1, arbitrary: fc.constantFrom("garbage", "[<0>] +0x1/0x2", "[<zz>] foo", "[<0>]", "[<0>] foo+0x/0x1", "  ") },
);
const taskBlock = fc.tuple(
  fc.integer({ min: 1, max: 99999 }),
  fc.integer({ min: 1, max: 99999 }),
  fc.constantFrom("grep", "tail", "header", "bare", "error"),
  fc.array(frameLine, { maxLength: 8 }),
  fc.stringMatching(/^[ -~]{0,15}$/),
).map(([pid, tid, shape, lines, comm]) => {
  const path = `/proc/${pid}/task/${tid}/stack`;
  switch (shape) {
    case "grep":
      return lines.map((l) => `${path}:${l}`).join("\n");
    case "tail":
      return [`==> ${path} <==`, ...lines, ""].join("\n");
    case "header":
      return [`== /proc/${pid}/task/${tid}${comm.trim() === comm && comm !== "" ? ` ${comm}` : ""}`, ...lines].join("\n");
    case "error":
      return `grep: ${path}: Operation not permitted`;
    default:
      return lines.join("\n");
  }
});

describe("differential: byte tokenizer vs the string reference", () => {
  it("agree on generated dumps of every shape", () => {
    fc.assert(
      fc.property(fc.array(taskBlock, { maxLength: 12 }), fc.boolean(), (blocks, crlf) => {
        let text = `${blocks.filter((b) => b !== "").join("\n")}\n`;
        if (crlf) text = text.replace(/\n/g, "\r\n");
        expect(normalize(parseProcText(text))).toEqual(parseProcTextReference(text));
      }),
      { seed: 42, numRuns: 500 },
    );
  });

  it("agree on the real fixtures", () => {
    for (const f of ["host/proc-grep.txt", "host/proc-tail.txt"]) {
      const bytes = fixtureBytes(f);
      expect(normalize(parseProcText(bytes))).toEqual(parseProcTextReference(latin1(bytes, 0, bytes.length)));
    }
  });
});

describe("native JSON capture", () => {
  it("round-trips the live capture fixture", () => {
    const cap = hostCapture("capture.json");
    expect(cap.tasks.length).toBeGreaterThan(50);
    const again = parseNativeJson(captureToNativeJson(cap));
    expect(normalize(again)).toEqual(normalize(cap));
    expect(again.host).toEqual(cap.host);
    expect(again.tasks.map((t) => [t.state, t.flags, t.startTime, t.ppid])).toEqual(cap.tasks.map((t) => [t.state, t.flags, t.startTime, t.ppid]));
  });

  it("keeps `?` guesses, regs sections, unparsed lines and arbitrary comm bytes", () => {
    const cap = parseNativeJson(
      JSON.stringify({
        format: "patchsafe-capture",
        version: 1,
        tasks: [{ pid: 1, tid: 1, comm: "a\n\u001b[31m\u00ff", state: "S", frames: ["? foo+0x1/0x10", { text: "bar+0x2/0x20", regs: true, address: "0xffffffff81000002" }, { unparsed: true }, "baz+0x0/0x8 [m]"] }],
      }),
    );
    expect([...cap.tasks.get(0).comm!]).toEqual([0x61, 0x0a, 0x1b, 0x5b, 0x33, 0x31, 0x6d, 0xff]);
    expect(cap.frames.flags[0] & FrameFlag.GUESS).toBeTruthy();
    expect(cap.frames.flags[1] & FrameFlag.REGS).toBeTruthy();
    expect(cap.frames.address(1)).toBe(0xffffffff81000002n);
    expect(cap.frames.flags[2] & FrameFlag.UNPARSED).toBeTruthy();
    expect(normalize(parseNativeJson(captureToNativeJson(cap)))).toEqual(normalize(cap));
  });

  it("rejects bad documents with the path of the bad field, and newer versions", () => {
    const bad: [unknown, RegExp][] = [
      [{ format: "patchsafe-capture", version: 2, tasks: [] }, /newer than this patchsafe reads/],
      [{ format: "other", version: 1, tasks: [] }, /\$\.format/],
      [{ format: "patchsafe-capture", version: 1, tasks: [{ pid: -1 }] }, /\$\.tasks\[0\]\.pid/],
      [{ format: "patchsafe-capture", version: 1, tasks: [{ frames: ["not a frame!!"] }] }, /\$\.tasks\[0\]\.frames\[0\]/],
      [{ format: "patchsafe-capture", version: 1, tasks: [{ comm: "\u0100" }] }, /comm/],
    ];
    for (const [doc, re] of bad) expect(() => parseNativeJson(JSON.stringify(doc), "x.json")).toThrow(re);
    try {
      parseNativeJson('{\n "format": "patchsafe-capture",\n "version": 1,\n "tasks": [,]\n}', "y.json");
      expect.unreachable();
    } catch (e) {
      expect((e as PatchsafeError).describe()).toMatch(/^y\.json:4: not valid JSON/);
    }
  });
});
