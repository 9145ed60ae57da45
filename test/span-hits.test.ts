/**
 * SpanScanHits (src/scan/spanHits.ts): the hits of shared rows, per task on request and laid
 * out per task when read as ScanHits, against a direct filter of the row hits.
 */
import fc from "fast-check";
import { expect, test } from "vitest";
import { SpanScanHits } from "../src/scan/spanHits.js";

/** Row hits (sorted by row, then range) and task spans over `rows` rows, some sharing a first row with other lengths. */
const arbitraryCase = fc.integer({ min: 1, max: 40 }).chain((rows) =>
  fc.record({
    rows: fc.constant(rows),
    hits: fc.array(fc.tuple(fc.integer({ min: 0, max: rows - 1 }), fc.integer({ min: 0, max: 5 })), { maxLength: 60 }),
    spans: fc.array(fc.tuple(fc.integer({ min: 0, max: rows - 1 }), fc.integer({ min: 0, max: rows })), { minLength: 1, maxLength: 50 }),
  }),
);

test("of() and the per-task layout equal the row hits inside each task's span (prefix spans included)", () => {
  fc.assert(
    fc.property(arbitraryCase, ({ rows, hits, spans }) => {
      const sorted = [...new Map(hits.map((h) => [`${h[0]}/${h[1]}`, h])).values()].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const frameStart = Uint32Array.from(spans, ([s]) => s);
      const frameCount = Uint32Array.from(spans, ([s, n]) => Math.min(n, rows - s));
      const h = new SpanScanHits(Uint32Array.from(sorted, (x) => x[0]), Uint32Array.from(sorted, (x) => x[1]), frameStart, frameCount);
      const want = (t: number) => sorted.filter(([r]) => r >= frameStart[t] && r < frameStart[t] + frameCount[t]);
      // Asked in two orders: a span's cached list must never answer for a span of another length.
      for (const order of [spans.map((_, t) => t), spans.map((_, t) => spans.length - 1 - t)]) {
        const fresh = new SpanScanHits(Uint32Array.from(sorted, (x) => x[0]), Uint32Array.from(sorted, (x) => x[1]), frameStart, frameCount);
        for (const t of order) expect(fresh.of(t) ?? []).toEqual(want(t));
      }
      const task: number[] = [];
      const frame: number[] = [];
      const range: number[] = [];
      spans.forEach((_, t) => want(t).forEach(([r, g]) => (task.push(t), frame.push(r), range.push(g))));
      expect({ count: h.count, task: [...h.task], frame: [...h.frame], range: [...h.range] }).toEqual({ count: task.length, task, frame, range });
    }),
    { seed: 7, numRuns: 300 },
  );
});

test("the spans are copied: a capture changed after the scan does not change its hits", () => {
  const frameStart = Uint32Array.of(0, 0);
  const frameCount = Uint32Array.of(2, 2);
  const h = new SpanScanHits(Uint32Array.of(0, 1), Uint32Array.of(3, 4), frameStart, frameCount);
  frameCount[1] = 0;
  expect(h.of(1)).toEqual([
    [0, 3],
    [1, 4],
  ]);
  expect(h.count).toBe(4);
});
