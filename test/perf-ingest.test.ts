/**
 * The ingest fast paths against the simple parser: the frame-token memo (a repeated frame line
 * copies the row of its first parse), pushLine() (no per-line copy) and chunking anywhere, on
 * generated dumps with heavy repetition, in every /proc shape. No timing is asserted here.
 */
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { generateProcDump } from "../src/generate/procDump.js";
import { ByteMap, encodeLatin1, latin1 } from "../src/ingest/bytes.js";
import { parseProcText, ProcTextParser } from "../src/ingest/procText.js";
import { parseProcTextReference } from "../src/ingest/procTextReference.js";
import { hostCapture, normalize } from "./helpers.js";


const source = hostCapture("capture.json");

describe("proc text fast paths vs the reference parser", () => {
  test.each(["grep", "tail", "header"] as const)("a 3000-task %s dump with heavy repetition", (shape) => {
    const { text } = generateProcDump(source, { tasks: 3000, seed: 11, shape });
    const expected = parseProcTextReference(text);
    expect(normalize(parseProcText(text))).toEqual(expected);
    // pushLine per line, as an envelope-stripping wrapper would feed it
    const bytes = encodeLatin1(text);
    const p = new ProcTextParser("x");
    let s = 0;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] === 10) {
        p.pushLine(bytes, s, i);
        s = i + 1;
      }
    }
    expect(normalize(p.finish())).toEqual(expected);
  });

  test("chunked anywhere, repeated tokens mixed with real addresses, end markers and junk", () => {
    const lines = [
      "/proc/1/task/1/stack:[<0>] do_epoll_wait+0x588/0x5e0",
      "/proc/1/task/1/stack:[<0>] do_epoll_wait+0x588/0x5e0",
      "/proc/2/task/2/stack:[<ffffffff8112291c>] pipe_wait+0x61/0x7b",
      "/proc/2/task/2/stack:[<ffffffffffffffff>] 0xffffffffffffffff",
      "/proc/2/task/2/stack:[<ffffffff8112291c>] pipe_wait+0x61/0x7b",
      "/proc/3/task/3/stack:[<0>] ? do_epoll_wait+0x588/0x5e0",
      "/proc/3/task/3/stack:[<0>] do_epoll_wait+0x588/0x5e0 [mod abc123]",
      "/proc/3/task/3/stack:[<0>] do_epoll_wait+0x588/0x5e0",
      "garbage",
      "/proc/3/task/3/stack:[<0>] do_epoll_wait+0x588/0x5e0",
    ];
    const text = `${Array.from({ length: 40 }, (_, k) => lines[(k * 7) % lines.length]).join("\n")}\n`;
    const expected = parseProcTextReference(text);
    const bytes = encodeLatin1(text);
    fc.assert(
      fc.property(fc.array(fc.nat(bytes.length), { maxLength: 12 }), (cuts) => {
        const p = new ProcTextParser("x");
        let prev = 0;
        for (const c of [...cuts].sort((a, b) => a - b)) {
          p.push(bytes.subarray(prev, c));
          prev = c;
        }
        p.push(bytes.subarray(prev));
        expect(normalize(p.finish())).toEqual(expected);
      }),
      { seed: 7, numRuns: 100 },
    );
  });
});

test("ByteMap: byte keys to ints, collisions, growth and the entry cap", () => {
  const m = new ByteMap(5000);
  const keys = Array.from({ length: 6000 }, (_, i) => encodeLatin1(`k${i}${"x".repeat(i % 13)}`));
  keys.forEach((k, i) => {
    expect(m.get(k, 0, k.length)).toBe(-1);
    m.set(k, 0, k.length, i);
  });
  expect(m.size).toBe(5000);
  keys.forEach((k, i) => expect(m.get(k, 0, k.length)).toBe(i < 5000 ? i : -1));
  const big = encodeLatin1(`..${latin1(keys[42], 0, keys[42].length)}..`); // a key inside a larger buffer
  expect(m.get(big, 2, 2 + keys[42].length)).toBe(42);
  expect(m.get(big, 2, 1 + keys[42].length)).toBe(-1);
  expect(m.get(big, 0, 0)).toBe(-1);
});
