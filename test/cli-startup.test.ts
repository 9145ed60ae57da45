/**
 * The CLI's start-up path: bin/patchsafe.cjs runs the CommonJS bundle (dist/cli/patchsafe.cjs)
 * with the V8 code cache the build wrote next to it (scripts/cli-code-cache.mjs). It must behave
 * exactly like the library's `run()` (output, stderr, exit status), and any cache it cannot trust
 * (missing, truncated, corrupt, another bundle's, rejected by V8) must only cost speed: V8 alone
 * would run a same-length stale cache's old code, and crash on a corrupt payload.
 */
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../src/cli/main.js";

const ROOT = new URL("..", import.meta.url).pathname;
const FIX = join(ROOT, "test/fixtures/host");
const BIN = join(ROOT, "bin/patchsafe.cjs");
const ESM_BIN = join(ROOT, "bin/patchsafe.js");
const BUNDLE = join(ROOT, "dist/cli/patchsafe.cjs");
const CACHE = `${BUNDLE}.cache`;

interface Loader {
  encodeCodeCache(bundleBytes: Buffer, cachedData: Buffer): Buffer;
  CODE_CACHE_HEADER_BYTES: number;
  CODE_CACHE_SOURCE_CHECK_AT: number;
}
const loader = createRequire(import.meta.url)(BIN) as Loader;

let dir = "";
let kallsyms = "";
/** Every spawned CLI's kallsyms cache: this test's own directory. */
let env: NodeJS.ProcessEnv = {};

beforeAll(() => {
  if (!existsSync(CACHE)) {
    const b = spawnSync("npm", ["run", "build"], { cwd: ROOT, encoding: "utf8" });
    if (b.status !== 0) throw new Error(`npm run build failed:\n${b.stdout}\n${b.stderr}`);
  }
  dir = mkdtempSync(join(tmpdir(), "patchsafe-startup-"));
  kallsyms = join(dir, "kallsyms");
  writeFileSync(kallsyms, gunzipSync(readFileSync(join(FIX, "kallsyms.gz"))));
  env = { ...process.env, PATCHSAFE_CACHE_DIR: join(dir, "kallsyms-cache") };
  delete env.PATCHSAFE_NO_CACHE;
});

afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

const node = (args: string[], cwd = ROOT): SpawnSyncReturns<string> =>
  spawnSync(process.execPath, args, { cwd, env, encoding: "utf8", maxBuffer: 64 << 20 });

/** What a fresh process made of the code cache next to a bundle (loadCli().cache). */
function cacheStatus(bin: string): string {
  const r = node(["-e", `process.stdout.write(require(${JSON.stringify(bin)}).loadCli().cache)`]);
  expect(r.stderr).toBe("");
  return r.stdout;
}

const fixtureChecks = (): string[][] => [
  ["check", join(FIX, "capture.json"), "--kallsyms", kallsyms, "--func", "smpboot_thread_fn", "--func", "do_epoll_wait"],
  ["check", join(FIX, "proc-grep.txt"), "--kallsyms", kallsyms, "--func", "worker_thread", "--json"],
  ["check", join(FIX, "proc-grep.txt"), "--kallsyms", kallsyms, "--func", "meminfo_proc_show", "--partial-ok"],
  ["check", join(dir, "no-such-file.txt"), "--func", "worker_thread"],
  ["check", "--no-such-option"],
  ["--help"],
];

describe("bin/patchsafe.cjs", () => {
  it("is the package's bin, and the build's code cache next to the bundle is used", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { bin: Record<string, string> };
    expect(pkg.bin.patchsafe).toBe("./bin/patchsafe.cjs");
    expect(existsSync(CACHE)).toBe(true);
    expect(cacheStatus(BIN)).toBe("used");
  });

  it("gives the library's stdout, stderr and exit status (and so does the ESM bin/patchsafe.js)", () => {
    for (const argv of fixtureChecks()) {
      const lib = run(argv);
      for (const bin of [BIN, ESM_BIN]) {
        const r = node([bin, ...argv]);
        expect({ bin, argv, status: r.status, stderr: r.stderr }).toEqual({ bin, argv, status: lib.status, stderr: lib.stderr });
        expect(r.stdout).toBe(lib.stdout);
      }
    }
    // The statuses that matter for pipelines are among them.
    expect(fixtureChecks().map((a) => run(a).status)).toEqual([1, 1, 0, 2, 2, 0]);
  });

  it("has no dynamic import() in the bundle: vm.Script cannot run one without an experimental flag", () => {
    expect(readFileSync(BUNDLE, "latin1")).not.toMatch(/(^|[^\w$.])import\s*\(/);
  });
});

describe("a code cache that cannot be trusted only costs speed", () => {
  /**
   * A copy of the installed layout (bin/, dist/cli/ with the bundle, and the wasm and fleet worker
   * files it finds relative to itself), so the cache can be damaged without touching dist/.
   */
  function tree(name: string, bundle: Buffer | null, cache: Buffer | null): { bin: string; cliDir: string } {
    const top = join(dir, name);
    mkdirSync(join(top, "bin"), { recursive: true });
    mkdirSync(join(top, "dist/cli"), { recursive: true });
    copyFileSync(BIN, join(top, "bin/patchsafe.cjs"));
    symlinkSync(join(ROOT, "build"), join(top, "build"));
    symlinkSync(join(ROOT, "dist/node"), join(top, "dist/node"));
    if (bundle !== null) writeFileSync(join(top, "dist/cli/patchsafe.cjs"), bundle);
    if (cache !== null) writeFileSync(join(top, "dist/cli/patchsafe.cjs.cache"), cache);
    return { bin: join(top, "bin/patchsafe.cjs"), cliDir: join(top, "dist/cli") };
  }

  /** The first fixture check through `bin` gives the library's stdout, stderr and exit status. */
  function expectSameAsLibrary(bin: string): void {
    const argv = fixtureChecks()[0];
    const lib = run(argv);
    const r = node([bin, ...argv]);
    expect(r.stderr).toBe(lib.stderr);
    expect(r.status).toBe(lib.status);
    expect(r.stdout).toBe(lib.stdout);
  }

  const bundle = (): Buffer => readFileSync(BUNDLE);
  const cache = (): Buffer => readFileSync(CACHE);
  const payload = (): Buffer => Buffer.from(cache().subarray(loader.CODE_CACHE_HEADER_BYTES));
  const flipped = (b: Buffer, at: number): Buffer => {
    const c = Buffer.from(b);
    c[at] ^= 0xff;
    return c;
  };

  const cases: [string, () => Buffer | null, string][] = [
    ["intact (a copy)", () => cache(), "used"],
    ["missing", () => null, "missing"],
    ["empty", () => Buffer.alloc(0), "invalid"],
    ["not a cache file", () => Buffer.from("#!/bin/sh\nrm -rf /\n".repeat(100)), "invalid"],
    ["truncated", () => cache().subarray(0, cache().length >> 1), "invalid"],
    ["a flipped byte in V8's payload", () => flipped(cache(), cache().length - 1000), "invalid"],
    ["a flipped byte in the source's CRC-32", () => flipped(cache(), loader.CODE_CACHE_SOURCE_CHECK_AT + 5), "stale"],
    ["a flipped byte in the source's length", () => flipped(cache(), loader.CODE_CACHE_SOURCE_CHECK_AT), "stale"],
    // Passes patchsafe's checks; V8's own header check (its magic number) refuses it.
    ["consistent but refused by V8", () => loader.encodeCodeCache(bundle(), flipped(payload(), 0)), "rejected"],
  ];

  for (const [what, make, status] of cases) {
    it(`${what}: ${status}, same output, nothing written`, () => {
      const t = tree(what.replace(/\W+/g, "-"), bundle(), make());
      const before = readdirSync(t.cliDir).map((n) => [n, readFileSync(join(t.cliDir, n)).toString("base64")]);
      expect(cacheStatus(t.bin)).toBe(status);
      expectSameAsLibrary(t.bin);
      // A run reads the cache and never writes one (SECURITY.md: nothing the user did not name).
      expect(readdirSync(t.cliDir).map((n) => [n, readFileSync(join(t.cliDir, n)).toString("base64")])).toEqual(before);
    });
  }

  it("another bundle of the same length with this cache: stale, and the new bundle's code runs", () => {
    // V8 checks only the source's length: on its own it would accept this cache and print the old
    // help text.
    const text = bundle().toString("latin1");
    expect(text.split("who blocks it?")).toHaveLength(2);
    const changed = Buffer.from(text.replace("who blocks it?", "WHO BLOCKS IT?"), "latin1");
    expect(changed.length).toBe(bundle().length);
    const t = tree("same-length", changed, cache());
    expect(cacheStatus(t.bin)).toBe("stale");
    const r = node([t.bin, "--help"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/WHO BLOCKS IT\?/);
  });

  it("the build writes the bundle wrapped; one without the wrapper (an older build) is wrapped by the bin into the same text: the cache is used and the output is the same", () => {
    const text = bundle().toString("latin1");
    const head = "(function (exports, require, module, __filename, __dirname) {\n";
    const tail = "\n})\n";
    expect(text.startsWith(head) && text.endsWith(tail)).toBe(true);
    const bare = Buffer.from(text.slice(head.length, text.length - tail.length), "latin1");
    const t = tree("unwrapped", bare, cache());
    expect(cacheStatus(t.bin)).toBe("used");
    expectSameAsLibrary(t.bin);
  });

  it("without the bundle: one line on stderr, exit 2", () => {
    const t = tree("no-bundle", null, null);
    const r = node([t.bin, "--help"]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^patchsafe: cannot read .*patchsafe\.cjs: ENOENT \(run npm run build\)\n$/);
  });
});
