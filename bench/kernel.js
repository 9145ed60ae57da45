#!/usr/bin/env node
// Scan-kernel benchmark: section 1 of bench/run.js, and runnable on its own (needs `npm run build`):
//
//   node bench/kernel.js [--quick] [--runs N] [--frames 10000,1000000] [--ranges 10,10000]
//                        [--dist realistic,uniform,overlap] [--json FILE] [--compare DIR]
//
// --compare DIR: another built checkout (its dist/ and build/scan.wasm, e.g. `git archive` of an
// older commit with node_modules linked, then asc + tsc there) timed in the same process and the
// same Bench as this one, as "compared" (its scanView() if it has one, else scan()) and
// "compared-floor": an A/B that sees the same machine load, for kernel changes.
//
// frames/s of the scan: wasm vs the pure-TS port of the same algorithm vs a naive
// every-frame-every-range loop (and the BigInt reference on small inputs), with an interop-only
// baseline and the memory floor (a wasm pass that only sums the keys); realistic frames
// (resampled real stacks) and, separately, uniform random addresses. Opt-in (--dist overlap):
// realistic frames against every range given twice, so each hit is two (a function replaced by
// two patches of a stack): the path of keys with several hits.
//
// The baselines move the keys exactly as the scan does: the same Uint32Array, the same chunked
// copies into wasm memory, one export call per chunk; the floor sums each chunk in wasm. The
// scan additionally validates its input, installs (or, with the same ranges as the last call,
// compares and keeps) the ranges, and hands out its hits: that is all part of the measured time.
//
// Each input is one task, which is how check.ts scans shared frame rows (scanCapture), and
// scanCapture reads those hits through scanView() (borrowed views on the kernel's output
// columns, copied into its per-task arrays right away). So the "wasm" and "typescript" columns
// time scanView(), what the pipeline calls; "wasm-owned" times scan(), which copies the hits
// out into new typed arrays (the library call whose result the caller keeps, and what check.ts
// runs for captures without shared rows).
//
// Standalone it prints one table (median over --runs sweeps of each row's tinybench p50) and
// writes nothing unless --json is given; bench/run.js writes results.json and RESULTS.md.
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { Bench } from "tinybench";
import { generateProcDump, parseNativeJson, parseProcText, parseSymbolTable, referenceScanner, resolveFrames, tsScanner } from "../dist/index.js";
import { loadScanModuleSync } from "../dist/node/wasm.js";
import { createWasmScanner } from "../dist/scan/wasm.js";

const HOT = ["worker_thread", "do_epoll_wait", "smpboot_thread_fn"];

/** Unique vmlinux text symbols with a size, in table order: patch functions drawn from kallsyms. */
export function textFunctions(kallsyms) {
  const out = [];
  for (const [name, rows] of kallsyms.byName) {
    if (rows.length !== 1 || !/^[a-z_][a-z0-9_]*$/.test(name) || kallsyms.padding[rows[0]]) continue;
    const r = rows[0];
    if ((kallsyms.type[r] === 116 || kallsyms.type[r] === 84) && kallsyms.object[r] === 0 && kallsyms.size[r] > 0 && kallsyms.size[r] < 1 << 20) out.push(name);
  }
  return out;
}

/** funcNames(n): n function names, the 3 hot ones first, then every k-th text symbol (deterministic). */
export function funcNamesFrom(textFuncs) {
  return (n) => {
    const names = HOT.slice(0, Math.min(n, HOT.length));
    const step = Math.max(1, Math.floor(textFuncs.length / Math.max(1, n)));
    for (let k = 0; names.length < n && k < textFuncs.length * 2; k += step) {
      const name = textFuncs[k % textFuncs.length];
      if (!names.includes(name)) names.push(name);
      if (k + step >= textFuncs.length * 2) break;
    }
    for (let k = 0; names.length < n; k++) if (!names.includes(textFuncs[k])) names.push(textFuncs[k]);
    return names;
  };
}

/** The naive kpatch-style loop: every frame against every range (kpatch_backtrace_address_verify). */
function naiveScan(keys, rangeStart, rangeLast) {
  const n = keys.length / 2;
  const m = rangeStart.length / 2;
  let count = 0;
  for (let i = 0; i < n; i++) {
    const klo = keys[2 * i];
    const khi = keys[2 * i + 1];
    if (klo === 0 && khi === 0) continue;
    for (let r = 0; r < m; r++) {
      const shi = rangeStart[2 * r + 1];
      const lhi = rangeLast[2 * r + 1];
      if ((khi > shi || (khi === shi && klo >= rangeStart[2 * r])) && (khi < lhi || (khi === lhi && klo <= rangeLast[2 * r]))) count++;
    }
  }
  return count;
}

/** Distinct non-zero keys among the frames (how much a memo of recent keys can help). */
function distinctKeys(keys) {
  const byHi = new Map();
  let n = 0;
  for (let i = 0; i < keys.length; i += 2) {
    const lo = keys[i];
    const hi = keys[i + 1];
    if ((lo | hi) === 0) continue;
    let los = byHi.get(hi);
    if (los === undefined) byHi.set(hi, (los = new Set()));
    if (!los.has(lo)) {
      los.add(lo);
      n++;
    }
  }
  return n;
}

/**
 * Runs the kernel sweep and returns one row per (dist, frames, ranges, impl):
 * { dist, frames, ranges, impl, p50ms, rme, framesTimed, nsPerFrame, mFramesPerSec, hits, distinctKeys }.
 * ctx: { kallsyms, source, funcNames, textFuncs, quick, log, frameSizes?, rangeSizes?, dists? }.
 */
export async function kernelBench(ctx) {
  const { kallsyms, source, funcNames, textFuncs, quick, log } = ctx;
  const wasm = createWasmScanner(loadScanModuleSync("release"), "wasm-release");
  const compared = ctx.compared ?? null;
  const rows = [];

  /** Ranges [start, start + size - 1] of the named functions as the scan's u32 pairs. */
  const rangesOf = (names) => {
    const rangeStart = new Uint32Array(names.length * 2);
    const rangeLast = new Uint32Array(names.length * 2);
    names.forEach((name, i) => {
      const r = kallsyms.byName.get(name)[0];
      const lo = kallsyms.addrLo[r];
      const last = lo + kallsyms.size[r] - 1;
      rangeStart[2 * i] = lo;
      rangeStart[2 * i + 1] = kallsyms.addrHi[r];
      rangeLast[2 * i] = last >>> 0;
      rangeLast[2 * i + 1] = kallsyms.addrHi[r] + (last > 0xffffffff ? 1 : 0);
    });
    return { rangeStart, rangeLast };
  };

  /** Realistic keys: resampled real stacks resolved against the real kallsyms. */
  const realisticKeys = (frames) => {
    const tasks = Math.ceil(frames / 5) + 10;
    const cap = parseProcText(generateProcDump(source, { tasks, seed: 1 }).text);
    const keys = resolveFrames(cap, kallsyms).keys.subarray(0, 2 * Math.min(frames, cap.frames.length));
    return keys.slice();
  };

  /** Uniform random addresses across vmlinux text (seeded). */
  const uniformKeys = (frames) => {
    let lo = 0xffffffff;
    let hi = 0;
    for (const name of textFuncs) {
      const r = kallsyms.byName.get(name)[0];
      lo = Math.min(lo, kallsyms.addrLo[r]);
      hi = Math.max(hi, kallsyms.addrLo[r]);
    }
    const keys = new Uint32Array(frames * 2);
    let s = 12345;
    for (let i = 0; i < frames; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const t = (Math.imul(s ^ (s >>> 16), 0x45d9f3b) >>> 0) / 4294967296;
      keys[2 * i] = (lo + Math.floor(t * (hi - lo))) >>> 0;
      keys[2 * i + 1] = 0xffffffff;
    }
    return keys;
  };

  const frameSizes = ctx.frameSizes ?? (quick ? [50_000] : [10_000, 100_000, 1_000_000]);
  const rangeSizes = ctx.rangeSizes ?? [10, 1000, 10_000];
  for (const dist of ctx.dists ?? ["realistic", "uniform"]) {
    for (const F of frameSizes) {
      const keysAll = dist === "uniform" ? uniformKeys(F) : realisticKeys(F);
      const frames = keysAll.length / 2;
      const distinct = distinctKeys(keysAll);
      for (const R of rangeSizes) {
        let { rangeStart, rangeLast } = rangesOf(funcNames(R));
        if (dist === "overlap") {
          const twice = (a) => {
            const t = new Uint32Array(a.length * 2);
            t.set(a);
            t.set(a, a.length);
            return t;
          };
          rangeStart = twice(rangeStart);
          rangeLast = twice(rangeLast);
        }
        // One task: how check.ts scans shared frame rows (each distinct stack once).
        const input = { keys: keysAll, taskFrameStart: Uint32Array.from([0, frames]), rangeStart, rangeLast };
        // Bounded work for the quadratic contenders: their cost per frame does not depend on F.
        const small = Math.min(frames, R >= 1000 ? 5_000 : 20_000);
        const smallInput = { keys: keysAll.subarray(0, 2 * small), taskFrameStart: Uint32Array.from([0, small]), rangeStart, rangeLast };
        const bench = new Bench({ time: quick ? 100 : 500, iterations: quick ? 3 : 10, warmupTime: quick ? 20 : 100, warmupIterations: 2 });
        const perFrame = new Map();
        const add = (name, n, fn) => {
          perFrame.set(name, n);
          bench.add(name, fn);
        };
        add("wasm", frames, () => wasm.scanView(input).count);
        add("wasm-owned", frames, () => wasm.scan(input).count);
        add("typescript", frames, () => tsScanner.scanView(input).count);
        add("interop-only", frames, () => wasm.interopOnly(keysAll));
        add("memory-floor", frames, () => wasm.memoryFloor(keysAll));
        if (compared !== null) {
          add("compared", frames, compared.scanView ? () => compared.scanView(input).count : () => compared.scan(input).count);
          add("compared-floor", frames, () => compared.memoryFloor(keysAll));
        }
        if (R <= 1000 && !(quick && R > 10 && dist === "uniform")) add("naive", small, () => naiveScan(smallInput.keys, rangeStart, rangeLast));
        if (R <= 10 && !quick) add("bigint-reference", Math.min(small, 5000), () => referenceScanner.scan({ ...smallInput, keys: keysAll.subarray(0, 2 * Math.min(small, 5000)), taskFrameStart: Uint32Array.from([0, Math.min(small, 5000)]) }).count);
        // Same answers before timing anything.
        const w = wasm.scan(input);
        const t = tsScanner.scan(input);
        if (w.count !== t.count || w.frame.some((x, i) => x !== t.frame[i]) || w.range.some((x, i) => x !== t.range[i])) throw new Error(`wasm and typescript disagree (${dist}, ${F} frames, ${R} ranges)`);
        for (const [name, v] of [["wasm", wasm.scanView(input)], ["typescript", tsScanner.scanView(input)]]) {
          if (v.count !== w.count || v.frame.some((x, i) => x !== w.frame[i]) || v.range.some((x, i) => x !== w.range[i])) throw new Error(`${name} scanView and wasm scan disagree (${dist}, ${F} frames, ${R} ranges)`);
        }
        if (R <= 1000 && naiveScan(smallInput.keys, rangeStart, rangeLast) !== wasm.scan(smallInput).count) throw new Error("naive and wasm disagree");
        await bench.run();
        for (const task of bench.tasks) {
          const lat = task.result.latency;
          const n = perFrame.get(task.name);
          rows.push({ dist, frames, ranges: R, impl: task.name, p50ms: lat.p50, rme: lat.rme, framesTimed: n, nsPerFrame: (lat.p50 * 1e6) / n, mFramesPerSec: n / lat.p50 / 1000, hits: w.count, distinctKeys: distinct });
        }
        log(`kernel ${dist} ${frames} frames ${R} ranges done`);
      }
    }
  }
  return rows;
}

// ---- standalone ---------------------------------------------------------------------------------

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const argv = process.argv.slice(2);
  const opt = (name) => {
    const i = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
    if (i < 0) return undefined;
    return argv[i].includes("=") ? argv[i].slice(argv[i].indexOf("=") + 1) : argv[i + 1];
  };
  const list = (name) => opt(name)?.split(",");
  const quick = argv.includes("--quick");
  const runs = Number(opt("runs") ?? 1);
  const started = performance.now();
  const log = (s) => process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1)}s] ${s}\n`);
  const here = (p) => new URL(p, import.meta.url);
  const kallsyms = parseSymbolTable(gunzipSync(readFileSync(here("../test/fixtures/host/kallsyms.gz"))).toString("latin1"));
  const source = parseNativeJson(readFileSync(here("../test/fixtures/host/capture.json"), "utf8"));
  const textFuncs = textFunctions(kallsyms);
  const ctx = {
    kallsyms,
    source,
    textFuncs,
    funcNames: funcNamesFrom(textFuncs),
    quick,
    log,
    frameSizes: list("frames")?.map(Number),
    rangeSizes: list("ranges")?.map(Number),
    dists: list("dist"),
    compared: null,
  };
  const compareDir = opt("compare");
  if (compareDir !== undefined) {
    const dir = new URL(`${compareDir.replace(/\/$/, "")}/`, `file://${process.cwd()}/`);
    const mod = await import(new URL("dist/scan/wasm.js", dir).href);
    ctx.compared = mod.createWasmScanner(new WebAssembly.Module(readFileSync(new URL("build/scan.wasm", dir))), "wasm-release");
  }
  const load = [loadavg()[0]];
  const all = [];
  for (let r = 0; r < runs; r++) {
    all.push(...(await kernelBench(ctx)));
    load.push(loadavg()[0]);
  }
  // median over runs of each row's p50
  const groups = new Map();
  for (const row of all) {
    const key = `${row.dist}|${row.frames}|${row.ranges}`;
    if (!groups.has(key)) groups.set(key, { dist: row.dist, frames: row.frames, ranges: row.ranges, hits: row.hits, distinctKeys: row.distinctKeys, ns: {} });
    (groups.get(key).ns[row.impl] ??= []).push(row.nsPerFrame);
  }
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const f2 = (x, d = 2) => (x === undefined ? "–" : x.toFixed(d));
  const out = [];
  out.push(`${new Date().toISOString()} · Node ${process.version} · ${runs} run(s), median of tinybench p50 · load average (1 min) ${load.map((x) => x.toFixed(2)).join(" → ")}`);
  out.push("");
  const cmp = ctx.compared !== null;
  out.push(`| frames | dist | ranges | distinct keys | hits | wasm | wasm-owned | typescript | naive | bigint | interop-only | memory-floor | wasm / floor | wasm-owned / floor | TS / wasm | naive / wasm |${cmp ? " compared | compared-floor | compared / its floor |" : ""}`);
  out.push(`|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|${cmp ? "---:|---:|---:|" : ""}`);
  const summary = [];
  for (const g of groups.values()) {
    const m = Object.fromEntries(Object.entries(g.ns).map(([k, v]) => [k, median(v)]));
    const ratio = (a, b) => (m[a] === undefined || m[b] === undefined ? undefined : m[a] / m[b]);
    summary.push({ dist: g.dist, frames: g.frames, ranges: g.ranges, hits: g.hits, distinctKeys: g.distinctKeys, nsPerFrame: m, runs: g.ns });
    out.push(`| ${g.frames} | ${g.dist} | ${g.ranges} | ${g.distinctKeys} | ${g.hits} | ${f2(m.wasm)} | ${f2(m["wasm-owned"])} | ${f2(m.typescript)} | ${f2(m.naive, 1)} | ${f2(m["bigint-reference"], 0)} | ${f2(m["interop-only"])} | ${f2(m["memory-floor"])} | ${f2(ratio("wasm", "memory-floor"))}× | ${f2(ratio("wasm-owned", "memory-floor"))}× | ${f2(ratio("typescript", "wasm"))}× | ${f2(ratio("naive", "wasm"), 0)}× |${cmp ? ` ${f2(m.compared)} | ${f2(m["compared-floor"])} | ${f2(ratio("compared", "compared-floor"))}× |` : ""}`);
  }
  console.log(out.join("\n"));
  const json = opt("json");
  if (json !== undefined) writeFileSync(json, `${JSON.stringify({ date: new Date().toISOString(), node: process.version, runs, loadavg: load, rows: summary }, null, 2)}\n`);
}
