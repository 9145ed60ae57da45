/**
 * The text report's blocker summary (blockersByFunction: one pass, the first N per function in
 * taskOrder) against the obvious reference: group, sort each group by taskOrder, cut at N.
 */
import fc from "fast-check";
import { expect, test } from "vitest";
import { taskOrder } from "../src/decide/livepatch.js";
import { Blockers, Outcomes, TASK_KINDS } from "../src/decide/verdict.js";
import { type Capture, TaskTable } from "../src/model.js";
import { blockersByFunction } from "../src/report/text.js";

test("blockersByFunction = group, sort by taskOrder, take the first N (seeded)", () => {
  const pidArb = fc.oneof(fc.constant(null), fc.integer({ min: 0, max: 40 }));
  fc.assert(
    fc.property(
      fc.array(fc.tuple(pidArb, pidArb), { minLength: 1, maxLength: 60 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 3 })), { maxLength: 300 }),
      fc.constantFrom(1, 3, 10, Number.POSITIVE_INFINITY),
      (ids, picks, limit) => {
        const tasks = TaskTable.from(ids.map(([pid, tid]) => ({ pid, tid, comm: null, state: null, flags: null, ppid: null, startTime: null, cpu: null, patchState: null, stackStatus: "ok" as const, errno: null, running: false, statusKthread: null, endMarker: false, frameStart: 0, frameCount: 0, line: 0 })));
        const cap = { tasks } as unknown as Capture;
        const bl = new Blockers();
        for (const [t, f] of picks) bl.pushFields(t % ids.length, f, 0, 0, true, 0, { code: "wait", message: "" });
        const got = blockersByFunction(cap, bl, 4, limit);
        const groups = new Map<number, number[]>();
        for (let i = 0; i < bl.length; i++) {
          if (!groups.has(bl.func[i])) groups.set(bl.func[i], []);
          groups.get(bl.func[i])!.push(i);
        }
        const want = [...groups]
          .sort((a, b) => b[1].length - a[1].length)
          .map(([func, list]) => ({ func, count: list.length, first: [...list].sort((a, b) => taskOrder(cap, bl.task[a], bl.task[b]) || a - b).slice(0, limit) }));
        expect(got).toEqual(want);
      },
    ),
    { seed: 42, numRuns: 400 },
  );
});

test("Outcomes.kindCodeOfTask = kindCodesByTask, in task order (binary search) or not (scan), seeded", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: TASK_KINDS.length - 1 })), { maxLength: 40 }), fc.boolean(), (rows, sort) => {
      const list = sort ? [...new Map(rows.map((r) => [r[0], r])).values()].sort((a, b) => a[0] - b[0]) : rows;
      const o = new Outcomes(1);
      for (const [task, kind] of list) o.push(task, TASK_KINDS[kind], "clean", []);
      const byTask = o.kindCodesByTask(52);
      for (let t = 0; t < 52; t++) expect(o.kindCodeOfTask(t)).toBe(byTask[t]);
    }),
    { seed: 11, numRuns: 300 },
  );
});
