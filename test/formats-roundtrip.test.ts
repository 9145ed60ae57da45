/**
 * Issue 4, per parser: a generated capture rendered to text in each format and read back (also in
 * random chunks, with CRLF line ends and trailing blanks), and fast-check fuzzing: arbitrary bytes
 * give captures or a PatchsafeError, never another exception, and never hang.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PatchsafeError } from "../src/errors.js";
import { latin1 } from "../src/ingest/bytes.js";
import { createCaptureParser, FORMAT_NAMES, type FormatName, parseCaptures } from "../src/ingest/detect.js";
import { stripEnvelope } from "../src/ingest/envelope.js";

/** `npm run fuzz` raises this (PATCHSAFE_FUZZ_RUNS); CI runs the default. */
const FUZZ_RUNS = process.env.PATCHSAFE_FUZZ_RUNS === undefined ? undefined : Number(process.env.PATCHSAFE_FUZZ_RUNS);
import { type Capture, FrameFlag } from "../src/model.js";

interface GenFrame {
  sym: string;
  off: number;
  size: number;
  mod: string | null;
  guess: boolean;
  addr: bigint;
}
interface GenTask {
  pid: number;
  comm: string;
  state: string;
  frames: GenFrame[];
}

const SYMS = ["schedule", "__schedule", "io_schedule", "worker_thread", "kthread", "ret_from_fork", "do_epoll_wait", "ep_poll", "zio_wait", "link_path_walk.part.0.constprop.0", "_ZL9do_selectiP11fd_set_bits", "__pfx_x"];
const MODS = [null, null, null, "zfs", "spl", "nf_conntrack"];

const frameArb = fc.record({
  sym: fc.constantFrom(...SYMS),
  off: fc.integer({ min: 0, max: 0xfff }),
  size: fc.integer({ min: 0x10, max: 0x2000 }),
  mod: fc.constantFrom(...MODS),
  guess: fc.boolean(),
  addr: fc.bigInt({ min: 0xffffffff81000000n, max: 0xffffffffc0ffffffn }),
});
const commArb = fc
  .array(fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789/:-._ "), { minLength: 1, maxLength: 15 })
  .map((a) => a.join("").trim())
  .filter((s) => s.length > 0 && !s.startsWith("#"));
const taskArb = fc.record({
  pid: fc.integer({ min: 1, max: 4_000_000 }),
  comm: commArb,
  state: fc.constantFrom("S", "D", "I", "T"),
  frames: fc.array(frameArb, { minLength: 1, maxLength: 12 }),
});
const tasksArb = fc.uniqueArray(taskArb, { minLength: 1, maxLength: 8, selector: (t) => t.pid });

const hex = (v: bigint | number) => v.toString(16);
const tok = (f: GenFrame, withSize = true) => `${f.guess ? "? " : ""}${f.sym}+0x${hex(f.off)}${withSize ? `/0x${hex(f.size)}` : ""}${f.mod === null ? "" : ` [${f.mod}]`}`;
const ts = (i: number) => `[${String(100 + i).padStart(5)}.${String(i * 7).padStart(6, "0")}] `;

/** Renderers: the text each format would print for the tasks. */
const RENDER: Record<string, (tasks: GenTask[]) => string> = {
  "sysrq-t (6.6 header, <TASK>)": (tasks) => {
    let n = 0;
    const out = [`${ts(n++)}sysrq: Show State`];
    for (const t of tasks) {
      out.push(`${ts(n++)}task:${t.comm.padEnd(15)} state:${t.state} stack:0     pid:${String(t.pid).padEnd(5)} tgid:${String(t.pid).padEnd(5)} ppid:1      flags:0x00004000`);
      out.push(`${ts(n++)}Call Trace:`, `${ts(n++)} <TASK>`);
      for (const f of t.frames) out.push(`${ts(n++)} ${tok(f)}`);
      out.push(`${ts(n++)} </TASK>`);
    }
    return `${out.join("\n")}\n`;
  },
  "hung-task (4.9-5.9 header, [<addr>] frames, stack words)": (tasks) => {
    const out: string[] = [];
    for (const t of tasks) {
      out.push(`INFO: task ${t.comm}:${t.pid} blocked for more than 120 seconds.`, "      Not tainted 4.9.0 #1", '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.');
      out.push(`${t.comm.padEnd(15)} ${t.state}    0 ${String(t.pid).padStart(5)}      2 0x00000000`);
      out.push(" ffff88047cb37be8 0000000000000046 ffff880700000001 ffff880484614110", "Call Trace:");
      for (const f of t.frames) out.push(` [<${hex(f.addr)}>] ${tok(f)}`);
    }
    return `${out.join("\n")}\n`;
  },
  crash: (tasks) => {
    const out = ["crash> foreach bt"];
    for (const t of tasks) {
      out.push(`PID: ${String(t.pid).padEnd(7)}  TASK: ffff880036b6c560  CPU: 1    COMMAND: "${t.comm}"`);
      t.frames.forEach((f, i) => out.push(`${i < 10 ? " " : ""}#${i} [ffff880035779a70] ${f.sym} at ${hex(f.addr)}${f.mod === null ? "" : ` [${f.mod}]`}`));
      out.push("");
    }
    return `${out.join("\n")}\n`;
  },
  bpftrace: (tasks) => tasks.map((t) => `@[\n${t.frames.map((f) => `    ${f.sym}+${f.off}`).join("\n")}\n]: 3\n`).join(""),
  perf: (tasks) =>
    tasks
      .map((t) => `${t.comm.replace(/ /g, "_")} ${t.pid} [001] 30143.481555: cpu-clock:\n${t.frames.map((f) => `\t${hex(f.addr)} ${f.sym}+0x${hex(f.off)} (${f.mod === null ? "[kernel.kallsyms]" : `[${f.mod}]`})`).join("\n")}\n\n`)
      .join(""),
};

/** What must survive each format, per task: comm, pid and frames as `sym+off/size [mod]`. */
function view(caps: Capture[]): { pid: number | null; comm: string | null; frames: string[] }[] {
  const out: { pid: number | null; comm: string | null; frames: string[] }[] = [];
  for (const c of caps) {
    for (const t of c.tasks) {
      const frames: string[] = [];
      for (let i = t.frameStart; i < t.frameStart + t.frameCount; i++) {
        const fl = c.frames.flags[i];
        if (fl & FrameFlag.UNPARSED) frames.push("<unparsed>");
        else {
          const mod = c.strings.get(c.frames.object[i]);
          frames.push(`${fl & FrameFlag.GUESS ? "? " : ""}${c.strings.get(c.frames.symbol[i])}+${c.frames.offset[i]}${fl & FrameFlag.HAS_SIZE ? `/${c.frames.size[i]}` : ""}${mod === "vmlinux" ? "" : ` [${mod}]`}@${c.frames.address(i) ?? ""}`);
        }
      }
      out.push({ pid: t.tid, comm: t.comm === null ? null : latin1(t.comm, 0, t.comm.length), frames });
    }
  }
  return out;
}

function expected(kind: string, tasks: GenTask[]) {
  return tasks.map((t) => ({
    pid: t.pid,
    comm: kind === "bpftrace" ? null : kind === "perf" ? t.comm.replace(/ /g, "_") : t.comm,
    frames: t.frames.map((f) => {
      const mod = f.mod === null ? "" : ` [${f.mod}]`;
      if (kind === "crash") return `${f.sym}+0${mod}@${f.addr}`;
      if (kind === "bpftrace") return `${f.sym}+${f.off}@`;
      if (kind === "perf") return `${f.sym}+${f.off}${mod}@${f.addr}`;
      const addr = kind.startsWith("hung") ? `${f.addr}` : "";
      return `${f.guess ? "? " : ""}${f.sym}+${f.off}/${f.size}${mod}@${addr}`;
    }),
  }));
}

function chunked(bytes: Uint8Array, cuts: number[], format: FormatName = "auto"): Capture[] {
  const p = createCaptureParser("chunks", format);
  let prev = 0;
  for (const c of [...new Set(cuts)].sort((a, b) => a - b)) {
    p.push(bytes.subarray(prev, c));
    prev = c;
  }
  p.push(bytes.subarray(prev));
  return p.finish();
}

const enc = (s: string) => new TextEncoder().encode(s);

describe("round trips: generated capture → text → capture", () => {
  for (const [kind, render] of Object.entries(RENDER)) {
    const name = kind.split(" ")[0];
    it(`${kind}: same tasks and frames, in any chunking, with CRLF and trailing blanks`, () => {
      fc.assert(
        fc.property(tasksArb, fc.array(fc.nat(), { maxLength: 6 }), fc.boolean(), fc.boolean(), (tasks, cutsRaw, crlf, trailing) => {
          if (name === "bpftrace") for (const t of tasks) t.pid = 0;
          let text = render(tasks);
          if (trailing) text = text.replace(/\n/g, "  \t\n");
          if (crlf) text = text.replace(/\n/g, "\r\n");
          const bytes = enc(text);
          const cuts = cutsRaw.map((c) => c % (bytes.length + 1));
          const want = expected(name, tasks).map((t) => (name === "bpftrace" ? { ...t, pid: null } : t));
          expect(view(parseCaptures(bytes, "gen"))).toEqual(want);
          expect(view(chunked(bytes, cuts))).toEqual(want);
        }),
        { numRuns: 60 },
      );
    });
  }
  it("a generated full sysrq-t with pid 1 and 2 and its trailer is complete", () => {
    const tasks: GenTask[] = [1, 2, 77].map((pid) => ({ pid, comm: `t${pid}`, state: "S", frames: [{ sym: "schedule", off: 1, size: 2, mod: null, guess: false, addr: 0n }] }));
    const [c] = parseCaptures(enc(`${RENDER["sysrq-t (6.6 header, <TASK>)"](tasks)}[  200.000000] Sched Debug Version: v0.11\n`), "g");
    expect(c.complete).toBe(true);
    const [cut] = parseCaptures(enc(RENDER["sysrq-t (6.6 header, <TASK>)"](tasks).split("\n").slice(0, -3).join("\n")), "g");
    expect(cut.complete).toBe(false);
  });
});

describe("envelope", () => {
  const body = (s: string) => {
    const b = enc(s);
    const e = stripEnvelope(b, 0, b.length);
    return [latin1(b, e.body, b.length), e.time];
  };
  it("strips every prefix generation and keeps the kernel's own indentation", () => {
    expect(body("[ 8038.216853]  schedule+0x1/0x2")).toEqual([" schedule+0x1/0x2", 8038.216853]);
    expect(body("[  610.364848][ T1478] Call trace:")[0]).toBe("Call trace:");
    expect(body("<6>[96339.352688][   T38]  schedule+0x3f/0xa0")[0]).toBe(" schedule+0x3f/0xa0");
    expect(body("<6> [299.373970]  __schedule+0x3bb/0xda0")[0]).toBe(" __schedule+0x3bb/0xda0");
    expect(body("<4>[   79.822940 / 05-03 18:11:50.340] [<c0b3d38c>] (x)")[0]).toBe("[<c0b3d38c>] (x)");
    expect(body("[Thu Nov  2 17:49:55 2023]  </TASK>")[0]).toBe(" </TASK>");
    expect(body("Nov 07 20:31:22 rakete kernel:  ? wait_woken+0x80/0x80")[0]).toBe(" ? wait_woken+0x80/0x80");
    expect(body("Sep  5 14:47:48 ian-host kernel: [  484.288049]  <TASK>")[0]).toBe(" <TASK>");
    expect(body("    May 17 18:48:11 kernel: [ 6141.921740] INFO: task x:5 blocked")[0]).toBe("INFO: task x:5 blocked");
    expect(body("2021-11-29T00:44:00.277108+00:00 testbox kernel: [152349.575566] hi")[0]).toBe("hi");
    expect(body("> > `[ 1.000000] hi")[0]).toBe("hi");
    expect(body("[ 1946.261280][    C0]  <IRQ>")[0]).toBe(" <IRQ>");
  });
});

describe("fuzz: arbitrary bytes never crash or hang a parser", () => {
  const formats = FORMAT_NAMES.filter((f) => f !== "json");
  const piece = fc.constantFrom(
    "[ 1.000000] ", "[ T1] ", "<6>", "task:", " state:D", " stack:0 pid:1 ppid:0 flags:0x0", "Call Trace:", " <TASK>", " </IRQ>", " ? ",
    "schedule+0x1/0x2", " [zfs]", "[<ffffffff81000000>] ", "(x) from [<c0000000>] (y+0x1/0x2)", "INFO: task a:1 blocked for more than 1 seconds.",
    "PID: 1 TASK: ff CPU: 0 COMMAND: \"a\"", "#0 [ff] f at ff", "@[", "]: 1", "\tffffffff81000000 f+0x1 ([kernel.kallsyms])", "x 1 [000] 1.0: ev:",
    "RIP: 0010:f+0x1/0x2", "RIP: 0033:0x1", "<Same stack as pid 1>", "...", "sysrq: Show State", "\n", "\r\n", " ", "a;b;c 1", "    12", "#1  f (a.c:1)",
    "x".repeat(300), " ".repeat(50), ":".repeat(40), "0x", "+0x", "/0x", "(", ")", "[", "]",
  );
  const textArb = fc.array(piece, { maxLength: 60 }).map((a) => enc(a.join("")));
  const bytesArb = fc.oneof(fc.uint8Array({ maxLength: 3000 }), textArb);
  for (const format of formats) {
    it(`--format ${format}`, () => {
      fc.assert(
        fc.property(bytesArb, fc.array(fc.nat(), { maxLength: 4 }), (bytes, cuts) => {
          const t0 = performance.now();
          try {
            const caps = chunked(bytes, cuts.map((c) => c % (bytes.length + 1)), format);
            expect(Array.isArray(caps)).toBe(true);
          } catch (e) {
            if (!(e instanceof PatchsafeError)) throw e;
          }
          expect(performance.now() - t0).toBeLessThan(2000);
        }),
        { numRuns: FUZZ_RUNS ?? (format === "auto" ? 300 : 120) },
      );
    });
  }
  it("long pathological lines stay linear", () => {
    for (const s of ["task:" + " state:".repeat(20000), "INFO: task " + ":1".repeat(30000), `${" ".repeat(100000)}x`, `#0 [ff] ${" at ".repeat(30000)}`, `CPU: 1 PID: 2 Comm: ${" Not tainted".repeat(20000)}`]) {
      const t0 = performance.now();
      try {
        parseCaptures(enc(s), "long");
      } catch (e) {
        expect(e).toBeInstanceOf(PatchsafeError);
      }
      expect(performance.now() - t0).toBeLessThan(1000);
    }
  });
});
