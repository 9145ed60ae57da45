/**
 * `--patch-module FILE.ko`: reads the functions a patch module replaces, whichever tool built it.
 * Browser-clean: bytes in, PatchSpec out.
 */
import { readElf } from "./elf.js";
import { isKpatchModule, type PatchModule, readKpatchModuleDetailed } from "./kpatchModule.js";
import { findKlpPatches, readLivepatchModule } from "./livepatchModule.js";
import type { PatchSpec } from "./spec.js";

export type { ModuleFunctionDetail, PatchModule } from "./kpatchModule.js";

/** The module with per-function details (sizes, replacement symbol) for show-patch. */
export function readPatchModule(bytes: Uint8Array, file: string): PatchModule {
  const elf = readElf(bytes, file);
  if (isKpatchModule(elf)) {
    // kpatch-build builds its klp_patch at run time: a static one too is a module of two minds.
    if (findKlpPatches(elf).length > 0) elf.fail("both .kpatch.funcs and a static klp_patch: which one the module enables cannot be told");
    return readKpatchModuleDetailed(elf);
  }
  return readLivepatchModule(elf);
}

/** The PatchSpec of a module, for check --patch-module / --applied-module. */
export function readPatchModuleSpec(bytes: Uint8Array, file: string): PatchSpec {
  return readPatchModule(bytes, file).spec;
}
