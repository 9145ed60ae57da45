/**
 * `patchsafe show-patch FILE.ko [--json]`: what patchsafe reads from a patch module (object,
 * function, sympos, sizes, force), so a user can check it before trusting a decision on it.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { isPatchsafeError, PatchsafeError } from "../errors.js";
import { readPatchModule } from "../patch/patchModule.js";
import { terminalSafe } from "../report/escape.js";

const USAGE = "usage: patchsafe show-patch FILE.ko [--json]";

export function runShowPatch(args: string[], o: { out: string[]; err: string[] }): number {
  let values: { json?: boolean; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args, strict: true, allowPositionals: true, options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" } } }));
  } catch (e) {
    o.err.push(`patchsafe show-patch: ${e instanceof Error ? e.message : String(e)}`, USAGE);
    return 2;
  }
  if (values.help === true) {
    o.out.push(USAGE, "Prints the functions a kpatch-built or livepatch module replaces, as patchsafe reads them.");
    return 0;
  }
  if (positionals.length !== 1) {
    o.err.push(`patchsafe show-patch: expected one module file, got ${positionals.length}`, USAGE);
    return 2;
  }
  const file = positionals[0];
  try {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(file);
    } catch (e) {
      throw new PatchsafeError("E_IO", `cannot read: ${e instanceof Error ? e.message : String(e)}`, { file });
    }
    const m = readPatchModule(bytes, file);
    if (values.json === true) {
      o.out.push(
        JSON.stringify(
          {
            file,
            kind: m.kind,
            name: m.spec.name,
            replace: m.spec.replace,
            objects: groupByObject(m.details).map(([name, funcs]) => ({
              name,
              funcs: funcs.map((d) => ({ old_name: d.oldName, old_sympos: d.oldSympos, new_name: d.newSymbol, new_size: d.newSize, old_size: d.oldSize, force: d.force })),
            })),
          },
          null,
          2,
        ),
      );
      return 0;
    }
    // Names come from the module's ELF strings: escaped for the terminal like every input.
    o.out.push(`${terminalSafe(`${file}: ${m.kind} module ${m.spec.name ?? "(unnamed)"}`)}, replace=${m.spec.replace}, ${m.details.length} function${m.details.length === 1 ? "" : "s"}`);
    for (const [obj, funcs] of groupByObject(m.details)) {
      o.out.push(`  object ${terminalSafe(obj)}`);
      for (const d of funcs) {
        const parts = [`sympos ${d.oldSympos}`];
        if (d.newSymbol !== null && d.newSymbol !== d.oldName) parts.push(`new ${d.newSymbol}`);
        parts.push(`new_size ${d.newSize ?? "?"}`);
        if (d.oldSize !== null) parts.push(`old_size ${d.oldSize}`);
        if (d.force) parts.push("FORCE (never checked)");
        o.out.push(`    ${terminalSafe(`${d.oldName}  ${parts.join(", ")}`)}`);
      }
    }
    return 0;
  } catch (e) {
    if (isPatchsafeError(e)) {
      o.err.push(`patchsafe show-patch: ${terminalSafe(e.describe())}`);
      return 2;
    }
    throw e;
  }
}

function groupByObject<T extends { object: string }>(ds: T[]): [string, T[]][] {
  const m = new Map<string, T[]>();
  for (const d of ds) {
    const l = m.get(d.object);
    if (l === undefined) m.set(d.object, [d]);
    else l.push(d);
  }
  return [...m];
}
