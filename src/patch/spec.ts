/**
 * What a patch replaces (SPEC §6): `--func [object:]name[,sympos]`, `--range 0xLO-0xHI`, or a
 * patch file `{ name, replace, objects: [ { name, funcs: [ { old_name, old_sympos, new_name?,
 * new_size?, force? } ] } ] }`.
 */
import { PatchsafeError } from "../errors.js";
import { jsonErrorOffset, lineAt } from "../ingest/jsonPosition.js";
import { type AppliedFunction, type AppliedPatch, VMLINUX } from "../model.js";

/** A function of a patch: the same fields an applied patch records (model.ts AppliedFunction). */
export type PatchFunctionSpec = AppliedFunction;

export interface PatchSpec {
  /** The patch module's name (its replacements carry `[name]` in a stack); null for --func. */
  name: string | null;
  replace: boolean;
  funcs: PatchFunctionSpec[];
  /** Raw half-open address ranges from --range. */
  ranges: { start: bigint; end: bigint; text: string }[];
}

export function emptyPatch(): PatchSpec {
  return { name: null, replace: false, funcs: [], ranges: [] };
}

const NAME = /^[A-Za-z0-9_.$@]+$/;

/**
 * A module name as the kernel knows it: kbuild turns every `-` of a module's file name into `_`
 * (KBUILD_MODNAME; kpatch-build's `livepatch-foo.ko` is module `livepatch_foo`), so no loaded
 * module, `[module]` tag or /sys/kernel/livepatch entry holds a `-`. Taken literally, a dashed
 * name matched nothing: the object counted as not loaded (never checked), or a patch's
 * replacements were looked for in a module that cannot exist, and the verdict was safe.
 */
export function kernelModuleName(name: string): string {
  return name.replace(/-/g, "_");
}

/** Parses `[object:]name[,sympos]`. */
export function parseFuncArg(arg: string): PatchFunctionSpec {
  const m = /^(?:([^:,\s]+):)?([^:,\s]+)(?:,(\d+))?$/.exec(arg);
  if (m === null || !NAME.test(m[2]) || (m[1] !== undefined && !NAME.test(m[1].replace(/-/g, "_")))) {
    throw new PatchsafeError("E_USAGE", `--func ${JSON.stringify(arg)}: expected [object:]name[,sympos], e.g. vmlinux:init_once,3`);
  }
  return { object: m[1] === undefined ? VMLINUX : kernelModuleName(m[1]), oldName: m[2], oldSympos: m[3] === undefined ? 0 : Number(m[3]), newName: null, newSize: null, force: false };
}

/** Parses `0xLO-0xHI` (half-open, like the kernel's test). */
export function parseRangeArg(arg: string): { start: bigint; end: bigint; text: string } {
  const m = /^(0x[0-9a-fA-F]{1,16})-(0x[0-9a-fA-F]{1,16})$/.exec(arg);
  if (m === null) throw new PatchsafeError("E_USAGE", `--range ${JSON.stringify(arg)}: expected 0xLO-0xHI (half-open)`);
  const start = BigInt(m[1]);
  const end = BigInt(m[2]);
  if (end <= start) throw new PatchsafeError("E_USAGE", `--range ${arg}: the end must be above the start`);
  if (start === 0n) throw new PatchsafeError("E_USAGE", `--range ${arg}: address 0 is never kernel text`);
  return { start, end, text: arg };
}

/** Parses a patch file (SPEC §6 JSON). */
export function parsePatchFile(text: string, file: string): PatchSpec {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    const at = jsonErrorOffset(text);
    const msg = (e instanceof Error ? e.message : String(e)).split("\n")[0].slice(0, 120);
    throw new PatchsafeError("E_INPUT", `patch file is not valid JSON: ${msg}`, { file, line: at === null ? undefined : lineAt(text, at) });
  }
  const fail = (path: string, what: string): never => {
    throw new PatchsafeError("E_INPUT", `${path}: ${what}`, { file });
  };
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObj(doc)) return fail("$", "expected an object");
  if (doc.name !== undefined && (typeof doc.name !== "string" || !NAME.test(doc.name.replace(/-/g, "_")))) return fail("$.name", "expected the patch module's name");
  if (doc.replace !== undefined && typeof doc.replace !== "boolean") return fail("$.replace", "expected a boolean");
  if (!Array.isArray(doc.objects)) return fail("$.objects", "expected an array");
  const funcs: PatchFunctionSpec[] = [];
  doc.objects.forEach((o: unknown, oi: number) => {
    const op = `$.objects[${oi}]`;
    if (!isObj(o)) return fail(op, "expected an object");
    const object = o.name === undefined || o.name === null ? VMLINUX : o.name;
    if (typeof object !== "string" || !NAME.test(object.replace(/-/g, "_"))) return fail(`${op}.name`, "expected an object name (vmlinux or a module)");
    if (!Array.isArray(o.funcs)) return fail(`${op}.funcs`, "expected an array");
    o.funcs.forEach((f: unknown, fi: number) => {
      const fp = `${op}.funcs[${fi}]`;
      if (!isObj(f)) return fail(fp, "expected an object");
      if (typeof f.old_name !== "string" || !NAME.test(f.old_name)) return fail(`${fp}.old_name`, "expected a symbol name");
      const sympos = f.old_sympos ?? 0;
      if (typeof sympos !== "number" || !Number.isInteger(sympos) || sympos < 0) return fail(`${fp}.old_sympos`, "expected a non-negative integer");
      if (f.new_name !== undefined && f.new_name !== null && (typeof f.new_name !== "string" || !NAME.test(f.new_name))) return fail(`${fp}.new_name`, "expected a symbol name");
      if (f.new_size !== undefined && f.new_size !== null && (typeof f.new_size !== "number" || !Number.isInteger(f.new_size) || f.new_size <= 0)) return fail(`${fp}.new_size`, "expected a positive integer");
      if (f.force !== undefined && typeof f.force !== "boolean") return fail(`${fp}.force`, "expected a boolean");
      funcs.push({
        object: kernelModuleName(object),
        oldName: f.old_name,
        oldSympos: sympos,
        newName: (f.new_name as string | undefined) ?? null,
        newSize: (f.new_size as number | undefined) ?? null,
        force: f.force === true,
      });
    });
  });
  if (funcs.length === 0) return fail("$.objects", "the patch replaces no function");
  return { name: doc.name === undefined ? null : kernelModuleName(doc.name as string), replace: doc.replace === true, funcs, ranges: [] };
}

/**
 * An applied (enabled) patch for `--applied FILE`: the patch JSON plus the sysfs attributes
 * `enabled`, `transition`, `forced` and `stack_order` (SPEC §6). `name` is required: it is the
 * `[module]` its replacements carry in a stack.
 */
export function parseAppliedFile(text: string, file: string): AppliedPatch {
  const spec = parsePatchFile(text, file);
  const doc = JSON.parse(text) as Record<string, unknown>;
  const fail = (path: string, what: string): never => {
    throw new PatchsafeError("E_INPUT", `${path}: ${what}`, { file });
  };
  if (spec.name === null) return fail("$.name", "an applied patch needs its module name");
  const bool = (k: string, dflt: boolean): boolean => {
    const v = doc[k];
    if (v === undefined || v === null) return dflt;
    if (typeof v === "boolean") return v;
    if (v === 0 || v === 1) return v === 1;
    return fail(`$.${k}`, "expected a boolean (or 0/1 as sysfs shows it)");
  };
  const so = doc.stack_order;
  if (so !== undefined && so !== null && (typeof so !== "number" || !Number.isInteger(so) || so < 1)) fail("$.stack_order", "expected a positive integer");
  return {
    name: spec.name,
    enabled: bool("enabled", true),
    transition: bool("transition", false),
    replace: spec.replace,
    forced: bool("forced", false),
    stackOrder: (so as number | undefined) ?? null,
    funcs: spec.funcs.map((f) => ({ ...f })),
  };
}
