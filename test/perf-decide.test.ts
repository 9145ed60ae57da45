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
import { hostCapture, hostTable, patchOf } from "./helpers.js";

function capture(): Capture {
  const source = hostCapture("capture.json");
  const cap = parseProcText(generateProcDump(source, { tasks: 1500, seed: 4, shape: "header", in: [{ object: "vmlinux", name: "do_epoll_wait", share: 0.3 }] }).text);
  // Vary the facts the rules read on tasks that share stacks.
  const rnd = prng(99);
  const states = ["S", "D", "R", "I", null] as const;
  cap.tasks.toArray().forEach((t, i) => {
    const r = rnd();
    if (r < 0.1) t.state = states[Math.floor(rnd() * states.length)];
    else if (r < 0.15) t.running = true;
    else if (r < 0.2) t.patchState = rnd() < 0.5 ? 0 : 1;
    else if (r < 0.22) t.pid = 0;
    else t.state = "S";
    cap.tasks.set(i, t);
  });
  return cap;
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
