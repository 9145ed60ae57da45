/**
 * schema/verdict.schema.json against real `check --json` outputs (SPEC §7: "a test validates real
 * outputs against it"), run in-process on this machine's fixtures, plus negative cases that prove
 * the schema can fail.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { run } from "../src/cli/main.js";

const FIX = new URL("./fixtures/host/", import.meta.url).pathname;
const SCHEMA_PATH = new URL("../schema/verdict.schema.json", import.meta.url);

type Json = Record<string, unknown>;

let dir = "";
let kallsyms = "";
let validate: ValidateFunction;
let schema: Json;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "patchsafe-schema-"));
  kallsyms = join(dir, "kallsyms");
  writeFileSync(kallsyms, gunzipSync(readFileSync(join(FIX, "kallsyms.gz"))));
  schema = JSON.parse(readFileSync(SCHEMA_PATH, "utf8")) as Json;
  // strict: unknown keywords, missing types next to type-specific keywords etc. are errors.
  validate = new Ajv2020({ allErrors: true, strict: true }).compile(schema);
});

afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

/** Runs `patchsafe check … --json` in-process and returns the status and the parsed object. */
function checkJson(...args: string[]): { status: number; doc: Json } {
  const r = run(["check", ...args, "--json"]);
  expect(r.stderr).toBe("");
  return { status: r.status, doc: JSON.parse(r.stdout) as Json };
}

function expectValid(doc: unknown): void {
  const ok = validate(doc);
  // Show ajv's errors on failure: they say which path broke.
  expect(ok ? [] : validate.errors).toEqual([]);
}

/** A deep copy to mutate for the negative cases. */
function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

const reasonCodes = (doc: Json): string[] => (doc.reasons as { code: string }[]).map((r) => r.code);
const undecidedCodes = (doc: Json): string[] => (doc.undecided as { reason: { code: string } }[]).map((u) => u.reason.code);

describe("the schema itself", () => {
  test("is draft 2020-12 with an $id and a title, and compiles under ajv strict mode", () => {
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(typeof schema.$id).toBe("string");
    expect(typeof schema.title).toBe("string");
    expect(typeof validate).toBe("function");
  });

  test("every object in it forbids additional properties and requires every property", () => {
    const bad: string[] = [];
    const walk = (node: unknown, path: string): void => {
      if (node === null || typeof node !== "object") return;
      if (Array.isArray(node)) {
        node.forEach((n, i) => walk(n, `${path}/${i}`));
        return;
      }
      const o = node as Json;
      // A schema node describing an object (the if/then/else conditionals only narrow others).
      if (o.type === "object" && o.properties !== undefined && !/\/allOf\//.test(path)) {
        if (o.additionalProperties !== false) bad.push(`${path}: additionalProperties`);
        const props = Object.keys(o.properties as Json);
        // Optional by design: remedy.callees (SPEC §7 `callees?`), the additive `quiesce` object
        // (--model quiesce only) and its per-effect counts (only effects that occurred).
        const required = new Set((o.required as string[] | undefined) ?? []);
        const optional = (p: string) => p === "callees" || p === "quiesce" || path.endsWith("/effects");
        for (const p of props) if (!required.has(p) && !optional(p)) bad.push(`${path}: ${p} not required`);
      }
      for (const [k, v] of Object.entries(o)) walk(v, `${path}/${k}`);
    };
    walk(schema, "#");
    expect(bad).toEqual([]);
  });
});

describe("real outputs validate", () => {
  test("proc-grep.txt, --func worker_thread: blocked, every blocker never leaves", () => {
    const { status, doc } = checkJson(join(FIX, "proc-grep.txt"), "--kallsyms", kallsyms, "--func", "worker_thread");
    expectValid(doc);
    expect(status).toBe(1);
    expect(doc.verdict).toBe("blocked");
    const blockers = doc.blockers as Json[];
    expect(blockers.length).toBeGreaterThan(0);
    for (const b of blockers) {
      expect(b.function).toBe("worker_thread");
      expect((b.remedy as Json).code).toBe("never-leaves");
      expect((b.frame as Json).address).toMatch(/^0x[0-9a-f]{16}$/);
    }
    expect((doc.kernelCheck as Json).result).toBe("fail");
    expect(reasonCodes(doc)).toContain("blocked");
  });

  test("proc-tail.txt, --func meminfo_proc_show: on no stack, so nothing blocks", () => {
    const { status, doc } = checkJson(join(FIX, "proc-tail.txt"), "--kallsyms", kallsyms, "--func", "meminfo_proc_show");
    expectValid(doc);
    expect(doc.blockers).toEqual([]);
    expect(((doc.functions as Json[])[0] as Json).blocking).toBe(0);
    // pid 1's stack is unreadable in this fixture: undecided, not safe.
    expect(status).toBe(3);
    expect(undecidedCodes(doc)).toContain("unreadable");
  });

  test("proc-grep.txt, --func meminfo_proc_show", () => {
    const { status, doc } = checkJson(join(FIX, "proc-grep.txt"), "--kallsyms", kallsyms, "--func", "meminfo_proc_show");
    expectValid(doc);
    expect(status).toBe(3);
    expect(doc.complete).toBe("unknown");
  });

  test("capture.json, --func smpboot_thread_fn: blocked ksoftirqd and friends", () => {
    const { status, doc } = checkJson(join(FIX, "capture.json"), "--kallsyms", kallsyms, "--func", "smpboot_thread_fn");
    expectValid(doc);
    expect(status).toBe(1);
    expect(doc.complete).toBe(false);
    const blockers = doc.blockers as Json[];
    expect(blockers.length).toBeGreaterThan(0);
    expect(blockers.every((b) => b.kind === "kthread" && typeof b.comm === "string")).toBe(true);
    // Deterministic order: by pid, then tid.
    const keys = blockers.map((b) => [b.pid as number, b.tid as number]);
    const sorted = [...keys].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    expect(keys).toEqual(sorted);
  });

  test("capture.json, --func init_once,3: a duplicate chosen by sympos", () => {
    const { doc } = checkJson(join(FIX, "capture.json"), "--kallsyms", kallsyms, "--func", "init_once,3");
    expectValid(doc);
    const f = (doc.functions as Json[])[0];
    expect(f.name).toBe("init_once");
    expect(f.sympos).toBe(3);
    // The third init_once in kallsyms order (ascending address for vmlinux).
    const addrs = readFileSync(kallsyms, "latin1")
      .split("\n")
      .filter((l) => / init_once$/.test(l))
      .map((l) => `0x${l.split(" ")[0]}`);
    expect(addrs.length).toBeGreaterThan(3);
    expect(((f.ranges as Json[])[0] as Json).start).toBe(addrs[2]);
  });

  test("proc-tail.txt, --func init_once,3", () => {
    const { doc } = checkJson(join(FIX, "proc-tail.txt"), "--kallsyms", kallsyms, "--func", "init_once,3");
    expectValid(doc);
  });

  test("proc-grep.txt, --func schedule_timeout: .sched.text is hidden by /proc", () => {
    const ks = readFileSync(kallsyms, "latin1");
    expect(ks).toMatch(/ schedule_timeout\n/);
    const { status, doc } = checkJson(join(FIX, "proc-grep.txt"), "--kallsyms", kallsyms, "--func", "schedule_timeout");
    expectValid(doc);
    expect(status).toBe(3);
    expect(doc.verdict).toBe("undecided");
    expect(reasonCodes(doc).includes("hidden") || undecidedCodes(doc).includes("hidden")).toBe(true);
    expect(undecidedCodes(doc)).toContain("hidden");
  });

  test("capture.json, --func schedule_timeout", () => {
    const { doc } = checkJson(join(FIX, "capture.json"), "--kallsyms", kallsyms, "--func", "schedule_timeout");
    expectValid(doc);
    expect(undecidedCodes(doc)).toContain("hidden");
  });

  test("several functions: functions sorted by object, name, sympos", () => {
    const { doc } = checkJson(
      join(FIX, "capture.json"),
      "--kallsyms",
      kallsyms,
      "--func",
      "worker_thread",
      "--func",
      "init_once,5",
      "--func",
      "init_once,2",
      "--func",
      "kthread",
    );
    expectValid(doc);
    const fs = (doc.functions as Json[]).map((f) => `${f.object}:${f.name},${f.sympos}`);
    expect(fs).toEqual(["vmlinux:init_once,2", "vmlinux:init_once,5", "vmlinux:kthread,0", "vmlinux:worker_thread,0"]);
  });

  test("a raw --range: function name and sympos are null", () => {
    const { status, doc } = checkJson(join(FIX, "proc-grep.txt"), "--kallsyms", kallsyms, "--range", "0xffffffff8138c9c0-0xffffffff8138ccd0");
    expectValid(doc);
    expect(status).toBe(1);
    const f = (doc.functions as Json[])[0];
    expect(f.name).toBeNull();
    expect(f.sympos).toBeNull();
  });

  test("proc-grep.txt without --kallsyms: no-symbol-table, synthetic key space", () => {
    const { status, doc } = checkJson(join(FIX, "proc-grep.txt"), "--func", "meminfo_proc_show");
    expectValid(doc);
    expect(status).toBe(3);
    expect(reasonCodes(doc)).toContain("no-symbol-table");
    expect((doc.input as Json).symbols).toBeNull();
    expect((doc.input as Json).keySpace).toBe("synthetic");
  });

  test("capture.json without --kallsyms", () => {
    const { doc } = checkJson(join(FIX, "capture.json"), "--func", "worker_thread");
    expectValid(doc);
    expect(doc.verdict).toBe("blocked");
  });

  test("a safe verdict", () => {
    const dump = readFileSync(join(FIX, "proc-grep.txt"), "latin1")
      .split("\n")
      .filter((l) => /^\/proc\/(10|1079)\/task\/(10|1079)\/stack:/.test(l))
      .join("\n");
    const file = join(dir, "small.txt");
    writeFileSync(file, `${dump}\n`);
    const { status, doc } = checkJson(file, "--kallsyms", kallsyms, "--func", "meminfo_proc_show");
    expectValid(doc);
    expect(status).toBe(0);
    expect(doc.verdict).toBe("safe");
    expect(doc.reasons).toEqual([]);
  });
});

describe("the schema rejects what breaks the contract", () => {
  let good: Json;
  beforeAll(() => {
    good = checkJson(join(FIX, "capture.json"), "--kallsyms", kallsyms, "--func", "smpboot_thread_fn").doc;
  });

  const rejects = (mutate: (d: Json) => void): void => {
    expect(validate(good)).toBe(true);
    const d = clone(good);
    mutate(d);
    expect(validate(d)).toBe(false);
  };
  const blocker0 = (d: Json): Json => (d.blockers as Json[])[0];

  test("a missing top-level field", () => rejects((d) => delete d.counts));
  test("a missing nested field", () => rejects((d) => delete blocker0(d).kernelSees));
  test("an extra top-level field", () => rejects((d) => (d.extra = 1)));
  test("an extra nested field", () => rejects((d) => ((d.counts as Json).zombies = 0)));
  test("an unknown verdict", () => rejects((d) => (d.verdict = "maybe")));
  test("a wrong schema version", () => rejects((d) => (d.schema = 2)));
  test("a numeric address", () => rejects((d) => ((blocker0(d).frame as Json).address = 0xffffffff813a2c9c)));
  test("an address without 16 digits", () => rejects((d) => ((blocker0(d).frame as Json).address = "0xffffffff813a2c9")));
  test("an upper-case address", () => rejects((d) => (((d.functions as Json[])[0].ranges as Json[])[0].start = "0xFFFFFFFF813A2B10")));
  test("an unknown remedy code", () => rejects((d) => ((blocker0(d).remedy as Json).code = "reboot")));
  test("an unknown undecided reason code", () => rejects((d) => (((d.undecided as Json[])[0].reason as Json).code = "bad-luck")));
  test("an unknown top-level reason code", () => rejects((d) => ((d.reasons as Json[])[0].code = "nope")));
  test("an unknown range role", () => rejects((d) => (((d.functions as Json[])[0].ranges as Json[])[0].role = "cold")));
  test("complete as a string other than unknown", () => rejects((d) => (d.complete = "false")));
  test("an unknown model", () => rejects((d) => (d.model = "kgraft")));
  test("a fractional pid", () => rejects((d) => (blocker0(d).pid = 1.5)));
  test("a pid as a string", () => rejects((d) => (blocker0(d).pid = "14")));
  test("a raw control byte in comm", () => rejects((d) => (blocker0(d).comm = "a\nb")));
  test("a non-null prediction", () => rejects((d) => (d.prediction = {})));
  test("safe with a blocker", () => rejects((d) => (d.verdict = "safe")));
  test("a failing kernel check that names no task", () => rejects((d) => ((d.kernelCheck as Json).first = null)));
});
