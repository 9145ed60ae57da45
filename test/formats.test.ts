/**
 * Issue 4: every public sample that holds stacks (test/fixtures/formats/, each keeping its
 * `# source:` line) and the hand-written variants FORMATS.md describes, read through
 * `--format auto`: formats, sections, tasks, frames and completeness.
 */
import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { PatchsafeError } from "../src/errors.js";
import { latin1 } from "../src/ingest/bytes.js";
import { detectFormat, parseCaptures } from "../src/ingest/detect.js";
import { frameText } from "../src/ingest/nativeJson.js";
import { type Capture, FrameFlag, type Task } from "../src/model.js";
import { readCaptureFile, readCaptureFiles } from "../src/node/io.js";
import { fixtureBytes, fixturePath } from "./helpers.js";

/** [file, per capture: [format, tasks, frames, complete]] */
const EXPECTED: [string, [string, number, number, boolean | "unknown"][]][] = [
  ["bcc_offcputime_K_01.txt", [["bcc",8,87,false]]],
  ["bcc_offcputime_folded_02.txt", [["bcc-folded",38,232,false]]],
  ["bcc_stackcount_P_d_01.txt", [["bcc",4,42,false]]],
  ["bcc_stackcount_s_v_02.txt", [["bcc",4,32,false]]],
  ["bpftrace_kstack_count_01.txt", [["bpftrace",4,24,false]]],
  ["bpftrace_kstack_count_real_03.txt", [["bpftrace",4,42,false]]],
  ["bpftrace_kstack_modes_02.txt", [["bpftrace",2,15,false]]],
  ["crash_bt_t_modules_03.txt", [["crash",1,8,false],["crash",1,6,false]]],
  ["crash_bt_x86_32_and_sx_02.txt", [["crash",2,18,false],["crash",1,10,false]]],
  ["crash_bt_x86_64_nmi-exception_01.txt", [["crash",3,10,false],["crash",2,16,false]]],
  ["crash_foreach-bt_04.txt", [["crash",3,10,false],["crash",1,12,false]]],
  ["drgn_stack-trace_x86_5.12_03.txt", [["drgn",1,31,false]]],
  ["drgn_stack-trace_x86_6.11_inlined_01.txt", [["drgn",1,31,false]]],
  ["drgn_stack-trace_x86_6.1_02.txt", [["drgn",1,10,false]]],
  ["hand_all-unreliable_x86_5.7.txt", [["sysrq-t",2,11,true]]],
  ["hand_android-dual-timestamp_sysrq-w_arm32_3.4.txt", [["sysrq-w",1,7,false]]],
  ["hand_arm32_backtrace-regs_5.10.txt", [["hung-task",1,10,false]]],
  ["hand_crash_warnings_arm64_5.10.txt", [["crash",3,11,"unknown"]]],
  ["hand_garbled-comm_split_syslog.txt", [["hung-task",1,10,false]]],
  ["hand_igt-prefix_tgid_x86_6.9.txt", [["sysrq-t",3,20,true]]],
  ["hand_kmsg-prefix_callerid_x86_5.15.txt", [["sysrq-w",1,9,false]]],
  ["hand_proc-old_end-marker_x86_4.4.txt", [["proc-text",1,6,"unknown"]]],
  ["hung-task_arm64_5.9_01.txt", [["hung-task",1,15,false]]],
  ["hung-task_arm64_6.16+_io-wait_unwind-source_02.txt", [["hung-task",1,26,false]]],
  ["hung-task_dmesg-T_arm32_4.19-rpi_03.txt", [["hung-task",1,10,false]]],
  ["hung-task_journalctl_x86_4.13_spl-zfs_04.txt", [["task-dump",1,15,false],["hung-task",1,0,false]]],
  ["hung-task_old_x86_3.18_01.txt", [["hung-task",1,10,false]]],
  ["hung-task_old_x86_4.4_01.txt", [["hung-task",1,12,false]]],
  ["hung-task_old_x86_4.4_show-state_sameStack_02.txt", [["hung-task",8,123,false]]],
  ["hung-task_syslog_arm32_4.14-rpi_module_02.txt", [["hung-task",1,7,false]]],
  ["hung-task_x86_3.17_stackwords_spl-zfs_03.txt", [["hung-task",1,11,false]]],
  ["hung-task_x86_4.15-ubuntu_spl-zfs_02.txt", [["hung-task",1,20,false]]],
  ["hung-task_x86_4.15-vendor_extrafield_01.txt", [["hung-task",1,25,false]]],
  ["hung-task_x86_6.0_symbolized_01.txt", [["hung-task",3,39,false]]],
  ["hung-task_x86_6.15+_tgid_taskflags_garbled-comm_01.txt", [["hung-task",1,47,false]]],
  ["oops-calltrace_ppc64be_3.10-el7_dotsyms_02.txt", [["oops",1,19,false]]],
  ["oops-calltrace_ppc64le_4.x_interrupt-frames_01.txt", [["task-dump",2,31,false]]],
  ["oops-calltrace_s390x_3.10-el7_01.txt", [["oops",1,6,false]]],
  ["oops_x86_6.11_irq-from-user_01.txt", [["oops",1,24,false]]],
  ["perf-script_riscv64_6.16_tracepoint_04.txt", [["perf",1,23,false]]],
  ["perf-script_x86_3.13_kallsyms_01.txt", [["perf",4,51,false]]],
  ["perf-script_x86_4.1_vmlinux-dso_02.txt", [["perf",6,20,false]]],
  ["perf-script_x86_6.x_offsets_deferred_03.txt", [["perf",1,13,false]]],
  ["proc-stack_new_x86_5.3-c++_mangled_05.txt", [["proc-text",1,5,"unknown"]]],
  ["proc-stack_new_x86_5.9_golang_02.txt", [["proc-text",1,6,"unknown"]]],
  ["proc-stack_old_x86_4.x_kaslr_indented_04.txt", [["proc-text",2,19,false]]], // `cat /proc/PID/stack`: main threads only
  ["rcu-stall_task-dump_x86_5.x_midstack-regs_01.txt", [["rcu-stall",1,28,false]]],
  ["rcu-stall_task-dump_x86_6.x_irq-task-sections_02.txt", [["rcu-stall",1,77,false]]],
  ["sysrq-t_arm64_3.10-pine64_addr_01.txt", [["task-dump",7,35,false]]],
  ["sysrq-t_arm_2.5.68_from-format_01.txt", [["sysrq-t",1,7,false]]],
  ["sysrq-t_ia64_2.6.5_bsp_01.txt", [["sysrq-t",4,22,false]]],
  ["sysrq-t_mips32_4.x_openwrt_stackwords_03.txt", [["task-dump",2,8,false]]],
  ["sysrq-t_old_i386_2.6.18-el5_stackwords_01.txt", [["sysrq-t",7,42,false]]],
  ["sysrq-t_ppc32_2.6.3_fragment_01.txt", [["task-dump",1,4,false]]],
  ["sysrq-t_syslog_i386_2.6.9_modules_01.txt", [["sysrq-t",7,44,false]]],
  ["sysrq-w_old_x86_2.6.38_stackwords_spl_01.txt", [["sysrq-w",1,5,false]]],
];

const load = (f: string): Capture[] => parseCaptures(fixtureBytes(`formats/${f}`), f);
const frames = (c: Capture, t: Task): string[] => Array.from({ length: t.frameCount }, (_, k) => frameText(c, t.frameStart + k));
const flagCount = (c: Capture, t: Task, flag: number): number => {
  let n = 0;
  for (let i = t.frameStart; i < t.frameStart + t.frameCount; i++) if (c.frames.flags[i] & flag) n++;
  return n;
};
const comm = (t: Task): string | null => (t.comm === null ? null : latin1(t.comm, 0, t.comm.length));

describe("every fixture (48 public samples + hand-written variants)", () => {
  it("covers every file in test/fixtures/formats", () => {
    const files = readdirSync(fixturePath("formats")).sort();
    expect(files.length).toBe(EXPECTED.length);
    expect(files.filter((f) => !f.startsWith("hand_")).length).toBe(48);
    expect(EXPECTED.map(([f]) => f)).toEqual(files);
  });
  for (const [file, caps] of EXPECTED) {
    it(file, () => {
      const got = load(file);
      expect(got.map((c) => [c.source.format, c.tasks.length, c.frames.length, c.complete])).toEqual(caps);
      got.forEach((c, i) => {
        expect(c.source.section).toBe(i);
        expect(c.source.name).toBe(file);
        expect(c.source.firstLine).toBeGreaterThan(0);
        expect(c.source.lastLine).toBeGreaterThanOrEqual(c.source.firstLine!);
        if (c.complete !== true) expect(c.completeness.length).toBeGreaterThan(0);
        if (c.source.format !== "proc-text") expect(c.hidesSchedFrames).toBe(false);
      });
    });
  }
});

describe("sysrq-t, sysrq-w, hung-task details", () => {
  it("6.15+ header: tgid, task_flags as PF_* flags, a comm split by its newline, `? ` frames, user RIP ends the trace", () => {
    const [c] = load("hung-task_x86_6.15+_tgid_taskflags_garbled-comm_01.txt");
    const t = c.tasks.get(0);
    expect([t.tid, t.pid, t.ppid, t.state, t.flags, t.running]).toEqual([18088, 18087, 15126, "D", 0x400140, false]);
    expect(comm(t)).toContain("\n");
    expect(t.comm!.length).toBeLessThanOrEqual(40);
    expect(frames(c, t)[0]).toBe("__schedule+0x10e9/0x6820");
    expect(frames(c, t)[1]).toBe("? __pfx___schedule+0x10/0x10");
    expect(frames(c, t).at(-1)).toBe("entry_SYSENTER_compat_after_hwframe+0x84/0x8e");
    expect(flagCount(c, t, FrameFlag.GUESS)).toBe(32);
    expect(c.frames.line[t.frameStart]).toBe(12);
  });
  it("5.10 header with `running task`; a mid-stack kernel RIP is an interrupted-IP frame (REGS)", () => {
    const [c] = load("rcu-stall_task-dump_x86_5.x_midstack-regs_01.txt");
    const t = c.tasks.get(0);
    expect([t.tid, t.ppid, t.state, t.running, t.flags]).toEqual([17688, 13379, "R", true, null]);
    const f = frames(c, t);
    expect(f[4]).toBe("lock_acquire+0x1ef/0x740");
    expect(c.frames.flags[t.frameStart + 4] & FrameFlag.REGS).toBeTruthy();
    expect(f[5]).toBe("find_get_pages_range+0x11b/0x890");
    expect(flagCount(c, t, FrameFlag.REGS)).toBe(2);
  });
  it("<IRQ> frames carry REGS, <TASK> frames do not", () => {
    const [c] = load("rcu-stall_task-dump_x86_6.x_irq-task-sections_02.txt");
    const t = c.tasks.get(0);
    expect(frames(c, t)[0]).toBe("sched_show_task+0x450/0x5c0");
    expect(c.frames.flags[t.frameStart] & FrameFlag.REGS).toBeTruthy();
    const asm = frames(c, t).indexOf("asm_sysvec_apic_timer_interrupt+0x1a/0x20");
    expect(c.frames.flags[t.frameStart + asm] & FrameFlag.REGS).toBe(0);
    expect(frames(c, t)[asm + 1]).toBe("kasan_check_range+0x53/0x190");
  });
  it("syzbot symbolized: [inline] pseudo-frames (INLINE), file:line suffixes dropped, NMI backtraces are running tasks", () => {
    const [c] = load("hung-task_x86_6.0_symbolized_01.txt");
    const [w, k, s] = c.tasks;
    expect(frames(c, w).slice(0, 3)).toEqual(["context_switch", "__schedule+0xadf/0x5270", "schedule+0xda/0x1b0"]);
    expect(c.frames.flags[w.frameStart] & FrameFlag.INLINE).toBeTruthy();
    expect(flagCount(c, w, FrameFlag.INLINE)).toBe(2);
    expect([k.tid, comm(k), k.running]).toEqual([29, "khungtaskd", true]);
    expect([s.tid, comm(s), s.running, s.cpu]).toEqual([22, "ksoftirqd/1", true, 1]);
  });
  it("old x86: stack words skipped, [<addr>] frames carry HAS_ADDRESS, interleaved printk is noise, <Same stack as pid N> copies", () => {
    const [c] = load("hung-task_old_x86_4.4_show-state_sameStack_02.txt");
    const byTid = new Map(c.tasks.map((t) => [t.tid, t]));
    const t30 = byTid.get(30)!;
    expect(frames(c, t30).at(-1)).toBe("ret_from_fork+0x4e/0x80");
    expect(c.frames.address(t30.frameStart)).toBe(0xffffffff82a350bbn);
    expect(frames(c, byTid.get(433)!)).toEqual(frames(c, t30));
    expect(frames(c, byTid.get(5725)!)).toEqual(frames(c, byTid.get(4989)!));
    expect(c.completeness.map((r) => r.code)).toContain("messages-dropped");
    const [old] = load("hung-task_old_x86_4.4_01.txt");
    expect(flagCount(old, old.tasks.get(0), FrameFlag.UNPARSED)).toBe(0);
    expect(old.warnings[0].message).toMatch(/line .*13/);
  });
  it("ARM `from` lines: the callee once, then every caller, with addresses", () => {
    const [c] = load("hung-task_dmesg-T_arm32_4.19-rpi_03.txt");
    const t = c.tasks.get(0);
    expect(comm(t)).toBe("kworker/2:1");
    expect(frames(c, t).slice(0, 3)).toEqual(["__schedule", "schedule+0x50/0xa8", "__mmc_claim_host+0x120/0x228"]);
    expect(c.frames.address(t.frameStart)).toBe(0x8082642cn);
    expect(c.frames.address(t.frameStart + 1)).toBe(0x80826a9cn);
    const [m] = load("hung-task_syslog_arm32_4.14-rpi_module_02.txt");
    expect(frames(m, m.tasks.get(0)).at(-2)).toBe("fuse_writepages+0x80/0xe4 [fuse]");
  });
  it("sysrq-t 2.6.18: banner, column headers, ======= trailers, `R running`; complete needs the end of the dump", () => {
    const [c] = load("sysrq-t_old_i386_2.6.18-el5_stackwords_01.txt");
    expect(c.tasks.map((t) => t.tid)).toEqual([1, 2, 3, 4, 14, 15, 19]);
    const r = c.tasks.find((t) => t.tid === 15)!;
    expect([r.state, r.running]).toEqual(["R", true]);
    // The `...` lines between blocks (54, 80) mark tasks left out of the excerpt.
    expect(c.completeness.map((x) => x.code)).toEqual(["end-not-reached", "omission"]);
  });
  it("a full sysrq-t (banner, pid 1 and 2, trailer, no drops) is complete; build ids are kept", () => {
    const [c] = load("hand_igt-prefix_tgid_x86_6.9.txt");
    expect(c.complete).toBe(true);
    const t = c.tasks.get(2);
    expect([t.tid, t.pid, t.ppid]).toEqual([5578, 5578, 873]);
    expect(frames(c, t)[2]).toBe("zio_wait+0x1f2/0x2b0 [zfs 73d1d70efcde0e1153031d2c7f442a604a96f657]");
    expect(c.strings.get(c.frames.buildId[t.frameStart + 2])).toBe("73d1d70efcde0e1153031d2c7f442a604a96f657");
  });
  it("arm64 (T) unwind-source tags are dropped; a truncated line replayed by the console is noise", () => {
    const [c] = load("hung-task_arm64_6.16+_io-wait_unwind-source_02.txt");
    expect(frames(c, c.tasks.get(0))[0]).toBe("__switch_to+0x2b0/0x6e0");
    expect(c.tasks.get(0).flags).toBe(0x400140);
  });
  it("s390: the parenthesised first entry is a guess and Last Breaking-Event-Address is not a frame", () => {
    const [c] = load("oops-calltrace_s390x_3.10-el7_01.txt");
    const t = c.tasks.get(0);
    expect(frames(c, t)[0]).toBe("? will_oops_init+0x36/0x1000 [will_oops]");
    expect(frames(c, t).length).toBe(6);
    expect([comm(t), t.tid, t.running]).toEqual(["insmod", 32037, true]);
  });
  it("powerpc: (unreliable) is a guess, --- interrupt: is a REGS frame", () => {
    const [c] = load("oops-calltrace_ppc64be_3.10-el7_dotsyms_02.txt");
    expect(frames(c, c.tasks.get(0))[0]).toBe("? .eeh_dev_check_failure+0x278/0x390");
    expect(frames(c, c.tasks.get(0))[4]).toBe(".ipr_probe_ioa+0x6c/0x1390 [ipr]");
    const [p] = load("oops-calltrace_ppc64le_4.x_interrupt-frames_01.txt");
    const f = frames(p, p.tasks.get(0));
    expect(f).toContain("replay_interrupt_return+0x0/0x4");
  });
  it("a comm with an embedded newline joins two physical lines; other syslog programs are noise", () => {
    const [c] = load("hand_garbled-comm_split_syslog.txt");
    expect(comm(c.tasks.get(0))).toBe("a\nb");
    expect(c.tasks.get(0).tid).toBe(4242);
    expect(c.warnings[0].message).toMatch(/line 1, 5/);
  });
  it("excerpts that start mid-trace give an anonymous task and a partial capture", () => {
    const caps = load("hung-task_journalctl_x86_4.13_spl-zfs_04.txt");
    expect(caps[0].tasks.get(0).tid).toBeNull();
    expect(caps[0].completeness.map((r) => r.code)).toContain("anonymous-stacks");
    expect(caps[1].tasks.get(0).stackStatus).toBe("empty");
  });
  it("a line inside a trace that cannot be read is an UNPARSED frame", () => {
    const text = "SysRq : Show Blocked State\ntask:a               state:D stack:0 pid:5 ppid:2 flags:0x0\nCall Trace:\n schedule+0x1/0x2\n zz@@ ]] garbage [[\n kthread+0x1/0x2\n";
    const [c] = parseCaptures(new TextEncoder().encode(text), "t");
    expect(flagCount(c, c.tasks.get(0), FrameFlag.UNPARSED)).toBe(1);
    expect(c.frames.line[c.tasks.get(0).frameStart + 1]).toBe(5);
  });
});

describe("crash and tracing details", () => {
  it("crash: absolute addresses, bt -s offsets, exception RIP (REGS), NMI stack switch, modules", () => {
    const [a, b] = load("crash_bt_x86_32_and_sx_02.txt");
    expect(frames(a, a.tasks.get(0))[3]).toBe("stext_lock");
    expect(a.frames.address(a.tasks.get(0).frameStart)).toBe(0xc011af85n);
    expect(frames(b, b.tasks.get(0))[0]).toBe("machine_kexec+0x167");
    expect(frames(b, b.tasks.get(0))[4]).toBe("kmem_cache_alloc+0x78");
    const [, nmi] = load("crash_bt_x86_64_nmi-exception_01.txt");
    const sw = nmi.tasks.get(0);
    expect([sw.tid, comm(sw), sw.cpu]).toEqual([0, "swapper", 0]);
    expect(flagCount(nmi, sw, FrameFlag.REGS)).toBe(7);
    const [t] = load("crash_bt_t_modules_03.txt");
    expect(frames(t, t.tasks.get(0))[3]).toBe("? svc_recv [sunrpc]");
  });
  it("crash warnings instead of frames make the task unreadable", () => {
    const [c] = load("hand_crash_warnings_arm64_5.10.txt");
    expect(c.tasks.map((t) => t.stackStatus)).toEqual(["unreadable", "ok", "unreadable"]);
  });
  it("tracing stacks are tasks where named, anonymous otherwise, and never complete", () => {
    const [s] = load("bcc_stackcount_P_d_01.txt");
    expect([comm(s.tasks.get(0)), s.tasks.get(0).pid]).toEqual(["jbd2/xvda1-8", 405]);
    const [k] = load("bpftrace_kstack_count_01.txt");
    expect(k.tasks.get(0).tid).toBeNull();
    expect(frames(k, k.tasks.get(0))[0]).toBe("filemap_map_pages+0xb5");
    const [p] = load("perf-script_x86_6.x_offsets_deferred_03.txt");
    expect([comm(p.tasks.get(0)), p.tasks.get(0).tid]).toEqual(["perf", 801]);
    const [d] = load("drgn_stack-trace_x86_6.1_02.txt");
    expect(d.tasks.get(0).pid).toBe(1);
    for (const f of ["bcc_offcputime_K_01.txt", "bcc_offcputime_folded_02.txt", "perf-script_x86_3.13_kallsyms_01.txt", "drgn_stack-trace_x86_5.12_03.txt", "bpftrace_kstack_modes_02.txt"]) {
      for (const c of load(f)) {
        expect(c.complete).toBe(false);
        expect(c.completeness.map((r) => r.code)).toEqual(["tracing-aggregate"]);
      }
    }
  });
});

describe("detection, forcing and errors", () => {
  it("detectFormat names every fixture's family", () => {
    const fam = (f: string) => detectFormat(fixtureBytes(`formats/${f}`));
    expect(fam("crash_foreach-bt_04.txt")).toBe("crash");
    expect(fam("perf-script_x86_4.1_vmlinux-dso_02.txt")).toBe("perf");
    expect(fam("bpftrace_kstack_count_real_03.txt")).toBe("bpftrace");
    expect(fam("drgn_stack-trace_x86_6.11_inlined_01.txt")).toBe("drgn");
    expect(fam("bcc_offcputime_folded_02.txt")).toBe("bcc-folded");
    expect(fam("bcc_offcputime_K_01.txt")).toBe("bcc");
    expect(fam("proc-stack_new_x86_5.9_golang_02.txt")).toBe("proc");
    expect(fam("oops_x86_6.11_irq-from-user_01.txt")).toBe("dmesg");
    expect(detectFormat(new TextEncoder().encode(' {"format": "patchsafe-capture"}'))).toBe("json");
  });
  it("--format NAME forces a parser (and sets the section kind for sysrq-t/sysrq-w/hung-task)", () => {
    const caps = parseCaptures(fixtureBytes("formats/hung-task_x86_4.15-ubuntu_spl-zfs_02.txt"), "f", "sysrq-w");
    expect(caps.map((c) => c.source.format)).toEqual(["sysrq-w"]);
    expect(() => parseCaptures(fixtureBytes("formats/crash_foreach-bt_04.txt"), "f", "bpftrace")).toThrow(PatchsafeError);
  });
  it("a file in no known format is E_INPUT quoting its first lines, with file and line", () => {
    try {
      parseCaptures(new TextEncoder().encode("\nhello world\nthis is not a dump\n"), "notes.txt");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(PatchsafeError);
      const p = e as PatchsafeError;
      expect(p.code).toBe("E_INPUT");
      expect([p.file, p.line]).toEqual(["notes.txt", 2]);
      expect(p.message).toContain('line 2: "hello world"');
    }
  });
  it("several dumps in one dmesg are several captures, each with its section and lines", () => {
    const a = latin1(fixtureBytes("formats/hand_igt-prefix_tgid_x86_6.9.txt"), 0, 1 << 20);
    const b = latin1(fixtureBytes("formats/hung-task_arm64_5.9_01.txt"), 0, 1 << 20);
    const caps = parseCaptures(new TextEncoder().encode(`${a}${b}`), "two.txt");
    expect(caps.map((c) => [c.source.format, c.source.section, c.source.firstLine])).toEqual([
      ["sysrq-t", 0, 2],
      ["hung-task", 1, 42],
    ]);
  });
  it("readCaptureFiles streams a file; readCaptureFile refuses several sections", () => {
    const r = readCaptureFiles(fixturePath("formats/hung-task_x86_6.0_symbolized_01.txt"), "auto");
    expect(r.detected).toEqual(["hung-task"]);
    expect(readCaptureFile(fixturePath("formats/sysrq-t_old_i386_2.6.18-el5_stackwords_01.txt")).detected).toBe("sysrq-t");
    expect(() => readCaptureFile(fixturePath("formats/crash_foreach-bt_04.txt"))).toThrow(/2 dumps/);
  });
});
