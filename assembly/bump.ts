// The bump allocator of patchsafe's wasm modules (tokenize.ts, tasks.ts): 16-byte aligned blocks
// from __heap_base up, memory grown as needed (a failed grow traps). Nothing is freed one by one:
// a module that lays out anew calls bumpReset() and reuses the memory from the start.

let heapStart: usize = 0;
let top: usize = 0;

/** Forgets every block: the next bumpAlloc() starts at __heap_base again. */
export function bumpReset(): void {
  if (heapStart == 0) heapStart = (__heap_base + 15) & ~(<usize>15);
  top = heapStart;
}

/** A block of `bytes` (not zeroed: memory reused after bumpReset() holds old bytes). */
export function bumpAlloc(bytes: usize): usize {
  if (heapStart == 0) bumpReset();
  const p = top;
  top = (top + bytes + 15) & ~(<usize>15);
  const needPages = <i32>((top + 0xffff) >>> 16);
  const have = memory.size();
  if (needPages > have && memory.grow(needPages - have) < 0) unreachable();
  return p;
}
