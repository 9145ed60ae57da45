/**
 * A seeded generator of large /proc stack dumps (`grep -H . /proc/*\/task/*\/stack` shape) made by
 * resampling real stacks: the benchmarks' and tests' workload. Deterministic for a seed. It reports
 * the share of distinct frame lines, since resampling a small host flatters any cache. The same
 * tasks can be written as the kernel log of `echo t > /proc/sysrq-trigger` instead (shape
 * `sysrq`): the format the dmesg reader (src/ingest/dmesg.ts) reads, as x86_64 6.16 prints it.
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
   * `== /proc/PID/task/TID comm` headers (the only /proc shape that carries comms); or `sysrq`,
   * a kernel log of SysRq `t` (show_state(): a `task:` header with comm, state, pid, tgid, ppid
   * and flags per task, then its `Call Trace:`), with the same tasks as the /proc shapes for a
   * seed. Its frames are the source's frames: a source read from /proc lacks the scheduler
   * frames (`__schedule`, `schedule`) a real SysRq trace starts with.
   */
  shape?: "grep" | "tail" | "header" | "sysrq";
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
  /** The source task's facts, for the sysrq shape's header (a resampled task keeps its kind). */
  state: string;
  flags: number;
  ppid: number;
  /** The source task's tid (the sysrq shape's init and kthreadd come from tids 1 and 2). */
  tid: number | null;
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
    if (lines.length > 0) all.push({ lines, funcs, comm: commText(t.comm), state: stateLetter(t.state), flags: t.flags ?? 0, ppid: t.ppid ?? 1, tid: t.tid });
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
    return stacks.map((st) => ({ ...st, lines: [top, ...st.lines], funcs: new Set([...st.funcs, keys[i]]) }));
  });
  const inCount = specs.map(() => 0);
  const rnd = prng(opts.seed);
  const distinct = new Set<string>();
  let frames = 0;
  let buf = "";
  let pid = 100;
  let tid = 100;
  let threadsLeft = 0;
  const sysrq = opts.shape === "sysrq" ? new SysrqWriter() : null;
  if (sysrq !== null) buf += sysrq.line("sysrq: Show State");
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
    let picked = pool[Math.floor(rnd() * pool.length)];
    if (sysrq !== null && k < 2) {
      // A SysRq dump that lacks pid 1 or 2 reads as partial (SPEC §3): the first two tasks are
      // init and kthreadd, with the source's own stacks where it has them. The draws above are
      // made all the same, so every later task equals the /proc shapes' task of the same seed.
      picked = all.find((st) => st.tid === k + 1) ?? picked;
      buf += sysrq.task(picked, k + 1, k + 1, 0); // their parent is the idle task, pid 0
      for (let i = 0; i < specs.length; i++) if (picked.funcs.has(keys[i])) inCount[i]++;
      for (const line of picked.lines) if (distinct.size < 1_000_000) distinct.add(line);
      frames += picked.lines.length;
      continue;
    }
    for (let i = 0; i < specs.length; i++) if (picked.funcs.has(keys[i])) inCount[i]++;
    const stack = picked.lines;
    if (sysrq !== null) {
      buf += sysrq.task(picked, pid, tid);
      for (const line of stack) if (distinct.size < 1_000_000) distinct.add(line);
      frames += stack.length;
      if (buf.length >= 1 << 20) {
        write(buf);
        buf = "";
      }
      continue;
    }
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
  // What sysrq's `t` handler prints after show_state() (show_all_workqueues()): the dump's end.
  if (sysrq !== null) buf += sysrq.line("Showing busy workqueues and worker pools:");
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

/** A state letter SysRq can print (task_state_to_char: R S D T t X Z P I), else S. */
function stateLetter(state: string | null): string {
  return state !== null && /^[RSDTtXZPI]$/.test(state) ? state : "S";
}

/**
 * The sysrq shape's lines: printk's `[seconds.micros] ` prefix on every line (one microsecond
 * apart, from 100 s on), per task sched_show_task()'s header and show_stack()'s trace as x86_64
 * 6.16 prints them (the first format with the PF_* flags, `task_flags`, that task kinds are read
 * from; `flags` are thread_info flags, not captured, written as 0):
 *
 *     [  100.000002] task:kworker/0:1     state:I stack:0     pid:12    tgid:12    ppid:2      task_flags:0x4208060 flags:0x00000000
 *     [  100.000003] Call Trace:
 *     [  100.000004]  <TASK>
 *     [  100.000005]  worker_thread+0x1b4/0x3a0
 *     [  100.000006]  </TASK>
 *
 * The kernel prints the comm as it is (`%-15.15s`), so a comm holding ` state:` makes its own
 * header ambiguous; the written comm (already printable ASCII) has `:` as `_`, so every header
 * written here reads back as the task it describes.
 */
class SysrqWriter {
  private micros = 100_000_000;

  line(text: string): string {
    const us = this.micros++;
    const sec = Math.floor(us / 1_000_000);
    return `[${String(sec).padStart(5)}.${String(us % 1_000_000).padStart(6, "0")}] ${text}\n`;
  }

  task(st: SourceStack, pid: number, tid: number, ppid = st.ppid): string {
    const comm = st.comm.slice(0, 15).replaceAll(":", "_").padEnd(15);
    // task_flags: PF_* (what task kinds are read from); flags: thread_info TIF_* (not captured: 0).
    const taskFlags = (st.flags >>> 0).toString(16).padStart(4, "0");
    let out = this.line(`task:${comm} state:${st.state} stack:${"0".padEnd(5)} pid:${String(tid).padEnd(5)} tgid:${String(pid).padEnd(5)} ppid:${String(ppid).padEnd(6)} task_flags:0x${taskFlags} flags:0x00000000`);
    out += this.line("Call Trace:");
    out += this.line(" <TASK>");
    // Source lines are `[<0>] FRAME` (the /proc shapes' text): the trace prints ` FRAME`.
    for (const l of st.lines) out += this.line(l.slice(5));
    out += this.line(" </TASK>");
    return out;
  }
}

/** In-memory variant for small dumps. */
export function generateProcDump(source: Capture, opts: GenerateOptions): GenerateStats & { text: string } {
  const parts: string[] = [];
  const stats = generateProcDumpTo(source, opts, (p) => parts.push(p));
  return { ...stats, text: parts.join("") };
}
