/**
 * The decision's per-task class loops in wasm (assembly/tasks.ts through src/decide/taskKernel.ts:
 * SpanClasses.classifyKnown and TaskDecider.copyDecided) against their TypeScript versions: the
 * same verdict, outcome by outcome and blocker by blocker, on shared-row captures (the tokenizer's
 * path) whose task facts are scrambled by a seeded generator so that classes split, tasks fall out
 * of them (pid 0, vanished, PF flags, errnos) and every model runs. Release and debug kernels.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { check } from "../src/check.js";
import { type DecideOptions, placeRows } from "../src/decide/livepatch.js";
import { Blockers, Outcomes } from "../src/decide/verdict.js";
import { createWasmTaskKernel, TASK_KERNEL_MIN_TASKS, type TaskKernel } from "../src/decide/taskKernel.js";
import { generateProcDump } from "../src/generate/procDump.js";
import { parseCaptures } from "../src/ingest/detect.js";
import { encodeLatin1 } from "../src/ingest/bytes.js";
import { ProcTokenizer } from "../src/ingest/procTokenizer.js";
import { type Capture, STACK_STATUS_CODE, TaskTable } from "../src/model.js";
import type { Scanner } from "../src/scan/types.js";
import { loadTaskKernelModuleSync, loadTokenizerModuleSync, loadWasmScannerSync } from "../src/node/wasm.js";
import { hostCapture, hostTable, patchOf } from "./helpers.js";

const source = hostCapture("capture.json");
const symbols = hostTable();
const PATCH = patchOf("worker_thread", "do_epoll_wait", "smpboot_thread_fn", "futex_do_wait", "kthread");

/** A generated grep -H dump read the way the CLI reads it: shared rows, lean tasks. */
function sharedCapture(tasks: number, seed: number): Capture {
  const bytes = encodeLatin1(generateProcDump(source, { tasks, seed, shape: "grep" }).text);
  const module = loadTokenizerModuleSync("release");
  const [cap] = parseCaptures([bytes], "dump", "proc", { procTokenizer: () => new ProcTokenizer(module) });
  return cap;
}

/** The same wasm scanner with and without a task kernel. */
function scanners(build: "release" | "debug"): { withKernel: Scanner; without: Scanner } {
  const withKernel = loadWasmScannerSync(build);
  const kernel = createWasmTaskKernel(loadTaskKernelModuleSync(build), { minTasks: 0 });
  withKernel.taskKernel = () => kernel;
  const without = loadWasmScannerSync(build);
  without.taskKernel = undefined;
  return { withKernel, without };
}

/** Everything the verdict says, in plain data (outcomes and blockers row by row). */
function verdictOf(capture: Capture, scanner: Scanner, options: Partial<DecideOptions>) {
  const v = check({ capture, symbols, patch: PATCH, scanner, options }).verdict;
  return {
    verdict: v.verdict,
    counts: v.counts,
    reasons: v.reasons,
    warnings: v.warnings,
    kernelCheck: v.kernelCheck,
    functionBlocking: v.functionBlocking,
    outcomes: Array.from({ length: v.outcomes.length }, (_, i) => [v.outcomes.task[i], v.outcomes.kindCode[i], v.outcomes.statusCode[i], v.outcomes.matches(i)]),
    blockers: Array.from({ length: v.blockers.length }, (_, i) => v.blockers.get(i)),
  };
}

describe("task kernel = the TypeScript class loops", () => {
  test.each(["release", "debug"] as const)("generated dumps as read, every model (%s)", (build) => {
    const { withKernel, without } = scanners(build);
    for (const seed of [1, 2]) {
      const cap = sharedCapture(3000, seed);
      expect(cap.sharedRows).toBe(true);
      for (const model of ["livepatch", "kpatch", "quiesce"] as const) {
        const a = verdictOf(cap, withKernel, { model });
        expect(a.outcomes.length).toBeGreaterThan(2900);
        // The counts decide sums per class are the outcomes' own.
        const v = check({ capture: cap, symbols, patch: PATCH, scanner: withKernel, options: { model } }).verdict;
        const byStatus = v.outcomes.countByStatus();
        expect([v.counts.clean, v.counts.done, v.counts.blocked, v.counts.undecided, v.counts.idle]).toEqual([0, 1, 2, 3, 4].map((c) => byStatus[c]));
        expect(a).toEqual(verdictOf(cap, without, { model }));
      }
    }
  });

  test.each(["release", "debug"] as const)("a kernel whose class tables fill up leaves the other tasks unclassed, with the same verdicts (%s)", (build) => {
    const full = loadWasmScannerSync(build);
    const kernel = createWasmTaskKernel(loadTaskKernelModuleSync(build), { minTasks: 0, maxClasses: 3 });
    let placed = 0;
    const place = kernel.placeRows.bind(kernel);
    kernel.placeRows = (...args) => {
      const r = place(...args);
      if (r !== null) placed++;
      return r;
    };
    full.taskKernel = () => kernel;
    const { without } = scanners(build);
    const cap = sharedCapture(3000, 4);
    for (const model of ["livepatch", "kpatch"] as const) expect(verdictOf(cap, full, { model })).toEqual(verdictOf(cap, without, { model }));
    expect(placed).toBe(2);
  });

  test.each(["release", "debug"] as const)("seeded scrambles of the task facts: classes split, tasks fall out of them (%s)", (build) => {
    const { withKernel, without } = scanners(build);
    const base = sharedCapture(1500, 7);
    const edit = fc.record({
      task: fc.nat(base.tasks.length - 1),
      what: fc.constantFrom("state", "patch", "bits", "pid0", "tid0", "vanished", "flags", "errno", "truncated"),
      value: fc.nat(3),
    });
    fc.assert(
      fc.property(fc.array(edit, { maxLength: 60 }), fc.constantFrom("livepatch", "kpatch"), fc.boolean(), (edits, model, partialOk) => {
        const cap: Capture = { ...base, tasks: base.tasks.copy() };
        const t = cap.tasks;
        for (const e of edits) {
          const i = e.task;
          if (e.what === "state") t.state[i] = "SDRI".charCodeAt(e.value);
          else if (e.what === "patch") t.patchStateCode[i] = e.value - 2;
          else if (e.what === "bits") t.bits[i] = e.value << 1;
          else if (e.what === "pid0") t.pid[i] = 0;
          else if (e.what === "tid0") t.tid[i] = 0;
          else if (e.what === "vanished") t.stackStatusCode[i] = STACK_STATUS_CODE.vanished;
          else if (e.what === "truncated") t.stackStatusCode[i] = STACK_STATUS_CODE.truncated;
          else if (e.what === "flags") t.set(i, { ...t.get(i), flags: 0x00200000 * (e.value + 1) });
          else t.set(i, { ...t.get(i), stackStatus: "unreadable", errno: "EACCES" });
        }
        expect(verdictOf(cap, withKernel, { model, partialOk })).toEqual(verdictOf(cap, without, { model, partialOk }));
      }),
      { seed: 20261201, numRuns: build === "release" ? 60 : 20 },
    );
  });

  test("the CLI's scanner uses its kernel from TASK_KERNEL_MIN_TASKS tasks on, and the kernel's loops then classify nearly every task", () => {
    expect(loadWasmScannerSync().taskKernel!()!.minTasks).toBe(TASK_KERNEL_MIN_TASKS);
    const { withKernel } = scanners("release");
    const kernel = withKernel.taskKernel!()!;
    let laidOut = 0;
    const layout = kernel.layout.bind(kernel);
    kernel.layout = (...args) => {
      laidOut++;
      return layout(...args);
    };
    let classified = 0;
    const classify = kernel.classifyKnown.bind(kernel);
    kernel.classifyKnown = (from, to) => {
      const r = classify(from, to);
      classified += r - from;
      return r;
    };
    const cap = sharedCapture(2000, 3);
    check({ capture: cap, symbols, patch: PATCH, scanner: withKernel });
    expect(laidOut).toBe(1);
    // Nearly every task joins a class in the kernel's loop (the first of each class does not).
    expect(classified).toBeGreaterThan(1900);

    // The default kernel leaves a capture below the threshold to the TypeScript loops.
    const cli = loadWasmScannerSync();
    const big = cli.taskKernel!()!;
    let used = 0;
    const bigLayout = big.layout.bind(big);
    big.layout = (...args) => {
      used++;
      return bigLayout(...args);
    };
    check({ capture: cap, symbols, patch: PATCH, scanner: cli });
    expect(used).toBe(0);
  });
});

describe("the kernel's loops = a plain reference, on random arrays", () => {
  /** SpanClasses.classifyKnown's loop (no notes, PF flags or errnos), written out. */
  function refClassify(t: TaskTable, a: ReturnType<TaskKernel["layout"]>, from: number): number {
    let i = from;
    for (; i < t.length; i++) {
      const c = a.bySpan[t.frameStart[i]];
      if (c < 0 || a.count[c] !== t.frameCount[i] || t.pid[i] === 0 || t.tid[i] === 0) break;
      const st = t.stackStatusCode[i];
      const sig = ((t.patchStateCode[i] + 2) | (t.bits[i] << 4) | (t.state[i] << 12) | (st << 20)) >>> 0;
      if (st === STACK_STATUS_CODE.vanished || a.sig[c] !== sig) break;
      a.size[c]++;
      a.taskClass[i] = c;
      a.kinds[i] = a.kind[c];
      a.chainLen[i] = a.chainLength[c];
      a.kindCount[a.kind[c]]++;
    }
    return i;
  }

  /** TaskDecider.copyDecided's loop as the kernel runs it (stopping at a class without a list ref), written out. */
  function refCopy(a: ReturnType<TaskKernel["layout"]>, from: number, to: number): { index: number; rows: number[][] } {
    const rows: number[][] = [];
    let i = from;
    for (; i < to; i++) {
      if (a.kinds[i] === 255) continue;
      const c = a.taskClass[i];
      if (c < 0 || a.status[c] < 0 || a.ref[c] < 0) break;
      rows.push([i, a.kinds[i], a.status[c], a.ref[c]]);
      a.copied[c]++;
    }
    return { index: i, rows };
  }

  const arb = fc.record({
    tasks: fc.array(fc.record({ span: fc.nat(7), count: fc.nat(3), pid: fc.constantFrom(0, 1, 7, Number.NaN), tid: fc.constantFrom(0, 2, 9), patch: fc.integer({ min: -2, max: 1 }), bits: fc.nat(15), state: fc.constantFrom(0, 83, 68), status: fc.nat(4) }), { minLength: 1, maxLength: 60 }),
    classes: fc.array(fc.record({ span: fc.nat(7), count: fc.nat(3), sig: fc.nat(3), kind: fc.nat(3), chain: fc.nat(9), status: fc.integer({ min: -1, max: 5 }), ref: fc.integer({ min: -1, max: 4 }) }), { maxLength: 10 }),
    starts: fc.array(fc.nat(59), { maxLength: 12 }),
    vanishedKinds: fc.array(fc.nat(59), { maxLength: 5 }),
  });

  test.each(["release", "debug"] as const)("classifyKnown and copyDecided (%s)", (build) => {
    const kernel = createWasmTaskKernel(loadTaskKernelModuleSync(build));
    fc.assert(
      fc.property(arb, ({ tasks, classes, starts, vanishedKinds }) => {
        const t = new TaskTable(tasks.length);
        tasks.forEach((x, i) => {
          t.pushIds(x.pid, x.tid, x.span, x.count, i + 1, "ok");
          t.patchStateCode[i] = x.patch;
          t.bits[i] = x.bits;
          t.state[i] = x.state;
          t.stackStatusCode[i] = x.status;
        });
        const setUp = () => {
          const a = kernel.layout(t, 8, classes.length + 1);
          // What decide sets itself (a layout leaves these unset: its memory is reused).
          a.size.fill(0);
          a.copied.fill(0);
          a.chainLen.fill(0);
          a.kinds.fill(0);
          a.taskClass.fill(-7);
          classes.forEach((c, k) => {
            a.size[k] = 1;
            a.bySpan[c.span] = k;
            a.count[k] = c.count;
            // Signatures that the tasks' facts can meet: the first task of the span's, or another.
            const like = tasks.find((x) => x.span === c.span);
            a.sig[k] = like !== undefined && c.sig < 2 ? ((like.patch + 2) | (like.bits << 4) | (like.state << 12) | (like.status << 20)) >>> 0 : c.sig;
            a.kind[k] = c.kind;
            a.chainLength[k] = c.chain;
            a.status[k] = c.status;
            a.ref[k] = c.ref;
          });
          return a;
        };
        const got = setUp();
        const gotStops = starts.map((s) => kernel.classifyKnown(Math.min(s, t.length), t.length));
        const gotState = { taskClass: [...got.taskClass], kinds: [...got.kinds], chainLen: [...got.chainLen], size: [...got.size], kindCount: [...got.kindCount] };
        const want = setUp();
        const wantStops = starts.map((s) => refClassify(t, want, Math.min(s, t.length)));
        expect(gotStops).toEqual(wantStops);
        expect(gotState).toEqual({ taskClass: [...want.taskClass], kinds: [...want.kinds], chainLen: [...want.chainLen], size: [...want.size], kindCount: [...want.kindCount] });

        // copyDecided over the classified tasks, some of them marked vanished (NO_KIND).
        const copyArrays = setUp();
        for (let i = 0; i < t.length; i++) {
          const c = i % (classes.length + 1) - 1;
          copyArrays.taskClass[i] = c;
          copyArrays.kinds[i] = vanishedKinds.includes(i) ? 255 : i % 4;
        }
        const results: { index: number; rows: number[][] }[] = [];
        for (const s of starts) {
          const index = kernel.copyDecided(Math.min(s, t.length), t.length);
          const m = kernel.copiedRows();
          results.push({ index, rows: Array.from({ length: m }, (_, r) => [copyArrays.outTask[r], copyArrays.outKind[r], copyArrays.outStatus[r], copyArrays.outRef[r]]) });
        }
        const copiedGot = [...copyArrays.copied];
        const ref = setUp();
        for (let i = 0; i < t.length; i++) {
          ref.taskClass[i] = i % (classes.length + 1) - 1;
          ref.kinds[i] = vanishedKinds.includes(i) ? 255 : i % 4;
        }
        expect(results).toEqual(starts.map((s) => refCopy(ref, Math.min(s, t.length), t.length)));
        expect(copiedGot).toEqual([...ref.copied]);
      }),
      { seed: 7, numRuns: build === "release" ? 400 : 150 },
    );
  });
});

describe("the kernel's blocker placement = placeRows, on random outcomes", () => {
  test.each(["release", "debug"] as const)("rows in chunks of 3, and the first kernel-visible task in task order (%s)", (build) => {
    const kernel = createWasmTaskKernel(loadTaskKernelModuleSync(build), { blockerChunk: 3 });
    const arb = fc.record({
      tasks: fc.array(fc.record({ pid: fc.constantFrom(1, 2, 3, Number.NaN), tid: fc.constantFrom(1, 2, 5, Number.NaN), cls: fc.nat(4), own: fc.boolean() }), { minLength: 1, maxLength: 50 }),
      rowsPerId: fc.array(fc.nat(3), { minLength: 12, maxLength: 12 }),
      visible: fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
    });
    fc.assert(
      fc.property(arb, ({ tasks, rowsPerId, visible }) => {
        const classCount = 5;
        const t = new TaskTable(tasks.length);
        tasks.forEach((x, i) => t.pushIds(x.pid, x.tid, 0, 1, i + 1, "ok"));
        const out = new Outcomes(tasks.length);
        // The placement reads the classes from the layout's taskClass, as after decide's class loops.
        const taskClass = kernel.layout(t, 2, classCount + 1).taskClass.fill(-1);
        const own: number[] = [];
        tasks.forEach((x, i) => {
          if (x.own && own.length < 7) own.push(out.length);
          else taskClass[i] = x.cls;
          out.pushCodes(i, 0, 2, out.listRef([]));
        });
        const ids = classCount + own.length;
        const tplStart = new Int32Array(ids + 1);
        const tpl = { tFunc: [] as number[], tFrame: [] as number[], tFrameIndex: [] as number[], tSees: [] as number[], tRole: [] as number[], tRemedy: [] as number[] };
        for (let id = 0; id < ids; id++) {
          tplStart[id] = tpl.tFunc.length;
          for (let r = 0; r < rowsPerId[id]; r++) {
            tpl.tFunc.push(id * 10 + r);
            tpl.tFrame.push(100 + id);
            tpl.tFrameIndex.push(r);
            tpl.tSees.push((id + r) & 1);
            tpl.tRole.push(r % 5);
            tpl.tRemedy.push(id % 3);
          }
        }
        tplStart[ids] = tpl.tFunc.length;
        const visibleId = Uint8Array.from(visible.slice(0, ids), (v) => (v ? 1 : 0));
        let total = 0;
        out.task.subarray(0, out.length).forEach((task, o) => {
          const k = own.indexOf(o);
          const id = k >= 0 ? classCount + k : taskClass[task];
          total += tplStart[id + 1] - tplStart[id];
        });
        const rowsOf = (bl: Blockers, n: number) => Array.from({ length: n }, (_, i) => [bl.task[i], bl.func[i], bl.frame[i], bl.frameIndex[i], bl.kernelSees[i], bl.roleCode[i], bl.remedyRef[i]]);
        const a = new Blockers(total);
        const got = kernel.placeRows(out, own, classCount, tplStart, visibleId, tpl, a, total);
        const b = new Blockers(total);
        const want = placeRows(out, taskClass, t, own, classCount, tplStart, visibleId, tpl, b);
        expect(got).toEqual(want);
        expect(rowsOf(a, want.rows)).toEqual(rowsOf(b, want.rows));
      }),
      { seed: 11, numRuns: build === "release" ? 400 : 150 },
    );
  });
});

test("a template larger than the layout's room is left to placeRows (the kernel says null)", () => {
  const kernel = createWasmTaskKernel(loadTaskKernelModuleSync("release"));
  const t = new TaskTable(1);
  t.pushIds(1, 1, 0, 1, 1, "ok");
  kernel.layout(t, 2, 1).taskClass[0] = 0;
  const out = new Outcomes(1);
  out.pushCodes(0, 0, 2, out.listRef([]));
  const rows = 4 * 2 + 1; // TEMPLATE_ROWS_PER_ENTRY × (classes + tasks) + 1
  const tpl = { tFunc: new Array(rows).fill(1), tFrame: new Array(rows).fill(2), tFrameIndex: new Array(rows).fill(0), tSees: new Array(rows).fill(1), tRole: new Array(rows).fill(0), tRemedy: new Array(rows).fill(0) };
  expect(kernel.placeRows(out, [], 1, Int32Array.of(0, rows), Uint8Array.of(1), tpl, new Blockers(rows), rows)).toBeNull();
  const fits = { tFunc: [1], tFrame: [2], tFrameIndex: [0], tSees: [1], tRole: [0], tRemedy: [0] };
  expect(kernel.placeRows(out, [], 1, Int32Array.of(0, 1), Uint8Array.of(1), fits, new Blockers(1), 1)).toEqual({ rows: 1, first: 0, firstId: 0 });
});
