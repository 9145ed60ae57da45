#!/usr/bin/env node
// Issue 5's figures: .psnap size vs /proc text at 100k tasks, in-process check time from a
// snapshot vs from text, and fleet throughput with --jobs 1 vs 2. Needs `npm run build` first.
// Writes snapshot-results.json and SNAPSHOT-RESULTS.md next to this script.
//   node --expose-gc bench/snapshot.js [--quick] [--only size,check,first,fleet] [--runs N] [--wait-idle]
//        [--fleet-hosts N] [--fleet-tasks M]   (default 1000 × 1000, issue 5's workload)
// `first`: each path once in a fresh process (what one `patchsafe check FILE` pays in-process:
// code not yet compiled by V8), measured in child processes of this script (--child).
// `decode` (not in the default set): decodeSnapshotBytes alone, 40 times in a row (--runs N),
// the steady state of the decoder (median and fastest), for work on the decoder itself.
// On a shared machine, run it from a private copy so a concurrent rebuild cannot change the code
// under test (BENCH_COMMIT names the commit the copy was built from):
//   D=$(mktemp -d) && npx tsc -p tsconfig.build.json --outDir $D/dist && cp -r build $D/ &&
//   mkdir $D/bench $D/test && cp bench/snapshot.js $D/bench/ && ln -s $PWD/test/fixtures $D/test/ &&
//   ln -s $PWD/node_modules $D/ && cp package.json $D/ &&
//   BENCH_COMMIT=$(git rev-parse --short HEAD) node --expose-gc $D/bench/snapshot.js
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { check, emptyPatch, generateProcDumpTo, parseFuncArg, parseNativeJson, parseProcText, parseSymbolTable, VERSION } from "../dist/index.js";
import { loadWasmScannerSync } from "../dist/node/index.js";
import { encodeSnapshot } from "../dist/snapshot/index.js";
// What `patchsafe check FILE.psnap` decodes with (Node: zlib's CRC-32), from bytes in memory.
import { decodeSnapshotBytes as decodeSnapshot, nativeSha256 } from "../dist/node/snapshotFile.js";
import { fleetCheck, fleetFiles, runFleet } from "../dist/cli/fleet.js";
import { createCaptureParser } from "../dist/ingest/detect.js";
import * as nodeWasm from "../dist/node/wasm.js";

/**
 * The text path as `patchsafe check dump.txt` reads it (src/node/io.ts readCaptureFile: format
 * detection, 1 MiB chunks, the wasm tokenizer where the build has one), from bytes in memory.
 */
/** kallsyms as `--kallsyms FILE` reads it (src/node/io.ts readSymbolFile), from bytes in memory. */
let fastKallsyms = null;
try {
  fastKallsyms = (await import("../dist/symbols/kallsymsFast.js")).parseKallsymsBytes;
} catch {}
function parseKallsymsLikeCli() {
  const kallsymsBytes = (parseKallsymsLikeCli.bytes ??= Buffer.from(kallsymsText, "latin1"));
  if (fastKallsyms !== null && typeof nodeWasm.loadTokenizerModuleSync === "function") return fastKallsyms(nodeWasm.loadTokenizerModuleSync(), kallsymsBytes, { file: "kallsyms" });
  return parseSymbolTable(kallsymsText, { file: "kallsyms" });
}

function parseDumpLikeCli(bytes, name) {
  // src/node/io.ts readCaptureFiles: the parser sized from the file's size, and the bytes read
  // straight into the parser's own buffer where it offers one (readFrom: a read() there, a copy
  // from memory here), else pushed in 1 MiB chunks.
  const opts = { sizeHint: bytes.length, ...(typeof nodeWasm.loadProcTokenizer === "function" ? { procTokenizer: () => nodeWasm.loadProcTokenizer() } : {}) };
  const parser = createCaptureParser(name, "auto", opts);
  let off = 0;
  const readInto = (dst) => {
    const n = Math.min(dst.length, bytes.length - off);
    dst.set(bytes.subarray(off, off + n));
    off += n;
    return n;
  };
  for (;;) {
    const direct = parser.readFrom?.(readInto) ?? null;
    if (direct !== null) {
      if (direct === 0) break;
      continue;
    }
    const n = Math.min(1 << 20, bytes.length - off);
    if (n === 0) break;
    parser.push(bytes.subarray(off, off + n));
    off += n;
  }
  const caps = parser.finish();
  if (caps.length !== 1) throw new Error(`${name}: ${caps.length} captures`);
  return caps[0];
}

/**
 * --child text DUMP KALLSYMS | --child snapshot PSNAP: one path once, in this fresh process, after
 * start-up (modules imported, the wasm modules compiled and the scanner instantiated, the files
 * read into memory); prints the parts in ms as JSON and exits. Nothing of the path ran before.
 */
const childAt = process.argv.indexOf("--child");
if (childAt > 0) {
  const [kind, file, ksFile] = process.argv.slice(childAt + 1);
  const sc = loadWasmScannerSync("release");
  if (typeof nodeWasm.loadTokenizerModuleSync === "function") nodeWasm.loadTokenizerModuleSync();
  const p = { ...emptyPatch(), funcs: ["worker_thread", "do_epoll_wait"].map((f) => parseFuncArg(f)) };
  const out = {};
  if (kind === "text") {
    const bytes = readFileSync(file);
    const ks = readFileSync(ksFile);
    const t0 = performance.now();
    const cap = parseDumpLikeCli(bytes, "synth");
    const t1 = performance.now();
    const syms = fastKallsyms !== null && typeof nodeWasm.loadTokenizerModuleSync === "function" ? fastKallsyms(nodeWasm.loadTokenizerModuleSync(), ks, { file: "kallsyms" }) : parseSymbolTable(ks.toString("latin1"), { file: "kallsyms" });
    const t2 = performance.now();
    const r = check({ capture: cap, symbols: syms, patch: p, scanner: sc });
    const t3 = performance.now();
    Object.assign(out, { parse: t1 - t0, kallsyms: t2 - t1, check: t3 - t2, total: t3 - t0, verdict: `${r.verdict.verdict}/${r.verdict.counts.blocked}` });
  } else {
    const bytes = new Uint8Array(readFileSync(file));
    const t0 = performance.now();
    const snap = decodeSnapshot(bytes, "synth.psnap", null, true);
    const t1 = performance.now();
    const r = check({ capture: snap.capture, symbols: snap.symbols, patch: p, scanner: sc });
    const t2 = performance.now();
    Object.assign(out, { decode: t1 - t0, check: t2 - t1, total: t2 - t0, verdict: `${r.verdict.verdict}/${r.verdict.counts.blocked}` });
  }
  console.log(JSON.stringify(out));
  process.exit(0);
}

const quick = process.argv.includes("--quick");
const onlyArg = process.argv.indexOf("--only");
const only = new Set(onlyArg > 0 ? process.argv[onlyArg + 1].split(",") : ["size", "check", "first", "fleet"]);
const runsArg = process.argv.indexOf("--runs");
const runsOverride = runsArg > 0 ? Number(process.argv[runsArg + 1]) : null;
/** The in-process check series' warm-up per path (tinybench's defaults: 5 runs, and here 250 ms). */
const WARM_RUNS = 5;
const WARM_MS = 250;
const here = (p) => new URL(p, import.meta.url);
const kallsymsText = gunzipSync(readFileSync(here("../test/fixtures/host/kallsyms.gz"))).toString("latin1");
const symbols = parseSymbolTable(kallsymsText, { file: "kallsyms" });
const source = parseNativeJson(readFileSync(here("../test/fixtures/host/capture.json"), "utf8"), "capture.json");
const scanner = loadWasmScannerSync("release");
const FUNCS = ["worker_thread", "do_epoll_wait"];
const patch = () => ({ ...emptyPatch(), funcs: FUNCS.map((f) => parseFuncArg(f)) });

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const time = (fn) => {
  const t0 = performance.now();
  const r = fn();
  return [performance.now() - t0, r];
};

function dumpText(tasks, seed) {
  const parts = [];
  generateProcDumpTo(source, { tasks, seed }, (p) => parts.push(p));
  return Buffer.from(parts.join(""), "latin1");
}

const results = { date: new Date().toISOString(), quick, machine: machine(), figures: {} };

/** Busy and total CPU time of the whole machine so far, in seconds (Linux /proc/stat; null elsewhere). */
function machineCpu() {
  try {
    const f = readFileSync("/proc/stat", "latin1").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    const hz = 100; // USER_HZ
    const idle = f[3] + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: (total - idle) / hz, total: total / hz };
  } catch {
    return null;
  }
}

/** CPU time (user + system, ms) of each thread of this process by tid (Linux); null elsewhere. */
function threadCpu() {
  try {
    const out = new Map();
    for (const tid of readdirSync("/proc/self/task")) {
      try {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, "latin1");
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        out.set(Number(tid), (Number(f[11]) + Number(f[12])) * 10); // utime, stime in USER_HZ (100)
      } catch {}
    }
    return out;
  } catch {
    return null;
  }
}

/** With --wait-idle: waits (at most 10 min) until the machine has been nearly idle for 3 s. */
const waitIdle = process.argv.includes("--wait-idle");
async function untilIdle() {
  if (!waitIdle) return 0;
  const t0 = Date.now();
  while (Date.now() - t0 < 600_000) {
    const a = machineCpu();
    await sleep(3000);
    const b = machineCpu();
    if (a === null || b === null) return 0;
    if ((b.busy - a.busy) / 3 < 0.15) return (Date.now() - t0) / 1000;
  }
  return (Date.now() - t0) / 1000;
}

function machine() {
  let commit = process.env.BENCH_COMMIT ?? null;
  try {
    commit ??= execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: here("..").pathname, stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
  } catch {}
  return { node: process.version, v8: process.versions.v8, cpu: cpus()[0]?.model ?? "?", cores: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), patchsafe: VERSION, commit, loadAverageAtStart: loadavg() };
}

const TASKS = quick ? 20_000 : 100_000;
let text = null;
let psnap = null;

if (only.has("size") || only.has("check") || only.has("first") || only.has("decode")) {
  text = dumpText(TASKS, 1);
  const cap = parseProcText(text, "synth");
  psnap = encodeSnapshot(cap, symbols);
  const noSyms = encodeSnapshot(cap, null);
  results.figures.size = {
    tasks: cap.tasks.length,
    frames: cap.frames.length,
    textBytes: text.length,
    kallsymsTextBytes: Buffer.byteLength(kallsymsText, "latin1"),
    psnapBytes: psnap.length,
    psnapWithoutSymbolsBytes: noSyms.length,
    symbolsInPsnapBytes: psnap.length - noSyms.length,
    ratio: psnap.length / text.length,
    target: "psnap (symbol table included) ≤ 10% of the grep -H text",
    met: psnap.length <= 0.1 * text.length,
  };
  console.log("size", results.figures.size);
}

if (only.has("check")) {
  const runs = runsOverride ?? (quick ? 3 : 5);
  const fromText = [];
  const fromSnap = [];
  const parts = { parseText: [], parseKallsyms: [], checkAfterText: [], decode: [], checkAfterSnapshot: [] };
  let verdicts = new Set();
  // Each path runs its own series (a warm-up, then `runs`), so each is measured in the steady
  // state it makes for itself (JIT warm, young generation sized by its own allocations) and never
  // pays for collecting the other's ~100 MB of garbage; with --expose-gc the heap is collected
  // once between the two series. Each path is a function: what it built is garbage when it
  // returns (only the verdicts are kept).
  const collect = typeof globalThis.gc === "function" ? () => globalThis.gc() : () => {};
  const textPath = () => {
    const [a, cap] = time(() => parseDumpLikeCli(text, "synth"));
    const [b, syms] = time(() => parseKallsymsLikeCli());
    const [c, r1] = time(() => check({ capture: cap, symbols: syms, patch: patch(), scanner }));
    verdicts.add(`${r1.verdict.verdict}/${r1.verdict.counts.blocked}`);
    return [a, b, c];
  };
  const snapshotPath = () => {
    // As readSnapshotFile calls it for a file read into a buffer of its own (keepBytes: the
    // names may stay a view into the bytes; psnap is never changed).
    const [d, snap] = time(() => decodeSnapshot(psnap, "synth.psnap", null, true));
    const [e, r2] = time(() => check({ capture: snap.capture, symbols: snap.symbols, patch: patch(), scanner }));
    verdicts.add(`${r2.verdict.verdict}/${r2.verdict.counts.blocked}`);
    return [d, e];
  };
  // Warm-up as tinybench warms up a task (at least WARM_RUNS runs and WARM_MS of them): "after
  // start-up" is the steady state, and a path of 8 ms needs more runs than one of 40 ms before
  // V8 has compiled what it runs (one warm-up run left the snapshot path's first measured runs at
  // twice its steady time). The first check of a fresh process is measured apart (--only first).
  const warm = (path) => {
    const t0 = performance.now();
    let n = 0;
    while (n < WARM_RUNS || performance.now() - t0 < WARM_MS) {
      path();
      n++;
    }
    return n;
  };
  collect();
  const textWarmRuns = warm(textPath);
  for (let i = 0; i < runs; i++) {
    const [a, b, c] = textPath();
    fromText.push(a + b + c);
    parts.parseText.push(a);
    parts.parseKallsyms.push(b);
    parts.checkAfterText.push(c);
  }
  collect();
  const snapshotWarmRuns = warm(snapshotPath);
  for (let i = 0; i < runs; i++) {
    const [d, e] = snapshotPath();
    fromSnap.push(d + e);
    parts.decode.push(d);
    parts.checkAfterSnapshot.push(e);
  }
  const mt = median(fromText);
  const ms = median(fromSnap);
  results.figures.check = {
    tasks: TASKS,
    funcs: FUNCS,
    runs,
    fromTextMs: mt,
    fromSnapshotMs: ms,
    speedup: mt / ms,
    // Fastest run of each path: on a shared machine the least disturbed one.
    fromTextMinMs: Math.min(...fromText),
    fromSnapshotMinMs: Math.min(...fromSnap),
    speedupOfMins: Math.min(...fromText) / Math.min(...fromSnap),
    gcBetweenPaths: typeof globalThis.gc === "function",
    method: `each path its own series (warm-up of at least ${WARM_RUNS} runs and ${WARM_MS} ms, then runs), heap collected between the series`,
    warmRuns: { text: textWarmRuns, snapshot: snapshotWarmRuns },
    loadAverageAfter: loadavg(),
    breakdownMedianMs: Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, median(v)])),
    sameVerdict: verdicts.size === 1,
    target: "check from snapshot ≥ 5× faster than from text (parse + kallsyms + check vs decode + check), in one process after start-up",
    met: mt / ms >= 5,
  };
  console.log("check", results.figures.check);
}

if (only.has("decode")) {
  const runs = runsOverride ?? 40;
  const ms = [];
  if (typeof globalThis.gc === "function") globalThis.gc();
  for (let i = 0; i < runs; i++) {
    const [d] = time(() => decodeSnapshot(psnap, "synth.psnap", null, true));
    ms.push(d);
  }
  results.figures.decode = { tasks: TASKS, runs, medianMs: median(ms), fastestMs: Math.min(...ms), firstMs: ms[0], runsMs: ms, method: "decodeSnapshotBytes(psnap, name, null, keepBytes) `runs` times in a row in this process" };
  console.log("decode", results.figures.decode);
}

if (only.has("first")) {
  // Each path once per fresh process, processes alternating text / snapshot.
  const runs = runsOverride ?? (quick ? 3 : 5);
  const dir = mkdtempSync(join(tmpdir(), "patchsafe-bench-first-"));
  try {
    const files = { dump: join(dir, "dump.txt"), kallsyms: join(dir, "kallsyms"), psnap: join(dir, "synth.psnap") };
    writeFileSync(files.dump, text);
    writeFileSync(files.kallsyms, kallsymsText, "latin1");
    writeFileSync(files.psnap, psnap);
    const script = new URL(import.meta.url).pathname;
    const child = (args) => JSON.parse(execFileSync(process.execPath, [script, "--child", ...args], { stdio: ["ignore", "pipe", "inherit"] }).toString().trim().split("\n").pop());
    const textRuns = [];
    const snapRuns = [];
    for (let r = 0; r < runs; r++) {
      for (const kind of r % 2 === 0 ? ["text", "snapshot"] : ["snapshot", "text"]) {
        if (kind === "text") textRuns.push(child(["text", files.dump, files.kallsyms]));
        else snapRuns.push(child(["snapshot", files.psnap]));
      }
    }
    const med = (rs, k) => median(rs.map((x) => x[k]));
    results.figures.first = {
      tasks: TASKS,
      funcs: FUNCS,
      runs,
      fromTextMs: med(textRuns, "total"),
      fromSnapshotMs: med(snapRuns, "total"),
      speedup: med(textRuns, "total") / med(snapRuns, "total"),
      breakdownMedianMs: { parseText: med(textRuns, "parse"), parseKallsyms: med(textRuns, "kallsyms"), checkAfterText: med(textRuns, "check"), decode: med(snapRuns, "decode"), checkAfterSnapshot: med(snapRuns, "check") },
      textRunsMs: textRuns.map((x) => x.total),
      snapshotRunsMs: snapRuns.map((x) => x.total),
      sameVerdict: new Set([...textRuns, ...snapRuns].map((x) => x.verdict)).size === 1,
      method: "each path once per fresh process (after start-up: modules imported, wasm compiled, files in memory), processes alternating",
    };
    console.log("first", results.figures.first);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (only.has("fleet")) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : dflt;
  };
  const HOSTS = arg("--fleet-hosts", quick ? 100 : 1000);
  const PER = arg("--fleet-tasks", 1000);
  const runs = runsOverride ?? (quick ? 3 : 5);
  const dir = mkdtempSync(join(tmpdir(), "patchsafe-bench-fleet-"));
  try {
    const tg = performance.now();
    for (let h = 0; h < HOSTS; h++) {
      const cap = parseProcText(dumpText(PER, 1000 + h), `host-${h}`);
      cap.host = { ...source.host, hostname: `host-${String(h).padStart(4, "0")}` };
      cap.complete = true;
      writeFileSync(join(dir, `host-${String(h).padStart(4, "0")}.psnap`), encodeSnapshot(cap, symbols, { sha256: nativeSha256 }), { mode: 0o600 });
    }
    const genMs = performance.now() - tg;
    const perJobs = { 1: { wallMs: [], loadAverageBefore: [], parallelism: [] }, 2: { wallMs: [], loadAverageBefore: [], parallelism: [] } };
    const args = [dir, ...FUNCS.flatMap((f) => ["--func", f]), "--json"];
    // Runs interleaved (1,2 then 2,1, …) so a machine whose load drifts favours neither.
    for (let r = 0; r < runs; r++) {
      for (const jobs of r % 2 === 0 ? [1, 2] : [2, 1]) {
        const o = { out: [], err: [] };
        // This process's own garbage (generating the snapshots, the previous run's results) is
        // collected first: a GC cycle of the bench's heap running beside the workers would take
        // CPU from them, from two workers more than from one (which leaves a core idle).
        if (typeof globalThis.gc === "function") globalThis.gc();
        const waited = await untilIdle();
        const load = loadavg()[0];
        const cpu0 = process.cpuUsage();
        const m0 = machineCpu();
        const [w, status] = time(() => runFleet([...args, "--jobs", String(jobs)], o, { progress: null }));
        // CPU time of the whole process (every thread): the work done, whatever else ran.
        const cpu = process.cpuUsage(cpu0);
        const m1 = machineCpu();
        // Cores other processes kept busy during the run, on average: what --jobs 2 could not use.
        const others = m0 === null || m1 === null ? null : Math.max(0, (m1.busy - m0.busy - (cpu.user + cpu.system) / 1e6) / (w / 1000));
        const doc = JSON.parse(o.out.join(""));
        if (r === 0) perJobs[`firstOutput${jobs}`] = `${doc.summary.hosts} hosts: ${doc.summary.safe} safe, ${doc.summary.blocked} blocked, ${doc.summary.undecided} undecided, ${doc.summary.unreadable} unreadable`;
        // Busy time of all workers (each host's read + check) over the wall time: how many
        // workers were busy on average (2 = both all the time).
        const busy = doc.hosts.reduce((n, h) => n + h.ms, 0);
        perJobs[jobs].wallMs.push(w);
        perJobs[jobs].loadAverageBefore.push(load);
        perJobs[jobs].parallelism.push(busy / w);
        (perJobs[jobs].cpuMs ??= []).push((cpu.user + cpu.system) / 1000);
        (perJobs[jobs].otherCores ??= []).push(others);
        (perJobs[jobs].waitedIdleS ??= []).push(waited);
        console.log(`fleet --jobs ${jobs} run ${r + 1}: ${(w / 1000).toFixed(2)} s (exit ${status}, workers busy ${(busy / w).toFixed(2)} on average, other processes ${others === null ? "?" : others.toFixed(2)} cores, load average before ${load.toFixed(2)}${waitIdle ? `, waited ${waited.toFixed(0)} s for an idle machine` : ""})`);
        // runFleet is synchronous: let the finished run's workers terminate before the next one.
        await sleep(200);
      }
    }
    for (const jobs of [1, 2]) perJobs[jobs].medianMs = median(perJobs[jobs].wallMs);
    // The same runs through fleetCheck (what runFleet calls), with the time each quarter of the
    // hosts was done: the first quarter holds each worker's start-up and JIT warm-up (paid once
    // per worker; with two workers their background compiles take turns with the workers), the
    // last three quarters the steady state.
    const files = fleetFiles([dir]);
    const patch = emptyPatch();
    for (const fn of FUNCS) patch.funcs.push(parseFuncArg(fn));
    const quarter = Math.floor(files.length / 4);
    const half = Math.ceil(files.length / 2);
    const phases = { 1: { firstQuarterMs: [], restMs: [], firstHalfMs: [], allMs: [], threadCpuMs: [] }, 2: { firstQuarterMs: [], restMs: [], firstHalfMs: [], allMs: [], threadCpuMs: [] } };
    for (let r = 0; r < runs; r++) {
      for (const jobs of r % 2 === 0 ? [1, 2] : [2, 1]) {
        if (typeof globalThis.gc === "function") globalThis.gc();
        await untilIdle();
        let atQuarter = 0;
        let atHalf = 0;
        // CPU time per thread of this process (Linux /proc/self/task), before and when the last
        // result is in (the workers are terminated after fleetCheck returns): this thread, the
        // fleet workers (the threads started during the run) and the threads that were there
        // before (V8's and Node's platform threads: optimizing compiles, concurrent GC).
        const before = threadCpu();
        let after = null;
        const t0 = performance.now();
        fleetCheck(files, patch, {}, jobs, {}, (done) => {
          if (atQuarter === 0 && done >= quarter) atQuarter = performance.now();
          if (atHalf === 0 && done >= half) atHalf = performance.now();
          if (done === files.length) after = threadCpu();
        });
        const end = performance.now();
        phases[jobs].firstQuarterMs.push(atQuarter - t0);
        phases[jobs].restMs.push(end - atQuarter);
        phases[jobs].firstHalfMs.push(atHalf - t0);
        phases[jobs].allMs.push(end - t0);
        if (before !== null && after !== null) {
          const split = { main: 0, workers: 0, platform: 0 };
          for (const [tid, ms] of after) {
            const was = before.get(tid);
            if (tid === process.pid) split.main += ms - (was ?? 0);
            else if (was === undefined) split.workers += ms;
            else split.platform += ms - was;
          }
          phases[jobs].threadCpuMs.push(split);
        }
        await sleep(200);
      }
    }
    for (const jobs of [1, 2]) {
      phases[jobs].firstQuarterMedianMs = median(phases[jobs].firstQuarterMs);
      phases[jobs].restMedianMs = median(phases[jobs].restMs);
      phases[jobs].firstHalfMedianMs = median(phases[jobs].firstHalfMs);
      phases[jobs].allMedianMs = median(phases[jobs].allMs);
      const cpu = phases[jobs].threadCpuMs;
      if (cpu.length > 0) phases[jobs].threadCpuMedianMs = { main: median(cpu.map((c) => c.main)), workers: median(cpu.map((c) => c.workers)), platform: median(cpu.map((c) => c.platform)) };
    }
    // What any worker costs before its first host, whatever it then runs: a bare Node worker
    // (spawn to exit of `0`), and the fleet's own bundled worker given no file (module load, the
    // wasm kernels instantiated). With F that start-up and W the one-worker time of the hosts,
    // --jobs 2 takes at least F + W / 2: 1.7× needs F ≤ 0.21 W even before any JIT warm-up.
    const startup = { bareMs: [], fleetWorkerMs: [] };
    {
      const { Worker, MessageChannel } = await import("node:worker_threads");
      const bundle = new URL("../dist/node/fleetWorker.bundle.mjs", import.meta.url);
      for (let r = 0; r < Math.max(5, runs); r++) {
        let t = performance.now();
        await new Promise((res) => new Worker("0", { eval: true }).on("exit", res));
        startup.bareMs.push(performance.now() - t);
        const { port1, port2 } = new MessageChannel();
        t = performance.now();
        const w = new Worker(bundle, { workerData: { port: port2, control: new SharedArrayBuffer(16), slot: 0, files: [], patch, options: {} }, transferList: [port2] });
        await new Promise((res) => w.on("exit", res));
        startup.fleetWorkerMs.push(performance.now() - t);
        port1.close();
      }
      startup.bareMedianMs = median(startup.bareMs);
      startup.fleetWorkerMedianMs = median(startup.fleetWorkerMs);
    }
    // Issue 5's workload is "fleet"; other sizes keep their own entry.
    const key = HOSTS === 1000 && PER === 1000 ? "fleet" : `fleet-${HOSTS}x${PER}`;
    results.figures[key] = {
      hosts: HOSTS,
      tasksPerHost: PER,
      snapshotBytesEach: readFileSync(join(dir, "host-0000.psnap")).length,
      generateMs: genMs,
      runs,
      jobs1: perJobs[1],
      jobs2: perJobs[2],
      speedup: perJobs[1].medianMs / perJobs[2].medianMs,
      phases,
      startup,
      steadySpeedup: phases[1].restMedianMs / phases[2].restMedianMs,
      // However many cores: with --jobs 2 each worker starts cold (its own isolate, its own JIT
      // warm-up) and checks at least half of the hosts, so the run takes at least what one lone
      // worker, its compiles on a core of their own, takes for the first half: --jobs 1's time to
      // its half-way result. Hence a bound that more cores lift only as far as more compile
      // threads shorten one isolate's warm-up.
      coldBound: phases[1].allMedianMs / phases[1].firstHalfMedianMs,
      summaryLine: perJobs.firstOutput1,
      target: "--jobs 2 ≥ 1.7× faster than --jobs 1 (median of 5), workers reading their own files",
      interleaved: true,
      waitedForIdle: waitIdle,
      met: perJobs[1].medianMs / perJobs[2].medianMs >= 1.7,
      // No split of the work can beat this on this machine: --jobs 2 does at least the CPU work
      // of --jobs 1 (each extra isolate adds its own start-up and JIT compiles), on at most
      // `cores` cores, so its wall time is at least cpu1 / cores, and the speed-up at most
      // wall1 × cores / cpu1. One worker that already keeps 1.5 of 2 cores busy caps it at 1.33×.
      ceiling: (perJobs[1].medianMs * cpus().length) / median(perJobs[1].cpuMs),
    };
    console.log(key, results.figures[key]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const outJson = here("snapshot-results.json");
let previous = {};
try {
  previous = JSON.parse(readFileSync(outJson, "utf8"));
} catch {}
// Parts run separately (--only) keep the other parts' last figures; each figure says which
// commit and when it was measured (the header names this run's).
for (const fig of Object.values(results.figures)) {
  fig.measuredAt = results.date;
  fig.commit = results.machine.commit;
}
const merged = { ...results, figures: { ...(previous.figures ?? {}), ...results.figures } };
writeFileSync(outJson, `${JSON.stringify(merged, null, 2)}\n`);

const f = merged.figures;
const m = merged.machine;
const mb = (n) => `${(n / 2 ** 20).toFixed(2)} MiB`;
/** A line naming an earlier run when a figure was kept from one (--only ran other parts). */
const earlier = (fig) => (fig.commit === m.commit && fig.measuredAt === merged.date ? [] : [`(Kept from an earlier run: ${fig.commit ?? "commit not recorded"}${fig.measuredAt ? `, ${fig.measuredAt}` : ""}.)`, ""]);
const md = [
  "# Snapshot benchmark results (issue 5)",
  "",
  `${merged.date} · Node ${m.node} (V8 ${m.v8}) · ${m.cpu} × ${m.cores} · ${m.memGiB} GiB · patchsafe ${m.patchsafe} (${m.commit ?? "?"})${quick ? " · quick run" : ""} · load average at start ${(m.loadAverageAtStart ?? []).map((x) => x.toFixed(2)).join(" ")} (a shared machine: other jobs ran alongside)`,
  "",
  "Workload: `generateProcDumpTo` resampling the committed capture of the dev host (test/fixtures/host/capture.json, grep -H shape), this host's kallsyms (122,168 symbols), patch `--func worker_thread --func do_epoll_wait`.",
  "",
];
if (f.size) {
  md.push(
    "## Size (psnap vs text)",
    "",
    ...earlier(f.size),
    "| tasks | frames | grep -H text | .psnap (with symbols) | of which symbols | ratio | target ≤ 10% |",
    "|---:|---:|---:|---:|---:|---:|:---:|",
    `| ${f.size.tasks} | ${f.size.frames} | ${mb(f.size.textBytes)} | ${mb(f.size.psnapBytes)} | ${mb(f.size.symbolsInPsnapBytes)} | ${(f.size.ratio * 100).toFixed(1)}% | ${f.size.met ? "met" : "not met"} |`,
    "",
  );
}
if (f.check) {
  const b = f.check.breakdownMedianMs;
  md.push(
    "## In-process check time (after start-up and a warm-up, median of " + f.check.runs + ")",
    "",
    ...earlier(f.check),
    "Text: the dump parsed as `patchsafe check dump.txt` parses it (format detection, the parser sized from the file size, bytes read into the wasm tokenizer's own buffer), kallsyms as `--kallsyms` reads it (the wasm kallsyms parser), then the check. Snapshot: `decodeSnapshotBytes` (what `readSnapshotFile` runs after reading the file), then the check. Both from bytes in memory.",
    "",
    "| path | total ms | parts (ms) |",
    "|---|---:|---|",
    `| text: parse dump + parse kallsyms + check | ${f.check.fromTextMs.toFixed(0)} | parse ${b.parseText.toFixed(0)}, kallsyms ${b.parseKallsyms.toFixed(0)}, check ${b.checkAfterText.toFixed(0)} |`,
    `| snapshot: decode + check | ${f.check.fromSnapshotMs.toFixed(0)} | decode ${b.decode.toFixed(0)}, check ${b.checkAfterSnapshot.toFixed(0)} |`,
    "",
    `Speed-up ${f.check.speedup.toFixed(2)}× (target ≥ 5×: ${f.check.met ? "met" : "not met"}); same verdict both ways: ${f.check.sameVerdict}.` +
      (f.check.speedupOfMins === undefined ? "" : ` Fastest runs: text ${f.check.fromTextMinMs.toFixed(0)} ms, snapshot ${f.check.fromSnapshotMinMs.toFixed(0)} ms (${f.check.speedupOfMins.toFixed(2)}×); load average after: ${f.check.loadAverageAfter.map((x) => x.toFixed(2)).join(" ")}${f.check.gcBetweenPaths ? "; each path measured in its own series, heap collected between them (--expose-gc)" : ""}${f.check.warmRuns ? `; each series after a warm-up of at least ${WARM_RUNS} runs and ${WARM_MS} ms (${f.check.warmRuns.text} text runs, ${f.check.warmRuns.snapshot} snapshot runs), as tinybench warms a task up` : ""}.`),
    "",
  );
}
if (f.decode) {
  md.push(
    `## Decode alone (${f.decode.runs} decodes in a row)`,
    "",
    ...earlier(f.decode),
    `\`decodeSnapshotBytes\` of the ${f.decode.tasks}-task psnap, ${f.decode.runs} times in one process (\`--only decode\`): median ${f.decode.medianMs.toFixed(1)} ms, fastest ${f.decode.fastestMs.toFixed(1)} ms, first ${f.decode.firstMs.toFixed(1)} ms.`,
    "",
  );
}
if (f.first) {
  const b = f.first.breakdownMedianMs;
  md.push(
    "## The first check in a process (median of " + f.first.runs + " fresh processes per path)",
    "",
    ...earlier(f.first),
    "What one `patchsafe check FILE` pays in-process after start-up: each path run once in a fresh process (modules imported, the wasm modules compiled and the scanner instantiated, the files already in memory), so no JavaScript of the path has been compiled by V8 yet; processes alternate between the paths. Not the issue's figure (that one is the section above); the CLI's.",
    "",
    "| path | total ms | parts (ms) | runs (ms) |",
    "|---|---:|---|---|",
    `| text: parse dump + parse kallsyms + check | ${f.first.fromTextMs.toFixed(0)} | parse ${b.parseText.toFixed(0)}, kallsyms ${b.parseKallsyms.toFixed(0)}, check ${b.checkAfterText.toFixed(0)} | ${f.first.textRunsMs.map((x) => x.toFixed(0)).join(", ")} |`,
    `| snapshot: decode + check | ${f.first.fromSnapshotMs.toFixed(0)} | decode ${b.decode.toFixed(0)}, check ${b.checkAfterSnapshot.toFixed(0)} | ${f.first.snapshotRunsMs.map((x) => x.toFixed(0)).join(", ")} |`,
    "",
    `Ratio ${f.first.speedup.toFixed(2)}×; same verdict both ways: ${f.first.sameVerdict}.`,
    "",
  );
}
for (const fk of Object.keys(f).filter((k) => k.startsWith("fleet")).sort()) {
  const fleet = f[fk];
  md.push(
    `## Fleet: ${fleet.hosts} snapshots × ${fleet.tasksPerHost} tasks (each ${mb(fleet.snapshotBytesEach)} with its symbol table), median of ${fleet.runs}`,
    "",
    ...earlier(fleet),
    "| --jobs | median s | runs (s) | workers busy on average | process CPU s | cores used by other processes | load average before each |",
    "|---:|---:|---|---|---|---|---|",
    ...[1, 2].map((j) => {
      const x = fleet[`jobs${j}`];
      return `| ${j} | ${(x.medianMs / 1000).toFixed(2)} | ${x.wallMs.map((v) => (v / 1000).toFixed(2)).join(", ")} | ${(x.parallelism ?? []).map((v) => v.toFixed(2)).join(", ")} | ${(x.cpuMs ?? []).map((v) => (v / 1000).toFixed(1)).join(", ")} | ${(x.otherCores ?? []).map((v) => (v === null ? "?" : v.toFixed(2))).join(", ")} | ${(x.loadAverageBefore ?? []).map((v) => v.toFixed(1)).join(", ")} |`;
    }),
    "",
    `Speed-up ${fleet.speedup.toFixed(2)}× (target ≥ 1.7×: ${fleet.met ? "met" : "not met"}); runs interleaved 1,2 / 2,1 / … so drifting load favours neither${fleet.waitedForIdle ? "; each run started once the machine had been nearly idle for 3 s (--wait-idle)" : ""}. Summary line: \`${fleet.summaryLine}\``,
    "",
  );
  if (fleet.phases) {
    const p = fleet.phases;
    md.push(
      `By phase (fleetCheck in this process, ${fleet.runs} more runs each, interleaved): the first quarter of the hosts took ${p[1].firstQuarterMedianMs.toFixed(0)} ms with one worker and ${p[2].firstQuarterMedianMs.toFixed(0)} ms with two (each worker's start-up and JIT warm-up); the other three quarters ${p[1].restMedianMs.toFixed(0)} ms and ${p[2].restMedianMs.toFixed(0)} ms: **${fleet.steadySpeedup.toFixed(2)}× in the steady state**.${p[1].threadCpuMedianMs && p[2].threadCpuMedianMs ? ` CPU per thread over those runs (medians, from /proc/self/task): with one worker, the worker ${p[1].threadCpuMedianMs.workers.toFixed(0)} ms, V8's and Node's platform threads (optimizing compiles, concurrent GC) ${p[1].threadCpuMedianMs.platform.toFixed(0)} ms, this thread ${p[1].threadCpuMedianMs.main.toFixed(0)} ms; with two, the workers ${p[2].threadCpuMedianMs.workers.toFixed(0)} ms together, the platform threads ${p[2].threadCpuMedianMs.platform.toFixed(0)} ms, this thread ${p[2].threadCpuMedianMs.main.toFixed(0)} ms. One worker already keeps ~${((p[1].threadCpuMedianMs.workers + p[1].threadCpuMedianMs.platform + p[1].threadCpuMedianMs.main) / (p[1].firstQuarterMedianMs + p[1].restMedianMs)).toFixed(2)} cores busy: each isolate compiles its own optimized code, so a second worker adds its compiles to the two cores instead of halving them.` : ""}`,
      "",
    );
  }
  if (fleet.startup && fleet.phases) {
    const F = fleet.startup.fleetWorkerMedianMs;
    // The hosts' work at the steady state's pace, with one worker: no start-up, no warm-up.
    const W = (fleet.phases[1].restMedianMs * 4) / 3;
    md.push(
      `A worker's start-up before its first host (medians of ${fleet.startup.bareMs.length}, spawn to exit): a bare Node worker ${fleet.startup.bareMedianMs.toFixed(0)} ms; the fleet's bundled worker given no file (its modules loaded, the wasm kernels instantiated) ${F.toFixed(0)} ms. Call that F, and W the hosts' work with one worker at the steady state's pace (${W.toFixed(0)} ms: the last three quarters' time × 4/3). With no JIT warm-up at all, --jobs 2 would still take at least F + W/2 against F + W: at most **${((F + W) / (F + W / 2)).toFixed(2)}×**. 1.7× needs F ≤ 0.21 W, that is hosts worth at least ${((F * 0.7) / 0.15 / fleet.hosts).toFixed(2)} ms each at one worker's pace (these take ${(W / fleet.hosts).toFixed(2)} ms), and then no warm-up either: a second isolate's compiles share the two cores with the workers.`,
      "",
    );
  }
  if (fleet.coldBound) {
    const p = fleet.phases;
    md.push(
      `A bound that does not come from the core count (the cold-isolate bound): with --jobs 2 each worker is a V8 isolate of its own that starts cold and checks at least half of the hosts, so the run takes at least what one lone worker (its compiles on a core of their own) takes for the first half. With one worker that was ${p[1].firstHalfMedianMs.toFixed(0)} ms of the ${p[1].allMedianMs.toFixed(0)} ms run (medians of the by-phase runs, from the start of fleetCheck): --jobs 2 can be at most **${fleet.coldBound.toFixed(2)}×** faster than --jobs 1, however many cores there are (more cores lift it only as far as more compile threads shorten one isolate's warm-up). The first half costs more than half because the JavaScript check runs unoptimized until V8 has compiled it, and each isolate compiles it again; 1.7× needs the first half to take at most 59% of the whole.`,
      "",
    );
  }
  if (fleet.jobs1.cpuMs && fleet.jobs2.cpuMs) {
    const cpu1 = median(fleet.jobs1.cpuMs);
    const cpu2 = median(fleet.jobs2.cpuMs);
    md.push(
      `Per host: ${(fleet.jobs1.medianMs / fleet.hosts).toFixed(2)} ms of wall time with one worker. Process CPU (all threads, medians): ${(cpu1 / 1000).toFixed(2)} s with one worker, ${(cpu2 / 1000).toFixed(2)} s with two: the difference is what each worker pays once (thread start-up, loading the modules, decoding the first snapshot's symbol table, V8 compiling the same hot code in each isolate on background threads: with one worker those compiles run on the idle second core, with two they take turns with the workers).${fleet.ceiling ? ` Hence a ceiling: --jobs 2 does at least this CPU work on at most ${m.cores} cores, so no split of it can be more than ${(fleet.jobs1.medianMs / 1000).toFixed(2)} s × ${m.cores} / ${(cpu1 / 1000).toFixed(2)} s = **${fleet.ceiling.toFixed(2)}× faster on this machine**${fleet.ceiling < 1.7 ? " (below the 1.7× target: the target needs each isolate's fixed work, mostly V8 compiling the check's JavaScript, to shrink to a small part of the hosts' work, which means the per-host decision in wasm, whose compiled module the workers would share)" : ""}.` : ""}`,
      "",
    );
  }
}
md.push("Regenerate: `npm run build && node --expose-gc bench/snapshot.js` (parts: `--only size,check,first,fleet`; `--quick` for a smaller run; `--runs N`); from a private copy of dist/ on a shared machine (see the head of bench/snapshot.js).", "");
// Notes written by hand below the generated part are kept (they explain the figures).
const HAND = "## What these figures say (hand-written";
let kept = "";
try {
  const old = readFileSync(here("SNAPSHOT-RESULTS.md"), "utf8");
  const at = old.indexOf(HAND);
  if (at >= 0) kept = old.slice(at);
} catch {}
writeFileSync(here("SNAPSHOT-RESULTS.md"), md.join("\n") + (kept === "" ? "" : `\n${kept}`));
console.log("wrote bench/snapshot-results.json and bench/SNAPSHOT-RESULTS.md");
