/**
 * Format 1.3: the header states the symbol section's SHA-256, and a reader with a section cache
 * (a fleet worker) reads only the bytes before a section it has verified against that digest.
 * What must hold: the model is the one a full read gives; every byte the model is decoded from is
 * covered by a checksum; a digest is believed only for bytes hashed here; a file that cannot take
 * the short path is read whole and fails or passes exactly as without a cache.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { afterAll, expect, test } from "vitest";
import { TaskTable } from "../src/model.js";
import { nativeSha256, newSymbolSectionCache, ReadBuffer, readSnapshotFile } from "../src/node/snapshotFile.js";
import { sha256 } from "../src/sha256.js";
import { crc32 } from "../src/snapshot/crc32.js";
import { captureModel, symbolsModel } from "../src/snapshot/compare.js";
import { decodeSnapshot, encodeSnapshot, readSnapshotPrefix, SymbolSectionCache } from "../src/snapshot/psnap.js";
import { parseSymbolTable } from "../src/symbols/table.js";
import { codeOf, fixtureText, hostCapture, hostTable } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "patchsafe-digest-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cap = hostCapture("capture.json");
const subset = () => parseSymbolTable(fixtureText("snapshot/kallsyms-subset.txt"), { file: "subset" });
/** Host h of a fleet: its own hostname and tasks, the given table. */
function hostFile(name: string, h: number, table = hostTable()): { file: string; bytes: Uint8Array } {
  const bytes = encodeSnapshot({ ...cap, host: { ...cap.host, hostname: `h${h}` }, tasks: TaskTable.from(cap.tasks.toArray().slice(h)) }, table, { sha256: nativeSha256 });
  const file = join(dir, name);
  writeFileSync(file, bytes);
  return { file, bytes };
}
const model = (d: ReturnType<typeof decodeSnapshot>) => JSON.stringify([d.header, captureModel(d.capture), d.symbols === null ? null : symbolsModel(d.symbols)]);
const sectionStart = (bytes: Uint8Array) => readSnapshotPrefix(bytes)!.start;

test("sha256 (src/sha256.ts) equals node:crypto's on seeded random bytes, block boundaries included", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), (b) => {
      expect(Buffer.from(sha256(b)).toString("hex")).toBe(createHash("sha256").update(b).digest("hex"));
    }),
    { seed: 1303, numRuns: 300 },
  );
  const big = new Uint8Array(1 << 20).map((_, i) => (i * 2654435761) >>> 24);
  expect(Buffer.from(sha256(big))).toEqual(Buffer.from(nativeSha256(big)));
});

test("a known section is not read again: the same model as a full read, the cache hit counted", () => {
  const a = hostFile("a.psnap", 0);
  const b = hostFile("b.psnap", 3);
  const cache = newSymbolSectionCache(4);
  const buffer = new ReadBuffer();
  const da = readSnapshotFile(a.file, { cache, buffer });
  expect([cache.misses, cache.hits]).toEqual([1, 0]);
  const db = readSnapshotFile(b.file, { cache, buffer });
  expect([cache.misses, cache.hits]).toEqual([1, 1]);
  expect(db.symbols).toBe(da.symbols); // the cached table, shared
  expect(model(db)).toBe(model(decodeSnapshot(b.bytes, b.file)));
  // The same through decodeSnapshot given only the bytes before the section.
  const part = b.bytes.subarray(0, sectionStart(b.bytes));
  expect(part.length).toBeLessThan(b.bytes.length / 4);
  expect(model(decodeSnapshot(part, b.file, { cache, symbolsOmitted: true }))).toBe(model(decodeSnapshot(b.bytes, b.file)));
});

test("damage confined to a section the reader knows is not read, so not seen; the same damage is seen by a full read", () => {
  const a = hostFile("known-a.psnap", 0);
  const b = hostFile("known-b.psnap", 5);
  const damaged = b.bytes.slice();
  damaged[damaged.length - 100] ^= 0x20;
  writeFileSync(b.file, damaged);
  expect(codeOf(() => readSnapshotFile(b.file))).toBe("E_SNAPSHOT_CHECKSUM");
  const cache = newSymbolSectionCache(4);
  readSnapshotFile(a.file, { cache });
  // The model comes from the bytes before the section (checked) and the cached section (checked when it was cached).
  expect(model(readSnapshotFile(b.file, { cache }))).toBe(model(decodeSnapshot(b.bytes, b.file)));
});

test("damage before a known section is caught on the short path: the body CRC is checked with the cached section's", () => {
  const a = hostFile("pre-a.psnap", 0);
  const b = hostFile("pre-b.psnap", 2);
  const start = sectionStart(b.bytes);
  const hl = new DataView(b.bytes.buffer, b.bytes.byteOffset).getUint32(12, true);
  for (const at of [32 + hl + 3, Math.floor((32 + hl + start) / 2), start - 2]) {
    const damaged = b.bytes.slice();
    damaged[at] ^= 0x01;
    writeFileSync(b.file, damaged);
    const cache = newSymbolSectionCache(4);
    readSnapshotFile(a.file, { cache });
    expect(codeOf(() => readSnapshotFile(b.file, { cache })), `byte ${at}`).toBe("E_SNAPSHOT_CHECKSUM");
    expect(cache.hits, `byte ${at}: took the short path`).toBe(1);
  }
});

test("a header that names another table's digest is not believed: the body CRC fails against the cached section", () => {
  // A file with the subset table whose header (CRCs recomputed, as a buggy or forging writer would) claims the host table's digest.
  const a = hostFile("claim-a.psnap", 0);
  const b = hostFile("claim-b.psnap", 1, subset());
  const forged = withHeader(b.bytes, (h) => ({ ...h, symbolsSha256: headerOf(a.bytes).symbolsSha256 }));
  writeFileSync(b.file, forged);
  const cache = newSymbolSectionCache(4);
  readSnapshotFile(a.file, { cache });
  // Same length needed for the digest lookup; otherwise the whole file is read and the digest checked.
  const code = codeOf(() => readSnapshotFile(b.file, { cache }));
  expect(code).toBe("E_SNAPSHOT_CHECKSUM");
  // Read first (a miss), the lie is caught by hashing the section before caching it.
  expect(codeOf(() => readSnapshotFile(b.file, { cache: newSymbolSectionCache(4) }))).toBe("E_SNAPSHOT_CHECKSUM");
  // A reader without a cache does not use the digest (only its shape is checked): the file reads.
  expect(readSnapshotFile(b.file).symbols!.count).toBe(subset().count);
  // Same length, other bytes: a section changed after its digest was taken, the body CRC
  // recomputed over the changed bytes. The short path is taken and fails on the CRC.
  const c = hostFile("claim-c.psnap", 2);
  const changed = c.bytes.slice();
  changed[changed.length - 100] ^= 0x20;
  const dv = new DataView(changed.buffer);
  const hl = dv.getUint32(12, true);
  dv.setUint32(24, crc32(changed.subarray(32 + hl)), true);
  dv.setUint32(28, crc32(changed, 0, 28), true);
  writeFileSync(c.file, changed);
  const hits = cache.hits;
  expect(codeOf(() => readSnapshotFile(c.file, { cache }))).toBe("E_SNAPSHOT_CHECKSUM");
  expect(cache.hits).toBe(hits + 1);
});

test("a cache filled from a 1.2 file (no digest) takes the digest of a 1.3 file with the same bytes only after hashing them", () => {
  const a = hostFile("v12-a.psnap", 0);
  const old = withHeader(a.bytes, (h) => {
    const { symbolsSha256: _, ...rest } = h;
    return rest;
  });
  const cache = new SymbolSectionCache(4);
  decodeSnapshot(old, "old", { cache });
  const b = hostFile("v12-b.psnap", 4);
  const part = b.bytes.subarray(0, sectionStart(b.bytes));
  // Not known by digest yet: the short path refuses.
  expect(codeOf(() => decodeSnapshot(part, b.file, { cache, symbolsOmitted: true }))).toBe("E_SNAPSHOT_CORRUPT");
  decodeSnapshot(b.bytes, b.file, { cache }); // a hit by bytes: the digest is hashed and kept
  expect(model(decodeSnapshot(part, b.file, { cache, symbolsOmitted: true }))).toBe(model(decodeSnapshot(b.bytes, b.file)));
  // A third file with the same bytes but a wrong digest: a hit by bytes, the digest refused.
  const lie = withHeader(hostFile("v12-c.psnap", 6).bytes, (h) => ({ ...h, symbolsSha256: new Uint8Array(32) }));
  expect(codeOf(() => decodeSnapshot(lie, "lie", { cache }))).toBe("E_SNAPSHOT_CHECKSUM");
});

test("every truncation (each 1/16th) and a flipped byte in each 1/16th: the same error code with a warm cache as without", () => {
  const a = hostFile("trunc-a.psnap", 0, subset());
  const b = hostFile("trunc-b.psnap", 1, subset());
  const codes = (bytes: Uint8Array) => {
    writeFileSync(b.file, bytes);
    const cache = newSymbolSectionCache(4);
    readSnapshotFile(a.file, { cache, buffer: new ReadBuffer() });
    return [codeOf(() => readSnapshotFile(b.file)), codeOf(() => readSnapshotFile(b.file, { cache, buffer: new ReadBuffer() }))];
  };
  const start = sectionStart(b.bytes);
  for (let k = 1; k < 16; k++) {
    const cut = Math.floor((b.bytes.length * k) / 16);
    const [plain, cached] = codes(b.bytes.subarray(0, cut));
    expect(plain, `cut at ${k}/16`).toMatch(/^E_SNAPSHOT_/);
    expect(cached, `cut at ${k}/16`).toBe(plain);
  }
  for (let k = 0; k < 16; k++) {
    const at = Math.floor((b.bytes.length * k) / 16) + 5;
    const flipped = b.bytes.slice();
    flipped[at] ^= 0x10;
    const [plain, cached] = codes(flipped);
    expect(plain, `flip at ${k}/16`).toMatch(/^E_SNAPSHOT_/);
    // Inside the known section the short path does not read the byte (the test above); elsewhere the same code.
    if (at < start) expect(cached, `flip at ${k}/16`).toBe(plain);
    else expect(cached === plain || cached === "no error", `flip at ${k}/16: ${cached}`).toBe(true);
  }
});

/** The raw header map of a .psnap. */
function headerOf(bytes: Uint8Array): Record<string, unknown> {
  const hl = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
  return new Packr({ moreTypes: true, useRecords: false, mapsAsObjects: true }).unpack(bytes.subarray(32, 32 + hl)) as Record<string, unknown>;
}

/** The file with its header replaced, prefix lengths and CRCs recomputed (the body unchanged). */
function withHeader(bytes: Uint8Array, edit: (h: Record<string, unknown>) => Record<string, unknown>): Uint8Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const hl = dv.getUint32(12, true);
  const body = bytes.subarray(32 + hl);
  const h = new Packr({ moreTypes: true, useRecords: false, mapsAsObjects: true }).pack(edit(headerOf(bytes))).slice();
  const out = new Uint8Array(32 + h.length + body.length);
  out.set(bytes.subarray(0, 32));
  out.set(h, 32);
  out.set(body, 32 + h.length);
  const o = new DataView(out.buffer);
  o.setUint32(12, h.length, true);
  o.setUint32(20, crc32(h), true);
  o.setUint32(28, crc32(out, 0, 28), true);
  return out;
}

test("withHeader keeps a file readable when nothing changes (the helper the tests above rely on)", () => {
  const a = hostFile("same.psnap", 0);
  expect(model(decodeSnapshot(withHeader(a.bytes, (h) => h), "same"))).toBe(model(decodeSnapshot(a.bytes, "same")));
  expect(readFileSync(a.file).length).toBe(a.bytes.length);
});
