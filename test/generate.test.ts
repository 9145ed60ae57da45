import { describe, expect, it } from "vitest";
import { generateProcDump } from "../src/generate/procDump.js";
import { parseProcText } from "../src/ingest/procText.js";
import { hostCapture, runCheck } from "./helpers.js";

describe("generator of large /proc dumps from real stacks", () => {
  const source = hostCapture("capture.json");

  it("is deterministic for a seed and differs across seeds", () => {
    const a = generateProcDump(source, { tasks: 500, seed: 7 });
    const b = generateProcDump(source, { tasks: 500, seed: 7 });
    const c = generateProcDump(source, { tasks: 500, seed: 8 });
    expect(a.text).toBe(b.text);
    expect(a.text).not.toBe(c.text);
  });

  it("produces the asked number of tasks with unique tids, resampling real stacks", () => {
    const { text, distinctFrameShare } = generateProcDump(source, { tasks: 2000, seed: 1 });
    const cap = parseProcText(text);
    expect(cap.tasks).toHaveLength(2000);
    expect(new Set(cap.tasks.map((t) => t.tid)).size).toBe(2000);
    expect(distinctFrameShare).toBeGreaterThan(0);
    expect(distinctFrameShare).toBeLessThan(0.1); // heavy repetition, as on real hosts
    // Every resampled stack still resolves against the same boot's kallsyms and is reliable.
    const r = runCheck(cap, ["worker_thread"]);
    expect(r.resolved.counts.RESOLVED).toBe(cap.frames.length);
    expect(r.verdict.counts.undecided).toBe(0);
    expect(r.verdict.counts.blocked).toBeGreaterThan(0);
  });

  it("writes the tail shape too", () => {
    const { text } = generateProcDump(source, { tasks: 50, seed: 3, shape: "tail" });
    expect(text.startsWith("==> /proc/")).toBe(true);
    expect(parseProcText(text).tasks).toHaveLength(50);
  });
});
