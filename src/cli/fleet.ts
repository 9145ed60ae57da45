/**
 * `patchsafe fleet DIR|FILES… (--func … | --range … | --patch FILE) [--jobs N] [--json]`:
 * check many snapshots (one per host) against one patch in parallel on worker_threads. Each
 * worker instantiates the wasm kernel once, claims files from a shared index and reads them
 * itself (src/node/fleetWorker.ts); this thread collects results synchronously (Atomics.wait on
 * a shared counter + receiveMessageOnPort), so runFleet stays a plain function like the other
 * commands.
 * One unreadable snapshot is reported and the others are still checked.
 *
 * Exit: 0 every host safe, 1 any host blocked, 3 otherwise (undecided or unreadable hosts),
 * 2 usage errors (thrown as PatchsafeError E_USAGE).
 */
import { existsSync, readdirSync, statSync, writeSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { MessagePort, Worker } from "node:worker_threads";
import { workerThreads } from "../node/lazyBuiltins.js";
import type { DecideOptions } from "../decide/livepatch.js";
import { PatchsafeError } from "../errors.js";
import { readTextFile } from "../node/io.js";
import type { HostResult } from "../node/fleetCheck.js";
import { emptyPatch, parseFuncArg, parsePatchFile, parseRangeArg, type PatchSpec } from "../patch/spec.js";
import { escapeComm } from "../report/escape.js";
import { VERSION } from "../version.js";

export const FLEET_HELP = `Usage: patchsafe fleet DIR|FILE… (--func F | --range R | --patch FILE)… [--jobs N] [--json]
  Check many snapshots (one per host: .psnap or JSON snapshot; a DIR means its *.psnap and
  *.json files) against one patch, in parallel. Each host is checked with its own symbol table.
  --jobs N        worker threads (default: one per core)
  --partial-ok    decide over the tasks that were read when a capture is partial
  --strict        every warning that weakens "safe" makes it "undecided"
  --json          one JSON object on stdout with an entry per host
Exit status: 0 all hosts safe, 1 any host blocked, 3 otherwise (undecided or unreadable), 2 usage.
`;

/** How the workers are started (tests running from src/ give a TypeScript entry and a loader). */
export interface FleetRuntime {
  workerUrl?: URL;
  execArgv?: string[];
  /** Progress output on a terminal (default: stderr when it is a TTY). */
  progress?: ((line: string) => void) | null;
  /** Seconds without any result before the remaining hosts are given up (default 120). */
  stallSeconds?: number;
}

function usage(msg: string): never {
  throw new PatchsafeError("E_USAGE", `${msg} (patchsafe fleet --help)`);
}

/** The snapshot files named by the arguments: files as given, directories' *.psnap / *.json. */
export function fleetFiles(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let isDir = false;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      isDir = false;
    }
    if (!isDir) {
      out.push(p);
      continue;
    }
    const names = readdirSync(p, { withFileTypes: true })
      .filter((d) => (d.isFile() || d.isSymbolicLink()) && /\.(psnap|json)$/i.test(d.name))
      .map((d) => d.name)
      .sort();
    for (const n of names) out.push(join(p, n));
  }
  return out;
}

function defaultWorkerUrl(): URL {
  // The bundled worker (npm run bundle:cli) when it is there: one module to load per worker
  // instead of ~50, which is most of a worker's start-up in a short fleet run.
  const bundled = new URL("../node/fleetWorker.bundle.mjs", import.meta.url);
  return existsSync(bundled) ? bundled : new URL("../node/fleetWorker.js", import.meta.url);
}

/** Slots of the shared control array (Int32Array over a SharedArrayBuffer, see fleetWorker.ts). */
export const FleetControl = {
  /** Results posted so far (the main thread waits on it). */
  RESULTS: 0,
  /** Workers ready. */
  READY: 1,
  /** The next file index to claim: each worker takes files with Atomics.add until none is left. */
  NEXT: 2,
  /** Slots. */
  LENGTH: 3,
} as const;

/**
 * Checks every file on `jobs` workers; results in file order. Workers claim files themselves
 * (an atomic index into the list): no worker waits for this thread to hand it the next file,
 * and none idles while another still has a queue. This thread only collects results.
 */
export function fleetCheck(files: string[], patch: PatchSpec, options: Partial<DecideOptions>, jobs: number, rt: FleetRuntime = {}, onProgress?: (done: number) => void): HostResult[] {
  const { MessageChannel, Worker, receiveMessageOnPort } = workerThreads();
  const url = rt.workerUrl ?? defaultWorkerUrl();
  if (!existsSync(url)) throw new PatchsafeError("E_UNSUPPORTED", `the fleet worker ${url.pathname} is missing: run npm run build`);
  const control = new SharedArrayBuffer(4 * FleetControl.LENGTH);
  const seq = new Int32Array(control);
  const results: (HostResult | undefined)[] = new Array(files.length);
  const workers: { worker: Worker; port: MessagePort }[] = [];
  const n = Math.max(1, Math.min(jobs, files.length));
  let done = 0;
  let seen = 0;
  try {
    for (let i = 0; i < n; i++) {
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(url, { workerData: { port: port2, control, files, patch, options }, transferList: [port2], execArgv: rt.execArgv ?? [] });
      worker.unref();
      port1.unref();
      workers.push({ worker, port: port1 });
    }
    const stallMs = (rt.stallSeconds ?? 120) * 1000;
    let lastProgress = Date.now();
    while (done < files.length) {
      if (Atomics.load(seq, FleetControl.RESULTS) === seen) {
        Atomics.wait(seq, FleetControl.RESULTS, seen, 100);
        if (Atomics.load(seq, FleetControl.RESULTS) === seen) {
          if (Date.now() - lastProgress > stallMs) break;
          continue;
        }
      }
      for (const w of workers) {
        for (let m = receiveMessageOnPort(w.port); m !== undefined; m = receiveMessageOnPort(w.port)) {
          const msg = m.message as { id: number; result: HostResult };
          if (results[msg.id] === undefined) done++;
          results[msg.id] = msg.result;
          seen++;
        }
      }
      lastProgress = Date.now();
      onProgress?.(done);
    }
  } finally {
    // Nothing left to claim (a stalled run): workers stop after the file they are checking.
    Atomics.store(seq, FleetControl.NEXT, files.length);
    for (const w of workers) {
      w.port.close();
      void w.worker.terminate();
    }
  }
  return files.map(
    (file, i) =>
      results[i] ?? {
        file,
        hostname: null,
        bootId: null,
        release: null,
        capturedAt: null,
        verdict: null,
        exit: 2,
        counts: null,
        blockers: [],
        reasons: [],
        warnings: [],
        error: { code: "E_FLEET_WORKER", message: `${file}: no result (a worker did not start or stopped responding)` },
        ms: 0,
      },
  );
}

export interface FleetSummary {
  hosts: number;
  safe: number;
  blocked: number;
  undecided: number;
  unreadable: number;
  /** Functions by the number of hosts they block. */
  topFunctions: { object: string; name: string | null; hosts: number; tasks: number }[];
  /** Hosts by the number of blocked tasks. */
  topHosts: { file: string; hostname: string | null; blockedTasks: number }[];
}

export function summarizeFleet(results: HostResult[]): FleetSummary {
  const fn = new Map<string, { object: string; name: string | null; hosts: number; tasks: number }>();
  for (const r of results) {
    for (const b of r.blockers) {
      const k = `${b.object}\u0000${b.name}`;
      const e = fn.get(k) ?? { object: b.object, name: b.name, hosts: 0, tasks: 0 };
      e.hosts++;
      e.tasks += b.tasks;
      fn.set(k, e);
    }
  }
  const topFunctions = [...fn.values()].sort((a, b) => b.hosts - a.hosts || b.tasks - a.tasks || `${a.object}:${a.name}`.localeCompare(`${b.object}:${b.name}`)).slice(0, 10);
  const topHosts = results
    .filter((r) => r.counts !== null && r.counts.blocked > 0)
    .map((r) => ({ file: r.file, hostname: r.hostname, blockedTasks: r.counts!.blocked }))
    .sort((a, b) => b.blockedTasks - a.blockedTasks || a.file.localeCompare(b.file))
    .slice(0, 10);
  return {
    hosts: results.length,
    safe: results.filter((r) => r.verdict === "safe").length,
    blocked: results.filter((r) => r.verdict === "blocked").length,
    undecided: results.filter((r) => r.verdict === "undecided").length,
    unreadable: results.filter((r) => r.verdict === null).length,
    topFunctions,
    topHosts,
  };
}

/** Exit status of a fleet: 1 if any host is blocked, 0 if all are safe, else 3. */
export function fleetExit(s: FleetSummary): number {
  if (s.blocked > 0) return 1;
  if (s.safe === s.hosts && s.hosts > 0) return 0;
  return 3;
}

/** Host names are data from other machines: shown escaped like comm. */
function label(name: string | null): string {
  return name === null ? "-" : (escapeComm(new TextEncoder().encode(name)) ?? "-");
}

export function runFleet(args: string[], o: { out: string[]; err: string[] }, rt: FleetRuntime = {}): number {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      func: { type: "string", multiple: true },
      range: { type: "string", multiple: true },
      patch: { type: "string" },
      jobs: { type: "string", short: "j" },
      json: { type: "boolean" },
      "partial-ok": { type: "boolean" },
      strict: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    o.out.push(FLEET_HELP);
    return 0;
  }
  if (positionals.length === 0) usage("fleet needs DIR or FILE… (one snapshot per host)");
  const patch: PatchSpec = values.patch !== undefined ? parsePatchFile(readTextFile(values.patch), values.patch) : emptyPatch();
  for (const f of values.func ?? []) patch.funcs.push(parseFuncArg(f));
  for (const r of values.range ?? []) patch.ranges.push(parseRangeArg(r));
  if (patch.funcs.length === 0 && patch.ranges.length === 0) usage("nothing to check: give --func, --range or --patch");
  const jobs = values.jobs === undefined ? availableParallelism() : Number(values.jobs);
  if (!Number.isSafeInteger(jobs) || jobs < 1 || jobs > 1024) usage("--jobs must be an integer 1..1024");
  const files = fleetFiles(positionals);
  if (files.length === 0) usage("no snapshot found (a DIR is searched for *.psnap and *.json)");
  const options: Partial<DecideOptions> = { model: "livepatch", direction: "apply", partialOk: values["partial-ok"] === true, strict: values.strict === true };

  const progress = rt.progress !== undefined ? rt.progress : process.stderr.isTTY ? (s: string) => void writeSync(2, s) : null;
  let lastDraw = 0;
  let lastPlain = 0;
  const onProgress = (done: number): void => {
    if (progress !== null) {
      const now = Date.now();
      if (now - lastDraw < 100 && done < files.length) return;
      lastDraw = now;
      const width = 30;
      const fill = Math.round((done / files.length) * width);
      progress(`\rfleet: [${"#".repeat(fill)}${".".repeat(width - fill)}] ${done}/${files.length} hosts`);
    } else {
      // Plain lines at every tenth.
      const step = Math.max(1, Math.ceil(files.length / 10));
      if (done === files.length || done - lastPlain >= step) {
        lastPlain = done;
        o.err.push(`fleet: ${done}/${files.length} hosts checked\n`);
      }
    }
  };
  const t0 = performance.now();
  const results = fleetCheck(files, patch, options, jobs, rt, onProgress);
  const wall = performance.now() - t0;
  if (progress !== null) progress("\r\x1b[K");
  const s = summarizeFleet(results);
  const status = fleetExit(s);
  if (values.json) {
    o.out.push(
      `${JSON.stringify(
        {
          schema: 1,
          tool: `patchsafe ${VERSION}`,
          command: "fleet",
          patch: { name: patch.name, funcs: patch.funcs.map((f) => `${f.object}:${f.oldName}${f.oldSympos > 0 ? `,${f.oldSympos}` : ""}`), ranges: patch.ranges.map((r) => r.text) },
          jobs: Math.min(jobs, files.length),
          summary: { hosts: s.hosts, safe: s.safe, blocked: s.blocked, undecided: s.undecided, unreadable: s.unreadable },
          topFunctions: s.topFunctions,
          topHosts: s.topHosts,
          hosts: results.map((r) => ({ ...r, ms: Math.round(r.ms * 10) / 10 })),
        },
        null,
        2,
      )}\n`,
    );
    return status;
  }
  const lines: string[] = [];
  const mark = status === 0 ? "✓ SAFE" : status === 1 ? "✗ BLOCKED" : "? UNDECIDED";
  lines.push(`${mark}: ${s.hosts} host(s): ${s.safe} safe, ${s.blocked} blocked, ${s.undecided} undecided, ${s.unreadable} unreadable (${(wall / 1000).toFixed(2)} s, ${Math.min(jobs, files.length)} worker(s))`);
  if (s.topFunctions.length > 0) {
    lines.push("", "Functions blocking most hosts:", "   hosts    tasks  function");
    for (const f of s.topFunctions) lines.push(`${String(f.hosts).padStart(8)} ${String(f.tasks).padStart(8)}  ${f.object}:${f.name ?? "(range)"}`);
  }
  if (s.topHosts.length > 0) {
    lines.push("", "Hosts with the most blocked tasks:", "  blocked  host                  file");
    for (const h of s.topHosts) lines.push(`${String(h.blockedTasks).padStart(9)}  ${label(h.hostname).padEnd(20)}  ${h.file}`);
  }
  const undecided = results.filter((r) => r.verdict === "undecided");
  if (undecided.length > 0) {
    lines.push("", "Undecided hosts (first reason):");
    for (const r of undecided.slice(0, 20)) lines.push(`  ${label(r.hostname).padEnd(20)}  ${r.file}: ${r.reasons[0]?.code ?? "?"}: ${r.reasons[0]?.message ?? ""}`);
    if (undecided.length > 20) lines.push(`  … and ${undecided.length - 20} more (--json lists every host)`);
  }
  const bad = results.filter((r) => r.error !== null);
  if (bad.length > 0) {
    lines.push("", "Unreadable snapshots (not checked):");
    for (const r of bad) lines.push(`  ${r.error!.code}: ${r.error!.message}`);
  }
  o.out.push(`${lines.join("\n")}\n`);
  return status;
}
