/**
 * Golden files of every released snapshot format version: a reader must keep decoding them.
 * test/fixtures/snapshot/v1-capture.psnap and .json are test/fixtures/host/capture.json written
 * by format 1.0 (no symbol table, to keep them small). Regenerate only for a new format version,
 * as a new file: `PATCHSAFE_WRITE_GOLDEN=1 npx vitest run test/snapshot-golden.test.ts`.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { expect, test } from "vitest";
import { captureModel } from "../src/snapshot/compare.js";
import { parseSnapshotJson, snapshotToJson } from "../src/snapshot/json.js";
import { decodeSnapshot, encodeSnapshot } from "../src/snapshot/psnap.js";
import { fixturePath, hostCapture } from "./helpers.js";

const BIN = fixturePath("snapshot/v1-capture.psnap");
const JSONF = fixturePath("snapshot/v1-capture.json");

test("format 1 golden files decode to the capture they were written from", () => {
  const cap = hostCapture("capture.json");
  if (process.env.PATCHSAFE_WRITE_GOLDEN === "1" || !existsSync(BIN)) {
    writeFileSync(BIN, encodeSnapshot(cap, null, { producer: "patchsafe 0.1.0" }));
    writeFileSync(JSONF, snapshotToJson(cap, null, { producer: "patchsafe 0.1.0" }));
  }
  const d = decodeSnapshot(new Uint8Array(readFileSync(BIN)), BIN);
  expect(d.header).toMatchObject({ major: 1, minor: 0, producer: "patchsafe 0.1.0", hostname: "vm", tasks: cap.tasks.length });
  expect(captureModel(d.capture)).toEqual(captureModel(cap));
  const j = parseSnapshotJson(readFileSync(JSONF, "utf8"), JSONF);
  expect(captureModel(j.capture)).toEqual(captureModel(cap));
});
