/**
 * Help for `--func` names the symbol table does not have: compiler clones (`foo.isra.0`,
 * `foo.constprop.0`, `foo.part.0`, `foo.cold`) are what a built patch lists; a function with no
 * symbol at all was inlined everywhere (or not built) and cannot be patched itself.
 */
import type { SymbolTable } from "../symbols/table.js";

export function explainMissing(table: SymbolTable, object: string, name: string): string {
  const clones: string[] = [];
  const prefix = `${name}.`;
  for (const [n, rows] of table.byName) {
    if (!n.startsWith(prefix) || /\.cold(\.\d+)?$/.test(n)) continue;
    if (rows.some((r) => table.objects[table.object[r]] === object)) clones.push(n);
    if (clones.length >= 5) break;
  }
  if (clones.length > 0) return `did you mean ${clones.map((c) => `\`${c}\``).join(" or ")}? (a built patch lists compiler clones under their full names)`;
  const elsewhere = (table.byName.get(name) ?? []).map((r) => table.objects[table.object[r]]).filter((o) => o !== object);
  if (elsewhere.length > 0) return `it exists in ${[...new Set(elsewhere)].join(", ")}: give --func OBJECT:${name}`;
  return "no symbol of that name: it was inlined everywhere (or is not built into this kernel), so it cannot be patched itself; patch its callers";
}
