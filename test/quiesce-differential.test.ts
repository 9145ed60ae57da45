/**
 * predictQuiesce (src/decide/models.ts: a stack's facts once per shared span, the task table as
 * columns, notes as TaskNotes) against the first, object-per-task version (test/quiesce-reference.ts):
 * the same predicted capture, row for row, and the same note per task, on the host fixtures and
 * on seeded synthetic captures whose task facts (state, running, PF flags, Kthread line, pid 0,
 * migration/ comms) are varied per task.
 */
import { describe, expect, test } from "vitest";
import { predictQuiesce, TaskNotes } from "../src/decide/models.js";
import { generateProcDumpTo, prng } from "../src/generate/procDump.js";
import { parseProcText } from "../src/ingest/procText.js";
import type { Capture, Task } from "../src/model.js";
import { captureModel } from "../src/snapshot/compare.js";
import { decodeSnapshot, encodeSnapshot } from "../src/snapshot/psnap.js";
import type { SymbolTable } from "../src/symbols/table.js";
import { hostCapture, hostTable } from "./helpers.js";
import { referencePredictQuiesce } from "./quiesce-reference.js";

/** Effects seen over every comparison (the varied captures must reach every branch). */
const seen = new Set<string>();

function expectSamePrediction(cap: Capture, table: SymbolTable | null, what: string): void {
  const got = predictQuiesce(cap, table);
  for (const [, e] of got.notes) seen.add(e);
  const want = referencePredictQuiesce(cap, table);
  expect([...got.notes], `${what}: notes`).toEqual([...want.notes]);
  expect(got.notes.size, `${what}: note count`).toBe(want.notes.size);
  // Row for row: the same rows, shared the same way.
  expect(got.capture.frames.length, `${what}: frame rows`).toBe(want.capture.frames.length);
  expect(Array.from(got.capture.tasks.frameStart.subarray(0, got.capture.tasks.length)), `${what}: frameStart`).toEqual(Array.from(want.capture.tasks.frameStart.subarray(0, want.capture.tasks.length)));
  expect(JSON.stringify(captureModel(got.capture)), `${what}: capture`).toBe(JSON.stringify(captureModel(want.capture)));
}

/** The capture with varied facts per task (every branch of the prediction gets tasks). */
function variedFacts(cap: Capture, seed: number): Capture {
  const r = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const enc = (s: string) => Uint8Array.from([...s].map((c) => c.charCodeAt(0)));
  for (let i = 0; i < cap.tasks.length; i++) {
    const t: Task = { ...cap.tasks.get(i) };
    if (r() < 0.5) t.state = pick(["S", "D", "R", "T", "t", "I", "S", "S"]);
    if (r() < 0.1) t.running = !t.running;
    if (r() < 0.2) t.flags = pick([0x00200040, 0x00000040, 0x00004000, 0x00000010, 0]);
    if (r() < 0.2) t.statusKthread = pick([true, false, null]);
    if (r() < 0.03) t.pid = 0;
    if (r() < 0.1) t.comm = enc(pick(["migration/3", "migration", "ksoftirqd/1", "bash", "m"]));
    cap.tasks.set(i, t);
  }
  return cap;
}

/** A grep -H dump of `tasks` tasks through a snapshot: tasks of one stack then share rows (Capture.sharedRows). */
function synthCapture(tasks: number, seed: number, vary: boolean): Capture {
  const parts: string[] = [];
  generateProcDumpTo(hostCapture("capture.json"), { tasks, seed, shape: "grep" }, (p) => parts.push(p));
  const parsed = parseProcText(new TextEncoder().encode(parts.join("")), `synth-${seed}`);
  return decodeSnapshot(encodeSnapshot(vary ? variedFacts(parsed, seed) : parsed, null), `synth-${seed}.psnap`).capture;
}

describe("predictQuiesce equals the object-per-task reference", () => {
  test("host fixtures, with and without the symbol table", () => {
    for (const name of ["proc-grep.txt", "proc-tail.txt", "capture.json"] as const) {
      for (const table of [hostTable(), null]) expectSamePrediction(hostCapture(name), table, `${name}${table === null ? " (no table)" : ""}`);
    }
  });

  test("synthetic captures with shared rows, facts varied per task (seeded)", () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const cap = synthCapture(3000, seed, false);
      expect(cap.sharedRows, "the synthetic dumps share rows").toBe(true);
      expectSamePrediction(cap, hostTable(), `synth ${seed}, as parsed`);
      expectSamePrediction(synthCapture(3000, seed, true), hostTable(), `synth ${seed}, varied facts`);
      // Facts changed after decoding: tasks of one shared span with different facts.
      expectSamePrediction(variedFacts(cap, seed + 100), hostTable(), `synth ${seed}, facts varied on the shared capture`);
    }
  });

  test("the host fixtures with varied facts, rows not shared", () => {
    for (const seed of [11, 12, 13]) expectSamePrediction(variedFacts(hostCapture("capture.json"), seed), hostTable(), `capture.json seed ${seed}`);
  });

  test("the comparisons above reached every effect", () => {
    expect([...seen].sort()).toEqual(["freeze-fails", "frozen-in-place", "frozen-or-unwound", "parked", "running", "state-unknown", "unchanged", "unwound"]);
  });
});

describe("TaskNotes", () => {
  test("reads like the Map it replaces: get, has, size, iteration in task order; merged() lets the second win", () => {
    const a = new TaskNotes(4).set(3, "x").set(1, "y").set(9, "x");
    const m = new Map([
      [1, "y"],
      [3, "x"],
      [9, "x"],
    ]);
    expect([...a]).toEqual([...m]);
    expect([a.get(3), a.get(2), a.get(100), a.has(9), a.has(0), a.size]).toEqual(["x", undefined, undefined, true, false, 3]);
    a.set(3, "z");
    expect([a.get(3), a.size]).toEqual(["z", 3]);
    const b = TaskNotes.merged(a, new Map([[1, "k"], [20, "s"]]));
    expect([...b]).toEqual([[1, "k"], [3, "z"], [9, "x"], [20, "s"]]);
    expect([...b.keys()]).toEqual([1, 3, 9, 20]);
    expect([...b.values()]).toEqual(["k", "z", "x", "s"]);
    expect(() => new TaskNotes().set(-1, "x")).toThrow(RangeError);
  });
});
