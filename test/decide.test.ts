import { describe, expect, it } from "vitest";
import { check } from "../src/check.js";
import { PatchsafeError } from "../src/errors.js";
import { emptyPatch, parseAppliedFile, parseFuncArg, parsePatchFile, parseRangeArg } from "../src/patch/spec.js";
import { parseSymbolTable } from "../src/symbols/table.js";
import { referenceScanner } from "../src/scan/reference.js";
import { parseProcText } from "../src/ingest/procText.js";
import { symbolAddress } from "../src/symbols/table.js";
import { appliedPatch, fixtureText, hostCapture, hostTable, nativeCapture, patchOf, runCheck, USER_EPOLL } from "./helpers.js";
import type { AppliedPatch } from "../src/model.js";
import { parseSnapshotJson } from "../src/snapshot/json.js";

const t = hostTable();
/** A frame token for `name` with this host's size, so it resolves. */
function fr(name: string, off: number, sympos = 1): string {
  const row = t.byName.get(name)![sympos - 1];
  return `${name}+0x${off.toString(16)}/0x${t.size[row].toString(16)}`;
}
const KTHREAD_BOTTOM = ["kthread+0xfa/0x240", "ret_from_fork+0x166/0x190", "ret_from_fork_asm+0x1a/0x30"];
const user = (frames: string[], extra: Record<string, unknown> = {}) => ({ pid: 100, tid: 100, comm: "app", state: "S", flags: 0x400000, frames, ...extra });
const kth = (frames: string[], extra: Record<string, unknown> = {}) => ({ pid: 50, tid: 50, comm: "kworker/0:1", state: "I", flags: 0x208040, frames: [...frames, ...KTHREAD_BOTTOM], ...extra });
const outcome = (r: ReturnType<typeof runCheck>, i = 0) => r.verdict.outcomes.find((o) => o.task === i)!;

describe("this host's captures", () => {
  it("worker_thread blocks every kworker for ever (never-leaves); the kernel check fails", () => {
    const r = runCheck(hostCapture("proc-grep.txt"), ["worker_thread"]);
    expect(r.verdict.verdict).toBe("blocked");
    expect(r.verdict.counts.blocked).toBe(r.verdict.blockers.length);
    expect(r.verdict.counts.blocked).toBeGreaterThan(5);
    expect(r.verdict.blockers.every((b) => b.remedy.code === "never-leaves" && b.kernelSees && b.frameIndex === 0)).toBe(true);
    expect(r.verdict.kernelCheck.result).toBe("fail");
    const comms = r.verdict.blockers.map((b) => new TextDecoder().decode(r.capture.tasks.get(b.task).comm ?? new Uint8Array()));
    expect(comms.every((c) => c === "" || c.startsWith("kworker/"))).toBe(true);
  });

  it("smpboot_thread_fn blocks the per-CPU threads, which never leave it", () => {
    const r = runCheck(hostCapture("capture.json"), ["smpboot_thread_fn"]);
    expect(r.verdict.verdict).toBe("blocked");
    const comms = r.verdict.blockers.map((b) => new TextDecoder().decode(r.capture.tasks.get(b.task).comm!));
    expect(comms.some((c) => c.startsWith("ksoftirqd/"))).toBe(true);
    expect(comms.some((c) => c.startsWith("migration/"))).toBe(true);
    expect(r.verdict.blockers.every((b) => b.remedy.code === "never-leaves")).toBe(true);
  });

  it("a function on no stack: the partial live capture is undecided, --partial-ok decides over the rest", () => {
    const cap = hostCapture("capture.json");
    const r = runCheck(cap, ["meminfo_proc_show"]);
    expect(r.verdict.counts.blocked).toBe(0);
    expect(r.verdict.verdict).toBe("undecided");
    expect(r.verdict.reasons.map((x) => x.code)).toContain("incomplete-capture");
    const ok = runCheck(cap, ["meminfo_proc_show"], { options: { partialOk: true } });
    expect(ok.verdict.counts.excluded).toBe(cap.excluded.length + 13);
    expect(ok.verdict.warnings.map((w) => w.code)).toContain("partial-ok");
    // What remains undecided is only running tasks (the capture was taken by a running process).
    expect(ok.verdict.outcomes.filter((o) => o.status === "undecided").every((o) => o.matches[0].code === "running")).toBe(true);
  });

  it("a /proc text dump: safe for the tasks given, with a warning; --strict makes it undecided", () => {
    const grep = hostCapture("proc-grep.txt");
    const readable = parseProcText(
      fixtureText("host/proc-grep.txt")
        .split("\n")
        .filter((l) => !l.startsWith("grep:"))
        .join("\n"),
    );
    expect(readable.tasks.length).toBe(grep.tasks.length - 13);
    const r = runCheck(readable, ["meminfo_proc_show"]);
    expect(r.verdict.verdict).toBe("safe");
    expect(r.verdict.complete).toBe("unknown");
    expect(r.verdict.warnings.map((w) => w.code)).toContain("completeness-unknown");
    expect(runCheck(readable, ["meminfo_proc_show"], { options: { strict: true } }).verdict.verdict).toBe("undecided");
  });

  it("duplicates: init_once needs a sympos (kernel's ambiguity error); init_once,3 works", () => {
    const cap = hostCapture("proc-grep.txt");
    expect(() => runCheck(cap, ["init_once"])).toThrow(/unresolvable ambiguity for symbol 'init_once' in object 'vmlinux'/);
    expect(() => runCheck(cap, ["init_once,13"])).toThrow(/symbol position 13 for symbol 'init_once' in object 'vmlinux' not found/);
    const r = runCheck(cap, ["init_once,3"]);
    const f = r.ranges.functions[0];
    expect(f.symbol).toBe(t.byName.get("init_once")![2]);
    expect(f.ranges[0].start).toBe(symbolAddress(t, f.symbol));
    expect(r.verdict.counts.blocked).toBe(0);
  });

  it("an unknown function is the kernel's not-found error", () => {
    try {
      runCheck(hostCapture("proc-grep.txt"), ["no_such_function_xyz"]);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(PatchsafeError);
      expect((e as PatchsafeError).code).toBe("E_SYMBOL_NOT_FOUND");
    }
  });

  it("a function only in .sched.text: sleepers are undecided (hidden), never safe", () => {
    const r = runCheck(hostCapture("proc-grep.txt"), ["schedule_timeout"]);
    expect(r.verdict.verdict).toBe("undecided");
    const hidden = r.verdict.outcomes.filter((o) => o.matches[0]?.code === "hidden");
    expect(hidden.length).toBeGreaterThan(50);
    expect(r.verdict.outcomes.some((o) => o.status === "clean")).toBe(false);
    expect(r.verdict.kernelCheck.result).toBe("unknown");
  });

  it("without a symbol table: frames match by name, the verdict is at best undecided", () => {
    const cap = hostCapture("proc-grep.txt");
    const r = runCheck(cap, ["worker_thread"], { symbols: null });
    expect(r.resolved.keySpace).toBe("synthetic");
    expect(r.verdict.counts.blocked).toBe(runCheck(cap, ["worker_thread"]).verdict.counts.blocked);
    const none = runCheck(cap, ["meminfo_proc_show"], { symbols: null, options: { partialOk: true } });
    expect(none.verdict.reasons.map((x) => x.code)).toContain("no-symbol-table");
    expect(none.verdict.verdict).toBe("undecided");
    expect(() => runCheck(cap, ["init_once,3"], { symbols: null })).toThrow(/needs a symbol table/);
  });

  it("without a symbol table: the byte after a symbol (`__pfx_X+0x10/0x10` = X's start, `foo+S/S` = unknown) is never clean", () => {
    // A capture that does not hide scheduler frames, so nothing else bounds the verdict.
    const K = ["kthreadd+0x10/0x100", "ret_from_fork+0x166/0x190", "ret_from_fork_asm+0x1a/0x30"];
    const task = (pid: number, frames: string[]) => ({ pid, tid: pid, comm: "k", state: "S", flags: 0x208040, frames });
    const cap = nativeCapture([task(2, ["__pfx_bar+0x10/0x10", ...K]), task(3, ["foo+0x40/0x40", ...K]), task(4, ["baz+0x10/0x100", "? __pfx_bar+0x10/0x10", ...K]), task(5, ["baz+0x10/0x100", ...K])], { hidesSchedFrames: false });
    const r = check({ capture: cap, symbols: null, patch: { ...emptyPatch(), funcs: [parseFuncArg("bar")] }, applied: [], scanner: referenceScanner });
    expect(outcome(r, 0).status).toBe("blocked");
    expect(outcome(r, 1).matches.map((x) => x.code)).toContain("unresolved");
    expect(outcome(r, 2).matches.map((x) => x.code)).toContain("possibly-live");
    expect(outcome(r, 3).status).toBe("clean");
    expect(r.verdict.verdict).toBe("blocked");
  });

  it("without a symbol table: a frame printed without a Clang-LTO suffix may be the patched `foo.llvm.N`", () => {
    // kallsyms cleanup_symbol_name() prints `foo.llvm.123` as `foo` (early ThinLTO: `foo.part.0` as
    // `foo`); by name alone the task matched no range and the host was safe.
    const K = ["kthreadd+0x10/0x100", "ret_from_fork+0x166/0x190", "ret_from_fork_asm+0x1a/0x30"];
    const task = (pid: number, frames: string[]) => ({ pid, tid: pid, comm: "k", state: "S", flags: 0x208040, frames });
    const cap = () => nativeCapture([task(2, ["foo+0x10/0x40", ...K]), task(3, ["foobar+0x10/0x40", ...K])], { hidesSchedFrames: false });
    for (const name of ["foo.llvm.123", "foo.part.0"]) {
      const r = check({ capture: cap(), symbols: null, patch: { ...emptyPatch(), funcs: [parseFuncArg(name)] }, applied: [], scanner: referenceScanner });
      expect(outcome(r, 0).matches.map((x) => x.code)).toEqual(["unresolved"]);
      expect(outcome(r, 1).status).toBe("clean");
      expect(r.verdict.verdict).toBe("undecided");
    }
    // A name without a suffix is only itself: `fo` is not a printed form of `foo`.
    const plain = check({ capture: nativeCapture([task(2, ["fo+0x10/0x40", ...K])], { hidesSchedFrames: false }), symbols: null, patch: { ...emptyPatch(), funcs: [parseFuncArg("foo")] }, applied: [], scanner: referenceScanner });
    expect(plain.verdict.verdict).toBe("safe");
  });
});

describe("the livepatch rules, one at a time (SPEC §3)", () => {
  it("blocked: a real frame inside the original range; remedies by task kind and state", () => {
    const cap = nativeCapture([
      user([fr("do_epoll_wait", 0x588), ...USER_EPOLL.slice(1)]),
      user([fr("do_epoll_wait", 0x588), ...USER_EPOLL.slice(1)], { pid: 101, tid: 101, state: "D" }),
    ]);
    const r = runCheck(cap, ["do_epoll_wait"]);
    expect(r.verdict.verdict).toBe("blocked");
    expect(r.verdict.blockers.map((b) => b.remedy.code)).toEqual(["signal", "wait"]);
    expect(r.verdict.blockers.get(0).remedy.message).toMatch(/fake signal/);
  });

  it("park-offline-cpu: an smpboot thread blocked below smpboot_thread_fn", () => {
    const cap = nativeCapture([kth([fr("run_ksoftirqd", 0x20), fr("smpboot_thread_fn", 0x18c)], { comm: "ksoftirqd/1", state: "S" })]);
    const r = runCheck(cap, ["run_ksoftirqd"]);
    expect(r.verdict.blockers.get(0).remedy.code).toBe("park-offline-cpu");
  });

  it("never-leaves names the callees to patch instead", () => {
    const cap = nativeCapture([kth([fr("msleep", 0x10), fr("rescuer_thread", 0x2fd)])]);
    const r = runCheck(cap, ["rescuer_thread"]);
    expect(r.verdict.blockers.get(0).remedy).toMatchObject({ code: "never-leaves", callees: ["msleep"] });
  });

  it("running: state R is undecided even when inside the patched function", () => {
    const r = runCheck(nativeCapture([user([fr("do_epoll_wait", 0x588), ...USER_EPOLL.slice(1)], { state: "R" })]), ["do_epoll_wait"]);
    expect(outcome(r).status).toBe("undecided");
    expect(outcome(r).matches.map((x) => x.code)).toEqual(["running", "blocked"]);
    expect(r.verdict.verdict).toBe("undecided");
  });

  it("unreliable: a chain that does not reach a known bottom, only guesses, BPF, trampolines", () => {
    const cases = [
      user(USER_EPOLL.slice(0, 3)),
      user(USER_EPOLL.map((f) => `? ${f}`)),
      user([USER_EPOLL[0], "0xffffffffc0451234", ...USER_EPOLL.slice(1)]),
      user([USER_EPOLL[0], "return_to_handler+0x0/0x19", ...USER_EPOLL.slice(1)]),
      user([...USER_EPOLL.slice(0, 3), ...USER_EPOLL.slice(3).map((f) => `? ${f}`)]),
    ].map((x, i) => ({ ...x, pid: 200 + i, tid: 200 + i }));
    const r = runCheck(nativeCapture(cases), ["meminfo_proc_show"]);
    for (let i = 0; i < cases.length; i++) expect([i, outcome(r, i).matches[0]?.code]).toEqual([i, "unreliable"]);
    expect(r.verdict.verdict).toBe("undecided");
  });

  it("possibly-live: a `? ` entry naming the patched function; blocked wins over it", () => {
    const guess = user([USER_EPOLL[0], `? ${fr("meminfo_proc_show", 0x10)}`, ...USER_EPOLL.slice(1)]);
    const r = runCheck(nativeCapture([guess]), ["meminfo_proc_show"]);
    expect(outcome(r).matches[0].code).toBe("possibly-live");
    expect(r.verdict.kernelCheck.result).toBe("pass");
    const both = runCheck(nativeCapture([guess]), ["meminfo_proc_show", "do_epoll_wait"]);
    expect(outcome(both).status).toBe("blocked");
  });

  it("cold: old .cold code of a patched function is undecided; the kernel's check passes", () => {
    const r = runCheck(nativeCapture([user([fr("wait_for_initramfs.cold", 0x3), ...USER_EPOLL])]), ["wait_for_initramfs"]);
    expect(outcome(r).matches[0].code).toBe("cold");
    expect(r.verdict.kernelCheck.result).toBe("pass");
    expect(r.verdict.verdict).toBe("undecided");
  });

  it("unresolved and ambiguous frames that could be a patched function (clones too)", () => {
    const sizes = t.byName.get("type_show")!.map((row) => t.size[row]);
    const dup = sizes.find((s, i) => sizes.indexOf(s) !== i)!;
    const r = runCheck(
      nativeCapture([
        user([`do_epoll_wait.isra.0+0x10/0x40`, ...USER_EPOLL]),
        user([`type_show+0x10/0x${dup.toString(16)}`, ...USER_EPOLL], { pid: 2, tid: 2 }),
        user([`unrelated_missing_fn+0x10/0x40`, ...USER_EPOLL], { pid: 3, tid: 3 }),
      ]),
      ["do_epoll_wait", "type_show,2"],
    );
    expect(outcome(r, 0).matches.map((x) => x.code)).toContain("unresolved");
    expect(outcome(r, 0).status).toBe("blocked"); // the real do_epoll_wait frame also blocks
    expect(outcome(r, 1).matches.map((x) => x.code)).toEqual(["blocked", "ambiguous"]);
    expect(outcome(r, 2).matches.map((x) => x.code)).not.toContain("unresolved");
  });

  it("a dashed module name (`livepatch-foo`, as the .ko file is named) is the kernel's `livepatch_foo`", () => {
    const ks = [
      "ffffffff81000000 T _text",
      "ffffffff81001000 T do_syscall_64",
      "ffffffff81001100 T entry_SYSCALL_64_after_hwframe",
      "ffffffff81001200 T foo",
      "ffffffff81001300 T bar",
      "ffffffff81001f00 T __sched_text_start",
      "ffffffff81001f80 T __sched_text_end",
      "ffffffff81001f80 T __lock_text_start",
      "ffffffff81001fc0 T __lock_text_end",
      "ffffffff81002000 T _etext",
      "ffffffffc0001000 t nft_do_chain\t[nf_tables]",
      "ffffffffc0001200 t nft_other\t[nf_tables]",
      "ffffffffc0002000 t foo\t[livepatch_foo]",
      "ffffffffc0002100 t lp_init\t[livepatch_foo]",
    ].join("\n");
    const symbols = parseSymbolTable(ks, { file: "ks" });
    const entry = ["do_syscall_64+0x10/0x100", "entry_SYSCALL_64_after_hwframe+0x76/0x100"];
    // Apply: the task sleeps in nft_do_chain [nf_tables]; `nf-tables:` must not read as "not loaded".
    const inMod = nativeCapture([user(["nft_do_chain+0x10/0x200 [nf_tables]", ...entry])]);
    const a = check({ capture: inMod, symbols, patch: { ...emptyPatch(), funcs: [parseFuncArg("nf-tables:nft_do_chain")] }, applied: [], scanner: referenceScanner });
    expect(a.verdict.verdict).toBe("blocked");
    // Revert of the kpatch-built livepatch-foo.ko: the task is in its replacement foo [livepatch_foo].
    const file = JSON.stringify({ name: "livepatch-foo", objects: [{ name: "vmlinux", funcs: [{ old_name: "foo" }] }] });
    const inRepl = nativeCapture([user(["foo+0x10/0x100 [livepatch_foo]", ...entry])]);
    const r = check({
      capture: inRepl,
      symbols,
      patch: parsePatchFile(file, "lp.json"),
      applied: [parseAppliedFile(file, "lp.json")],
      scanner: referenceScanner,
      options: { direction: "revert" },
    });
    expect(r.verdict.verdict).toBe("blocked");
  });

  it("`__pfx_X+0x10/0x10` of a duplicate X is X's first byte in some copy: ambiguous, never clean", () => {
    const pad = t.byName.get("__pfx_init_once")!;
    expect(pad.length).toBe(12);
    const r = runCheck(nativeCapture([user([`__pfx_init_once+0x10/0x${t.size[pad[0]].toString(16)}`, ...USER_EPOLL])]), ["init_once,3"]);
    expect(outcome(r).matches.map((x) => x.code)).toContain("ambiguous");
    expect(r.verdict.verdict).not.toBe("safe");
  });

  it("an ambiguous `foo+S/S` is the start of whatever follows one of foo's copies: never clean when that is patched", () => {
    // No function padding (pre-6.2 x86, arm64): init_once's copies are followed by foo and bar.
    const ks = [
      "ffffffff81000000 T _text",
      "ffffffff81001300 t init_once",
      "ffffffff81001380 T foo",
      "ffffffff81001400 t init_once",
      "ffffffff81001480 T bar",
      "ffffffff81001f00 T __sched_text_start",
      "ffffffff81001f80 T __sched_text_end",
      "ffffffff81002000 T _etext",
    ].join("\n");
    const symbols = parseSymbolTable(ks, { file: "ks" });
    const cap = nativeCapture([user(["init_once+0x80/0x80", ...USER_EPOLL])]);
    const run = (fn: string) => check({ capture: cap, symbols, patch: { ...emptyPatch(), funcs: [parseFuncArg(fn)] }, applied: [], scanner: referenceScanner });
    expect(outcome(run("bar")).matches.map((x) => x.code)).toContain("ambiguous");
    expect(outcome(run("foo")).matches.map((x) => x.code)).toContain("ambiguous");
  });

  it("Clang LTO: a frame printed without the `.llvm.<hash>` suffix may be the patched `foo.llvm.<hash>`", () => {
    const ks = [
      "ffffffff81000000 T _text",
      "ffffffff81001200 t foo.llvm.12345678901234567890",
      "ffffffff81001300 T bar",
      "ffffffff81001f00 T __sched_text_start",
      "ffffffff81001f80 T __sched_text_end",
      "ffffffff81002000 T _etext",
    ].join("\n");
    const symbols = parseSymbolTable(ks, { file: "ks" });
    const cap = nativeCapture([user(["foo+0x10/0x100", ...USER_EPOLL])]);
    const r = check({ capture: cap, symbols, patch: { ...emptyPatch(), funcs: [parseFuncArg("foo.llvm.12345678901234567890")] }, applied: [], scanner: referenceScanner });
    expect(outcome(r).matches.map((x) => x.code)).toContain("unresolved");
    expect(r.verdict.verdict).not.toBe("safe");
    // A dotted name cut at `.llvm.`, not at its first `.`: `foo.constprop.0.llvm.N` prints as
    // `foo.constprop.0` (only the first-dot form `foo` was matched: clean, host safe).
    const dotted = parseSymbolTable(ks.replace("foo.llvm.", "foo.constprop.0.llvm."), { file: "ks" });
    const cap2 = nativeCapture([user(["foo.constprop.0+0x10/0x100", ...USER_EPOLL])]);
    const r2 = check({ capture: cap2, symbols: dotted, patch: { ...emptyPatch(), funcs: [parseFuncArg("foo.constprop.0.llvm.12345678901234567890")] }, applied: [], scanner: referenceScanner });
    expect(outcome(r2).matches.map((x) => x.code)).toContain("unresolved");
    expect(r2.verdict.verdict).not.toBe("safe");
  });

  it("a raw --range: a frame the table cannot place (ambiguous, missing, another size) may lie in it", () => {
    // type_show exists many times; two copies share a size, so `type_show+0x10/0xSIZE` may be
    // either. A --range over one of them has no name to compare: the task is not clean.
    const rows = t.byName.get("type_show")!;
    const sizes = rows.map((row) => t.size[row]);
    const dup = sizes.find((s, i) => sizes.indexOf(s) !== i)!;
    const row = rows[sizes.indexOf(dup)];
    const lo = symbolAddress(t, row);
    const range = { ...emptyPatch(), ranges: [parseRangeArg(`0x${lo.toString(16)}-0x${(lo + BigInt(dup)).toString(16)}`)] };
    const cap = nativeCapture([
      user([`type_show+0x10/0x${dup.toString(16)}`, ...USER_EPOLL]),
      user([`unrelated_missing_fn+0x10/0x40`, ...USER_EPOLL], { pid: 2, tid: 2 }),
      user([`do_epoll_wait+0x10/0x1`, ...USER_EPOLL.slice(1)], { pid: 3, tid: 3 }),
      user(USER_EPOLL, { pid: 4, tid: 4 }),
    ]);
    const r = check({ capture: cap, symbols: t, patch: range, scanner: referenceScanner });
    expect(outcome(r, 0).matches.map((x) => x.code)).toContain("ambiguous");
    expect(outcome(r, 1).matches.map((x) => x.code)).toContain("unresolved");
    expect(outcome(r, 2).matches.map((x) => x.code)).toContain("unresolved");
    expect(outcome(r, 3).status).toBe("clean");
    expect(r.verdict.verdict).not.toBe("safe");
  });

  it("a stack with no frame is empty whatever status the input gives it (a snapshot's \"ok\")", () => {
    // The snapshot readers keep the file's stack status; an "ok" stack without frames was clean,
    // and a snapshot whose stacks were all emptied this way came out safe (exit 0).
    const doc = JSON.parse(fixtureText("snapshot/v1.3-capture.json"));
    const i = doc.tasks.findIndex((x: { frames: unknown[]; state: string; stackStatus: string }) => x.frames.length > 0 && x.state === "S" && x.stackStatus === "ok");
    doc.tasks[i].frames = [];
    const snap = parseSnapshotJson(JSON.stringify(doc), "edited.json");
    const r = check({ capture: snap.capture, symbols: snap.symbols, patch: patchOf("meminfo_proc_show"), scanner: referenceScanner });
    const o = outcome(r, i);
    expect(r.capture.tasks.get(i).stackStatus).toBe("ok");
    expect([o.status, o.matches[0]?.code]).toEqual(["undecided", "empty-stack"]);
  });

  it("a trace of only inline pseudo-frames has no real chain: unreliable, never clean", () => {
    const inl = (text: string) => ({ text, inline: true }) as unknown as string;
    const r = runCheck(nativeCapture([user([inl("do_epoll_wait+0x588/0x5e0")])], { hidesSchedFrames: false }), ["do_epoll_wait"]);
    expect([outcome(r).status, outcome(r).matches[0]?.code]).toEqual(["undecided", "unreliable"]);
    expect(r.verdict.verdict).not.toBe("safe");
  });

  it("unparsed-line, empty-stack, zombies, done, no reliable stack traces", () => {
    const r = runCheck(
      nativeCapture([
        user([USER_EPOLL[0], { unparsed: true } as unknown as string, ...USER_EPOLL.slice(1)]),
        user([], { pid: 2, tid: 2 }),
        user([], { pid: 3, tid: 3, state: "Z" }),
        user([fr("meminfo_proc_show", 0x10), ...USER_EPOLL], { pid: 4, tid: 4, patchState: 1 }),
      ]),
      ["meminfo_proc_show"],
    );
    expect(r.verdict.outcomes.map((o) => [o.status, o.matches[0]?.code ?? null])).toEqual([
      ["undecided", "unparsed-line"],
      ["undecided", "empty-stack"],
      ["clean", null],
      // patch_state 1, but no transition of this patch is recorded: it is checked by its stack.
      ["blocked", "blocked"],
    ]);
    // The same task checked against a patch named lp, with the stack in transition as given.
    const switched = (inTransition: AppliedPatch) =>
      check({
        capture: nativeCapture([user([fr("meminfo_proc_show", 0x10), ...USER_EPOLL], { pid: 4, tid: 4, patchState: 1 })]),
        symbols: hostTable(),
        patch: { ...emptyPatch(), name: "lp", funcs: [parseFuncArg("meminfo_proc_show")] },
        scanner: referenceScanner,
        applied: [inTransition],
      }).verdict.outcomes.map((o) => [o.status, o.matches[0]?.code ?? null]);
    // While the stack records this patch's transition, the task has switched.
    expect(switched(appliedPatch("lp", [["vmlinux", "meminfo_proc_show"]], { transition: true }))).toEqual([["done", "done"]]);
    // Another patch's transition: the state is that patch's; the host is blocked anyway (-EBUSY).
    expect(switched(appliedPatch("lp_other", [["vmlinux", "cmdline_proc_show"]], { transition: true }))).toEqual([["blocked", "blocked"]]);
    const noRel = runCheck(nativeCapture([user(USER_EPOLL)], { host: { config: { reliableStacktrace: false } } }), ["meminfo_proc_show"]);
    expect(outcome(noRel).matches[0].code).toBe("no-reliable-stacktrace");
    // Unknown (a dump records no kernel config): assumed reliable, with a warning (SPEC §3 rule
    // 0), which --strict turns undecided; a known-reliable kernel has none.
    const warned = (reliableStacktrace: boolean | null, strict = false) => {
      const r = runCheck(nativeCapture([user(USER_EPOLL)], { host: { config: { reliableStacktrace } } }), ["meminfo_proc_show"], { options: { strict } });
      return [r.verdict.verdict, r.verdict.warnings.some((w) => w.code === "reliable-stacktrace-unknown")];
    };
    expect(warned(null)).toEqual([expect.anything(), true]);
    expect(warned(null, true)[0]).toBe("undecided");
    expect(warned(true)[1]).toBe(false);
  });

  it("off == size: counted against the printed function (kernel blind) and the next one (kernel sees)", () => {
    const row = t.byName.get("do_epoll_wait")![0];
    const size = t.size[row];
    const atEnd = `do_epoll_wait+0x${size.toString(16)}/0x${size.toString(16)}`;
    const after = [...t.byName.entries()].find(([, rows]) => rows.some((x) => symbolAddress(t, x) === symbolAddress(t, row) + BigInt(size)))!;
    const cap = nativeCapture([user([atEnd, ...USER_EPOLL.slice(1)])]);
    const r = runCheck(cap, ["do_epoll_wait"]);
    expect(outcome(r).status).toBe("blocked");
    expect(r.verdict.blockers.get(0)).toMatchObject({ kernelSees: false, role: "conservative-extra" });
    expect(r.verdict.kernelCheck.result).toBe("pass");
    const next = runCheck(cap, [after[0]]);
    expect(next.verdict.blockers.get(0)).toMatchObject({ kernelSees: true, role: "original" });
    // An offset past the size (no %pB prints one) is clamped onto the byte after the function.
    const past = runCheck(nativeCapture([user([`do_epoll_wait+0x${(size + 1).toString(16)}/0x${size.toString(16)}`, ...USER_EPOLL.slice(1)])]), ["do_epoll_wait"]);
    expect(outcome(past).status).toBe("blocked");
    expect(past.verdict.blockers.get(0)).toMatchObject({ kernelSees: false, role: "conservative-extra" });
    // --range over exactly the function: the same conservative extra at its end (HI).
    const lo = symbolAddress(t, row);
    const rangeOf = (a: bigint, b: bigint) => ({ ...emptyPatch(), ranges: [parseRangeArg(`0x${a.toString(16)}-0x${b.toString(16)}`)] });
    const byRange = check({ capture: cap, symbols: t, patch: rangeOf(lo, lo + BigInt(size)), scanner: referenceScanner });
    expect(outcome(byRange).status).toBe("blocked");
    expect(byRange.verdict.blockers.get(0)).toMatchObject({ kernelSees: false, role: "conservative-extra" });
    expect(byRange.verdict.kernelCheck.result).toBe("pass");
    // A range ending one byte earlier is not reached by that return address.
    expect(outcome(check({ capture: cap, symbols: t, patch: rangeOf(lo, lo + BigInt(size) - 1n), scanner: referenceScanner })).status).toBe("clean");
  });

  it("idle tasks in the idle loop never hold the transition", () => {
    const idle = { pid: 0, tid: 0, comm: "swapper/0", state: "R", running: false, flags: 0x200040, frames: [fr("do_idle", 0x10), fr("cpu_startup_entry", 0x20), fr("rest_init", 0x30)] };
    const r = runCheck(nativeCapture([{ ...idle, state: "S" }]), ["meminfo_proc_show"]);
    expect(outcome(r).status).toBe("idle");
    expect(r.verdict.counts.idle).toBe(1);
  });

  it("hidden sections without a symbol table, and unpatchable code", () => {
    const r = runCheck(nativeCapture([user(USER_EPOLL)]), ["__schedule"]);
    expect(r.verdict.reasons.map((x) => x.code)).toContain("unpatchable");
    expect(r.verdict.verdict).not.toBe("safe");
    const entry = runCheck(nativeCapture([user(USER_EPOLL)]), ["entry_SYSCALL_64"]);
    expect(entry.verdict.reasons.find((x) => x.code === "unpatchable")?.message).toMatch(/\.entry\.text/);
  });
});

describe("what a capture cannot prove is never safe", () => {
  // A user task whose real chain has `depth` entries: recursion through vfs_read, then the epoll tail.
  const deep = (depth: number) => user([...Array.from({ length: depth - USER_EPOLL.length }, () => fr("vfs_read", 0x10)), ...USER_EPOLL]);

  it("a stack deeper than the kernel's own walk keeps: livepatch's 100 entries, kpatch's 63 real frames", () => {
    const status = (depth: number, model: "livepatch" | "kpatch") => {
      const r = runCheck(nativeCapture([deep(depth)]), ["meminfo_proc_show"], { options: { model } });
      return [r.verdict.verdict, r.verdict.outcomes.toArray().find((o) => o.task === 0)!.matches[0]?.code ?? null];
    };
    expect(status(99, "livepatch")).toEqual(["safe", null]);
    expect(status(100, "livepatch")).toEqual(["undecided", "truncated"]);
    expect(status(62, "kpatch")[0]).toBe("safe");
    expect(status(63, "kpatch")).toEqual(["undecided", "truncated"]);
    // The kernel's own checks fail there too.
    expect(runCheck(nativeCapture([deep(63)]), ["meminfo_proc_show"], { options: { model: "kpatch" } }).verdict.kernelCheck.result).toBe("fail");
  });

  it("a capture marked partial with no reason recorded", () => {
    const cap = nativeCapture([user(USER_EPOLL)], { complete: false });
    expect(cap.complete).toBe(false);
    const r = runCheck(cap, ["meminfo_proc_show"]);
    expect(r.verdict.verdict).toBe("undecided");
    expect(r.verdict.reasons.map((x) => x.code)).toEqual(["incomplete-capture"]);
    expect(r.verdict.reasons[0].message).toMatch(/marked incomplete and records no reason/);
    const ok = runCheck(cap, ["meminfo_proc_show"], { options: { partialOk: true } });
    expect(ok.verdict.verdict).toBe("safe");
    expect(ok.verdict.warnings.map((w) => w.code)).toContain("partial-ok");
  });

  it("a verdict over no task: every stack unreadable and --partial-ok, or an empty input", () => {
    const unreadable = nativeCapture([user([], { stackStatus: "unreadable", errno: "EACCES" }), user([], { pid: 101, tid: 101, stackStatus: "unreadable", errno: "EACCES" })], {
      complete: false,
      completeness: [{ code: "unreadable", message: "2 thread stack(s) could not be read" }],
    });
    for (const model of ["livepatch", "kpatch"] as const) {
      const r = runCheck(unreadable, ["meminfo_proc_show"], { options: { partialOk: true, model } });
      expect([model, r.verdict.verdict]).toEqual([model, "undecided"]);
      expect(r.verdict.reasons.map((x) => x.message).join(" ")).toMatch(/no task of the capture was decided over/);
    }
    expect(runCheck(nativeCapture([]), ["meminfo_proc_show"]).verdict.verdict).toBe("undecided");
  });
});

describe("frames that print both an address and a symbol", () => {
  const addr = (name: string, off: number) => `ffffffff${(symbolAddress(t, t.byName.get(name)![0]) + BigInt(off)).toString(16).slice(-8)}`;
  const line = (a: string, name: string, off: number) => `[<${a}>] ${name}+0x${off.toString(16)}/0x${t.size[t.byName.get(name)![0]].toString(16)}`;
  const dump = (lines: string[]) => parseProcText(`${lines.join("\n")}\n`, "old.txt");
  const tail = [line(addr("do_syscall_64", 0x71), "do_syscall_64", 0x71), line(addr("entry_SYSCALL_64_after_hwframe", 0x76), "entry_SYSCALL_64_after_hwframe", 0x76)];

  it("a line whose address contradicts its name, in a dump whose other lines agree with the table, is placed by the address the kernel checks", () => {
    const forged = dump([line(addr("vfs_read", 0x10), "ksys_read", 0xc3), ...tail]);
    const r = runCheck(forged, ["vfs_read"]);
    expect(r.verdict.verdict).toBe("blocked");
    expect(r.verdict.warnings.map((w) => w.message).join(" ")).toMatch(/print an address outside the symbol they name while other frames agree/);
    // The printed name is still a doubt: checking ksys_read, the task is not in it by the
    // address the kernel checks, but the line says it is: undecided, never safe.
    const byName = runCheck(forged, ["ksys_read"]).verdict;
    expect(byName.blockers.length).toBe(0);
    expect(byName.verdict).toBe("undecided");
    expect(byName.outcomes.get(0).matches[0]).toMatchObject({ code: "unresolved", message: expect.stringMatching(/names ksys_read but prints an address outside it/) });
    // Neither the name nor the address in a patched function: decided as usual.
    expect(runCheck(forged, ["meminfo_proc_show"]).verdict.outcomes.get(0).status).toBe("clean");
  });

  it("when no line agrees, the table is another boot's: frames are placed by name, with that warning", () => {
    const shifted = (name: string, off: number) => `ffffffff${((symbolAddress(t, t.byName.get(name)![0]) + 0x200000n + BigInt(off)) & 0xffffffffn).toString(16).padStart(8, "0")}`;
    const other = dump([line(shifted("ksys_read", 0xc3), "ksys_read", 0xc3), line(shifted("do_syscall_64", 0x71), "do_syscall_64", 0x71), line(shifted("entry_SYSCALL_64_after_hwframe", 0x76), "entry_SYSCALL_64_after_hwframe", 0x76)]);
    const r = runCheck(other, ["ksys_read"]);
    expect(r.verdict.verdict).not.toBe("safe");
    expect(r.verdict.warnings.map((w) => w.message).join(" ")).toMatch(/probably from another boot/);
  });
});
