#!/usr/bin/env node
// Benchmarks (tinybench 6): the scan kernel side by side with its references, and the whole
// pipeline on generated dumps. Results: bench/results.json and bench/RESULTS.md, stamped with CPU,
// Node version, wasm build hash and date. Needs `npm run build` first.
//   node bench/run.js [--quick]
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { gunzipSync } from "node:zlib";
import { Bench } from "tinybench";
import { check, emptyPatch, generateProcDump, parseFuncArg, parseNativeJson, parseProcText, parseSymbolTable, referenceScanner, resolveFrames, scanInputFor, buildRanges } from "../dist/index.js";
import { loadWasmScannerSync } from "../dist/node/index.js";

const quick = process.argv.includes("--quick");
const here = (p) => new URL(p, import.meta.url);
const kallsyms = parseSymbolTable(gunzipSync(readFileSync(here("../test/fixtures/host/kallsyms.gz"))).toString("latin1"));
const source = parseNativeJson(readFileSync(here("../test/fixtures/host/capture.json"), "utf8"));
const wasm = loadWasmScannerSync("release");

/** The naive kpatch-style loop: every frame against every range (kpatch_backtrace_address_verify). */
const naiveScanner = {
  kind: "naive",
  scan(input) {
    const keys = input.keys;
    const n = keys.length / 2;
    const m = input.rangeStart.length / 2;
    let count = 0;
    for (let i = 0; i < n; i++) {
      const klo = keys[2 * i], khi = keys[2 * i + 1];
      if (klo === 0 && khi === 0) continue;
      for (let r = 0; r < m; r++) {
        const slo = input.rangeStart[2 * r], shi = input.rangeStart[2 * r + 1];
        const llo = input.rangeLast[2 * r], lhi = input.rangeLast[2 * r + 1];
        const geStart = khi > shi || (khi === shi && klo >= slo);
        const leLast = khi < lhi || (khi === lhi && klo <= llo);
        if (geStart && leLast) count++;
      }
    }
    return { count };
  },
};

function workload(tasks, funcs) {
  const { text } = generateProcDump(source, { tasks, seed: 1 });
  const capture = parseProcText(text, `synth-${tasks}`);
  const resolved = resolveFrames(capture, kallsyms);
  const patch = emptyPatch();
  // Patch functions drawn from kallsyms text symbols (deterministic), plus two that are on stacks.
  patch.funcs.push(parseFuncArg("worker_thread"), parseFuncArg("do_epoll_wait"));
  const names = [...kallsyms.byName.entries()].filter(([n, rows]) => rows.length === 1 && /^[a-z_]+$/.test(n) && kallsyms.type[rows[0]] === 116 && kallsyms.size[rows[0]] > 0);
  for (let k = 0; patch.funcs.length < funcs; k += 7) patch.funcs.push(parseFuncArg(names[k % names.length][0]));
  const ranges = buildRanges(patch, kallsyms, resolved);
  return { capture, input: scanInputFor(capture, resolved, ranges), patch, text };
}

const results = [];
const sizes = quick ? [[10_000, 10], [10_000, 1000]] : [[10_000, 10], [100_000, 10], [100_000, 1000], [100_000, 10_000]];
for (const [tasks, funcs] of sizes) {
  const w = workload(tasks, funcs);
  const frames = w.input.keys.length / 2;
  const bench = new Bench({ time: quick ? 200 : 1000, iterations: 5, warmupIterations: 2 });
  bench.add(`scan wasm (${tasks} tasks, ${frames} frames, ${funcs} funcs)`, () => wasm.scan(w.input).count);
  if (funcs <= 1000) bench.add(`scan naive loop (${tasks} tasks, ${funcs} funcs)`, () => naiveScanner.scan(w.input).count);
  if (frames * funcs <= 1e8 && tasks <= 10_000) bench.add(`scan BigInt reference (${tasks} tasks, ${funcs} funcs)`, () => referenceScanner.scan(w.input).count);
  bench.add(`parse /proc text (${tasks} tasks, ${(w.text.length / 1048576).toFixed(1)} MiB)`, () => parseProcText(w.text).tasks.length);
  bench.add(`check end to end in-process (${tasks} tasks, ${funcs} funcs)`, () => check({ capture: w.capture, symbols: kallsyms, patch: w.patch, scanner: wasm }).verdict.counts.blocked);
  await bench.run();
  for (const t of bench.tasks) {
    const lat = t.result.latency;
    results.push({ name: t.name, frames, p50ms: lat.p50, meanms: lat.mean, rme: lat.rme, samples: lat.samplesCount, framesPerSec: t.name.startsWith("scan") ? frames / (lat.p50 / 1000) : null });
  }
}

const wasmBytes = readFileSync(here("../build/scan.wasm"));
const meta = {
  date: new Date().toISOString(),
  node: process.version,
  v8: process.versions.v8,
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
  memGiB: Math.round(totalmem() / 2 ** 30),
  wasmSha256: createHash("sha256").update(wasmBytes).digest("hex").slice(0, 16),
  quick,
};
writeFileSync(here("results.json"), `${JSON.stringify({ meta, results }, null, 2)}\n`);
const rows = results.map((r) => `| ${r.name} | ${r.p50ms.toFixed(2)} | ±${r.rme.toFixed(1)}% | ${r.framesPerSec === null ? "" : (r.framesPerSec / 1e6).toFixed(1)} |`);
writeFileSync(
  here("RESULTS.md"),
  `# Benchmark results\n\n${meta.date} · Node ${meta.node} (V8 ${meta.v8}) · ${meta.cpu} × ${meta.cores} · ${meta.memGiB} GiB · wasm ${meta.wasmSha256}${quick ? " · quick run" : ""}\n\nWorkload: \`generateProcDump\` resampling the committed capture of the dev host (heavy repetition: realistic, flatters caches), this host's kallsyms, patches of N functions (two on stacks, the rest unique text symbols). p50 of tinybench samples.\n\n| task | p50 ms | rme | Mframes/s |\n|---|---:|---:|---:|\n${rows.join("\n")}\n\nRegenerate: \`npm run build && npm run bench\`.\n`,
);
console.table(results.map((r) => ({ name: r.name, "p50 ms": r.p50ms.toFixed(2), "Mframes/s": r.framesPerSec === null ? "" : (r.framesPerSec / 1e6).toFixed(1) })));
