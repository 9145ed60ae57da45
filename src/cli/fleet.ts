/**
 * `patchsafe fleet DIR|FILES… (--func … | --range … | --patch FILE) [--jobs N] [--json]`:
 * check many snapshots (one per host) against one patch in parallel on worker_threads. Each
 * worker instantiates the wasm kernel once, claims files from a shared index and reads them
 * itself (src/node/fleetWorker.ts); this thread collects results synchronously (Atomics.wait on
 * a shared counter + receiveMessageOnPort), so runFleet stays a plain function like the other
 * commands.
 * One unreadable snapshot is reported and the others are still checked. So is a snapshot whose
 * worker thread stops while checking it (out of memory, a crash, process.exit): each worker
 * keeps the index of the file in hand in its slot of the shared array, this thread notices the
 * stop within ~100 ms (fleetCheck says how), reports that file as E_FLEET_WORKER and starts a
 * replacement while files are left. A worker alive but stuck is given up after `stallSeconds`.
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
import { escapeComm, terminalSafe } from "../report/escape.js";
import { VERSION } from "../version.js";

export const FLEET_HELP = `Usage: patchsafe fleet DIR|FILE… (--func F | --range R | --patch FILE)… [--model M] [--revert]
                      [--jobs N] [--partial-ok] [--strict] [--json]
  Check many snapshots (one per host: .psnap or JSON snapshot; a DIR means its *.psnap and
  *.json files) against applying (or reverting) one patch, in parallel. Each host is checked with
  its own symbol table and its own applied patch stack, as \`patchsafe check HOST.psnap\` checks it.
  --model M       livepatch (default), kpatch or quiesce
  --revert        check disabling the --patch on every host that runs it (enabled in the host's
                  recorded stack), against every function the host recorded for it; hosts that do
                  not run it are listed, not checked; hosts whose snapshot records no stack, and
                  hosts where its revert is under way already, are undecided
  --jobs N        worker threads (default: one per core)
  --partial-ok    decide over the tasks that were read when a capture is partial
  --strict        every warning that weakens "safe" makes it "undecided"
  --json          one JSON object on stdout with an entry per host
Exit status: 0 all hosts safe (with --revert: all that run the patch, at least one), 1 any host
blocked, 3 otherwise (undecided or unreadable), 2 usage.
`;

/** How the workers are started (tests running from src/ give a TypeScript entry and a loader). */
export interface FleetRuntime {
  workerUrl?: URL;
  execArgv?: string[];
  /** Progress output on a terminal (default: stderr when it is a TTY). */
  progress?: ((line: string) => void) | null;
  /** Seconds without any result before the remaining hosts are given up (default 120). */
  stallSeconds?: number;
  /** Heap limits of each worker (new Worker's resourceLimits; tests give a tiny heap to make one die). */
  resourceLimits?: import("node:worker_threads").ResourceLimits;
}

function usage(msg: string): never {
  throw new PatchsafeError("E_USAGE", `${msg} (patchsafe fleet --help)`);
}

/** The snapshot files named by the arguments: files as given, directories' *.psnap / *.json. */
export function fleetFiles(paths: string[], skipped: string[] = []): string[] {
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
    const entries = readdirSync(p, { withFileTypes: true });
    const names = entries
      .filter((d) => (d.isFile() || d.isSymbolicLink()) && /\.(psnap|json)$/i.test(d.name))
      .map((d) => d.name)
      .sort();
    for (const n of names) out.push(join(p, n));
    // Subdirectories and other files are not read: said, since hosts kept there go unchecked.
    if (entries.length > names.length) skipped.push(...entries.map((d) => d.name).filter((n) => !names.includes(n)).sort().map((n) => join(p, n)));
  }
  return out;
}

function defaultWorkerUrl(): URL {
  // The bundled worker (npm run bundle:cli) when it is there: one module to load per worker
  // instead of ~50, which is most of a worker's start-up in a short fleet run.
  const bundled = new URL("../node/fleetWorker.bundle.mjs", import.meta.url);
  return existsSync(bundled) ? bundled : new URL("../node/fleetWorker.js", import.meta.url);
}

/**
 * Slots of the shared control array (Int32Array over a SharedArrayBuffer; fleetWorker.ts keeps a
 * copy of these numbers): RESULTS and NEXT, then one WORKERS slot per worker.
 */
export const FleetControl = {
  /** Results posted so far (the main thread waits on it). */
  RESULTS: 0,
  /** The next file index to claim: each worker takes files with Atomics.add until none is left. */
  NEXT: 1,
  /**
   * The first per-worker slot: what worker k is doing, in slot WORKERS + k. STARTING (set by
   * this thread before it starts the worker), IDLE (loaded, no file in hand), or the index of
   * the file it claimed and has not yet posted a result for. A replacement takes over the slot.
   */
  WORKERS: 2,
  STARTING: -2,
  IDLE: -1,
} as const;

/** Atomics.wait's timeout: how long this thread sleeps without results before it looks at the workers. */
const WAIT_MS = 100;

/**
 * Whether the other end of `port` is still open, by posting a null to it: Node's
 * MessagePort.postMessage returns true when the message had a destination (typed void: it is
 * not documented; see fleetCheck).
 */
function peerOpen(port: MessagePort): boolean {
  return (port.postMessage(null) as unknown) === true;
}

/** The result of a file that no worker checked. */
function notChecked(file: string, why: string): HostResult {
  return { file, hostname: null, bootId: null, release: null, capturedAt: null, applied: null, transition: null, notApplied: null, verdict: null, exit: 2, counts: null, blockers: [], reasons: [], warnings: [], error: { code: "E_FLEET_WORKER", message: `${file}: not checked: ${why}` }, ms: 0 };
}

/**
 * Checks every file on `jobs` workers; results in file order. Workers claim files themselves
 * (an atomic index into the list): no worker waits for this thread to hand it the next file,
 * and none idles while another still has a queue. This thread collects results and watches the
 * workers: one that stops (out of memory, a crash, process.exit) costs only the file it was
 * checking (an E_FLEET_WORKER result naming it) and is replaced while files are left to claim.
 *
 * A worker's exit event needs this thread's event loop, which the synchronous collection blocks
 * (worker.threadId, too, changes only in that event). What is visible at once is the worker's end
 * of its MessageChannel going away with the thread: from then on port.postMessage returns false
 * (Node's MessagePort returns whether the message had a destination; `undefined` once this end
 * has read the peer's close). So a wait that times out, and otherwise every WAIT_MS, posts a null
 * to each worker (which never reads its port: the probes are dropped with it). Node does not
 * document that return value: when a fresh channel does not answer `true`, the probes are off and
 * the stall timeout is the only guard, as before.
 */
export function fleetCheck(files: string[], patch: PatchSpec, options: Partial<DecideOptions>, jobs: number, rt: FleetRuntime = {}, onProgress?: (done: number) => void): HostResult[] {
  const { MessageChannel, Worker, receiveMessageOnPort } = workerThreads();
  const url = rt.workerUrl ?? defaultWorkerUrl();
  if (!existsSync(url)) throw new PatchsafeError("E_UNSUPPORTED", `the fleet worker ${url.pathname} is missing: run npm run build`);
  const n = Math.max(1, Math.min(jobs, files.length));
  const control = new SharedArrayBuffer(4 * (FleetControl.WORKERS + n));
  const seq = new Int32Array(control);
  const results: (HostResult | undefined)[] = new Array(files.length);
  /** Worker k in slot WORKERS + k; null once it stopped and was not replaced. */
  const workers: ({ worker: Worker; port: MessagePort } | null)[] = [];
  const everyWorker: Worker[] = [];
  let done = 0;
  const probe = new MessageChannel();
  const probes = peerOpen(probe.port1);
  probe.port1.close();
  probe.port2.close();

  const start = (k: number): { worker: Worker; port: MessagePort } => {
    Atomics.store(seq, FleetControl.WORKERS + k, FleetControl.STARTING);
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(url, {
      workerData: { port: port2, control, slot: k, files, patch, options },
      transferList: [port2],
      execArgv: rt.execArgv ?? [],
      resourceLimits: rt.resourceLimits,
    });
    // A worker that dies of an error (out of memory, an uncaught exception, a module that does
    // not load) emits 'error' on this thread after the run; unhandled, it would end the process.
    // The run has reported it already, as the file that worker was checking.
    worker.on("error", () => {});
    worker.unref();
    port1.unref();
    everyWorker.push(worker);
    return { worker, port: port1 };
  };
  const drain = (port: MessagePort): void => {
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
      const msg = m.message as { id: number; result: HostResult };
      if (results[msg.id] === undefined) done++;
      results[msg.id] = msg.result;
    }
  };

  // Why the files no worker is left for were not checked (when a worker stopped unreplaced).
  let noReplacement = "no worker reported a result for it and none is left";
  // Workers that stopped with no file in hand although files were left: replaced at most n
  // times (such a stop repeats, and costs no file that would bound the replacements).
  let idleStopsLeft = n;
  let startFailed = false;
  /** Looks at every worker; true when a stopped one was found (its file then has a result). */
  const reap = (): boolean => {
    let found = false;
    for (let k = 0; k < workers.length; k++) {
      const w = workers[k];
      if (w === null || peerOpen(w.port)) continue;
      found = true;
      // Its thread is gone: what it posted before it stopped is on the port already.
      drain(w.port);
      w.port.close();
      workers[k] = null;
      const state = Atomics.load(seq, FleetControl.WORKERS + k);
      if (state >= 0 && results[state] === undefined) {
        results[state] = notChecked(files[state], "the worker thread checking it stopped before it reported a result (the file may be what stopped it: it is not checked again)");
        done++;
      }
      if (Atomics.load(seq, FleetControl.NEXT) >= files.length) continue;
      if (state === FleetControl.STARTING) {
        // The worker could not even load: a replacement would fail the same way.
        startFailed = true;
        noReplacement = "a fleet worker thread stopped while it was starting (before it could check any file), so no replacement was started";
        continue;
      }
      if (startFailed) continue;
      if (state === FleetControl.IDLE && idleStopsLeft-- <= 0) {
        noReplacement = `${n + 1} fleet worker threads stopped between files; no further replacement was started`;
        continue;
      }
      try {
        workers[k] = start(k);
      } catch (e) {
        noReplacement = `a replacement worker could not be started: ${e instanceof Error ? e.message : String(e)}`;
      }
    }
    return found;
  };

  try {
    for (let k = 0; k < n; k++) workers.push(start(k));
    const stallMs = (rt.stallSeconds ?? 120) * 1000;
    let lastProgress = Date.now();
    let lastProbe = lastProgress;
    let signal = 0;
    while (done < files.length) {
      if (Atomics.load(seq, FleetControl.RESULTS) === signal) Atomics.wait(seq, FleetControl.RESULTS, signal, WAIT_MS);
      const now = Date.now();
      const posted = Atomics.load(seq, FleetControl.RESULTS);
      const timedOut = posted === signal;
      const before = done;
      if (!timedOut) {
        signal = posted;
        for (const w of workers) if (w !== null) drain(w.port);
        lastProgress = now;
      }
      if (probes && (timedOut || now - lastProbe >= WAIT_MS)) {
        lastProbe = now;
        if (reap()) lastProgress = now;
        if (workers.every((w) => w === null)) break;
      }
      if (done !== before) onProgress?.(done);
      if (timedOut && now - lastProgress > stallMs) break;
    }
  } finally {
    // Nothing left to claim (a stalled run): workers stop after the file they are checking.
    Atomics.store(seq, FleetControl.NEXT, files.length);
    for (const w of workers) w?.port.close();
    for (const w of everyWorker) void w.terminate();
  }
  const left = workers.some((w) => w !== null) ? `no result from any worker for ${rt.stallSeconds ?? 120} s (a worker hangs${probes ? "" : ", did not start or stopped"})` : noReplacement;
  return files.map((file, i) => results[i] ?? notChecked(file, left));
}

export interface FleetSummary {
  hosts: number;
  safe: number;
  blocked: number;
  undecided: number;
  unreadable: number;
  /** --revert: hosts that do not run the patch (not checked). */
  notApplied: number;
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
    unreadable: results.filter((r) => r.verdict === null && r.notApplied === null).length,
    notApplied: results.filter((r) => r.notApplied !== null).length,
    topFunctions,
    topHosts,
  };
}

/**
 * Exit status of a fleet: 1 if any host is blocked, 0 if every host is safe or (reverting) has
 * nothing to revert, with at least one safe host; else 3. A revert that no host needs is not
 * "safe" (a wrong patch name looks just like it).
 */
export function fleetExit(s: FleetSummary): number {
  if (s.blocked > 0) return 1;
  if (s.safe > 0 && s.safe + s.notApplied === s.hosts) return 0;
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
      model: { type: "string" },
      revert: { type: "boolean" },
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
  // As for check: what blocks a revert is the patch's own replacements, found by its name.
  if (values.revert && values.patch === undefined) usage("--revert needs --patch FILE naming the patch to disable");
  if (values.revert && patch.name === null) usage(`--revert needs a patch with a name: ${values.patch} has none`);
  const jobs = values.jobs === undefined ? availableParallelism() : Number(values.jobs);
  if (!Number.isSafeInteger(jobs) || jobs < 1 || jobs > 1024) usage("--jobs must be an integer 1..1024");
  const skipped: string[] = [];
  const files = fleetFiles(positionals, skipped);
  if (files.length === 0) usage("no snapshot found (a DIR is searched for *.psnap and *.json)");
  if (skipped.length > 0) {
    const shown = skipped.slice(0, 3).map((f) => terminalSafe(f)).join(", ");
    o.err.push(`fleet: ${skipped.length} entr${skipped.length === 1 ? "y" : "ies"} not checked (a DIR is searched for *.psnap and *.json directly inside it, not in subdirectories): ${shown}${skipped.length > 3 ? ", …" : ""}\n`);
  }
  const model = values.model ?? "livepatch";
  if (model !== "livepatch" && model !== "kpatch" && model !== "quiesce") usage(`--model ${model}: expected livepatch, kpatch or quiesce`);
  const direction = values.revert === true ? "revert" : "apply";
  const options: Partial<DecideOptions> = { model, direction, partialOk: values["partial-ok"] === true, strict: values.strict === true };

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
          model,
          direction,
          patch: { name: patch.name, funcs: patch.funcs.map((f) => `${f.object}:${f.oldName}${f.oldSympos > 0 ? `,${f.oldSympos}` : ""}`), ranges: patch.ranges.map((r) => r.text) },
          jobs: Math.min(jobs, files.length),
          summary: { hosts: s.hosts, safe: s.safe, blocked: s.blocked, undecided: s.undecided, unreadable: s.unreadable, notApplied: s.notApplied },
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
  const without = direction === "revert" ? `, ${s.notApplied} without the patch` : "";
  lines.push(`${mark}: ${s.hosts} host(s): ${s.safe} safe, ${s.blocked} blocked, ${s.undecided} undecided, ${s.unreadable} unreadable${without} (${model} ${direction}, ${(wall / 1000).toFixed(2)} s, ${Math.min(jobs, files.length)} worker(s))`);
  if (direction === "revert" && s.notApplied === s.hosts) lines.push(`  no host runs ${terminalSafe(patch.name ?? "")}: nothing to revert (is it the right patch?)`);
  const already = results.filter((r) => r.warnings.some((w) => w.code === "already-enabled")).length;
  if (already > 0) lines.push(`  ${already} host(s) run this patch already: nothing to apply there`);
  if (s.topFunctions.length > 0) {
    lines.push("", "Functions blocking most hosts:", "   hosts    tasks  function");
    for (const f of s.topFunctions) lines.push(`${String(f.hosts).padStart(8)} ${String(f.tasks).padStart(8)}  ${terminalSafe(`${f.object}:${f.name ?? "(range)"}`)}`);
  }
  if (s.topHosts.length > 0) {
    lines.push("", "Hosts with the most blocked tasks:", "  blocked  host                  file");
    for (const h of s.topHosts) lines.push(`${String(h.blockedTasks).padStart(9)}  ${label(h.hostname).padEnd(20)}  ${terminalSafe(h.file)}`);
  }
  // The kernel enables no other patch on these until the transition ends (their reason says so).
  const busy = results.filter((r) => r.transition !== null);
  if (busy.length > 0) {
    lines.push("", "Hosts with a live patch transition in progress (no other patch can be enabled or disabled there until it ends):");
    for (const r of busy.slice(0, 20)) lines.push(`  ${label(r.hostname).padEnd(20)}  ${terminalSafe(r.file)}: ${terminalSafe(r.transition!)}`);
    if (busy.length > 20) lines.push(`  … and ${busy.length - 20} more (--json lists every host)`);
  }
  const undecided = results.filter((r) => r.verdict === "undecided");
  if (undecided.length > 0) {
    lines.push("", "Undecided hosts (first reason):");
    // Reasons quote the snapshot (its warnings, patch and function names): data from the host.
    for (const r of undecided.slice(0, 20)) lines.push(`  ${label(r.hostname).padEnd(20)}  ${terminalSafe(`${r.file}: ${r.reasons[0]?.code ?? "?"}: ${r.reasons[0]?.message ?? ""}`)}`);
    if (undecided.length > 20) lines.push(`  … and ${undecided.length - 20} more (--json lists every host)`);
  }
  const idle = results.filter((r) => r.notApplied !== null);
  if (idle.length > 0) {
    lines.push("", "Hosts with nothing to revert (not checked):");
    for (const r of idle.slice(0, 20)) lines.push(`  ${label(r.hostname).padEnd(20)}  ${terminalSafe(`${r.file}: ${r.notApplied}`)}`);
    if (idle.length > 20) lines.push(`  … and ${idle.length - 20} more (--json lists every host)`);
  }
  const bad = results.filter((r) => r.error !== null);
  if (bad.length > 0) {
    lines.push("", "Unreadable snapshots (not checked):");
    for (const r of bad) lines.push(`  ${terminalSafe(`${r.error!.code}: ${r.error!.message}`)}`);
  }
  o.out.push(`${lines.join("\n")}\n`);
  return status;
}
