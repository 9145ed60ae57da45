/**
 * Golden files of every released snapshot format version: a reader must keep decoding them.
 *
 * - v1-capture.psnap / .json: test/fixtures/host/capture.json written by format 1.0 (no symbol
 *   table, to keep them small).
 * - v1.0-symbols.psnap: the same capture with test/fixtures/snapshot/kallsyms-subset.txt (133
 *   rows of the dev host's kallsyms: the capture's functions, their __pfx_ rows, the section
 *   markers, every init_once), written by format 1.0 (the encoder of commit 70afd7c).
 * - v1.1-capture.psnap / .json: the same capture and subset written by format 1.1 (symbol
 *   section last, `symbolsAt` in the header).
 * - v1.2-capture.psnap / .json: the same capture and subset written by format 1.2 (names as one
 *   byte string, frame rows with their resolved symbol rows).
 * - v1.3-capture.psnap / .json: the same capture and subset written by format 1.3 (the header
 *   states the symbol section's SHA-256).
 *
 * Regenerate only the current format's files, and only for a new format version:
 * `PATCHSAFE_WRITE_GOLDEN=1 npx vitest run test/snapshot-golden.test.ts` writes v1.3-capture.*
 * when missing or when asked (older versions' files are never rewritten: they are what released
 * writers produced).
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { Packr } from "msgpackr";
import { expect, test } from "vitest";
import { captureModel, symbolsModel } from "../src/snapshot/compare.js";
import { parseSnapshotJson, snapshotToJson } from "../src/snapshot/json.js";
import { SNAPSHOT_MINOR } from "../src/snapshot/model.js";
import { decodeSnapshot, encodeSnapshot, readSnapshotPrefix } from "../src/snapshot/psnap.js";
import { parseSymbolTable } from "../src/symbols/table.js";
import { fixturePath, fixtureText, hostCapture, runCheck } from "./helpers.js";

const BIN = fixturePath("snapshot/v1-capture.psnap");
const JSONF = fixturePath("snapshot/v1-capture.json");
const BIN10S = fixturePath("snapshot/v1.0-symbols.psnap");
const BIN11 = fixturePath("snapshot/v1.1-capture.psnap");
const JSON11 = fixturePath("snapshot/v1.1-capture.json");
const BIN12 = fixturePath("snapshot/v1.2-capture.psnap");
const JSON12 = fixturePath("snapshot/v1.2-capture.json");
const BIN13 = fixturePath("snapshot/v1.3-capture.psnap");
const JSON13 = fixturePath("snapshot/v1.3-capture.json");

const subset = () => parseSymbolTable(fixtureText("snapshot/kallsyms-subset.txt"), { file: "kallsyms-subset.txt" });

test("format 1.0 golden files decode to the capture they were written from", () => {
  const cap = hostCapture("capture.json");
  const d = decodeSnapshot(new Uint8Array(readFileSync(BIN)), BIN);
  expect(d.header).toMatchObject({ major: 1, minor: 0, producer: "patchsafe 0.1.0", hostname: "vm", tasks: cap.tasks.length });
  expect(captureModel(d.capture)).toEqual(captureModel(cap));
  const j = parseSnapshotJson(readFileSync(JSONF, "utf8"), JSONF);
  expect(captureModel(j.capture)).toEqual(captureModel(cap));
});

test("format 1.0 golden with a symbol table: the same table as from kallsyms", () => {
  const cap = hostCapture("capture.json");
  const table = subset();
  const d = decodeSnapshot(new Uint8Array(readFileSync(BIN10S)), BIN10S);
  expect(d.header).toMatchObject({ major: 1, minor: 0, symbols: table.count });
  expect(captureModel(d.capture)).toEqual(captureModel(cap));
  expect(symbolsModel(d.symbols!)).toEqual(symbolsModel(table));
  expect(d.symbols!.byName.get("init_once")).toEqual(table.byName.get("init_once"));
});

test("format 1.1 golden files: same capture and table; the body is still one map a 1.0 reader reads", () => {
  const cap = hostCapture("capture.json");
  const table = subset();
  const bytes = new Uint8Array(readFileSync(BIN11));
  const d = decodeSnapshot(bytes, BIN11);
  expect(d.header).toMatchObject({ major: 1, minor: 1, producer: "patchsafe 0.1.0", symbols: table.count });
  expect(captureModel(d.capture)).toEqual(captureModel(cap));
  expect(symbolsModel(d.symbols!)).toEqual(symbolsModel(table));
  const j = parseSnapshotJson(readFileSync(JSON11, "utf8"), JSON11);
  expect(j.header.minor).toBe(1);
  expect(captureModel(j.capture)).toEqual(captureModel(cap));
  expect(symbolsModel(j.symbols!)).toEqual(symbolsModel(table));
  // What a 1.0 reader sees: the header's extra key, and a body map whose "symbols" entry starts
  // where symbolsAt says.
  const p = new Packr({ moreTypes: true, useRecords: false, mapsAsObjects: true, copyBuffers: true });
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const hl = dv.getUint32(12, true);
  const header = p.unpack(bytes.subarray(32, 32 + hl)) as { symbolsAt: [number, number] };
  const bodyBytes = bytes.subarray(32 + hl);
  const body = p.unpack(bodyBytes) as Record<string, unknown>;
  expect(Object.keys(body)).toEqual(["capture", "tasks", "frames", "symbols"]);
  expect(header.symbolsAt[0] + header.symbolsAt[1]).toBe(bodyBytes.length);
  expect(p.unpack(bodyBytes.subarray(header.symbolsAt[0]))).toEqual(body.symbols);
  // A 1.1 file's names are front-coded text: the same table, through the old layout, with no resolved rows.
  expect(Object.keys(body.symbols as object)).toEqual(expect.arrayContaining(["pfx", "pre", "len", "text"]));
  expect((body.frames as Record<string, unknown>).symRow).toBeUndefined();
  expect(runCheck(d.capture, ["smpboot_thread_fn", "init_once,3"], { symbols: d.symbols }).verdict.counts).toEqual(runCheck(cap, ["smpboot_thread_fn", "init_once,3"], { symbols: table }).verdict.counts);
});

test("format 1.2 golden files: same capture and table; names as bytes; frame rows carry their symbol rows", () => {
  const cap = hostCapture("capture.json");
  const table = subset();
  const bytes = new Uint8Array(readFileSync(BIN12));
  const d = decodeSnapshot(bytes, BIN12);
  expect(d.header).toMatchObject({ major: 1, minor: 2, producer: "patchsafe 0.1.0", symbols: table.count });
  expect(captureModel(d.capture)).toEqual(captureModel(cap));
  expect(symbolsModel(d.symbols!)).toEqual(symbolsModel(table));
  const j = parseSnapshotJson(readFileSync(JSON12, "utf8"), JSON12);
  expect(j.header.minor).toBe(2);
  expect(captureModel(j.capture)).toEqual(captureModel(cap));
  expect(symbolsModel(j.symbols!)).toEqual(symbolsModel(table));
  const p = new Packr({ moreTypes: true, useRecords: false, mapsAsObjects: true, copyBuffers: true });
  const hl = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
  const body = p.unpack(bytes.subarray(32 + hl)) as { symbols: Record<string, unknown>; frames: Record<string, unknown> };
  expect(body.symbols.names).toBeInstanceOf(Uint8Array);
  expect(body.symbols.text).toBeUndefined();
  expect(body.frames.symRow).toBeInstanceOf(Int32Array);
  // The same verdicts as the table read from kallsyms, duplicates (init_once ×12) included.
  for (const funcs of [["smpboot_thread_fn", "do_epoll_wait"], ["init_once,3"]]) {
    expect(runCheck(d.capture, funcs, { symbols: d.symbols }).verdict.counts, funcs.join()).toEqual(runCheck(cap, funcs, { symbols: table }).verdict.counts);
  }
  expect(d.header.minor).toBe(2);
  expect(readSnapshotPrefix(bytes, BIN12)).toBeNull(); // no digest: a cache reader reads it whole
});

test("format 1.3 golden files: the header states the symbol section's SHA-256; a 1.2 reader's view of the body is unchanged", () => {
  const cap = hostCapture("capture.json");
  const table = subset();
  if (process.env.PATCHSAFE_WRITE_GOLDEN === "1" || !existsSync(BIN13)) {
    writeFileSync(BIN13, encodeSnapshot(cap, table, { producer: "patchsafe 0.1.0" }));
    writeFileSync(JSON13, snapshotToJson(cap, table, { producer: "patchsafe 0.1.0" }));
  }
  const bytes = new Uint8Array(readFileSync(BIN13));
  const d = decodeSnapshot(bytes, BIN13);
  expect(d.header).toMatchObject({ major: 1, minor: 3, producer: "patchsafe 0.1.0", symbols: table.count });
  expect(captureModel(d.capture)).toEqual(captureModel(cap));
  expect(symbolsModel(d.symbols!)).toEqual(symbolsModel(table));
  const j = parseSnapshotJson(readFileSync(JSON13, "utf8"), JSON13);
  expect(j.header.minor).toBe(3);
  expect(captureModel(j.capture)).toEqual(captureModel(cap));
  const p = new Packr({ moreTypes: true, useRecords: false, mapsAsObjects: true, copyBuffers: true });
  const hl = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
  const header = p.unpack(bytes.subarray(32, 32 + hl)) as { symbolsAt: [number, number]; symbolsSha256: Uint8Array };
  const section = bytes.subarray(32 + hl + header.symbolsAt[0]);
  expect(section.length).toBe(header.symbolsAt[1]);
  expect(Buffer.from(header.symbolsSha256).toString("hex")).toBe(createHash("sha256").update(section).digest("hex"));
  expect(readSnapshotPrefix(bytes.subarray(0, 32 + hl), BIN13)).toMatchObject({ start: 32 + hl + header.symbolsAt[0], length: header.symbolsAt[1], total: bytes.length });
  // The body is laid out as in 1.2: a 1.2 reader (which ignores symbolsSha256) reads it unchanged.
  const body = p.unpack(bytes.subarray(32 + hl)) as { symbols: Record<string, unknown>; frames: Record<string, unknown> };
  expect(body.symbols.names).toBeInstanceOf(Uint8Array);
  expect(body.frames.symRow).toBeInstanceOf(Int32Array);
  expect(SNAPSHOT_MINOR).toBe(3);
});
