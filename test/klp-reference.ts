/**
 * A straightforward TypeScript transcription of livepatch's stack check, kept beside the tests as
 * the oracle for property tests (kernel/livepatch/transition.c):
 *
 *   static int klp_check_stack_func(struct klp_func *func, unsigned long *entries, unsigned int nr_entries)
 *   {
 *       if (klp_target_state == KLP_TRANSITION_UNPATCHED) {
 *           func_addr = (unsigned long)func->new_func;  func_size = func->new_size;
 *       } else {
 *           ops = klp_find_ops(func->old_func);
 *           if (list_is_singular(&ops->func_stack)) {
 *               func_addr = (unsigned long)func->old_func;  func_size = func->old_size;
 *           } else {
 *               prev = list_next_entry(func, stack_node);
 *               func_addr = (unsigned long)prev->new_func;  func_size = prev->new_size;
 *           }
 *       }
 *       for (i = 0; i < nr_entries; i++)
 *           if (entries[i] >= func_addr && entries[i] < func_addr + func_size) return -EAGAIN;
 *       return 0;
 *   }
 */

export interface KlpFunc {
  oldName: string;
  oldAddr: bigint;
  oldSize: bigint;
  /** new_func: the replacement in the patch module. */
  newAddr: bigint;
  newSize: bigint;
}

export interface KlpPatch {
  name: string;
  funcs: KlpFunc[];
}

/**
 * Which function (old_name) the task is "sleeping on", or null if it can switch.
 * `stack` is the func_stack of enabled patches below the transition patch, oldest first.
 */
export function klpCheckStack(entries: bigint[], patch: KlpPatch, target: "patched" | "unpatched", stack: KlpPatch[]): string | null {
  for (const func of patch.funcs) {
    let addr: bigint;
    let size: bigint;
    if (target === "unpatched") {
      addr = func.newAddr;
      size = func.newSize;
    } else {
      // func_stack for this old function: earlier patches that replace it, then this patch on top.
      const below = stack.filter((p) => p.funcs.some((f) => f.oldAddr === func.oldAddr));
      if (below.length === 0) {
        addr = func.oldAddr;
        size = func.oldSize;
      } else {
        const prev = below[below.length - 1].funcs.find((f) => f.oldAddr === func.oldAddr)!;
        addr = prev.newAddr;
        size = prev.newSize;
      }
    }
    for (const e of entries) if (e >= addr && e < addr + size) return func.oldName;
  }
  return null;
}
