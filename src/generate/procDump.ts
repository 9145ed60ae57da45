/**
 * A seeded generator of large /proc stack dumps (`grep -H . /proc/*\/task/*\/stack` shape) made by
 * resampling real stacks: the benchmarks' and tests' workload. Deterministic for a seed. It reports
 * the share of distinct frame lines, since resampling a small host flatters any cache.
 */
import { frameText } from "../ingest/nativeJson.js";
import { FrameFlag, type Capture, VMLINUX } from "../model.js";
import { findObjectSymbol, type SymbolTable } from "../symbols/table.js";

/** A function a chosen share of the generated tasks sleep in. */
export interface ShareSpec {
  object: string;
  name: string;
  /** Fraction of tasks, 0..1 (all specs together at most 1). */
  share: number;
}

export interface GenerateOptions {
  tasks: number;
  seed: number;
  /**
   * Shape of the dump (default grep): `grep -H`, `tail -n +1` (`==> path <==`), or per-task
   * `== /proc/PID/task/TID comm` headers (the only /proc shape that carries comms).
   */
  shape?: "grep" | "tail" | "header";
  /**
   * Tasks in chosen functions: each task is, with probability `share`, given a stack that holds
   * the function (a source stack that has it, else a source stack with the function's frame put
   * on top); the other tasks get stacks that hold none of the chosen functions where the source
   * has such stacks.
   */
  in?: ShareSpec[];
  /** Sizes for inserted frames (a frame must print the size kallsyms gives to resolve). */
  symbols?: SymbolTable | null;
}

export interface GenerateStats {
  /** Distinct frame lines / all frame lines (1 = no repetition; resampling a small host is low). */
  distinctFrameShare: number;
  frames: number;
  tasks: number;
  /** Per `in` spec: the share of tasks whose stack holds the function, as generated. */
  inShare: number[];
}

interface SourceStack {
  lines: string[];
  /** `object\0name` of every frame */
  funcs: Set<string>;
  comm: string;
}

const funcKey = (object: string, name: string): string => `${object}\u0000${name}`;

/** The printed size of `object:name`: the symbol table's, else any source frame's; null when unknown. */
function sizeOf(source: Capture, symbols: SymbolTable | null | undefined, spec: ShareSpec): number | null {
  if (symbols != null && symbols.hasAddresses) {
    const r = findObjectSymbol(symbols, spec.object, spec.name, 0);
    if (r.ok && symbols.size[r.index] > 0) return symbols.size[r.index];
    if (!r.ok && r.code === "E_SYMBOL_AMBIGUOUS") {
      const first = findObjectSymbol(symbols, spec.object, spec.name, 1);
      if (first.ok && symbols.size[first.index] > 0) return symbols.size[first.index];
    }
  }
  const f = source.frames;
  for (let i = 0; i < f.length; i++) {
    if (!(f.flags[i] & FrameFlag.HAS_SIZE) || f.symbol[i] < 0) continue;
    if (source.strings.get(f.symbol[i]) === spec.name && source.strings.get(f.object[i]) === spec.object) return f.size[i];
  }
  return null;
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
export function generateProcDumpTo(source: Capture, opts: GenerateOptions, write: (piece: string) => void): GenerateStats {
  const all: SourceStack[] = [];
  for (const t of source.tasks) {
    if (t.frameCount === 0 || t.stackStatus !== "ok") continue;
    const lines: string[] = [];
    const funcs = new Set<string>();
    for (let i = t.frameStart; i < t.frameStart + t.frameCount; i++) {
      if (source.frames.flags[i] & (FrameFlag.UNPARSED | FrameFlag.GUESS)) continue;
      lines.push(`[<0>] ${frameText(source, i)}`);
      if (source.frames.symbol[i] >= 0) funcs.add(funcKey(source.strings.get(source.frames.object[i]) ?? VMLINUX, source.strings.get(source.frames.symbol[i])));
    }
    if (lines.length > 0) all.push({ lines, funcs, comm: commText(t.comm) });
  }
  if (all.length === 0) throw new Error("the source capture has no readable stack to resample");
  const specs = opts.in ?? [];
  let total = 0;
  for (const sp of specs) {
    if (!(sp.share >= 0 && sp.share <= 1)) throw new RangeError(`share of ${sp.name} must be in [0, 1], got ${sp.share}`);
    total += sp.share;
  }
  if (total > 1 + 1e-9) throw new RangeError(`the shares add up to ${total}, more than 1`);
  const keys = specs.map((sp) => funcKey(sp.object, sp.name));
  // Tasks outside every chosen function draw from `stacks`; tasks in spec i from pools[i].
  const clean = all.filter((st) => keys.every((k) => !st.funcs.has(k)));
  const stacks = specs.length === 0 || clean.length === 0 ? all : clean;
  const pools: SourceStack[][] = specs.map((sp, i) => {
    const having = all.filter((st) => st.funcs.has(keys[i]) && keys.every((k, j) => j === i || !st.funcs.has(k)));
    if (having.length > 0) return having;
    // No source stack holds it: put its frame on top of clean stacks (offset inside the body).
    const size = sizeOf(source, opts.symbols, sp);
    if (size === null) throw new RangeError(`no source stack holds ${sp.name} and its size is unknown: give the symbol table (--kallsyms)`);
    const off = Math.max(1, Math.min(0x10, size - 1));
    const top = `[<0>] ${sp.name}+0x${off.toString(16)}/0x${size.toString(16)}${sp.object === VMLINUX ? "" : ` [${sp.object}]`}`;
    return stacks.map((st) => ({ lines: [top, ...st.lines], funcs: new Set([...st.funcs, keys[i]]), comm: st.comm }));
  });
  const inCount = specs.map(() => 0);
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
    let pool = stacks;
    if (specs.length > 0) {
      // One draw picks the spec (cumulative shares) or none.
      let r = rnd();
      for (let i = 0; i < specs.length; i++) {
        if (r < specs[i].share) {
          pool = pools[i];
          break;
        }
        r -= specs[i].share;
      }
    }
    const picked = pool[Math.floor(rnd() * pool.length)];
    for (let i = 0; i < specs.length; i++) if (picked.funcs.has(keys[i])) inCount[i]++;
    const stack = picked.lines;
    const path = `/proc/${pid}/task/${tid}/stack`;
    if (opts.shape === "tail") buf += `==> ${path} <==\n`;
    else if (opts.shape === "header") buf += `== /proc/${pid}/task/${tid} ${picked.comm}\n`;
    for (const line of stack) {
      buf += opts.shape === "tail" || opts.shape === "header" ? `${line}\n` : `${path}:${line}\n`;
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
  return { distinctFrameShare: frames === 0 ? 0 : distinct.size / frames, frames, tasks: opts.tasks, inShare: inCount.map((n) => (opts.tasks === 0 ? 0 : n / opts.tasks)) };
}

/** A comm for the header shape: printable ASCII (other bytes as `_`), `task` when absent. */
function commText(comm: Uint8Array | null): string {
  if (comm === null || comm.length === 0) return "task";
  let s = "";
  for (const b of comm) s += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "_";
  return s;
}

/** In-memory variant for small dumps. */
export function generateProcDump(source: Capture, opts: GenerateOptions): GenerateStats & { text: string } {
  const parts: string[] = [];
  const stats = generateProcDumpTo(source, opts, (p) => parts.push(p));
  return { ...stats, text: parts.join("") };
}
