/**
 * TaskTable.copy: every row and every optional column (comm, PF flags, ppid, cpu, start time,
 * errno) as it was, and a copy that grows or changes leaves the original alone.
 */
import fc from "fast-check";
import { expect, test } from "vitest";
import { newTask, TaskTable } from "../src/model.js";

const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: null });
const taskArb = fc.record({
  pid: optional(fc.integer({ min: 0, max: 4_194_304 })),
  tid: optional(fc.integer({ min: 0, max: 4_194_304 })),
  comm: optional(fc.uint8Array({ maxLength: 15 })),
  state: optional(fc.constantFrom("S", "D", "R", "I")),
  flags: optional(fc.integer({ min: 0, max: 0x7fffffff })),
  ppid: optional(fc.nat()),
  cpu: optional(fc.nat(255)),
  startTime: optional(fc.nat()),
  errno: optional(fc.constantFrom("EPERM", "ENOENT")),
  frameStart: fc.nat(1000),
  frameCount: fc.nat(64),
  line: fc.nat(100_000),
});

test("copy() keeps every field of every row, and is independent of the original (seeded)", () => {
  fc.assert(
    fc.property(fc.array(taskArb, { maxLength: 40 }), fc.nat(20), (rows, extra) => {
      const table = TaskTable.from(rows.map((r) => newTask({ ...r, stackStatus: r.errno === null ? "ok" : "unreadable" })));
      const before = table.toArray();
      const c = table.copy(table.length + extra);
      expect(c.toArray()).toEqual(before);
      expect(c.capacity).toBeGreaterThanOrEqual(table.length + extra);
      c.push(newTask({ pid: 7, tid: 7, comm: Uint8Array.of(65), flags: 1, errno: "EPERM", stackStatus: "unreadable", frameStart: 0 }));
      if (c.length > 1) c.setComm(0, Uint8Array.of(66, 67));
      expect(table.toArray()).toEqual(before);
      expect(c.get(c.length - 1)).toMatchObject({ pid: 7, errno: "EPERM", flags: 1 });
    }),
    { seed: 5, numRuns: 200 },
  );
});
