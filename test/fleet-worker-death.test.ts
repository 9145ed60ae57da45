/**
 * fleet: a worker thread that stops (here: out of memory on a snapshot too big for its heap) costs
 * only the file it was checking; the other files are still checked, by the workers left and by
 * replacements, and the run ends at once, not after the stall timeout. A worker that cannot
 * start is not restarted forever.
 *
 * The workers run the fleet worker bundled from src/ with esbuild, as the build bundles it
 * (package.json bundle:cli): one that loads its TypeScript through test/tsWorkerHooks.mjs (as in
 * fleet.test.ts) takes 3-5 s to start, and these tests start several, one after another.
 * stallSeconds is far above the time bound, so no result can come from the stall path.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { buildSync } from "esbuild";
import { afterAll, beforeAll, expect, test } from "vitest";
import { fleetCheck, type FleetRuntime } from "../src/cli/fleet.js";
import type { DecideOptions } from "../src/decide/livepatch.js";
import { TaskTable } from "../src/model.js";
import { checkSnapshotFile, type HostResult } from "../src/node/fleetCheck.js";
import { referenceScanner } from "../src/scan/reference.js";
import { snapshotToJson } from "../src/snapshot/json.js";
import { encodeSnapshot } from "../src/snapshot/psnap.js";
import { hostCapture, patchOf } from "./helpers.js";

const STALL_SECONDS = 60;
const BOUND_MS = 30_000;
/**
 * A worker heap twice what the worker needs for the small snapshots (measured: 8 MB is enough,
 * 6 MB is not), and a fifth of what the big one needs: JSON.parse of 25000 tasks (11 MB of
 * JSON; 3.5 MB already fails in 16 MB). The big one is written compact, not one task per line:
 * patchsafe's own layout is read a line at a time and fits.
 */
const SMALL_HEAP = { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 1 };

const patch = patchOf("smpboot_thread_fn", "do_epoll_wait");
const options: Partial<DecideOptions> = { model: "livepatch", direction: "apply", partialOk: false, strict: false };
let dir = "";
let workerUrl: URL;
const small: string[] = [];
const big: string[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "patchsafe-fleet-death-"));
  const src = new URL("../src/node/fleetWorker.ts", import.meta.url);
  const out = join(dir, "fleetWorker.mjs");
  buildSync({
    entryPoints: [fileURLToPath(src)],
    bundle: true,
    platform: "node",
    format: "esm",
    alias: { msgpackr: fileURLToPath(new URL("../node_modules/msgpackr/index.js", import.meta.url)) },
    // The worker finds build/scan.wasm relative to its own URL: the one of its source.
    define: { "import.meta.url": JSON.stringify(src.href) },
    outfile: out,
    logLevel: "warning",
  });
  workerUrl = pathToFileURL(out);

  const cap = hostCapture("capture.json");
  const tasks = cap.tasks.toArray();
  for (let h = 0; h < 8; h++) {
    const f = join(dir, `host-${h}.psnap`);
    writeFileSync(f, encodeSnapshot({ ...cap, host: { ...cap.host, hostname: `h${h}` }, tasks: TaskTable.from(tasks.slice(h)) }, null));
    small.push(f);
  }
  const many = [];
  for (let k = 0; k < 200; k++) many.push(...tasks);
  const json = JSON.stringify(JSON.parse(snapshotToJson({ ...cap, host: { ...cap.host, hostname: "huge" }, tasks: TaskTable.from(many) }, null)));
  for (let b = 0; b < 3; b++) {
    const f = join(dir, `huge-${b}.json`);
    writeFileSync(f, json);
    big.push(f);
  }
});
afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

function run(files: string[], jobs: number, rt: FleetRuntime): { results: HostResult[]; ms: number } {
  const t0 = performance.now();
  const results = fleetCheck(files, patch, options, jobs, { workerUrl, execArgv: [], progress: null, stallSeconds: STALL_SECONDS, ...rt });
  return { results, ms: performance.now() - t0 };
}

/** The result of checking `file` on this thread. */
function expected(file: string): HostResult {
  return { ...checkSnapshotFile(file, patch, options, referenceScanner), ms: 0 };
}

function expectStopped(r: HostResult, file: string): void {
  expect(r.file).toBe(file);
  expect(r.verdict).toBeNull();
  expect(r.error?.code).toBe("E_FLEET_WORKER");
  expect(r.error?.message).toBe(`${file}: not checked: the worker thread checking it stopped before it reported a result (the file may be what stopped it: it is not checked again)`);
}

test.each([1, 2])("a worker that runs out of memory on one file (--jobs %i): that file is reported, every other file is checked", (jobs) => {
  // With one job, every file after the big one can only be checked by a replacement.
  const files = [...small.slice(0, 3), big[0], ...small.slice(3)];
  const { results, ms } = run(files, jobs, { resourceLimits: SMALL_HEAP });
  expect(results.map((r) => r.file)).toEqual(files);
  expectStopped(results[3], big[0]);
  const others = results.filter((_, i) => i !== 3);
  expect(others.map((r) => ({ ...r, ms: 0 }))).toEqual(others.map((r) => expected(r.file)));
  expect(others.map((r) => r.verdict)).toEqual(Array(small.length).fill("blocked"));
  expect(ms).toBeLessThan(BOUND_MS);
});

test("files that kill every worker that claims them: each is reported, the replacements end with the files", () => {
  const files = [big[0], big[1], small[0], big[2], small[1]];
  const { results, ms } = run(files, 2, { resourceLimits: SMALL_HEAP });
  for (const i of [0, 1, 3]) expectStopped(results[i], files[i]);
  expect([results[2], results[4]].map((r) => ({ ...r, ms: 0 }))).toEqual([expected(small[0]), expected(small[1])]);
  expect(ms).toBeLessThan(BOUND_MS);
});

test("a worker that cannot load its module: every file is reported at once, no worker is restarted", () => {
  const broken = join(dir, "broken-worker.mjs");
  writeFileSync(broken, 'import "./no-such-module.mjs";\n');
  const files = small.slice(0, 5);
  const { results, ms } = run(files, 3, { workerUrl: pathToFileURL(broken) });
  expect(results.map((r) => [r.file, r.verdict, r.error?.code])).toEqual(files.map((f) => [f, null, "E_FLEET_WORKER"]));
  for (const r of results) expect(r.error!.message).toBe(`${r.file}: not checked: a fleet worker thread stopped while it was starting (before it could check any file), so no replacement was started`);
  expect(ms).toBeLessThan(BOUND_MS);
});
