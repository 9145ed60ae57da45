/** Differential: the kernel-log task-dump parser against its string reference, on generated dumps. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { latin1 } from "../src/ingest/bytes.js";
import { parseCaptures } from "../src/ingest/detect.js";
import { parseDmesgReference, type RefDumpTask } from "../src/ingest/dmesgReference.js";
import { frameText } from "../src/ingest/nativeJson.js";
import { FrameFlag } from "../src/model.js";

const name = fc.stringMatching(/^[a-z_][a-z0-9_]{0,12}(\.(isra|part|constprop)\.[0-9])?$/);
const hex = (max: number) => fc.integer({ min: 0, max }).map((n) => n.toString(16));
const frame = fc.record({ sym: name, off: hex(0xfff), size: hex(0xfff), mod: fc.option(fc.constantFrom("zfs", "spl", "nf_tables"), { nil: null }), guess: fc.boolean() });
const task = fc.record({
  tid: fc.integer({ min: 1, max: 4_000_000 }),
  comm: fc.stringMatching(/^[a-z][a-z0-9/:._-]{0,14}$/),
  state: fc.constantFrom("S", "D", "I", "R", "T"),
  frames: fc.array(frame, { minLength: 1, maxLength: 10 }),
  irqAt: fc.option(fc.nat(9), { nil: null }),
  noiseAfter: fc.boolean(),
});

function render(tasks: { tid: number; comm: string; state: string; frames: { sym: string; off: string; size: string; mod: string | null; guess: boolean }[]; irqAt: number | null; noiseAfter: boolean }[], crlf: boolean): string {
  let n = 0;
  const ts = () => `[${String(100 + n).padStart(5)}.${String(n++ % 1000000).padStart(6, "0")}] `;
  const out = [`${ts()}sysrq: Show State`];
  for (const t of tasks) {
    out.push(`${ts()}task:${t.comm.padEnd(15)} state:${t.state} stack:0     pid:${t.tid}  tgid:${t.tid}  ppid:2      flags:0x00004000`);
    out.push(`${ts()}Call Trace:`, `${ts()} <TASK>`);
    t.frames.forEach((f, i) => {
      if (t.irqAt === i) out.push(`${ts()} <IRQ>`);
      out.push(`${ts()} ${f.guess ? "? " : ""}${f.sym}+0x${f.off}/0x${f.size}${f.mod === null ? "" : ` [${f.mod}]`}`);
      if (t.irqAt === i) out.push(`${ts()} </IRQ>`);
    });
    out.push(`${ts()} </TASK>`);
    if (t.noiseAfter) out.push(`${ts()}usb 1-1: new high-speed USB device number 2 using xhci_hcd`);
  }
  const text = `${out.join("\n")}\n`;
  return crlf ? text.replace(/\n/g, "\r\n") : text;
}

function view(text: string): RefDumpTask[] {
  const caps = parseCaptures(new TextEncoder().encode(text), "gen.txt", "sysrq-t");
  const out: RefDumpTask[] = [];
  for (const c of caps) {
    for (const t of c.tasks) {
      const frames = [];
      for (let i = t.frameStart; i < t.frameStart + t.frameCount; i++) {
        const fl = c.frames.flags[i];
        frames.push({ text: frameText(c, i).replace(/^\? /, ""), guess: (fl & FrameFlag.GUESS) !== 0, regs: (fl & FrameFlag.REGS) !== 0 });
      }
      out.push({ tid: t.tid!, comm: latin1(t.comm!, 0, t.comm!.length).trimEnd(), state: t.state!, frames });
    }
  }
  return out;
}

describe("dmesg task dumps: parser vs reference", () => {
  it("agree on generated sysrq-t dumps with IRQ sections, guesses, noise and CRLF", () => {
    fc.assert(
      fc.property(fc.uniqueArray(task, { minLength: 1, maxLength: 8, selector: (t) => t.tid }), fc.boolean(), (tasks, crlf) => {
        const text = render(tasks, crlf);
        expect(view(text)).toEqual(parseDmesgReference(text));
      }),
      { seed: 77, numRuns: 300 },
    );
  });
});
