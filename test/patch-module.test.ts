/**
 * Patch modules read from ELF: kpatch-built `.kpatch.funcs` with relocations into
 * `.kpatch.strings`, `.kpatch.force`, the module name; ELF64 RELA (gcc), ELF32 REL (gcc -m32),
 * big endian (hand-built bytes); truncated and corrupt files give PatchsafeError, never a crash.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runShowPatch } from "../src/cli/showPatch.js";
import { PatchsafeError } from "../src/errors.js";
import { readElf } from "../src/patch/elf.js";
import { readKpatchModule } from "../src/patch/kpatchModule.js";
import { readPatchModule } from "../src/patch/patchModule.js";

const KPATCH_C = `
struct kpatch_patch_func { unsigned long new_addr, new_size, old_addr, old_size, sympos; char *name; char *objname; };
static char n1[] __attribute__((section(".kpatch.strings"))) = "cmdline_proc_show";
static char o1[] __attribute__((section(".kpatch.strings"))) = "vmlinux";
static char n2[] __attribute__((section(".kpatch.strings"))) = "meminfo_proc_show";
static char o2[] __attribute__((section(".kpatch.strings"))) = "ext4";
int cmdline_proc_show(void) { return 1; }
int meminfo_proc_show(void) { return 2; }
struct kpatch_patch_func f[] __attribute__((section(".kpatch.funcs"))) = {
  { (unsigned long)cmdline_proc_show, 16, 0, 0, 0, n1, o1 },
  { (unsigned long)meminfo_proc_show, 32, 0, 40, 2, n2, o2 } };
void *force1 __attribute__((section(".kpatch.force"))) = meminfo_proc_show;
const char modinfo[] __attribute__((section(".modinfo"))) = "license=GPL\\0name=kpatch_test";
`;

// A module whose name is only in struct module (no name= in .modinfo), and no force section.
const THIS_MODULE_C = `
struct kpatch_patch_func { unsigned long new_addr, new_size, old_addr, old_size, sympos; char *name; char *objname; };
static char n1[] __attribute__((section(".kpatch.strings"))) = "do_sys_poll";
static char o1[] __attribute__((section(".kpatch.strings"))) = "vmlinux";
int do_sys_poll(void) { return 1; }
struct kpatch_patch_func f[] __attribute__((section(".kpatch.funcs"))) = { { (unsigned long)do_sys_poll, 8, 0, 0, 1, n1, o1 } };
struct list_head { void *next, *prev; };
struct module { int state; struct list_head list; char name[56]; };
struct module __this_module __attribute__((section(".gnu.linkonce.this_module"))) = { 0, { 0, 0 }, "kpatch_poll" };
`;

const LIVEPATCH_C = `
struct list_head { void *next, *prev; };
struct kobject { const char *name; struct list_head entry; void *parent, *kset, *ktype, *sd; int kref; unsigned int flags; };
struct klp_func { const char *old_name; void *new_func; unsigned long old_sympos; void *old_func; struct kobject kobj; struct list_head node, stack_node; unsigned long old_size, new_size; _Bool nop, patched, transition; };
struct klp_callbacks { int (*pre_patch)(void *); void (*post_patch)(void *); void (*pre_unpatch)(void *); void (*post_unpatch)(void *); _Bool post_unpatch_enabled; };
struct klp_object { const char *name; struct klp_func *funcs; struct klp_callbacks callbacks; struct kobject kobj; struct list_head func_list, node; void *mod; _Bool dynamic, patched; };
struct klp_state { unsigned long id; unsigned int version; void *data; };
struct klp_patch { void *mod; struct klp_object *objs; struct klp_state *states; _Bool replace; struct list_head list; struct kobject kobj; };
extern char __this_module[];
static int livepatch_cmdline_proc_show(void *m, void *v) { return 0; }
static int livepatch_ext4_sync(void) { return 1; }
static int livepatch_ext4_write(void) { return 2; }
static int pre(void *o) { return 0; }
static struct klp_func funcs[] = { { .old_name = "cmdline_proc_show", .new_func = livepatch_cmdline_proc_show, }, { } };
static struct klp_func ext4_funcs[] = { { .old_name = "ext4_sync_fs", .new_func = livepatch_ext4_sync, .old_sympos = 2 }, { .old_name = "ext4_file_write_iter", .new_func = livepatch_ext4_write }, { } };
static struct klp_object objs[] = { { .funcs = funcs, }, { .name = "ext4", .funcs = ext4_funcs, .callbacks = { .pre_patch = pre } }, { } };
static struct klp_patch patch = { .mod = __this_module, .objs = objs, .replace = 1 };
struct file_operations { void *owner; void *llseek; } fops = { __this_module, pre };
void *keep(void) { return &patch; }
const char modinfo[] __attribute__((section(".modinfo"))) = "vermagic=6.1.0 SMP preempt mod_unload modversions \\0name=livepatch_sample";
`;

let dir = "";
let gccReason: string | null = null;
let m32Reason: string | null = null;
const objs: Record<string, Uint8Array> = {};

function tryCompile(name: string, src: string, flags: string[]): string | null {
  const c = join(dir, `${name}.c`);
  writeFileSync(c, src);
  try {
    execFileSync("gcc", [...flags, "-c", "-O0", "-o", join(dir, `${name}.o`), c], { stdio: "pipe" });
    objs[name] = new Uint8Array(readFileSync(join(dir, `${name}.o`)));
    return null;
  } catch (e) {
    return e instanceof Error ? e.message.split("\n")[0] : String(e);
  }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "patchsafe-ko-"));
  gccReason = tryCompile("kp64", KPATCH_C, []);
  if (gccReason === null) tryCompile("tm64", THIS_MODULE_C, []);
  m32Reason = gccReason ?? tryCompile("kp32", KPATCH_C, ["-m32"]);
  if (m32Reason === null) tryCompile("tm32", THIS_MODULE_C, ["-m32"]);
  if (gccReason === null) tryCompile("lp64", LIVEPATCH_C, []);
  if (m32Reason === null) tryCompile("lp32", LIVEPATCH_C, ["-m32"]);
  if (gccReason !== null) console.log(`patch-module tests: skipping gcc-built modules: ${gccReason}`);
  else if (m32Reason !== null) console.log(`patch-module tests: skipping -m32 modules: ${m32Reason}`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const EXPECTED = {
  name: "kpatch_test",
  replace: false,
  ranges: [],
  funcs: [
    { object: "vmlinux", oldName: "cmdline_proc_show", oldSympos: 0, newName: null, newSize: 16, force: false },
    { object: "ext4", oldName: "meminfo_proc_show", oldSympos: 2, newName: null, newSize: 32, force: true },
  ],
};

describe("kpatch-built modules from gcc", () => {
  it("ELF64 RELA: funcs, strings, force, modinfo name", (ctx) => {
    if (gccReason !== null) return ctx.skip();
    const elf = readElf(objs.kp64, "kp64.o");
    expect(elf.is64).toBe(true);
    expect(elf.relocations().some((r) => r.rela && r.target.name === ".kpatch.funcs")).toBe(true);
    expect(readKpatchModule(objs.kp64, "kp64.o")).toEqual(EXPECTED);
    const m = readPatchModule(objs.kp64, "kp64.o");
    expect(m.details[1]).toMatchObject({ newSymbol: "meminfo_proc_show", oldSize: 40 });
  });

  it("ELF32 REL (gcc -m32): implicit addends", (ctx) => {
    if (m32Reason !== null) return ctx.skip();
    const elf = readElf(objs.kp32, "kp32.o");
    expect(elf.is64).toBe(false);
    expect(elf.relocations().some((r) => !r.rela && r.target.name === ".kpatch.funcs")).toBe(true);
    expect(readKpatchModule(objs.kp32, "kp32.o")).toEqual(EXPECTED);
  });

  it("name from .gnu.linkonce.this_module when .modinfo has none (64 and 32 bit)", (ctx) => {
    if (gccReason !== null) return ctx.skip();
    const spec = readKpatchModule(objs.tm64, "tm64.o");
    expect(spec.name).toBe("kpatch_poll");
    expect(spec.funcs).toEqual([{ object: "vmlinux", oldName: "do_sys_poll", oldSympos: 1, newName: null, newSize: 8, force: false }]);
    if (m32Reason === null) expect(readKpatchModule(objs.tm32, "tm32.o").name).toBe("kpatch_poll");
  });

  it("show-patch prints text and JSON", (ctx) => {
    if (gccReason !== null) return ctx.skip();
    const file = join(dir, "kp64.o");
    const o = { out: [] as string[], err: [] as string[] };
    expect(runShowPatch([file], o)).toBe(0);
    const text = o.out.join("\n");
    expect(text).toContain("kpatch module kpatch_test");
    expect(text).toMatch(/object ext4\n\s+meminfo_proc_show\s+sympos 2, new_size 32, old_size 40, FORCE/);
    const j = { out: [] as string[], err: [] as string[] };
    expect(runShowPatch([file, "--json"], j)).toBe(0);
    const doc = JSON.parse(j.out.join("\n"));
    expect(doc.name).toBe("kpatch_test");
    expect(doc.objects[0]).toEqual({ name: "vmlinux", funcs: [{ old_name: "cmdline_proc_show", old_sympos: 0, new_name: "cmdline_proc_show", new_size: 16, old_size: null, force: false }] });
    const bad = { out: [] as string[], err: [] as string[] };
    expect(runShowPatch([join(dir, "kp64.c")], bad)).toBe(2);
    expect(bad.err.join("\n")).toContain("not an ELF file");
    expect(runShowPatch([join(dir, "missing.ko")], bad)).toBe(2);
    expect(runShowPatch([], bad)).toBe(2);
  });
});

describe("upstream livepatch modules from gcc (klp_patch → klp_object[] → klp_func[])", () => {
  const expected = {
    name: "livepatch_sample",
    replace: true,
    ranges: [],
    funcs: [
      { object: "vmlinux", oldName: "cmdline_proc_show", oldSympos: 0, newName: "livepatch_cmdline_proc_show", newSize: expect.any(Number), force: false },
      { object: "ext4", oldName: "ext4_sync_fs", oldSympos: 2, newName: "livepatch_ext4_sync", newSize: expect.any(Number), force: false },
      { object: "ext4", oldName: "ext4_file_write_iter", oldSympos: 0, newName: "livepatch_ext4_write", newSize: expect.any(Number), force: false },
    ],
  };
  it("ELF64 RELA", (ctx) => {
    if (gccReason !== null) return ctx.skip();
    const m = readPatchModule(objs.lp64, "lp64.o");
    expect(m.kind).toBe("livepatch");
    expect(m.spec).toEqual(expected);
    expect(m.spec.funcs.every((f) => (f.newSize ?? 0) > 0)).toBe(true);
  });
  it("ELF32 REL", (ctx) => {
    if (m32Reason !== null) return ctx.skip();
    expect(readPatchModule(objs.lp32, "lp32.o").spec).toEqual(expected);
  });
  it("replace comes from the 5.1–5.4 offset when vermagic says so", (ctx) => {
    if (gccReason !== null) return ctx.skip();
    const b = objs.lp64.slice();
    const at = Buffer.from(b).indexOf("vermagic=6.1.0");
    b.set(new TextEncoder().encode("5.4"), at + 9);
    // In 5.1–5.4 replace is the word after objs: here the (NULL) states pointer → false.
    expect(readPatchModule(b, "lp54.o").spec.replace).toBe(false);
  });
});

// From an adversarial review of the module readers (the sources as the reviewer wrote them): each
// read as a patch replacing less than it does.
const LP_H = LIVEPATCH_C.slice(0, LIVEPATCH_C.indexOf("struct klp_state")).concat("extern char __this_module[];\n");
const REVIEW_SOURCES: Record<string, string> = {
  // kpatch-build's livepatch hook: replace is KLP_REPLACE_ENABLE (true) unless built --non-replace.
  kpLivepatch: KPATCH_C.replace('"license=GPL\\0name=kpatch_test"', '"license=GPL\\0livepatch=Y\\0name=kpatch_test"'),
  // RHEL 8.2+ (4.18) backported atomic replace: replace right after objs.
  rhel: `${LP_H}
struct klp_patch { void *mod; struct klp_object *objs; _Bool replace; struct list_head list; struct kobject kobj; };
static int lp_cmdline(void) { return 0; }
static struct klp_func funcs[] = { { .old_name = "cmdline_proc_show", .new_func = lp_cmdline, }, { } };
static struct klp_object objs[] = { { .funcs = funcs, }, { } };
static struct klp_patch patch = { .mod = __this_module, .objs = objs, .replace = 1 };
void *keep(void) { return &patch; }
const char modinfo[] __attribute__((section(".modinfo"))) = "livepatch=Y\\0vermagic=4.18.0-305.el8.x86_64 SMP mod_unload modversions \\0name=livepatch_rhel";
`,
  // Two klp_patch structures, enabled by a run-time choice; the first's array is one larger than
  // it needs (legal C), which the reader cannot lay out.
  two: `${LP_H}
struct klp_state { unsigned long id; unsigned int version; void *data; };
struct klp_patch { void *mod; struct klp_object *objs; struct klp_state *states; _Bool replace; struct list_head list; struct kobject kobj; };
static int lp_a(void) { return 0; }
static int lp_b(void) { return 1; }
static int lp_c(void) { return 2; }
static struct klp_func funcs_a[4] = { { .old_name = "do_sys_poll", .new_func = lp_a, }, { .old_name = "worker_thread", .new_func = lp_b }, { } };
static struct klp_object objs_a[] = { { .funcs = funcs_a, }, { } };
static struct klp_patch patch_a = { .mod = __this_module, .objs = objs_a };
static struct klp_func funcs_b[] = { { .old_name = "cmdline_proc_show", .new_func = lp_c, }, { } };
static struct klp_object objs_b[] = { { .funcs = funcs_b, }, { } };
static struct klp_patch patch_b = { .mod = __this_module, .objs = objs_b };
int use_new_api;
void *keep(void) { return use_new_api ? &patch_a : &patch_b; }
const char modinfo[] __attribute__((section(".modinfo"))) = "livepatch=Y\\0vermagic=6.1.0 SMP mod_unload \\0name=livepatch_two";
`,
  // .kpatch.funcs and a static klp_patch in one module: which one is enabled is a guess.
  hybrid: `${LP_H}
struct klp_state { unsigned long id; unsigned int version; void *data; };
struct klp_patch { void *mod; struct klp_object *objs; struct klp_state *states; _Bool replace; struct list_head list; struct kobject kobj; };
struct kpatch_patch_func { unsigned long new_addr, new_size, old_addr, old_size, sympos; char *name; char *objname; };
static char n1[] __attribute__((section(".kpatch.strings"))) = "cmdline_proc_show";
static char o1[] __attribute__((section(".kpatch.strings"))) = "vmlinux";
int cmdline_proc_show(void) { return 1; }
struct kpatch_patch_func kf[] __attribute__((section(".kpatch.funcs"))) = { { (unsigned long)cmdline_proc_show, 16, 0, 0, 0, n1, o1 } };
static int lp_w(void) { return 0; }
static struct klp_func funcs[] = { { .old_name = "worker_thread", .new_func = lp_w, }, { } };
static struct klp_object objs[] = { { .funcs = funcs, }, { } };
static struct klp_patch patch = { .mod = __this_module, .objs = objs };
void *keep(void) { return &patch; }
const char modinfo[] __attribute__((section(".modinfo"))) = "livepatch=Y\\0vermagic=6.1.0 SMP mod_unload \\0name=hybrid";
`,
  // A 5.3 vermagic whose klp_patch has the 5.5 layout (states, then replace).
  states53: LIVEPATCH_C.replace("static struct klp_patch patch = { .mod = __this_module, .objs = objs, .replace = 1 };", "static struct klp_state st[] = { { 1, 1, 0 }, { } };\nstatic struct klp_patch patch = { .mod = __this_module, .objs = objs, .states = st, .replace = 1 };").replace("vermagic=6.1.0", "vermagic=5.3.18"),
};

describe("modules that replace more than they seem to", () => {
  const built: Record<string, Uint8Array> = {};
  beforeAll(() => {
    if (gccReason !== null) return;
    for (const [name, src] of Object.entries(REVIEW_SOURCES)) if (tryCompile(name, src, []) === null) built[name] = objs[name];
  });
  it("a kpatch-built module with the livepatch hook (.modinfo livepatch=Y) replaces unless built --non-replace: read as replace", (ctx) => {
    if (built.kpLivepatch === undefined) return ctx.skip();
    expect(readPatchModule(built.kpLivepatch, "kp-lp.o").spec.replace).toBe(true);
    expect(readPatchModule(objs.kp64, "kp64.o").spec.replace).toBe(false);
  });
  it("a 4.18 module with atomic replace backported (RHEL 8.2+): a set byte after objs is replace, not a list head", (ctx) => {
    if (built.rhel === undefined) return ctx.skip();
    expect(readPatchModule(built.rhel, "rhel.o").spec.replace).toBe(true);
  });
  it("a 5.1–5.4 vermagic with a pointer where replace should be (klp_state backported) is an unknown layout: refused", (ctx) => {
    if (built.states53 === undefined) return ctx.skip();
    expect(expectModuleError(built.states53, "states53.o")?.message).toMatch(/the word after objs is a pointer, where 5\.3 has replace/);
  });
  it("a module with both .kpatch.funcs and a static klp_patch is refused", (ctx) => {
    if (built.hybrid === undefined) return ctx.skip();
    expect(expectModuleError(built.hybrid, "hybrid.o")?.message).toMatch(/both \.kpatch\.funcs and a static klp_patch/);
  });
  it("a second klp_patch that cannot be read is an error, not left out", (ctx) => {
    if (built.two === undefined) return ctx.skip();
    expect(expectModuleError(built.two, "two.o")?.message).toMatch(/another klp_patch in the module is unreadable/);
  });
});

// ---- hand-built ELF (big endian, and a little-endian twin to check the builder) ----

interface Sec {
  name: string;
  type: number;
  data: Uint8Array;
  link?: number;
  info?: number;
  entsize?: number;
}

function buildKpatchElf(is64: boolean, le: boolean, opts: { dropObjname?: boolean; noName?: boolean } = {}): Uint8Array {
  const W = is64 ? 8 : 4;
  const enc = (n: number, size: number): number[] => {
    const b: number[] = [];
    let v = BigInt(n);
    for (let i = 0; i < size; i++) {
      b.push(Number(v & 0xffn));
      v >>= 8n;
    }
    return le ? b : b.reverse();
  };
  const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));
  // Section indices: 1 .text, 2 .kpatch.strings, 3 .kpatch.funcs, 4 .rela.kpatch.funcs, 5 .modinfo, 6 .symtab, 7 .strtab, 8 .shstrtab
  const strings = [...ascii("schedule_timeout"), 0, ...ascii("vmlinux"), 0];
  const funcs = new Uint8Array(7 * W);
  funcs.set(enc(24, W), W); // new_size
  funcs.set(enc(3, W), 4 * W); // sympos
  const strtab = [0, ...ascii("schedule_timeout"), 0];
  const sym = (name: number, value: number, size: number, info: number, shndx: number): number[] =>
    is64 ? [...enc(name, 4), info, 0, ...enc(shndx, 2), ...enc(value, 8), ...enc(size, 8)] : [...enc(name, 4), ...enc(value, 4), ...enc(size, 4), info, 0, ...enc(shndx, 2)];
  const symtab = [...sym(0, 0, 0, 0, 0), ...sym(0, 0, 0, 3, 2), ...sym(1, 0, 4, 0x12, 1)];
  const rela = (off: number, s: number, type: number, addend: number): number[] =>
    is64 ? [...enc(off, 8), ...enc(s * 2 ** 32 + type, 8), ...enc(addend, 8)] : [...enc(off, 4), ...enc(s * 256 + type, 4), ...enc(addend, 4)];
  const relas = [...rela(0, 2, 1, 0), ...rela(5 * W, 1, 1, 0), ...(opts.dropObjname === true ? [] : rela(6 * W, 1, 1, 17))];
  const secs: Sec[] = [
    { name: ".text", type: 1, data: new Uint8Array(4) },
    { name: ".kpatch.strings", type: 1, data: new Uint8Array(strings) },
    { name: ".kpatch.funcs", type: 1, data: funcs },
    { name: ".rela.kpatch.funcs", type: 4, data: new Uint8Array(relas), link: 6, info: 3, entsize: 3 * W },
    { name: ".modinfo", type: 1, data: new Uint8Array([...ascii(opts.noName === true ? "license=GPL" : "name=big_patch"), 0]) },
    { name: ".symtab", type: 2, data: new Uint8Array(symtab), link: 7, info: 2, entsize: is64 ? 24 : 16 },
    { name: ".strtab", type: 3, data: new Uint8Array(strtab) },
  ];
  const shstr: number[] = [0];
  const nameOff: number[] = [];
  for (const s of [...secs, { name: ".shstrtab" }]) {
    nameOff.push(shstr.length);
    shstr.push(...ascii(s.name), 0);
  }
  secs.push({ name: ".shstrtab", type: 3, data: new Uint8Array(shstr) });
  const ehsize = is64 ? 64 : 52;
  const out: number[] = new Array(ehsize).fill(0);
  const offs: number[] = [];
  for (const s of secs) {
    while (out.length % 8 !== 0) out.push(0);
    offs.push(out.length);
    out.push(...s.data);
  }
  while (out.length % 8 !== 0) out.push(0);
  const shoff = out.length;
  const shentsize = is64 ? 64 : 40;
  out.push(...new Array(shentsize).fill(0));
  secs.forEach((s, i) => {
    const h = is64
      ? [...enc(nameOff[i], 4), ...enc(s.type, 4), ...enc(0, 8), ...enc(0, 8), ...enc(offs[i], 8), ...enc(s.data.length, 8), ...enc(s.link ?? 0, 4), ...enc(s.info ?? 0, 4), ...enc(1, 8), ...enc(s.entsize ?? 0, 8)]
      : [...enc(nameOff[i], 4), ...enc(s.type, 4), ...enc(0, 4), ...enc(0, 4), ...enc(offs[i], 4), ...enc(s.data.length, 4), ...enc(s.link ?? 0, 4), ...enc(s.info ?? 0, 4), ...enc(1, 4), ...enc(s.entsize ?? 0, 4)];
    out.push(...h);
  });
  const head = [0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, le ? 1 : 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...enc(1, 2), ...enc(is64 ? 22 : 20, 2), ...enc(1, 4)];
  const rest = is64
    ? [...enc(0, 8), ...enc(0, 8), ...enc(shoff, 8), ...enc(0, 4), ...enc(ehsize, 2), ...enc(0, 2), ...enc(0, 2), ...enc(shentsize, 2), ...enc(secs.length + 1, 2), ...enc(secs.length, 2)]
    : [...enc(0, 4), ...enc(0, 4), ...enc(shoff, 4), ...enc(0, 4), ...enc(ehsize, 2), ...enc(0, 2), ...enc(0, 2), ...enc(shentsize, 2), ...enc(secs.length + 1, 2), ...enc(secs.length, 2)];
  out.splice(0, head.length + rest.length, ...head, ...rest);
  return new Uint8Array(out);
}

describe("hand-built ELF: big and little endian, 64 and 32 bit, RELA", () => {
  for (const is64 of [true, false]) {
    for (const le of [true, false]) {
      it(`ELF${is64 ? 64 : 32} ${le ? "little" : "big"} endian`, () => {
        const bytes = buildKpatchElf(is64, le);
        const elf = readElf(bytes, "hand.ko");
        expect(elf.littleEndian).toBe(le);
        expect(readKpatchModule(bytes, "hand.ko")).toEqual({
          name: "big_patch",
          replace: false,
          ranges: [],
          funcs: [{ object: "vmlinux", oldName: "schedule_timeout", oldSympos: 3, newName: null, newSize: 24, force: false }],
        });
      });
    }
  }
});

// ---- truncated and corrupt files ----

function expectModuleError(bytes: Uint8Array, file: string): PatchsafeError | null {
  try {
    readPatchModule(bytes, file);
    return null;
  } catch (e) {
    if (!(e instanceof PatchsafeError)) throw e;
    expect(e.code === "E_PATCH_MODULE").toBe(true);
    expect(e.file).toBe(file);
    expect(e.message.length).toBeGreaterThan(5);
    return e;
  }
}

describe("truncated and corrupt modules", () => {
  const samples = (): [string, Uint8Array][] => {
    const l: [string, Uint8Array][] = [["be64", buildKpatchElf(true, false)], ["be32", buildKpatchElf(false, false)]];
    for (const k of ["kp64", "kp32", "tm64", "lp64", "lp32"]) if (objs[k] !== undefined) l.push([k, objs[k]]);
    return l;
  };

  it("every 1/8th truncation is a clear PatchsafeError", () => {
    for (const [name, bytes] of samples()) {
      for (let k = 0; k < 8; k++) {
        const cut = bytes.subarray(0, Math.floor((bytes.length * k) / 8));
        const e = expectModuleError(cut, `${name}.ko`);
        expect(e, `${name} cut at ${k}/8`).not.toBeNull();
      }
      // and at every byte near the end (section headers)
      for (let n = bytes.length - 1; n > bytes.length - 80; n--) expect(expectModuleError(bytes.subarray(0, n), `${name}.ko`)).not.toBeNull();
    }
  });

  it("names what is missing", () => {
    const be = buildKpatchElf(true, false);
    expect(expectModuleError(be.subarray(0, 10), "x.ko")?.message).toContain("not an ELF file");
    expect(expectModuleError(be.subarray(0, be.length - 1), "x.ko")?.message).toMatch(/past the end of the file.*truncated/);
    // never a partial patch: a missing pointer or module name is an error naming it
    expect(expectModuleError(buildKpatchElf(true, false, { dropObjname: true }), "x.ko")?.message).toBe(".kpatch.funcs[0].objname: no relocation fills the pointer");
    expect(expectModuleError(buildKpatchElf(false, true, { noName: true }), "x.ko")?.message).toContain("the module's name is missing");
    const notElf = new TextEncoder().encode("this is not an elf file at all");
    expect(expectModuleError(notElf, "x.ko")?.message).toContain("\\x7fELF");
    if (objs.kp64 !== undefined) {
      // rename .kpatch.funcs → .kpatch.fxncs: no funcs section
      const b = objs.kp64.slice();
      const at = Buffer.from(b).indexOf(".kpatch.funcs\0");
      b[at + 9] = "x".charCodeAt(0);
      expect(expectModuleError(b, "x.ko")?.message).toContain("no .kpatch.funcs section");
    }
  });

  it("random byte mutations never throw anything but PatchsafeError", () => {
    const all = samples();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: all.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (which, muts) => {
        const b = all[which][1].slice();
        for (const [p, v] of muts) b[p % b.length] = v;
        expectModuleError(b, "m.ko"); // either reads or throws PatchsafeError
      }),
      { numRuns: 400 },
    );
  });
});
