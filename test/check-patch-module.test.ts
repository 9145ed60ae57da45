/** `check --patch-module`: the functions are read from a (gcc-built) kpatch module and checked end to end. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../src/cli/main.js";
import { fixturePath, hostKallsyms } from "./helpers.js";

// Laid out as kpatch-build lays out a patch module: .kpatch.funcs entries whose name/objname
// pointers are relocations into .kpatch.strings; the module name in .modinfo.
const MODULE_C = `
struct kpatch_patch_func { unsigned long new_addr, new_size, old_addr, old_size, sympos; char *name; char *objname; };
static char n1[] __attribute__((section(".kpatch.strings"))) = "worker_thread";
static char n2[] __attribute__((section(".kpatch.strings"))) = "meminfo_proc_show";
static char o1[] __attribute__((section(".kpatch.strings"))) = "vmlinux";
int worker_thread(void) { return 1; }
int meminfo_proc_show(void) { return 2; }
struct kpatch_patch_func f[] __attribute__((section(".kpatch.funcs"))) = {
  { (unsigned long)worker_thread, 16, 0, 0, 0, n1, o1 },
  { (unsigned long)meminfo_proc_show, 16, 0, 0, 0, n2, o1 },
};
const char modinfo[] __attribute__((section(".modinfo"))) = "name=kpatch_wq_fix";
`;

let dir = "";
let module: string | null = null;
let kallsyms = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "patchsafe-ko-"));
  kallsyms = join(dir, "kallsyms");
  writeFileSync(kallsyms, hostKallsyms());
  const c = join(dir, "m.c");
  writeFileSync(c, MODULE_C);
  try {
    execFileSync("gcc", ["-c", "-O0", "-o", join(dir, "m.ko"), c], { stdio: "pipe" });
    module = join(dir, "m.ko");
  } catch (e) {
    console.warn(`gcc could not build the test module (${(e as Error).message.split("\n")[0]}): skipped`);
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("check --patch-module", () => {
  it("reads the replaced functions from the module and checks them", () => {
    if (module === null) return;
    const r = run(["check", fixturePath("host/proc-grep.txt"), "--kallsyms", kallsyms, "--patch-module", module, "--json"]);
    expect(r.status).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.functions.map((f: { name: string }) => f.name).sort()).toEqual(["meminfo_proc_show", "worker_thread"]);
    expect(j.blockers.every((b: { function: string }) => b.function === "worker_thread")).toBe(true);
    const shown = run(["show-patch", module]);
    expect(shown.status).toBe(0);
    expect(shown.stdout).toMatch(/kpatch_wq_fix/);
    expect(shown.stdout).toMatch(/worker_thread/);
  });

  it("a file that is not a module is a one-line error naming it", () => {
    const r = run(["check", fixturePath("host/proc-grep.txt"), "--patch-module", fixturePath("host/proc-grep.txt")]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/proc-grep\.txt.*not an ELF file/);
  });
});
