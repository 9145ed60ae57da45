/**
 * decideLivepatch shares rule results between tasks with the same stack and facts (RuleMemo);
 * a custom rule list turns that off. Both must give the same verdict, task for task, on a
 * capture with heavy repetition and varied task facts, in every model and both directions.
 */
import { describe, expect, test } from "vitest";
import { check } from "../src/check.js";
import { decideLivepatch, LIVEPATCH_RULES } from "../src/decide/livepatch.js";
import { generateProcDump, prng } from "../src/generate/procDump.js";
import { parseProcText } from "../src/ingest/procText.js";
import type { Capture } from "../src/model.js";
import { referenceScanner } from "../src/scan/reference.js";
import { SpanScanHits } from "../src/scan/spanHits.js";
import { decodeSnapshot, encodeSnapshot } from "../src/snapshot/psnap.js";
import { hostCapture, hostTable, patchOf } from "./helpers.js";

function capture(): Capture {
  const source = hostCapture("capture.json");
  const cap = parseProcText(generateProcDump(source, { tasks: 1500, seed: 4, shape: "header", in: [{ object: "vmlinux", name: "do_epoll_wait", share: 0.3 }] }).text);
  // Vary the facts the rules read on tasks that share stacks.
  varyFacts(cap, 99, false);
  return cap;
}

/**
 * Varies the facts the rules read (state, running, patch state, pid 0), and with `all` also those
 * that keep a task out of any span class (PF flags, an errno, status Kthread, an end marker).
 */
function varyFacts(cap: Capture, seed: number, all: boolean): void {
  const rnd = prng(seed);
  const states = ["S", "D", "R", "I", null] as const;
  cap.tasks.toArray().forEach((t, i) => {
    const r = rnd();
    if (r < 0.1) t.state = states[Math.floor(rnd() * states.length)];
    else if (r < 0.15) t.running = true;
    else if (r < 0.2) t.patchState = rnd() < 0.5 ? 0 : 1;
    else if (r < 0.22) t.pid = 0;
    else if (all && r < 0.25) t.flags = rnd() < 0.5 ? 0x00200000 : 0x40;
    else if (all && r < 0.26) {
      t.stackStatus = "unreadable";
      t.errno = "EPERM";
    } else if (all && r < 0.32) t.stackStatus = "unreadable"; // no errno: such tasks can share a class
    else if (all && r < 0.34) t.statusKthread = true;
    else if (all && r < 0.35) t.endMarker = true;
    else t.state = "S";
    cap.tasks.set(i, t);
  });
}

describe("rule memo: same verdict as running every rule on every task", () => {
  const cap = capture();
  const table = hostTable();
  for (const model of ["livepatch", "kpatch", "quiesce"] as const) {
    for (const direction of ["apply"] as const) {
      test(`${model} ${direction}`, () => {
        const opts = { model, direction, partialOk: false, strict: false };
        const r = check({ capture: cap, symbols: table, patch: patchOf("do_epoll_wait", "worker_thread", "futex_wait"), scanner: referenceScanner, options: opts });
        const input = { capture: r.capture, table, resolved: r.resolved, ranges: r.ranges, hits: r.hits, notes: r.notes, traceable: null };
        const memoized = decideLivepatch(input, opts);
        const plain = decideLivepatch(input, opts, [...LIVEPATCH_RULES]);
        expect(memoized.counts).toEqual(plain.counts);
        expect(memoized.outcomes.toArray()).toEqual(plain.outcomes.toArray());
        expect(memoized.blockers).toEqual(plain.blockers);
        expect(memoized).toEqual(plain);
        expect(memoized.counts.blocked).toBeGreaterThan(100);
      });
    }
  }
});

describe("span classes (shared rows): same verdict as running every rule on every task", () => {
  // A decoded snapshot shares rows between tasks of one stack (Capture.sharedRows), which is
  // what turns SpanClasses on; vary every fact a class is keyed on, and the ones that keep a
  // task out of any class (pid 0, PF flags, errno).
  function sharedCapture(share = 0.3): Capture {
    // grep -H shape: a task's frames are on its own consecutive lines, so the snapshot shares them.
    const source = hostCapture("capture.json");
    const base = parseProcText(generateProcDump(source, { tasks: 1500, seed: 4, shape: "grep", in: [{ object: "vmlinux", name: "do_epoll_wait", share }] }).text);
    varyFacts(base, 7, true);
    const d = decodeSnapshot(encodeSnapshot(base, null), "shared.psnap");
    const c = d.capture;
    // Rows really are shared: far fewer rows than frames over the tasks.
    let frames = 0;
    for (let i = 0; i < c.tasks.length; i++) frames += c.tasks.frameCount[i];
    expect(c.frames.length * 5).toBeLessThan(frames);
    return c;
  }
  const cap = sharedCapture();
  const table = hostTable();
  test("a function on every task of a kind (never leaves), counted over classes", () => {
    // Every task in do_epoll_wait: "on the stack of every task of its kind" is a count over all
    // tasks, which classes make per class.
    const all = sharedCapture(1);
    const opts = { model: "livepatch" as const, direction: "apply" as const, partialOk: false, strict: false };
    const r = check({ capture: all, symbols: table, patch: patchOf("do_epoll_wait"), scanner: referenceScanner, options: opts });
    const input = { capture: r.capture, table, resolved: r.resolved, ranges: r.ranges, hits: r.hits, notes: r.notes, traceable: null };
    const classed = decideLivepatch(input, opts);
    const plain = decideLivepatch(input, opts, [...LIVEPATCH_RULES]);
    expect(classed).toEqual(plain);
    expect(classed.blockers.some((b) => b.remedy.code === "never-leaves" && /every user task/.test(b.remedy.message))).toBe(true);
  });
  test("hits found per span when a task asks (SpanScanHits) decide as the same hits laid out per task", () => {
    const opts = { model: "livepatch" as const, direction: "apply" as const, partialOk: false, strict: false };
    const r = check({ capture: cap, symbols: table, patch: patchOf("do_epoll_wait", "worker_thread", "futex_wait"), scanner: referenceScanner, options: opts });
    expect(r.hits).toBeInstanceOf(SpanScanHits);
    const laidOut = { count: r.hits.count, task: r.hits.task.slice(), frame: r.hits.frame.slice(), range: r.hits.range.slice() };
    expect(laidOut.count).toBeGreaterThan(100);
    const input = { capture: r.capture, table, resolved: r.resolved, ranges: r.ranges, notes: r.notes, traceable: null };
    expect(decideLivepatch({ ...input, hits: laidOut }, opts)).toEqual(decideLivepatch({ ...input, hits: r.hits }, opts));
  });
  test("a task the model has a note on is classed only with tasks of the same note", () => {
    const opts = { model: "livepatch" as const, direction: "apply" as const, partialOk: false, strict: false };
    const r = check({ capture: cap, symbols: table, patch: patchOf("do_epoll_wait", "worker_thread", "futex_wait"), scanner: referenceScanner, options: opts });
    // Notes on every 7th task: each shares its rows with unnoted tasks of its class.
    const notes = new Map<number, string>();
    for (let i = 0; i < r.capture.tasks.length; i += 7) notes.set(i, "freeze-fails");
    const input = { capture: r.capture, table, resolved: r.resolved, ranges: r.ranges, hits: r.hits, notes, traceable: null };
    const classed = decideLivepatch(input, opts);
    const plain = decideLivepatch(input, opts, [...LIVEPATCH_RULES]);
    expect(classed).toEqual(plain);
    const without = decideLivepatch({ ...input, notes: new Map() }, opts);
    expect(classed.outcomes.toArray()).not.toEqual(without.outcomes.toArray());
  });
  // kpatch adds tasks with a note (its stopper and the loading task): those are never classed,
  // the others still are; quiesce notes every task.
  for (const model of ["kpatch", "quiesce"] as const) {
    test(`${model} apply (notes on some or all tasks)`, () => {
      const opts = { model, direction: "apply" as const, partialOk: false, strict: false };
      const r = check({ capture: cap, symbols: table, patch: patchOf("do_epoll_wait", "worker_thread", "futex_wait"), scanner: referenceScanner, options: opts });
      expect(r.capture.sharedRows).toBe(true);
      expect(r.notes.size).toBeGreaterThan(0);
      const input = { capture: r.capture, table, resolved: r.resolved, ranges: r.ranges, hits: r.hits, notes: r.notes, doubts: undefined, traceable: null };
      const classed = decideLivepatch(input, opts);
      const plain = decideLivepatch(input, opts, [...LIVEPATCH_RULES]);
      expect(classed.outcomes.toArray()).toEqual(plain.outcomes.toArray());
      expect(classed).toEqual(plain);
      expect(classed.counts.blocked).toBeGreaterThan(100);
    });
  }
  for (const partialOk of [false, true]) {
    test(`livepatch apply${partialOk ? " --partial-ok" : ""}`, () => {
      const opts = { model: "livepatch" as const, direction: "apply" as const, partialOk, strict: false };
      const r = check({ capture: cap, symbols: table, patch: patchOf("do_epoll_wait", "worker_thread", "futex_wait"), scanner: referenceScanner, options: opts });
      const input = { capture: r.capture, table, resolved: r.resolved, ranges: r.ranges, hits: r.hits, notes: r.notes, traceable: null };
      const classed = decideLivepatch(input, opts);
      const plain = decideLivepatch(input, opts, [...LIVEPATCH_RULES]);
      expect(classed.outcomes.toArray()).toEqual(plain.outcomes.toArray());
      expect(classed.blockers).toEqual(plain.blockers);
      expect(classed).toEqual(plain);
      expect(classed.counts.blocked).toBeGreaterThan(100);
      expect(classed.counts.undecided).toBeGreaterThan(10);
      // Classes of unreadable tasks (frames kept, no errno) are copied as excluded with --partial-ok.
      if (partialOk) expect(classed.counts.excluded).toBeGreaterThan(5);
    });
  }
});
