/** schema/snapshot.schema.json against real JSON snapshots (plain, redacted, hashed), plus negatives. */
import { readFileSync } from "node:fs";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import { beforeAll, expect, test } from "vitest";
import { PatchsafeError } from "../src/errors.js";
import { parseSnapshotJson, snapshotToJson } from "../src/snapshot/json.js";
import { hostCapture, hostTable } from "./helpers.js";

let validate: ValidateFunction;
beforeAll(() => {
  const schema = JSON.parse(readFileSync(new URL("../schema/snapshot.schema.json", import.meta.url), "utf8")) as object;
  validate = new Ajv2020({ allErrors: true, strict: true }).compile(schema);
});

test("real JSON snapshots validate", () => {
  const cap = hostCapture("capture.json");
  const text = hostCapture("proc-grep.txt");
  for (const doc of [
    snapshotToJson(cap, hostTable()),
    snapshotToJson(cap, hostTable(), { redact: true, hashComms: true }),
    snapshotToJson(text, null),
  ]) {
    const ok = validate(JSON.parse(doc));
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  }
});

test("the schema and the parser both reject a broken document", () => {
  const doc = JSON.parse(snapshotToJson(hostCapture("proc-grep.txt"), null)) as { tasks: Record<string, unknown>[] };
  doc.tasks[0].stackStatus = "sleeping";
  expect(validate(doc)).toBe(false);
  expect(() => parseSnapshotJson(JSON.stringify(doc), "bad.json")).toThrow(PatchsafeError);
  expect(() => parseSnapshotJson(JSON.stringify(doc), "bad.json")).toThrow(/stackStatus/);
});

test("every stack status survives the JSON form (a task's own status, not the builder's 'empty')", async () => {
  const { parseProcText } = await import("../src/ingest/procText.js");
  const cap = parseProcText(
    [
      "/proc/10/task/10/stack:[<0>] do_epoll_wait+0x588/0x5e0",
      "grep: /proc/11/task/11/stack: Operation not permitted",
      "grep: /proc/12/task/12/stack: No such file or directory",
      "",
    ].join("\n"),
    "t.txt",
  );
  const before = cap.tasks.map((t) => [t.tid, t.stackStatus, t.errno]);
  expect(before).toEqual([
    [10, "ok", null],
    [11, "unreadable", "EPERM"],
    [12, "vanished", "ENOENT"],
  ]);
  const back = parseSnapshotJson(snapshotToJson(cap, null), "t.json").capture;
  expect(back.tasks.map((t) => [t.tid, t.stackStatus, t.errno])).toEqual(before);
  // The document's status is the model's, even where the builder would have said "empty" (a
  // psnap may hold an "ok" task without frames; JSON and psnap must give the same model).
  const doc = JSON.parse(snapshotToJson(cap, null)) as { header: { frames: number }; tasks: { stackStatus: string; frames: unknown[] }[] };
  expect(doc.tasks[0].stackStatus).toBe("ok");
  doc.header.frames -= doc.tasks[0].frames.length;
  doc.tasks[0].frames = [];
  const okEmpty = parseSnapshotJson(JSON.stringify(doc), "t.json").capture;
  expect(okEmpty.tasks.get(0).frameCount).toBe(0);
  expect(okEmpty.tasks.get(0).stackStatus).toBe("ok");
});

test("the JSON form is written in pieces of about 1 MiB that join to snapshotToJson's text, shared stacks' frames made once", async () => {
  const { snapshotJsonWriter } = await import("../src/snapshot/json.js");
  const { frameText } = await import("../src/ingest/nativeJson.js");
  const { generateProcDump } = await import("../src/generate/procDump.js");
  const { parseProcText } = await import("../src/ingest/procText.js");
  const { decodeSnapshot, encodeSnapshot } = await import("../src/snapshot/psnap.js");
  // 30k tasks resampled from the dev host: a few MiB of JSON; decoded from a snapshot, the tasks
  // of one stack share rows.
  const parsed = parseProcText(generateProcDump(hostCapture("capture.json"), { tasks: 30_000, seed: 3 }).text, "synth");
  const cap = decodeSnapshot(encodeSnapshot(parsed, null), "synth.psnap").capture;
  expect(cap.sharedRows).toBe(true);
  // A task that sees only a prefix of a span another task saw whole first (the frames text is
  // shared by first row and count, never by first row alone).
  const starts = cap.tasks.frameStart;
  const counts = cap.tasks.frameCount;
  const later = [...Array(cap.tasks.length).keys()].find((k) => counts[k] >= 2 && [...Array(k).keys()].some((j) => starts[j] === starts[k] && counts[j] === counts[k]))!;
  counts[later] -= 1;
  for (const symbols of [null, hostTable()]) {
    const pieces: string[] = [];
    snapshotJsonWriter(cap, symbols, { producer: "test" })((p) => pieces.push(p));
    const whole = snapshotToJson(cap, symbols, { producer: "test" });
    expect(pieces.join("")).toBe(whole);
    // Every task piece stops at the first line past 1 MiB (the symbols member comes whole).
    const taskPieces = pieces.slice(0, pieces.findIndex((p) => p.includes(' ],\n "symbols": ')));
    expect(taskPieces.length).toBeGreaterThan(2);
    for (const p of taskPieces) expect(p.length).toBeLessThan((1 << 20) + 4096);
    // Each task's frames are its own (a frames text shared by span must never be another
    // span's), on its own lines.
    const doc = JSON.parse(whole) as { tasks: { tid: number; frames: unknown[]; line: number; frameLine: number | null }[] };
    expect(doc.tasks).toHaveLength(30_000);
    const tasks = [...cap.tasks];
    tasks.forEach((t, k) => {
      const texts = Array.from({ length: t.frameCount }, (_, j) => frameText(cap, t.frameStart + j));
      expect(doc.tasks[k].tid).toBe(t.tid);
      expect(doc.tasks[k].frames).toEqual(texts);
      expect(doc.tasks[k].frameLine).toBe(t.frameCount > 0 ? t.line : null);
    });
  }
});

test("patchsafe's own layout is read a line at a time: the same model as the whole document, a bad task line named, any other layout parsed whole", async () => {
  const { parseSnapshotJsonBytes } = await import("../src/snapshot/json.js");
  const { PatchsafeError: PE } = await import("../src/errors.js");
  const enc = new TextEncoder();
  const model = (d: ReturnType<typeof parseSnapshotJson>) => snapshotToJson(d.capture, d.symbols, { producer: "t", sectionRows: d.sectionRows, redacted: d.header.redacted });
  for (const [cap, symbols, opts] of [
    [hostCapture("proc-grep.txt"), hostTable(), {}],
    [hostCapture("capture.json"), null, {}],
    [hostCapture("capture.json"), hostTable(), { redact: true }],
  ] as const) {
    const text = snapshotToJson(cap, symbols, { ...opts, producer: "t" });
    const whole = parseSnapshotJson(text, "w.json");
    // A cap far below the document: only the line reader can read it.
    const lines = parseSnapshotJsonBytes(enc.encode(text), "l.json", 100);
    expect(model(lines)).toBe(model(whole));
    expect(lines.header).toEqual(whole.header);
    expect(Array.from(lines.taskStack)).toEqual(Array.from(whole.taskStack));
    // The same document in another layout (no line per task) is parsed whole, within the cap.
    const compact = enc.encode(JSON.stringify(JSON.parse(text)));
    expect(model(parseSnapshotJsonBytes(compact, "c.json"))).toBe(model(whole));
    try {
      parseSnapshotJsonBytes(compact, "c.json", 100);
      expect.unreachable("a whole document over the cap");
    } catch (e) {
      expect((e as InstanceType<typeof PE>).code).toBe("E_SNAPSHOT_TOO_LARGE");
    }
  }
  // A task line that is not JSON: an error naming the file and that line.
  const text = snapshotToJson(hostCapture("proc-grep.txt"), null, { producer: "t" });
  const rows = text.split("\n");
  const at = rows.indexOf(' "tasks": [') + 3; // the second task's line, 1-based
  rows[at - 1] = rows[at - 1].replace('"tid":', '"tid" ');
  try {
    parseSnapshotJsonBytes(enc.encode(rows.join("\n")), "bad.json");
    expect.unreachable("a broken task line");
  } catch (e) {
    const err = e as InstanceType<typeof PE>;
    expect([err.code, err.file, err.line]).toEqual(["E_INPUT", "bad.json", at]);
  }
});

test("a task line lost or added is an error, not a smaller host; a comm no kernel could have is refused", async () => {
  const { parseSnapshotJsonBytes } = await import("../src/snapshot/json.js");
  const cap = hostCapture("capture.json");
  const text = snapshotToJson(cap, hostTable());
  const enc = (s: string) => new TextEncoder().encode(s);
  expect(parseSnapshotJsonBytes(enc(text), "s.json").capture.tasks.length).toBe(cap.tasks.length);
  // Drop one task line (the writer puts one task per line, after ` "tasks": [`).
  const lines = text.split("\n");
  const first = lines.indexOf(' "tasks": [') + 1;
  const lost = [...lines.slice(0, first), ...lines.slice(first + 1)].join("\n");
  const err = (() => {
    try {
      parseSnapshotJsonBytes(enc(lost), "s.json");
    } catch (e) {
      return e;
    }
    return null;
  })();
  expect(err).toBeInstanceOf(PatchsafeError);
  expect((err as PatchsafeError).code).toBe("E_SNAPSHOT_CORRUPT");
  expect((err as PatchsafeError).message).toMatch(new RegExp(`header says ${cap.tasks.length} task\\(s\\), the file holds ${cap.tasks.length - 1}`));
  // The same document parsed whole (another layout) is checked the same way.
  expect(() => parseSnapshotJson(JSON.stringify(JSON.parse(lost)), "s.json")).toThrow(/the header says/);
  // A 300-byte comm.
  const long = text.replace(/"comm":"[^"]*"/, `"comm":"${"A".repeat(300)}"`);
  expect(() => parseSnapshotJsonBytes(enc(long), "s.json")).toThrow(/comm: 300 bytes: a task name is at most 256/);
});

test("patchsafe's capture JSON refuses a comm no kernel could have too", async () => {
  const { parseNativeJson } = await import("../src/ingest/nativeJson.js");
  const doc = (comm: string) => JSON.stringify({ format: "patchsafe-capture", version: 1, complete: true, tasks: [{ pid: 1, tid: 1, comm, state: "S", frames: [] }] });
  expect(parseNativeJson(doc("A".repeat(256)), "c.json").tasks.length).toBe(1);
  expect(() => parseNativeJson(doc("A".repeat(257)), "c.json")).toThrow(/comm: 257 bytes: a task name is at most 256/);
});

test("a JSON snapshot cut short (any layout but patchsafe's own, so read whole) names the line where it breaks", () => {
  const cap = hostCapture("capture.json");
  // Re-indented: no longer the line layout, so the whole-document reader meets the cut.
  const text = JSON.stringify(JSON.parse(snapshotToJson(cap, hostTable())), null, 1);
  const cut = text.slice(0, Math.floor(text.length / 3));
  const err = (() => {
    try {
      parseSnapshotJson(cut, "cut.json");
    } catch (e) {
      return e;
    }
    return null;
  })() as PatchsafeError;
  expect(err).toBeInstanceOf(PatchsafeError);
  expect(err.code).toBe("E_INPUT");
  expect(err.line).toBe(cut.split("\n").length);
  expect(err.describe()).toMatch(/^cut\.json:\d+: not valid JSON/);
});
