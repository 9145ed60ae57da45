/**
 * Parsers survive anything: arbitrary bytes (and mutations of real fixtures) give a result or a
 * PatchsafeError, never another exception. The security issue grows this into `npm run fuzz`;
 * PATCHSAFE_FUZZ_RUNS raises the count.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PatchsafeError } from "../src/errors.js";
import { latin1 } from "../src/ingest/bytes.js";
import { jsonErrorOffset } from "../src/ingest/jsonPosition.js";
import { parseNativeJson } from "../src/ingest/nativeJson.js";
import { parseProcText } from "../src/ingest/procText.js";
import { parsePatchFile } from "../src/patch/spec.js";
import { parseSymbolTable } from "../src/symbols/table.js";
import { readPatchModuleSpec } from "../src/patch/patchModule.js";
import { decodeSnapshot, encodeSnapshot } from "../src/snapshot/psnap.js";
import { parseCaptures } from "../src/ingest/detect.js";
import { ProcTokenizer } from "../src/ingest/procTokenizer.js";
import { loadTokenizerModuleSync } from "../src/node/wasm.js";
import { fixtureBytes, fixtureText, hostCapture, normalize } from "./helpers.js";

/** A 64-byte ELF64 little-endian relocatable header pointing at one (absent) section table. */
function elfSeed(): Uint8Array {
  const b = new Uint8Array(128);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);
  const v = new DataView(b.buffer);
  v.setUint16(16, 1, true); // ET_REL
  v.setUint16(18, 62, true); // EM_X86_64
  v.setUint32(20, 1, true);
  v.setBigUint64(40, 64n, true); // e_shoff
  v.setUint16(52, 64, true); // e_ehsize
  v.setUint16(58, 64, true); // e_shentsize
  v.setUint16(60, 1, true); // e_shnum
  return b;
}

/** A real snapshot (the dev host's capture, no symbol table to keep it small) to mutate. */
function snapshotSeed(): Uint8Array {
  return encodeSnapshot(hostCapture("capture.json"), null);
}

const RUNS = Number(process.env.PATCHSAFE_FUZZ_RUNS ?? 300);

/** A result or our error, and no hang: each case must finish well under a second. */
function survives(fn: () => unknown): void {
  const t0 = performance.now();
  try {
    fn();
  } catch (e) {
    if (!(e instanceof PatchsafeError)) throw e;
    expect(e.code).toMatch(/^E_/);
  }
  expect(performance.now() - t0).toBeLessThan(2000);
}

const mutate = (base: Uint8Array) =>
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom("set", "cut", "dup")), { maxLength: 20 }).map((ops) => {
    let b = base.slice();
    for (const [pos, byte, op] of ops) {
      const p = b.length === 0 ? 0 : pos % b.length;
      if (op === "set" && b.length > 0) b[p] = byte;
      else if (op === "cut") b = b.subarray(0, p);
      else b = new Uint8Array([...b.subarray(0, p), ...b.subarray(p, p + 64), ...b.subarray(p)]);
    }
    return b;
  });

describe("fuzz: every parser returns a result or our error", () => {
  const dump = fixtureBytes("host/proc-grep.txt").subarray(0, 4000);
  const capture = fixtureBytes("host/capture.json").subarray(0, 6000);
  const parsers: [string, (b: Uint8Array) => unknown, Uint8Array][] = [
    ["proc text", (b) => parseProcText(b), dump],
    ["native json", (b) => parseNativeJson(new TextDecoder().decode(b)), capture],
    ["kallsyms", (b) => parseSymbolTable(latin1(b, 0, b.length)), new TextEncoder().encode(fixtureText("host/proc-grep.txt").slice(0, 10))],
    ["patch file", (b) => parsePatchFile(new TextDecoder().decode(b), "p.json"), new TextEncoder().encode('{"name":"p","objects":[{"name":"vmlinux","funcs":[{"old_name":"foo","old_sympos":1}]}]}')],
    ["psnap", (b) => decodeSnapshot(b, "x.psnap"), snapshotSeed()],
    // An ELF64 header with a bogus section table: mutations walk every header field.
    ["patch module (.ko)", (b) => readPatchModuleSpec(b, "x.ko"), elfSeed()],
  ];
  for (const [name, parse, seed] of parsers) {
    it(`${name}: arbitrary bytes`, () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), (b) => survives(() => parse(b))), { seed: 7, numRuns: RUNS });
    });
    it(`${name}: mutations of a real input`, () => {
      fc.assert(fc.property(mutate(seed), (b) => survives(() => parse(b))), { seed: 11, numRuns: RUNS });
    });
  }

  it("proc text through the wasm tokenizer: the same captures (or error) as the line path", () => {
    const module = loadTokenizerModuleSync("release");
    const outcome = (b: Uint8Array, tokenizer: boolean) => {
      try {
        const caps = parseCaptures(b, "x", "proc", tokenizer ? { procTokenizer: () => new ProcTokenizer(module, { inputCapacity: 64 }) } : {});
        return caps.map((c) => ({ tasks: normalize(c), lines: c.tasks.map((t) => t.line), warnings: c.warnings, source: c.source }));
      } catch (e) {
        if (!(e instanceof PatchsafeError)) throw e;
        return e.message;
      }
    };
    fc.assert(
      fc.property(fc.oneof(mutate(dump), fc.uint8Array({ maxLength: 2000 })), (b) => {
        expect(outcome(b, true)).toEqual(outcome(b, false));
      }),
      { seed: 13, numRuns: RUNS },
    );
  });

  it("the JSON error locator agrees with JSON.parse on validity", () => {
    const jsonish = fc.oneof(fc.json(), fc.string(), fc.json().map((j) => j.slice(0, Math.max(0, j.length - 1))), fc.json().map((j) => `${j},`));
    fc.assert(
      fc.property(jsonish, (text) => {
        let valid = true;
        try {
          JSON.parse(text);
        } catch {
          valid = false;
        }
        expect(jsonErrorOffset(text) === null).toBe(valid);
      }),
      { seed: 3, numRuns: RUNS * 3 },
    );
  });
});
