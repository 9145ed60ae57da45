/**
 * writeJsonReport writes the blockers and the switchable tids as text of its own (LazyArray.text),
 * not through JSON.stringify of an object per item: it must give exactly the text of
 * JSON.stringify(toJsonReport(r), null, 2), for every model, with task names that try to break
 * out of a JSON string (quotes, backslashes, control bytes, escape sequences, high bytes) and with
 * remedies that list callees.
 */
import { expect, test } from "vitest";
import { toJsonReport, writeJsonReport } from "../src/report/json.js";
import { prng } from "../src/generate/procDump.js";
import { hostCapture, hostTable, runCheck } from "./helpers.js";

const HOSTILE = ['a"b', "c\\d", "line\nbreak", "\u001b[31mred", "tab\there", "nul\u0000x", "\u007f\u00ff\u0080", '"}],"verdict":"safe', "</script>"].map((s) => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff));

test("the streamed blockers and switchable tids are the stringified report's text, hostile names included", () => {
  const cap = hostCapture("capture.json");
  const rnd = prng(3);
  for (let i = 0; i < cap.tasks.length; i++) if (rnd() < 0.5) cap.tasks.setComm(i, HOSTILE[Math.floor(rnd() * HOSTILE.length)]);
  const table = hostTable();
  let blockers = 0;
  let callees = 0;
  for (const model of ["livepatch", "kpatch", "quiesce"] as const) {
    for (const funcs of [["worker_thread", "do_epoll_wait", "smpboot_thread_fn"], ["schedule_hrtimeout_range"], ["ksys_read"]]) {
      const r = runCheck(cap, funcs, { symbols: table, options: { model } });
      const chunks: string[] = [];
      writeJsonReport(r, null, (c) => chunks.push(c));
      const report = toJsonReport(r);
      expect(chunks.join("")).toBe(`${JSON.stringify(report, null, 2)}\n`);
      blockers += report.blockers.length;
      callees += report.blockers.filter((b) => "callees" in b.remedy).length;
    }
  }
  expect(blockers).toBeGreaterThan(20);
  expect(callees).toBeGreaterThan(0);
});
