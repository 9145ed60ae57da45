/**
 * A seeded generator of large /proc stack dumps (`grep -H . /proc/*\/task/*\/stack` shape) made by
 * resampling real stacks: the benchmarks' and tests' workload. Deterministic for a seed. It reports
 * the share of distinct frame lines, since resampling a small host flatters any cache.
 */
import { frameText } from "../ingest/nativeJson.js";
import { FrameFlag, type Capture } from "../model.js";

export interface GenerateOptions {
  tasks: number;
  seed: number;
  /** Shape of the dump (default grep). */
  shape?: "grep" | "tail";
}

/** mulberry32: small, fast, good enough for resampling. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Writes the dump through `write` in pieces of about 1 MiB (a 1M-task dump does not fit in one
 * string). Returns the share of distinct frame lines among all frame lines.
 */
export function generateProcDumpTo(source: Capture, opts: GenerateOptions, write: (piece: string) => void): { distinctFrameShare: number; frames: number } {
  const stacks: string[][] = [];
  for (const t of source.tasks) {
    if (t.frameCount === 0 || t.stackStatus !== "ok") continue;
    const lines: string[] = [];
    for (let i = t.frameStart; i < t.frameStart + t.frameCount; i++) {
      if (source.frames.flags[i] & (FrameFlag.UNPARSED | FrameFlag.GUESS)) continue;
      lines.push(`[<0>] ${frameText(source, i)}`);
    }
    if (lines.length > 0) stacks.push(lines);
  }
  if (stacks.length === 0) throw new Error("the source capture has no readable stack to resample");
  const rnd = prng(opts.seed);
  const distinct = new Set<string>();
  let frames = 0;
  let buf = "";
  let pid = 100;
  let tid = 100;
  let threadsLeft = 0;
  for (let k = 0; k < opts.tasks; k++) {
    if (threadsLeft === 0) {
      pid = tid + 1 + Math.floor(rnd() * 5);
      tid = pid;
      threadsLeft = 1 + Math.floor(rnd() * rnd() * 16);
    } else tid += 1 + Math.floor(rnd() * 2);
    threadsLeft--;
    const stack = stacks[Math.floor(rnd() * stacks.length)];
    const path = `/proc/${pid}/task/${tid}/stack`;
    if (opts.shape === "tail") buf += `==> ${path} <==\n`;
    for (const line of stack) {
      buf += opts.shape === "tail" ? `${line}\n` : `${path}:${line}\n`;
      if (distinct.size < 1_000_000) distinct.add(line);
      frames++;
    }
    if (opts.shape === "tail") buf += "\n";
    if (buf.length >= 1 << 20) {
      write(buf);
      buf = "";
    }
  }
  if (buf.length > 0) write(buf);
  return { distinctFrameShare: frames === 0 ? 0 : distinct.size / frames, frames };
}

/** In-memory variant for small dumps. */
export function generateProcDump(source: Capture, opts: GenerateOptions): { text: string; distinctFrameShare: number } {
  const parts: string[] = [];
  const { distinctFrameShare } = generateProcDumpTo(source, opts, (p) => parts.push(p));
  return { text: parts.join(""), distinctFrameShare };
}
