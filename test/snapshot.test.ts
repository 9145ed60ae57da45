/**
 * The binary snapshot (.psnap): round trips with the dev host's capture and kallsyms, msgpackr
 * typed arrays, redaction, and every corruption class rejected with its code in bounded memory.
 */
import { Packr } from "msgpackr";
import { describe, expect, test } from "vitest";
import { PatchsafeError } from "../src/errors.js";
import { type Capture, FrameFlag } from "../src/model.js";
import { decodeInts, encodeInts } from "../src/snapshot/columns.js";
import { crc32 } from "../src/snapshot/crc32.js";
import { decodeSnapshot, encodeSnapshot, isSnapshot, readSnapshotHeader, SNAPSHOT_MAGIC } from "../src/snapshot/psnap.js";
import { captureModel, symbolsModel } from "../src/snapshot/compare.js";
import { hostCapture, hostTable, runCheck } from "./helpers.js";
import { crc32 as zcrc32 } from "node:zlib";

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof PatchsafeError) return e.code;
    throw e;
  }
  return "no error";
}

describe("psnap round trip", () => {
  test("capture.json + kallsyms → psnap → model equal", () => {
    const cap = hostCapture("capture.json");
    const table = hostTable();
    const bytes = encodeSnapshot(cap, table);
    expect(isSnapshot(bytes)).toBe(true);
    const d = decodeSnapshot(bytes, "x.psnap");
    expect(captureModel(d.capture)).toEqual(captureModel(cap));
    expect(symbolsModel(d.symbols!)).toEqual(symbolsModel(table));
    const h = readSnapshotHeader(bytes);
    expect(h.tasks).toBe(cap.tasks.length);
    expect(h.hostname).toBe("vm");
    // The same verdict from the snapshot as from the originals.
    const a = runCheck(cap, ["smpboot_thread_fn", "do_epoll_wait"]).verdict;
    const b = runCheck(d.capture, ["smpboot_thread_fn", "do_epoll_wait"], { symbols: d.symbols }).verdict;
    expect(b.verdict).toBe(a.verdict);
    expect(b.counts).toEqual(a.counts);
  });
});
