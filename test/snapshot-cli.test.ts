/** convert and the private output rules (0600, no symlink, never over an input), in-process. */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { runConvert } from "../src/cli/convert.js";
import { PatchsafeError } from "../src/errors.js";
import { readSnapshotFile, writePrivateFile } from "../src/node/snapshotFile.js";
import { captureModel } from "../src/snapshot/compare.js";
import { fixturePath, hostCapture } from "./helpers.js";

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "patchsafe-convert-"));
});
afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

const io = () => ({ out: [] as string[], err: [] as string[] });

test("convert: text → psnap → JSON → psnap, same model; mode 0600", () => {
  const grep = fixturePath("host/proc-grep.txt");
  const a = join(dir, "a.psnap");
  const j = join(dir, "a.json");
  const b = join(dir, "b.psnap");
  let o = io();
  expect(runConvert([grep, "-o", a], o)).toBe(0);
  expect(o.err.join("")).toMatch(/proc-text, 125 task\(s\).*no symbol table/);
  expect(statSync(a).mode & 0o777).toBe(0o600);
  o = io();
  expect(runConvert([a, "-o", j], o)).toBe(0);
  expect(readFileSync(j, "utf8")).toMatch(/^\{\n "format": "patchsafe-snapshot"/);
  expect(runConvert([j, "-o", b, "--psnap"], io())).toBe(0);
  const fixture = hostCapture("proc-grep.txt");
  const want = captureModel({ ...fixture, source: { ...fixture.source, name: grep } });
  expect(captureModel(readSnapshotFile(a).capture)).toEqual(want);
  expect(captureModel(readSnapshotFile(b).capture)).toEqual(want);
  // Several inputs go to a directory, one snapshot each.
  const out = join(dir, "many");
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  expect(runConvert([grep, fixturePath("host/capture.json"), "-o", out], io())).toBe(0);
  expect(readSnapshotFile(join(out, "proc-grep.psnap")).capture.tasks.length).toBe(125);
  expect(readSnapshotFile(join(out, "capture.psnap")).header.source.format).toBe("patchsafe-capture");
  expect(() => runConvert([grep, grep, "-o", join(dir, "x.psnap")], io())).toThrow(/several INPUTs/);
});

test("output never goes through a symlink, over an input or a non-regular file; existing files become 0600", () => {
  const target = join(dir, "victim");
  writeFileSync(target, "keep");
  const link = join(dir, "link.psnap");
  symlinkSync(target, link);
  expect(() => writePrivateFile(link, "x")).toThrow(/symlink/);
  expect(readFileSync(target, "utf8")).toBe("keep");
  const input = join(dir, "in.txt");
  writeFileSync(input, readFileSync(fixturePath("host/proc-grep.txt")));
  expect(() => runConvert([input, "-o", input], io())).toThrow(/over the input/);
  expect(() => writePrivateFile(dir, "x")).toThrow(PatchsafeError);
  const loose = join(dir, "loose.psnap");
  writeFileSync(loose, "old");
  chmodSync(loose, 0o644);
  writePrivateFile(loose, "new");
  expect(statSync(loose).mode & 0o777).toBe(0o600);
});
