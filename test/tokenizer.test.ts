/**
 * The wasm /proc tokenizer path (assembly/tokenize.ts + ProcTextParser.fastRun) against the
 * TypeScript line path: equal captures task by task (frames compared through frameLine, since
 * tokenized tasks of one stack share rows), on fixtures, generated dumps, and seeded random line
 * soups of every shape the line path knows, pushed in random chunks through tiny buffers (so
 * partial lines, a full event buffer and growInput all happen). Release and debug wasm.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { generateProcDump } from "../src/generate/procDump.js";
import { parseCaptures } from "../src/ingest/detect.js";
import { encodeLatin1 } from "../src/ingest/bytes.js";
import { ProcTokenizer } from "../src/ingest/procTokenizer.js";
import type { Capture } from "../src/model.js";
import { readCaptureFiles } from "../src/node/io.js";
import { loadTokenizerModuleSync } from "../src/node/wasm.js";
import { toJsonReport, writeJsonReport } from "../src/report/json.js";
import { FIXTURES, hostCapture, normalize, runCheck } from "./helpers.js";

const BUILDS = ["release", "debug"] as const;

/** Everything a capture says, per task, independent of how rows are laid out. */
function facts(cap: Capture) {
  return {
    tasks: normalize(cap).map((t, i) => ({ ...t, line: cap.tasks.get(i).line, state: cap.tasks.get(i).state })),
    warnings: cap.warnings,
    completeness: cap.completeness,
    source: cap.source,
    complete: cap.complete,
  };
}

function viaLines(bytes: Uint8Array): ReturnType<typeof facts>[] | string {
  try {
    return parseCaptures(bytes, "x", "proc").map(facts);
  } catch (e) {
    return (e as Error).message;
  }
}

function viaTokenizer(bytes: Uint8Array, build: (typeof BUILDS)[number], chunks: number[] = [], inputCapacity?: number): ReturnType<typeof facts>[] | string {
  const module = loadTokenizerModuleSync(build);
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const c of chunks) {
    if (at >= bytes.length) break;
    parts.push(bytes.subarray(at, Math.min(bytes.length, at + c)));
    at += c;
  }
  if (at < bytes.length) parts.push(bytes.subarray(at));
  try {
    return parseCaptures(parts, "x", "proc", { procTokenizer: () => new ProcTokenizer(module, { inputCapacity }) }).map(facts);
  } catch (e) {
    return (e as Error).message;
  }
}

const source = hostCapture("capture.json");

describe("tokenizer path = line path", () => {
  test.each(BUILDS)("fixtures and generated dumps (%s)", (build) => {
    const files = ["host/proc-grep.txt", "host/proc-tail.txt", "formats/proc-stack_new_x86_5.9_golang_02.txt", "formats/proc-stack_old_x86_4.x_kaslr_indented_04.txt", "formats/proc-stack_new_x86_5.3-c++_mangled_05.txt", "formats/hand_proc-old_end-marker_x86_4.4.txt"].map((f) => new URL(f, FIXTURES));
    for (const f of files) {
      const bytes = new Uint8Array(readFileSync(f));
      expect(viaTokenizer(bytes, build), f.pathname).toEqual(viaLines(bytes));
    }
    for (const shape of ["grep", "tail", "header"] as const) {
      const { text } = generateProcDump(source, { tasks: 2000, seed: 5, shape });
      const bytes = encodeLatin1(text);
      expect(viaTokenizer(bytes, build, [4093, 77, 1 << 16], 256)).toEqual(viaLines(bytes));
    }
  });

  test("a generated grep dump shares rows: few rows for many tasks", () => {
    const { text } = generateProcDump(source, { tasks: 5000, seed: 2, shape: "grep" });
    const module = loadTokenizerModuleSync("release");
    const [cap] = parseCaptures(encodeLatin1(text), "x", "proc", { procTokenizer: () => new ProcTokenizer(module) });
    expect(cap.sharedRows).toBe(true);
    const framesInTasks = cap.tasks.toArray().reduce((n, t) => n + t.frameCount, 0);
    expect(cap.frames.length).toBeLessThan(framesInTasks / 10);
    const [plain] = parseCaptures(encodeLatin1(text), "x", "proc");
    expect(plain.sharedRows).toBeFalsy();
    expect(plain.frames.length).toBe(framesInTasks);
  });

  // Lines of every shape the line path treats differently, with few pids so tasks continue,
  // interleave and repeat.
  const frameText = fc.constantFrom(
    "[<0>] ep_poll+0x4b0/0x510",
    "[<0>] do_epoll_wait+0x588/0x5e0",
    "[<0>] worker_thread+0x98/0x310",
    "[<0>] kthread+0xe5/0x120",
    "[<ffffffff8112291c>] pipe_wait+0x61/0x7b",
    "[<ffffffffffffffff>] 0xffffffffffffffff",
    "[<0>] ? foo+0x1/0x2",
    "[<0>] bar+0x10/0x20 [mod]",
    "[<0>] 0xffffffffc0001234",
    "garbage",
    "",
    " [<0>] ep_poll+0x4b0/0x510",
    "[<0>] ep_poll+0x4b0/0x510 ",
  );
  const path = fc.tuple(fc.constantFrom("1", "2", "02", "3", "1234567890", "4"), fc.constantFrom("1", "2", "3", "01", "98765432101"), fc.boolean()).map(([p, t, task]) => (task ? `/proc/${p}/task/${t}/stack` : `/proc/${p}/stack`));
  const ending = fc.constantFrom("", "", "", "\r", " ", "\t", " \r", "\r\r", "\r \r");
  const line = fc.oneof(
    { weight: 12, arbitrary: fc.tuple(path, frameText, ending).map(([p, f, e]) => `${p}:${f}${e}`) },
    { weight: 2, arbitrary: fc.tuple(frameText, ending).map(([f, e]) => `${f}${e}`) },
    { weight: 1, arbitrary: fc.tuple(path, ending).map(([p, e]) => `grep: ${p}: Operation not permitted${e}`) },
    { weight: 1, arbitrary: path.map((p) => `==> ${p} <==`) },
    { weight: 1, arbitrary: path.map((p) => `== ${p.replace(/\/stack$/, "")} comm x`) },
    { weight: 1, arbitrary: fc.constantFrom("", " ", "\r", "> /proc/1/task/1/stack:[<0>] quoted+0x1/0x2", "$ cat /proc/7/stack", "/proc/x/stack:[<0>] a+0x1/0x2", "/proc/1/task/1/stack", "/proc/1/task/1/stackx:[<0>] a+0x1/0x2", "/pr", "/p") },
  );
  const input = fc.tuple(fc.array(line, { minLength: 1, maxLength: 120 }), fc.boolean()).map(([ls, lastNewline]) => `${ls.join("\n")}${lastNewline ? "\n" : ""}`);

  test.each(BUILDS)("seeded random line soups in random chunks through tiny buffers (%s)", (build) => {
    fc.assert(
      fc.property(input, fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 20 }), fc.constantFrom(16, 64, 4096), (text, chunks, cap) => {
        const bytes = encodeLatin1(text);
        expect(viaTokenizer(bytes, build, chunks, cap)).toEqual(viaLines(bytes));
      }),
      { seed: 20261130, numRuns: build === "release" ? 600 : 200 },
    );
  });

  // The tokenizer guesses a run's stack from its first text (the last stack that began with it)
  // and checks the guess line by line: stacks over a tiny alphabet, so first texts are shared by
  // stacks that then differ, end early or go on longer than the guess. One text is another's
  // prefix: a line checked against the guess must end where the guessed text ends.
  test.each(BUILDS)("stacks that share first frames and then differ, end early or run longer (%s)", (build) => {
    const texts = ["[<0>] a+0x1/0x2", "[<0>] b+0x1/0x2", "[<0>] c+0x1/0x2", "[<0>] a+0x1/0x3", "[<0>] a+0x1/0x20"];
    const stack = fc.array(fc.integer({ min: 0, max: texts.length - 1 }), { minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(fc.array(stack, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { minLength: 1, maxLength: 200 }), (stacks, picks) => {
        const lines: string[] = [];
        picks.forEach((p, task) => {
          for (const t of stacks[p % stacks.length]) lines.push(`/proc/${task + 1}/task/${task + 1}/stack:${texts[t]}`);
        });
        const bytes = encodeLatin1(`${lines.join("\n")}\n`);
        expect(viaTokenizer(bytes, build, [], 4096)).toEqual(viaLines(bytes));
      }),
      { seed: 7, numRuns: build === "release" ? 300 : 100 },
    );
  });

  test("more runs than one event buffer holds, and a line longer than the input buffer", () => {
    const lines: string[] = [];
    for (let i = 0; i < 20000; i++) lines.push(`/proc/${i}/task/${i}/stack:[<0>] f${i % 7}+0x1/0x2`);
    lines.push(`/proc/9/task/9/stack:[<0>] ${"x".repeat(5000)}+0x1/0x2`);
    const bytes = encodeLatin1(lines.join("\n"));
    expect(viaTokenizer(bytes, "release", [], 64)).toEqual(viaLines(bytes));
  });
});

describe("files read straight into the tokenizer's buffer (readCaptureFiles) = the line path", () => {
  test("a generated dump over many reads, with a line longer than the input buffer in it", () => {
    const { text } = generateProcDump(source, { tasks: 6000, seed: 11, shape: "grep" });
    const lines = text.split("\n");
    // A 5 MiB frame line (more than the 4 MiB input buffer: it grows while reading in place).
    lines.splice(lines.length >> 1, 0, `/proc/77/task/77/stack:[<0>] ${"y".repeat(5 << 20)}+0x1/0x2`);
    const bytes = encodeLatin1(lines.join("\n"));
    const dir = mkdtempSync(join(tmpdir(), "patchsafe-tok-"));
    try {
      const file = join(dir, "dump.txt");
      writeFileSync(file, bytes);
      const direct = readCaptureFiles(file).captures;
      expect(direct[0].sharedRows).toBe(true);
      expect(direct.map(facts)).toEqual(parseCaptures(bytes, file, "proc").map(facts));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a check over shared rows = over owned rows", () => {
  const module = loadTokenizerModuleSync("release");
  const dumps = [
    ["generated", encodeLatin1(generateProcDump(source, { tasks: 3000, seed: 9, shape: "grep" }).text)],
    ["host", new Uint8Array(readFileSync(new URL("host/proc-grep.txt", FIXTURES)))],
  ] as const;
  test.each(["livepatch", "kpatch", "quiesce"] as const)("JSON reports equal, model %s", (model) => {
    for (const [name, bytes] of dumps) {
      const [shared] = parseCaptures(bytes, name, "proc", { procTokenizer: () => new ProcTokenizer(module) });
      const [owned] = parseCaptures(bytes, name, "proc");
      expect(shared.sharedRows).toBe(true);
      for (const funcs of [["worker_thread", "do_epoll_wait"], ["smpboot_thread_fn", "kthread"], ["futex_wait", "do_syscall_64"]]) {
        const options = { model, partialOk: true };
        const a = toJsonReport(runCheck(shared, funcs, { options }));
        const b = toJsonReport(runCheck(owned, funcs, { options }));
        expect(a, `${name} ${funcs}`).toEqual(b);
      }
    }
  });
});

describe("the streamed JSON report", () => {
  test("is the text of JSON.stringify(toJsonReport(…), null, 2) for every model", () => {
    const module = loadTokenizerModuleSync("release");
    const bytes = encodeLatin1(generateProcDump(source, { tasks: 9000, seed: 4, shape: "grep" }).text);
    const [cap] = parseCaptures(bytes, "g", "proc", { procTokenizer: () => new ProcTokenizer(module) });
    for (const model of ["livepatch", "kpatch", "quiesce"] as const) {
      for (const funcs of [["worker_thread", "do_epoll_wait"], ["ksys_read"]]) {
        const r = runCheck(cap, funcs, { options: { model } });
        const chunks: string[] = [];
        writeJsonReport(r, null, (c) => chunks.push(c));
        expect(chunks.length).toBeGreaterThan(3);
        expect(chunks.join("")).toBe(`${JSON.stringify(toJsonReport(r), null, 2)}\n`);
      }
    }
  });
});

describe("tokenizer limits", () => {
  test("a line longer than the limit is an input error naming file and line", () => {
    const module = loadTokenizerModuleSync("release");
    const text = `/proc/1/task/1/stack:[<0>] a+0x1/0x2\n/proc/1/task/1/stack:[<0>] ${"x".repeat(5000)}\n`;
    let err: unknown;
    try {
      parseCaptures(encodeLatin1(text), "big.txt", "proc", { procTokenizer: (name) => new ProcTokenizer(module, { inputCapacity: 256, maxLine: 1024, name }) });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "E_INPUT", file: "big.txt", line: 2 });
    expect(String((err as Error).message)).toContain("longer than 1024 bytes");
  });
});

test("a frame line parsed before as a shared run's row keeps its own line in a later header task", () => {
  // Tasks 1-3 share rows (marked SHARED); task 4's frame reuses that parse through the line
  // path's memo and must come out as its own row on line 5, not at its header's line.
  const text = "/proc/1/task/1/stack:[<0>] a+0x1/0x2\n/proc/2/task/2/stack:[<0>] a+0x1/0x2\n/proc/3/task/3/stack:[<0>] a+0x1/0x2\n==> /proc/4/task/4/stack <==\n[<0>] a+0x1/0x2\n";
  const bytes = encodeLatin1(text);
  const module = loadTokenizerModuleSync("release");
  const [cap] = parseCaptures(bytes, "x", "proc", { procTokenizer: () => new ProcTokenizer(module) });
  expect(cap.sharedRows).toBe(true);
  const shared = viaTokenizer(bytes, "release");
  expect(shared).toEqual(viaLines(bytes));
  expect((shared as ReturnType<typeof facts>[])[0].tasks[3].frames[0].line).toBe(5);
});

test("repeats of shared stacks that end in the end marker or hold 64 frames keep their own status (the batched run path)", () => {
  // TokenSink.runs puts a task that repeats a known shared stack straight into the columns; a
  // stack closed by the ULONG_MAX end marker and one of PROC_STACK_MAX frames (truncated) must
  // not take that shortcut unchanged: the line path says what each such task is.
  const marker = (pid: number) => [`/proc/${pid}/task/${pid}/stack:[<ffffffff8112291c>] pipe_wait+0x61/0x7b`, `/proc/${pid}/task/${pid}/stack:[<ffffffffffffffff>] 0xffffffffffffffff`];
  const deep = (pid: number) => Array.from({ length: 64 }, (_, k) => `/proc/${pid}/task/${pid}/stack:[<0>] f${k}+0x1/0x10`);
  const plain = (pid: number) => [`/proc/${pid}/task/${pid}/stack:[<0>] do_epoll_wait+0x1/0x10`];
  const lines: string[] = [];
  for (let pid = 10; pid < 40; pid++) lines.push(...[marker, deep, plain][pid % 3](pid));
  const bytes = encodeLatin1(lines.join("\n") + "\n");
  for (const build of BUILDS) {
    const got = viaTokenizer(bytes, build);
    expect(got).toEqual(viaLines(bytes));
    const tasks = (got as ReturnType<typeof facts>[])[0].tasks;
    expect(tasks.filter((t) => t.stackStatus === "truncated").length).toBe(10);
    expect(tasks.filter((t) => t.endMarker === true).length).toBe(10);
  }
});

test("repeats of a shared stack after a task with a comm (a header line) keep comm null (the batched run path fills the rare columns too)", () => {
  // A `== /proc/PID/task/TID comm` header allocates the task table's comm column; tasks that the
  // batched run path then writes straight into the columns must still read as having no comm.
  const header = ["== /proc/7/task/7 kworker/0:1", "[<0>] worker_thread+0x1/0x10", ""];
  const plain = (pid: number) => [`/proc/${pid}/task/${pid}/stack:[<0>] do_epoll_wait+0x1/0x10`, `/proc/${pid}/task/${pid}/stack:[<0>] do_syscall_64+0x1/0x10`];
  const lines = [...header];
  for (let pid = 100; pid < 400; pid++) lines.push(...plain(pid));
  const bytes = encodeLatin1(lines.join("\n") + "\n");
  for (const build of BUILDS) {
    const got = viaTokenizer(bytes, build);
    expect(got).toEqual(viaLines(bytes));
    const tasks = (got as ReturnType<typeof facts>[])[0].tasks;
    expect(tasks.length).toBe(301);
    expect(tasks.filter((t) => t.comm !== null).length).toBe(1);
  }
});

describe("the lean-task loop in wasm (ProcTokenizer.leanRuns) = ProcTextParser's TypeScript loop", () => {
  /** The task and frame columns as they are, row layout included (both paths share rows alike). */
  function columns(cap: Capture) {
    const t = cap.tasks;
    const n = t.length;
    const f = cap.frames;
    return {
      n,
      pid: [...t.pid.subarray(0, n)],
      tid: [...t.tid.subarray(0, n)],
      frameStart: [...t.frameStart.subarray(0, n)],
      frameCount: [...t.frameCount.subarray(0, n)],
      line: [...t.line.subarray(0, n)],
      state: [...t.state.subarray(0, n)],
      stackStatusCode: [...t.stackStatusCode.subarray(0, n)],
      patchStateCode: [...t.patchStateCode.subarray(0, n)],
      bits: [...t.bits.subarray(0, n)],
      frames: f.length,
      flags: [...f.flags.subarray(0, f.length)],
      firstLine: cap.source.firstLine,
      lastLine: cap.source.lastLine,
      sharedRows: cap.sharedRows,
    };
  }

  function parse(bytes: Uint8Array, build: (typeof BUILDS)[number], wasmLean: boolean, inputCapacity: number) {
    const module = loadTokenizerModuleSync(build);
    return parseCaptures([bytes], "x", "proc", {
      procTokenizer: () => {
        const tok = new ProcTokenizer(module, { inputCapacity });
        // Shadowing the method leaves ProcTextParser its own loop (RunSource.leanRuns is optional).
        if (!wasmLean) Object.assign(tok, { leanRuns: undefined });
        return tok;
      },
    }).map(columns);
  }

  test.each(BUILDS)("generated dumps and random mixes of shared, deep, marked and interrupted stacks (%s)", (build) => {
    const dump = encodeLatin1(generateProcDump(source, { tasks: 20000, seed: 5, shape: "grep" }).text);
    const wasm = parse(dump, build, true, 1 << 16);
    expect(wasm[0].n).toBe(20000);
    expect(wasm).toEqual(parse(dump, build, false, 1 << 16));

    const kinds = [
      (pid: number) => [`/proc/${pid}/task/${pid}/stack:[<0>] do_epoll_wait+0x1/0x10`, `/proc/${pid}/task/${pid}/stack:[<0>] do_syscall_64+0x1/0x10`],
      (pid: number) => [`/proc/${pid}/task/${pid}/stack:[<0>] worker_thread+0x1/0x10`],
      (pid: number) => Array.from({ length: 64 }, (_, k) => `/proc/${pid}/task/${pid}/stack:[<0>] f${k}+0x1/0x10`),
      (pid: number) => [`/proc/${pid}/task/${pid}/stack:[<0>] a+0x1/0x2`, `/proc/${pid}/task/${pid}/stack:[<ffffffffffffffff>] 0xffffffffffffffff`],
      (pid: number) => [`/proc/${pid}/task/${pid}/stack:[<0>] a+0x1/0x2`, "", `/proc/${pid}/task/${pid}/stack:[<0>] b+0x1/0x2`],
      (pid: number) => [`grep: /proc/${pid}/task/${pid}/stack: No such process`],
      (pid: number) => [`/proc/${pid}/task/${pid}/stack:garbage`],
    ];
    fc.assert(
      fc.property(fc.array(fc.nat(kinds.length - 1), { minLength: 1, maxLength: 400 }), fc.constantFrom(64, 4096, 1 << 16), (picks, cap) => {
        const lines: string[] = [];
        // A pid repeated now and then: a run that continues the task before it.
        picks.forEach((k, i) => lines.push(...kinds[k](i % 17 === 5 ? i - 1 : i + 1)));
        const bytes = encodeLatin1(`${lines.join("\n")}\n`);
        expect(parse(bytes, build, true, cap)).toEqual(parse(bytes, build, false, cap));
      }),
      { seed: 20261201, numRuns: build === "release" ? 200 : 60 },
    );
  });
});
