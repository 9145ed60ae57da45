/**
 * fleet: several snapshots checked in parallel on worker threads, one of them corrupt (reported,
 * the others still checked), text and --json output, exit statuses.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { fleetExit, type FleetRuntime, runFleet, summarizeFleet } from "../src/cli/fleet.js";
import { run as runCli } from "../src/cli/main.js";
import type { AppliedPatch } from "../src/model.js";
import { checkSnapshotFile, type HostResult } from "../src/node/fleetCheck.js";
import { newSymbolSectionCache, ReadBuffer, readSnapshotFile } from "../src/node/snapshotFile.js";
import { captureModel, symbolsModel } from "../src/snapshot/compare.js";
import { referenceScanner } from "../src/scan/reference.js";
import { parseSymbolTable } from "../src/symbols/table.js";
import { snapshotToJson } from "../src/snapshot/json.js";
import { TaskTable } from "../src/model.js";
import { encodeSnapshot } from "../src/snapshot/psnap.js";
import { appliedPatch, fixtureText, hostCapture, hostKallsyms, hostTable, patchOf } from "./helpers.js";
import { parseNativeJson } from "../src/ingest/nativeJson.js";

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
  expect(doc.summary).toEqual({ hosts: 4, safe: 0, blocked: 3, undecided: 0, unreadable: 1, notApplied: 0 });
  expect(doc.topFunctions.map((f) => [f.name, f.hosts])).toEqual([
    ["smpboot_thread_fn", 3],
    ["do_epoll_wait", 3],
  ]);
  expect(doc.hosts[1].hostname).toBe("other");
  expect(status).toBe(1);
  expect(o.err.join("")).toMatch(/4\/4 hosts checked/);
  // What the DIR holds besides snapshots is named, not silently passed over.
  expect(o.err.join("")).toContain(`fleet: 1 entry not checked (a DIR is searched for *.psnap and *.json directly inside it, not in subdirectories): ${join(dir, "ignored.txt")}`);
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
  const r = (verdict: HostResult["verdict"], notApplied: string | null = null): HostResult => ({ file: "f", hostname: null, bootId: null, release: null, capturedAt: null, applied: null, transition: null, notApplied, verdict, exit: 0, counts: null, blockers: [], reasons: [], warnings: [], error: null, ms: 0 });
  expect(fleetExit(summarizeFleet([r("safe"), r("safe")]))).toBe(0);
  expect(fleetExit(summarizeFleet([r("safe"), r("blocked"), r(null)]))).toBe(1);
  expect(fleetExit(summarizeFleet([r("safe"), r("undecided")]))).toBe(3);
  expect(fleetExit(summarizeFleet([r("safe"), r(null)]))).toBe(3);
  expect(fleetExit(summarizeFleet([]))).toBe(3);
  // --revert: hosts without the patch have nothing to do, but a revert no host needs is not safe.
  const without = r(null, "'p' is not applied");
  expect(summarizeFleet([r("safe"), without])).toMatchObject({ hosts: 2, safe: 1, unreadable: 0, notApplied: 1 });
  expect(fleetExit(summarizeFleet([r("safe"), without]))).toBe(0);
  expect(fleetExit(summarizeFleet([without, without]))).toBe(3);
  expect(fleetExit(summarizeFleet([r("blocked"), without]))).toBe(1);
  expect(fleetExit(summarizeFleet([r("undecided"), without]))).toBe(3);
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

test("hosts with live patches enabled are checked against their own stack, as `patchsafe check HOST.psnap` checks them", () => {
  const cap = hostCapture("capture.json");
  const table = hostTable();
  const sub = join(dir, "stacks");
  mkdirSync(sub);
  const lp = (name: string, oldName: string, extra: Partial<AppliedPatch> = {}): AppliedPatch => appliedPatch(name, [["vmlinux", oldName]], extra);
  // The checked patch replaces do_epoll_wait (on user stacks of this capture) and meminfo_proc_show (on none).
  const stacks: [string, AppliedPatch[] | null][] = [
    ["none", null],
    ["empty", []],
    // An earlier patch of do_epoll_wait: only its replacement (not on any stack) blocks now.
    ["repatch", [lp("lp_old", "do_epoll_wait")]],
    // Another patch's transition is in progress: the kernel refuses this one (-EBUSY).
    ["busy", [lp("lp_other", "cmdline_proc_show", { transition: true })]],
    // This patch is enabled already: nothing to apply (every task is done).
    ["done", [lp("fleet_patch", "do_epoll_wait")]],
    // This patch's own transition is stalled: applying it again is reversing the revert.
    ["own", [lp("fleet_patch", "meminfo_proc_show", { transition: true, enabled: false })]],
  ];
  for (const [name, livepatches] of stacks) {
    // Hosts that run live patches have the livepatch core (this dev host's capture has not).
    writeFileSync(join(sub, `${name}.psnap`), encodeSnapshot({ ...cap, complete: true, host: { ...cap.host, hostname: name, config: { ...cap.host.config, livepatch: true } }, livepatches }, table));
  }
  const patchFile = join(dir, "stacks-patch.json");
  writeFileSync(patchFile, JSON.stringify({ name: "fleet_patch", objects: [{ name: "vmlinux", funcs: [{ old_name: "do_epoll_wait", old_sympos: 0 }, { old_name: "meminfo_proc_show", old_sympos: 0 }] }] }));
  const o = { out: [] as string[], err: [] as string[] };
  runFleet([sub, "--patch", patchFile, "--partial-ok", "--jobs", "2", "--json"], o, rt);
  const doc = JSON.parse(o.out.join("")) as { model: string; hosts: HostResult[] };
  expect(doc.model).toBe("livepatch");
  const byHost = new Map(doc.hosts.map((h) => [h.hostname, h]));
  expect(doc.hosts.map((h) => [h.hostname, h.error])).toEqual(stacks.map(([name]) => [name, null]).sort());
  for (const [name, livepatches] of stacks) {
    const h = byHost.get(name)!;
    expect([name, h.applied]).toEqual([name, livepatches === null ? null : livepatches.map((p) => p.name)]);
    expect([name, h.transition]).toEqual([name, livepatches?.find((p) => p.transition)?.name ?? null]);
    // The same file through `patchsafe check`: the same verdict, counts and reasons.
    const single = runCli(["check", join(sub, `${name}.psnap`), "--patch", patchFile, "--partial-ok", "--json"]);
    const want = JSON.parse(single.stdout) as { verdict: string; counts: HostResult["counts"]; reasons: HostResult["reasons"] };
    expect([name, h.verdict, h.exit, h.counts, h.reasons]).toEqual([name, want.verdict, single.status, want.counts, want.reasons]);
  }
  // What the stacks change: the repatch moves the blocking range off the original do_epoll_wait.
  expect(byHost.get("none")!.verdict).toBe("blocked");
  expect(byHost.get("none")!.blockers.map((b) => b.name)).toEqual(["do_epoll_wait"]);
  expect(byHost.get("repatch")!.blockers).toEqual([]);
  expect(byHost.get("busy")!.reasons[0].message).toMatch(/another live patch, lp_other, is in transition/);
  expect(byHost.get("busy")!.verdict).toBe("blocked");
  expect(byHost.get("done")!.verdict).toBe("safe");
  expect(byHost.get("done")!.counts!.done).toBe(byHost.get("done")!.counts!.tasks);
  expect(byHost.get("done")!.warnings.map((w) => w.code)).toContain("already-enabled");

  // The text summary names the host whose transition is in progress.
  const t = { out: [] as string[], err: [] as string[] };
  runFleet([sub, "--patch", patchFile, "--partial-ok", "--jobs", "1"], t, rt);
  expect(t.out.join("")).toMatch(/transition in progress[^\n]*\n\s+busy\s+\S+busy\.psnap: lp_other/);
  expect(t.out.join("")).toMatch(/\n {2}1 host\(s\) run this patch already: nothing to apply there\n/);
});

test("--model is passed to every host; an unknown model is a usage error", () => {
  const o = { out: [] as string[], err: [] as string[] };
  runFleet([join(dir, "a-host.psnap"), "--func", "smpboot_thread_fn", "--model", "kpatch", "--jobs", "1", "--json"], o, rt);
  const doc = JSON.parse(o.out.join("")) as { model: string; hosts: HostResult[] };
  expect(doc.model).toBe("kpatch");
  const single = runCli(["check", join(dir, "a-host.psnap"), "--func", "smpboot_thread_fn", "--model", "kpatch", "--json"]);
  const want = JSON.parse(single.stdout) as { verdict: string; counts: HostResult["counts"] };
  expect([doc.hosts[0].verdict, doc.hosts[0].counts]).toEqual([want.verdict, want.counts]);
  // kpatch adds the stopper and loader tasks the livepatch model does not have.
  const lp = JSON.parse(runCli(["check", join(dir, "a-host.psnap"), "--func", "smpboot_thread_fn", "--json"]).stdout) as { counts: { tasks: number } };
  expect(doc.hosts[0].counts!.tasks).not.toBe(lp.counts.tasks);
  expect(() => runFleet([dir, "--func", "x", "--model", "ksplice"], { out: [], err: [] }, rt)).toThrow(/--model ksplice: expected livepatch, kpatch or quiesce/);
});

test("text from the snapshots (reasons, errors, file names) reaches the terminal escaped", () => {
  const cap = hostCapture("capture.json");
  const sub = join(dir, "hostile");
  mkdirSync(sub);
  // A completeness reason recorded in the snapshot is quoted by the verdict's reason.
  const evil = "gap\x1b[2J\rforged line\n✓ SAFE";
  // Only tasks the check can decide: the host's first reason is then the capture's gap.
  const decidable = TaskTable.from(cap.tasks.toArray().filter((t) => !t.running && t.state !== "R" && t.stackStatus === "ok"));
  writeFileSync(join(sub, "evil\x1b[31m.psnap"), encodeSnapshot({ ...cap, host: { ...cap.host, config: { ...cap.host.config, livepatch: true } }, tasks: decidable, complete: false, completeness: [{ code: "unreadable", message: evil }] }, hostTable()));
  const o = { out: [] as string[], err: [] as string[] };
  runFleet([sub, "--func", "meminfo_proc_show", "--jobs", "1"], o, rt);
  const text = o.out.join("");
  expect(text).toMatch(/incomplete-capture/);
  expect(text).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
  expect(text).toContain("\\x1b[2J\\x0dforged line\\x0a");
  expect(text.split("\n").filter((l) => l.startsWith("✓ SAFE"))).toEqual([]);
});

test("--revert checks the hosts that run the patch as `check --revert` does; the others have nothing to revert", () => {
  const cap = hostCapture("capture.json");
  const table = hostTable();
  const sub = join(dir, "revert");
  mkdirSync(sub);
  const mine = (extra: Partial<AppliedPatch> = {}): AppliedPatch => appliedPatch("fleet_patch", [["vmlinux", "do_epoll_wait"], ["vmlinux", "meminfo_proc_show"]], extra);
  const stacks: [string, AppliedPatch[] | null][] = [
    // No stack recorded: the host may run the patch, so it is not "nothing to revert".
    ["none", null],
    ["empty", []],
    ["other", [appliedPatch("lp_old", [["vmlinux", "do_epoll_wait"]])]],
    ["disabled", [mine({ enabled: false })]],
    // Its revert is under way: tasks not yet switched back still run it.
    ["disabling", [mine({ enabled: false, transition: true })]],
    ["running", [mine()]],
    // Its enable transition is stalled: reverting it is reversing that transition.
    ["enabling", [mine({ transition: true })]],
  ];
  for (const [name, livepatches] of stacks) {
    writeFileSync(join(sub, `${name}.psnap`), encodeSnapshot({ ...cap, complete: true, host: { ...cap.host, hostname: name, config: { ...cap.host.config, livepatch: true } }, livepatches }, table));
  }
  // The module is loaded, but the stack does not list it (older captures did not record kpatch.ko modules).
  writeFileSync(join(sub, "unlisted.psnap"), encodeSnapshot({ ...cap, complete: true, modules: ["fleet_patch", "kvm"], host: { ...cap.host, hostname: "unlisted", config: { ...cap.host.config, livepatch: true } }, livepatches: [] }, table));
  // A host whose capture could not read its patch stack records an empty one, with the reason.
  writeFileSync(join(sub, "unread.psnap"), encodeSnapshot({ ...cap, complete: false, completeness: [...cap.completeness, { code: "livepatch-unreadable", message: "/sys/kernel/livepatch could not be read (EACCES)" }], host: { ...cap.host, hostname: "unread", config: { ...cap.host.config, livepatch: true } }, livepatches: [] }, table));
  const patchFile = join(dir, "revert-patch.json");
  writeFileSync(patchFile, JSON.stringify({ name: "fleet_patch", objects: [{ name: "vmlinux", funcs: [{ old_name: "do_epoll_wait", old_sympos: 0 }, { old_name: "meminfo_proc_show", old_sympos: 0 }] }] }));
  const o = { out: [] as string[], err: [] as string[] };
  const status = runFleet([sub, "--patch", patchFile, "--revert", "--partial-ok", "--jobs", "2", "--json"], o, rt);
  const doc = JSON.parse(o.out.join("")) as { direction: string; summary: Record<string, number>; hosts: HostResult[] };
  expect(doc.direction).toBe("revert");
  const byHost = new Map(doc.hosts.map((h) => [h.hostname, h]));
  expect(doc.hosts.map((h) => [h.hostname, h.error])).toEqual([...stacks.map(([name]) => name), "unread", "unlisted"].sort().map((name) => [name, null]));
  expect([...byHost].map(([name, h]) => [name, h.notApplied]).sort()).toEqual(
    [
      ["none", null],
      ["empty", "'fleet_patch' is not applied"],
      ["other", "'fleet_patch' is not applied"],
      ["disabled", "'fleet_patch' is loaded but disabled"],
      ["disabling", null],
      ["running", null],
      ["enabling", null],
      ["unread", null],
      ["unlisted", null],
    ].sort(),
  );
  const firstReason = (name: string): [string | null, string | undefined] => [byHost.get(name)!.verdict, byHost.get(name)!.reasons[0]?.code];
  expect(firstReason("none")).toEqual(["undecided", "no-patch-stack"]);
  expect(firstReason("unread")).toEqual(["undecided", "no-patch-stack"]);
  expect(firstReason("unlisted")).toEqual(["undecided", "no-patch-stack"]);
  expect(byHost.get("unlisted")!.reasons[0].message).toMatch(/module fleet_patch is loaded \(\/proc\/modules\) but the recorded patch stack does not list it/);
  expect(byHost.get("unread")!.reasons[0].message).toMatch(/could not be read \(EACCES\)/);
  expect(firstReason("disabling")).toEqual(["undecided", "revert-in-progress"]);
  for (const name of ["empty", "other", "disabled"]) {
    const h = byHost.get(name)!;
    // What `check --revert` does with such a host: refuses it (exit 2); the capture's warnings stay.
    expect([name, h.verdict, h.counts, h.exit]).toEqual([name, null, null, 2]);
  }
  // Each host that runs the patch: what `patchsafe check HOST.psnap --revert` says of it.
  for (const name of ["running", "enabling"]) {
    const h = byHost.get(name)!;
    const single = runCli(["check", join(sub, `${name}.psnap`), "--patch", patchFile, "--revert", "--partial-ok", "--json"]);
    const want = JSON.parse(single.stdout) as { verdict: string; direction: string; counts: HostResult["counts"]; reasons: HostResult["reasons"] };
    expect(want.direction).toBe("revert");
    expect([name, h.verdict, h.exit, h.counts, h.reasons]).toEqual([name, want.verdict, single.status, want.counts, want.reasons]);
  }
  // And `check --revert` refuses the hosts the fleet skips, for the same reason.
  const refused = runCli(["check", join(sub, "disabled.psnap"), "--patch", patchFile, "--revert", "--json"]);
  expect([refused.status, refused.stderr]).toEqual([2, expect.stringMatching(/'fleet_patch' is loaded but disabled/)]);
  expect(doc.summary).toEqual({
    hosts: 9,
    safe: doc.hosts.filter((h) => h.verdict === "safe").length,
    blocked: doc.hosts.filter((h) => h.verdict === "blocked").length,
    undecided: doc.hosts.filter((h) => h.verdict === "undecided").length,
    unreadable: 0,
    notApplied: 3,
  });
  expect(status).toBe(doc.summary.blocked > 0 ? 1 : 3);

  // Text: the direction, the count and every host without the patch.
  const t = { out: [] as string[], err: [] as string[] };
  runFleet([sub, "--patch", patchFile, "--revert", "--partial-ok", "--jobs", "1"], t, rt);
  const text = t.out.join("");
  expect(text).toMatch(/9 host\(s\): .*, 0 unreadable, 3 without the patch \(livepatch revert,/);
  expect(text).toMatch(/Hosts with nothing to revert \(not checked\):\n(\s+\S+\s+\S+: '.*\n){3}/);
  expect(text).toMatch(/\n\s+disabled\s+\S+disabled\.psnap: 'fleet_patch' is loaded but disabled\n/);

  // Only hosts that do not run it: nothing to revert anywhere is not "safe", and they are listed.
  const idle = { out: [] as string[], err: [] as string[] };
  expect(runFleet([join(sub, "empty.psnap"), join(sub, "other.psnap"), "--patch", patchFile, "--revert", "--jobs", "1"], idle, rt)).toBe(3);
  expect(idle.out.join("")).toMatch(/no host runs fleet_patch: nothing to revert/);
  expect(idle.out.join("")).toMatch(/Hosts with nothing to revert \(not checked\):\n\s+empty\s+\S+empty\.psnap/);
  expect(idle.out.join("")).not.toMatch(/SAFE/);
});

test("--revert: a fleet whose hosts that run the patch are safe exits 0; the others have nothing to revert", () => {
  const cap = hostCapture("capture.json");
  const sub = join(dir, "revert-safe");
  mkdirSync(sub);
  // Only tasks the check can decide, so that a host without the patch's code on any stack is safe.
  const decidable = TaskTable.from(cap.tasks.toArray().filter((t) => !t.running && t.state !== "R" && t.stackStatus === "ok"));
  const host = (name: string, livepatches: AppliedPatch[]): void =>
    writeFileSync(join(sub, `${name}.psnap`), encodeSnapshot({ ...cap, tasks: decidable, complete: true, completeness: [], host: { ...cap.host, hostname: name, config: { ...cap.host.config, livepatch: true } }, livepatches }, hostTable()));
  host("runs-it", [appliedPatch("fleet_patch", [["vmlinux", "meminfo_proc_show"]])]);
  host("without", []);
  const patchFile = join(dir, "revert-safe-patch.json");
  writeFileSync(patchFile, JSON.stringify({ name: "fleet_patch", objects: [{ name: "vmlinux", funcs: [{ old_name: "meminfo_proc_show" }] }] }));
  const o = { out: [] as string[], err: [] as string[] };
  expect(runFleet([sub, "--patch", patchFile, "--revert", "--jobs", "2", "--json"], o, rt)).toBe(0);
  const doc = JSON.parse(o.out.join("")) as { summary: Record<string, number>; hosts: HostResult[] };
  expect(doc.summary).toEqual({ hosts: 2, safe: 1, blocked: 0, undecided: 0, unreadable: 0, notApplied: 1 });
  expect(runCli(["check", join(sub, "runs-it.psnap"), "--patch", patchFile, "--revert"]).status).toBe(0);
});

test("--revert checks every function the host recorded for the patch, whatever the --patch file lists", () => {
  // Five tasks sleep in the patch's replacement of do_epoll_wait; the module's symbols are known.
  const json = fixtureText("host/capture.json").replaceAll("do_epoll_wait+0x588/0x5e0", "do_epoll_wait+0x10/0x100 [fleet_patch]");
  const cap = parseNativeJson(json, "capture.json");
  const table = parseSymbolTable(`${hostKallsyms()}ffffffffc0a00000 t do_epoll_wait\t[fleet_patch]\nffffffffc0a00100 t meminfo_proc_show\t[fleet_patch]\nffffffffc0a00200 d fleet_patch_data\t[fleet_patch]\n`, { file: "kallsyms" });
  const sub = join(dir, "revert-funcs");
  mkdirSync(sub);
  const file = join(sub, "v1.psnap");
  writeFileSync(file, encodeSnapshot({ ...cap, complete: true, host: { ...cap.host, config: { ...cap.host.config, livepatch: true } }, livepatches: [appliedPatch("fleet_patch", [["vmlinux", "do_epoll_wait"], ["vmlinux", "meminfo_proc_show"]])] }, table));
  // Another build of the same-named patch, or a partial description: it lists one function only.
  const partial = join(dir, "revert-partial.json");
  writeFileSync(partial, JSON.stringify({ name: "fleet_patch", objects: [{ name: "vmlinux", funcs: [{ old_name: "meminfo_proc_show" }] }] }));
  const single = runCli(["check", file, "--patch", partial, "--revert", "--partial-ok", "--json"]);
  const want = JSON.parse(single.stdout) as { verdict: string; blockers: { function: string; object: string; frame: { text: string } }[]; warnings: { message: string }[] };
  expect([single.status, want.verdict]).toEqual([1, "blocked"]);
  // The patched function, blocked by tasks in the patch's own replacement of it.
  expect(new Set(want.blockers.map((b) => `${b.object}:${b.function} ${b.frame.text}`))).toEqual(new Set(["vmlinux:do_epoll_wait do_epoll_wait+0x10/0x100 [fleet_patch]"]));
  expect(want.warnings.map((w) => w.message)).toContainEqual(expect.stringMatching(/also replaces do_epoll_wait, which the --patch file does not list/));
  for (const model of ["livepatch", "kpatch"]) {
    const o = { out: [] as string[], err: [] as string[] };
    expect([model, runFleet([sub, "--patch", partial, "--revert", "--partial-ok", "--model", model, "--jobs", "1", "--json"], o, rt)]).toEqual([model, 1]);
  }
});

test("an applied stack naming one patch twice is refused, by check and by each fleet host", () => {
  const cap = hostCapture("capture.json");
  const sub = join(dir, "dup-stack");
  mkdirSync(sub);
  const file = join(sub, "dup.psnap");
  writeFileSync(file, encodeSnapshot({ ...cap, host: { ...cap.host, config: { ...cap.host.config, livepatch: true } }, livepatches: [appliedPatch("fleet_patch", [["vmlinux", "do_epoll_wait"]], { enabled: false }), appliedPatch("fleet_patch", [["vmlinux", "do_epoll_wait"]])] }, hostTable()));
  const patchFile = join(dir, "dup-patch.json");
  writeFileSync(patchFile, JSON.stringify({ name: "fleet_patch", objects: [{ name: "vmlinux", funcs: [{ old_name: "do_epoll_wait" }] }] }));
  for (const extra of [[], ["--revert"]]) {
    const r = runCli(["check", file, "--patch", patchFile, "--partial-ok", ...extra]);
    expect([extra, r.status, r.stderr]).toEqual([extra, 2, expect.stringMatching(/names 'fleet_patch' twice/)]);
    const o = { out: [] as string[], err: [] as string[] };
    expect(runFleet([sub, "--patch", patchFile, "--partial-ok", "--jobs", "1", "--json", ...extra], o, rt)).toBe(3);
    const doc = JSON.parse(o.out.join("")) as { hosts: HostResult[] };
    expect(doc.hosts[0].error?.message).toMatch(/names 'fleet_patch' twice/);
  }
});

test("fleet --strict counts the snapshot's symbol-table warnings, as check --strict does", () => {
  const cap = hostCapture("capture.json");
  const sub = join(dir, "strict-symbols");
  mkdirSync(sub);
  const decidable = TaskTable.from(cap.tasks.toArray().filter((t) => !t.running && t.state !== "R" && t.stackStatus === "ok"));
  const table = hostTable();
  const warned = { ...table, warnings: [...table.warnings, "sympos and sizes from a System.map are less certain than from kallsyms"] };
  const file = join(sub, "sysmap.psnap");
  writeFileSync(file, encodeSnapshot({ ...cap, tasks: decidable, complete: true, completeness: [], host: { ...cap.host, config: { ...cap.host.config, livepatch: true } }, livepatches: [] }, warned));
  for (const strict of [[], ["--strict"]]) {
    const single = runCli(["check", file, "--func", "meminfo_proc_show", "--json", ...strict]);
    const o = { out: [] as string[], err: [] as string[] };
    const status = runFleet([sub, "--func", "meminfo_proc_show", "--jobs", "1", "--json", ...strict], o, rt);
    const h = (JSON.parse(o.out.join("")) as { hosts: HostResult[] }).hosts[0];
    expect([strict, h.verdict, status]).toEqual([strict, (JSON.parse(single.stdout) as { verdict: string }).verdict, single.status]);
    expect(h.warnings.map((w) => w.code)).toContain("symbols");
  }
  expect(runCli(["check", file, "--func", "meminfo_proc_show", "--strict"]).status).toBe(3);
});

test("--revert needs a named --patch", () => {
  expect(() => runFleet([dir, "--func", "do_epoll_wait", "--revert"], { out: [], err: [] }, rt)).toThrow(/--revert needs --patch FILE/);
  const unnamed = join(dir, "unnamed-patch.json");
  writeFileSync(unnamed, JSON.stringify({ objects: [{ name: "vmlinux", funcs: [{ old_name: "do_epoll_wait" }] }] }));
  expect(() => runFleet([dir, "--patch", unnamed, "--revert"], { out: [], err: [] }, rt)).toThrow(/--revert needs a patch with a name/);
});
