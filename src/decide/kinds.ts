/**
 * Task kinds and stack shapes (SPEC §5): kthread, user worker, idle, user; the frames that mark
 * a known bottom of a reliable trace; the functions a thread never leaves.
 */
import { FrameFlag, type Capture, type Task } from "../model.js";

export type TaskKind = "user" | "kthread" | "user-worker" | "idle";

export const PF_KTHREAD = 0x00200000;
export const PF_USER_WORKER = 0x00004000;
export const PF_IO_WORKER = 0x00000010;

/**
 * User-mode entries that are the bottom of a task's kernel stack: nothing real is below them (a
 * trace that goes on past one is two traces joined). A subset of KNOWN_BOTTOMS.
 */
export const USER_ENTRIES: ReadonlySet<string> = new Set([
  // x86_64
  "entry_SYSCALL_64_after_hwframe",
  "entry_SYSCALL_64",
  "entry_SYSCALL_compat",
  "entry_SYSCALL_compat_after_hwframe",
  "entry_SYSENTER_compat",
  "entry_SYSENTER_compat_after_hwframe",
  "entry_INT80_compat",
  // 32-bit x86 and older kernels
  "entry_SYSENTER_32",
  "entry_INT80_32",
  "system_call_fastpath",
  // arm64
  "el0t_64_sync",
  "el0t_32_sync",
]);

/** A trace that ends in one of these reached a known bottom (user entry, fork, idle start). */
export const KNOWN_BOTTOMS = new Set([
  ...USER_ENTRIES,
  // fork
  "ret_from_fork",
  "ret_from_fork_asm",
  // 32-bit x86 and older kernels
  "system_call",
  "sysenter_do_call",
  "syscall_call",
  "ret_from_kernel_thread",
  "kernel_thread_helper",
  // arm64 / arm / riscv / powerpc user entry
  "el0t_64_irq",
  "el0t_64_error",
  "el0t_32_irq",
  "ret_fast_syscall",
  "ret_from_exception",
  "handle_exception",
  "system_call_common",
  // idle tasks' start
  "secondary_startup_64",
  "secondary_startup_64_no_verify",
  "common_startup_64",
  "start_secondary",
  "x86_64_start_kernel",
  "x86_64_start_reservations",
  "start_kernel",
  "rest_init",
]);

/** Interrupt/exception entries taken from user mode also end a reliable trace. */
export function isKnownBottom(name: string): boolean {
  return KNOWN_BOTTOMS.has(name) || name.startsWith("asm_exc_") || name.startsWith("asm_sysvec_") || name === "asm_common_interrupt";
}

/** Return-address trampolines: the real return address is hidden (SPEC §3 rule 2). */
export const TRAMPOLINES = new Set(["return_to_handler", "kretprobe_trampoline", "__kretprobe_trampoline", "arch_rethook_trampoline"]);

/** Main functions of workers that never return (SPEC §5 "never leaves"). */
export const NEVER_RETURNS = new Set([
  "kthread",
  "ret_from_fork",
  "ret_from_fork_asm",
  "smpboot_thread_fn",
  "worker_thread",
  "rescuer_thread",
  "io_wq_worker",
  "io_sq_thread",
  "vhost_task_fn",
  "kthreadd",
]);

/** The idle loop: an idle task here never holds a transition. */
export const IDLE_LOOP = new Set([
  "do_idle",
  "cpu_startup_entry",
  "cpuidle_enter_state",
  "cpuidle_enter",
  "cpuidle_idle_call",
  "default_idle",
  "default_idle_call",
  "arch_cpu_idle",
  "cpu_idle_poll",
  "poll_idle",
  "mwait_idle",
  "mwait_idle_with_hints",
  "acpi_idle_enter",
  "acpi_idle_do_entry",
  "acpi_safe_halt",
  "intel_idle",
  "native_safe_halt",
  "pv_native_safe_halt",
  "schedule_idle",
]);

/** notrace functions that ftrace (hence livepatch) can never hook; curated (SPEC §3). */
export const NOTRACE = new Set(["__schedule", "schedule_idle", "do_idle", "cpu_startup_entry", "default_idle", "native_safe_halt", "arch_cpu_idle"]);

/** Names of the real (non-`?`, non-unparsed, non-inline) frames of a task, innermost first. */
export function realChain(cap: Capture, t: Pick<Task, "frameStart" | "frameCount">): number[] {
  const out: number[] = [];
  const f = cap.frames;
  for (let i = t.frameStart; i < t.frameStart + t.frameCount; i++) {
    if ((f.flags[i] & (FrameFlag.GUESS | FrameFlag.UNPARSED | FrameFlag.INLINE)) === 0) out.push(i);
  }
  return out;
}

export function frameName(cap: Capture, i: number): string | null {
  const s = cap.frames.symbol[i];
  return s < 0 ? null : cap.strings.get(s);
}

export function taskKind(cap: Capture, t: Pick<Task, "pid" | "tid" | "flags" | "statusKthread">, chain: number[]): TaskKind {
  // pid 0 (identify by pid, not comm); dumps that print only the thread id give it as tid.
  if ((t.pid ?? t.tid) === 0) return "idle";
  if (t.flags !== null) {
    if (t.flags & PF_KTHREAD) return "kthread";
    if (t.flags & (PF_USER_WORKER | PF_IO_WORKER)) return "user-worker";
    return "user";
  }
  if (t.statusKthread === true) return "kthread";
  const names = chain.map((i) => frameName(cap, i));
  const n = names.length;
  const forkAt = names.findIndex((x) => x === "ret_from_fork" || x === "ret_from_fork_asm");
  if (forkAt > 0) {
    const above = names[forkAt - 1];
    if (above === "kthread" || above === "kthreadd") return "kthread";
    if (above === "io_wq_worker" || above === "io_sq_thread" || above === "vhost_task_fn") return "user-worker";
  }
  if (n > 0 && names[n - 1] !== null && /^(entry_|el0|system_call|ret_fast_syscall|asm_exc_|asm_sysvec_)/.test(names[n - 1]!)) return "user";
  return "user";
}

/** smpboot threads (ksoftirqd, migration, cpuhp, …): `smpboot_thread_fn` directly above `kthread`. */
export function isParkable(cap: Capture, chain: number[]): boolean {
  for (let k = 0; k + 1 < chain.length; k++) {
    if (frameName(cap, chain[k]) === "smpboot_thread_fn" && frameName(cap, chain[k + 1]) === "kthread") return true;
  }
  return false;
}

/** PF_* bits for states (include/linux/sched.h). */
export const PF_FROZEN = 0x00010000;
export const PF_NOFREEZE = 0x00008000;

/**
 * State labels of SPEC §5 beyond the letter: parked, frozen (at a freeze point, or in place),
 * parkable (smpboot), freezable (a kthread with PF_NOFREEZE clear), running.
 */
export function stateLabels(cap: Capture, t: Task, chain: number[], kind: TaskKind): string[] {
  const names = chain.map((i) => frameName(cap, i));
  const out: string[] = [];
  if (t.running || t.state === "R") out.push("running");
  if (t.state === "P" || names.includes("__kthread_parkme")) out.push("parked");
  if (names.includes("__refrigerator")) out.push("frozen");
  else if (t.flags !== null && t.flags & PF_FROZEN) out.push("frozen in place");
  if (kind === "kthread" && isParkable(cap, chain)) out.push("parkable");
  if (kind === "kthread" && t.flags !== null && (t.flags & PF_NOFREEZE) === 0) out.push("freezable");
  return out;
}
