/**
 * fleet: several snapshots checked in parallel on worker threads, one of them corrupt (reported,
 * the others still checked), text and --json output, exit statuses.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { fleetExit, type FleetRuntime, runFleet, summarizeFleet } from "../src/cli/fleet.js";
import { checkSnapshotFile, type HostResult } from "../src/node/fleetCheck.js";
import { newSymbolSectionCache, ReadBuffer, readSnapshotFile } from "../src/node/snapshotFile.js";
import { captureModel, symbolsModel } from "../src/snapshot/compare.js";
import { referenceScanner } from "../src/scan/reference.js";
import { parseSymbolTable } from "../src/symbols/table.js";
import { snapshotToJson } from "../src/snapshot/json.js";
import { TaskTable } from "../src/model.js";
import { encodeSnapshot } from "../src/snapshot/psnap.js";
import { fixtureText, hostCapture, hostTable, patchOf } from "./helpers.js";

const rt: FleetRuntime = {
  workerUrl: new URL("../src/node/fleetWorker.ts", import.meta.url),
  execArgv: ["--import", new URL("./tsWorkerHooks.mjs", import.meta.url).href],
  progress: null,
};

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "patchsafe-fleet-"));
  const cap = hostCapture("capture.json");
  const table = hostTable();
  const good = encodeSnapshot(cap, table);
  writeFileSync(join(dir, "a-host.psnap"), good);
  const other = { ...cap, host: { ...cap.host, hostname: "other" } };
  writeFileSync(join(dir, "b-host.json"), snapshotToJson(other, table));
  writeFileSync(join(dir, "c-corrupt.psnap"), good.subarray(0, good.length >> 1));
  writeFileSync(join(dir, "d-nosyms.psnap"), encodeSnapshot({ ...cap, host: { ...cap.host, hostname: "nosyms" } }, null));
  writeFileSync(join(dir, "ignored.txt"), "not a snapshot");
});
afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

test("one corrupt file is reported; the other hosts are checked in parallel", () => {
  const o = { out: [] as string[], err: [] as string[] };
  const status = runFleet([dir, "--func", "smpboot_thread_fn", "--func", "do_epoll_wait", "--jobs", "2", "--json"], o, rt);
  const doc = JSON.parse(o.out.join("")) as { summary: Record<string, number>; hosts: HostResult[]; topFunctions: { name: string; hosts: number }[] };
  expect(doc.hosts.map((h) => [h.file.split("/").pop(), h.verdict, h.error?.code ?? null])).toEqual([
    ["a-host.psnap", "blocked", null],
    ["b-host.json", "blocked", null],
    ["c-corrupt.psnap", null, "E_SNAPSHOT_TRUNCATED"],
    ["d-nosyms.psnap", "blocked", null],
  ]);
  expect(doc.summary).toEqual({ hosts: 4, safe: 0, blocked: 3, undecided: 0, unreadable: 1 });
  expect(doc.topFunctions.map((f) => [f.name, f.hosts])).toEqual([
    ["smpboot_thread_fn", 3],
    ["do_epoll_wait", 3],
  ]);
  expect(doc.hosts[1].hostname).toBe("other");
  expect(status).toBe(1);
  expect(o.err.join("")).toMatch(/4\/4 hosts checked/);
});

test("text summary and exit 3 when nothing blocks but a host is unreadable", () => {
  const o = { out: [] as string[], err: [] as string[] };
  const status = runFleet([join(dir, "a-host.psnap"), join(dir, "c-corrupt.psnap"), "--func", "meminfo_proc_show", "--jobs", "1"], o, rt);
  const text = o.out.join("");
  expect(text).toMatch(/2 host\(s\)/);
  expect(text).toMatch(/Unreadable snapshots/);
  expect(text).toMatch(/E_SNAPSHOT_TRUNCATED/);
  expect(status).toBe(3);
});

test("exit statuses from summaries", () => {
  const r = (verdict: HostResult["verdict"]): HostResult => ({ file: "f", hostname: null, bootId: null, release: null, capturedAt: null, verdict, exit: 0, counts: null, blockers: [], reasons: [], warnings: [], error: null, ms: 0 });
  expect(fleetExit(summarizeFleet([r("safe"), r("safe")]))).toBe(0);
  expect(fleetExit(summarizeFleet([r("safe"), r("blocked"), r(null)]))).toBe(1);
  expect(fleetExit(summarizeFleet([r("safe"), r("undecided")]))).toBe(3);
  expect(fleetExit(summarizeFleet([r("safe"), r(null)]))).toBe(3);
  expect(() => runFleet([dir], { out: [], err: [] }, rt)).toThrow(/nothing to check/);
});

test("hosts of one kernel build decode its symbol section once per worker; results as without the cache", () => {
  const cap = hostCapture("capture.json");
  const table = hostTable();
  const other = parseSymbolTable(fixtureText("snapshot/kallsyms-subset.txt"), { file: "subset" });
  const files: string[] = [];
  for (let h = 0; h < 4; h++) {
    const f = join(dir, `same-${h}.psnap`);
    // Hosts 0, 1, 3 share the dev host's table; host 2 has another one (same release string).
    writeFileSync(f, encodeSnapshot({ ...cap, host: { ...cap.host, hostname: `h${h}` }, tasks: TaskTable.from(cap.tasks.toArray().slice(h)) }, h === 2 ? other : table));
    files.push(f);
  }
  const cache = newSymbolSectionCache(4);
  const patch = patchOf("smpboot_thread_fn", "do_epoll_wait");
  const strip = (r: HostResult) => ({ ...r, ms: 0 });
  const cached = files.map((f) => strip(checkSnapshotFile(f, patch, {}, referenceScanner, cache)));
  const plain = files.map((f) => strip(checkSnapshotFile(f, patch, {}, referenceScanner)));
  expect(cached).toEqual(plain);
  expect([cache.misses, cache.hits, cache.size]).toEqual([2, 2, 2]);
  expect(cached.map((r) => r.hostname)).toEqual(["h0", "h1", "h2", "h3"]);
});

test("a reused read buffer: a decoded snapshot never points into the bytes it was read from", () => {
  const cap = hostCapture("capture.json");
  const a = join(dir, "buf-a.psnap");
  const b = join(dir, "buf-b.psnap");
  writeFileSync(a, encodeSnapshot(cap, hostTable()));
  writeFileSync(b, encodeSnapshot({ ...cap, host: { ...cap.host, hostname: "b" }, tasks: TaskTable.from(cap.tasks.toArray().slice(7)) }, parseSymbolTable(fixtureText("snapshot/kallsyms-subset.txt"), { file: "subset" })));
  const buffer = new ReadBuffer();
  const cache = newSymbolSectionCache(2);
  const da = readSnapshotFile(a, { buffer, cache });
  const before = JSON.stringify([captureModel(da.capture), symbolsModel(da.symbols!)]);
  readSnapshotFile(b, { buffer, cache });
  buffer.buf!.fill(0xa5);
  expect(JSON.stringify([captureModel(da.capture), symbolsModel(da.symbols!)])).toBe(before);
  expect(readSnapshotFile(a, { buffer, cache }).symbols).toBe(da.symbols);
});

test("workers claim files from a shared index: every file is checked once, results in file order", () => {
  const cap = hostCapture("capture.json");
  const sub = join(dir, "many");
  mkdirSync(sub);
  const names: string[] = [];
  for (let h = 0; h < 11; h++) {
    const name = `host-${String(h).padStart(2, "0")}.psnap`;
    // No symbol table (small and quick); each host its own number of tasks.
    writeFileSync(join(sub, name), encodeSnapshot({ ...cap, host: { ...cap.host, hostname: `m${h}` }, tasks: TaskTable.from(cap.tasks.toArray().slice(h)) }, null));
    names.push(name);
  }
  writeFileSync(join(sub, "host-05x.psnap"), "broken");
  const o = { out: [] as string[], err: [] as string[] };
  runFleet([sub, "--func", "smpboot_thread_fn", "--jobs", "3", "--json"], o, rt);
  const doc = JSON.parse(o.out.join("")) as { jobs: number; hosts: HostResult[] };
  expect(doc.jobs).toBe(3);
  const want = [...names.slice(0, 6), "host-05x.psnap", ...names.slice(6)];
  expect(doc.hosts.map((h) => h.file.split("/").pop())).toEqual(want);
  expect(doc.hosts.map((h) => h.hostname)).toEqual(want.map((n) => (n === "host-05x.psnap" ? null : `m${Number(n.slice(5, 7))}`)));
  expect(doc.hosts.map((h) => h.counts?.tasks ?? null)).toEqual(want.map((n) => (n === "host-05x.psnap" ? null : cap.tasks.length - Number(n.slice(5, 7)))));
  expect(doc.hosts.filter((h) => h.error !== null).map((h) => h.error!.code)).toEqual(["E_SNAPSHOT_MAGIC"]);
});
