#!/usr/bin/env node
/**
 * Writes dist/cli/patchsafe.cjs.cache, the V8 code cache bin/patchsafe.cjs starts the CLI with
 * (part of `npm run build`, after the CommonJS bundle is built).
 *
 * The cache is made at build time, never at run time: a run of patchsafe writes nothing the user
 * did not name (SECURITY.md). The build runs on the machine and Node that use it (npm ci runs
 * prepare → build); a cache from another Node or other V8 flags (NODE_OPTIONS) is rejected by V8
 * and the CLI just compiles the bundle as it would without one.
 *
 * V8 caches what was compiled when the cache is taken, so the bundle is first run in-process on a
 * small representative workload: checks of the committed host fixtures (a grep -H /proc dump and a
 * JSON capture) against the fixture kallsyms, twice for the dump, so that both the first parse of
 * a symbol file and the parsed-kallsyms cache hit that later runs take are compiled. Functions no
 * training run reached are compiled lazily at run time, as without the cache. The kallsyms cache
 * of the training runs goes to a temporary directory, never the user's.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const entry = join(root, "bin/patchsafe.cjs");
const fixtures = join(root, "test/fixtures/host");
const { loadCli, encodeCodeCache, BUNDLE } = createRequire(import.meta.url)(entry);
const cacheFile = `${BUNDLE}.cache`;

// A cache of an earlier bundle is useless (the loader would find it stale): remove it first, so a
// failed training leaves no cache rather than an old one.
rmSync(cacheFile, { force: true });

const needed = ["kallsyms.gz", "proc-grep.txt", "capture.json"].map((n) => join(fixtures, n));
if (!needed.every((p) => existsSync(p))) {
  console.warn(`cli-code-cache: ${fixtures} is incomplete; no code cache written (the CLI works without one, ~10 ms slower to start)`);
  process.exit(0);
}

const work = mkdtempSync(join(tmpdir(), "patchsafe-code-cache-"));
try {
  const kallsyms = join(work, "kallsyms");
  writeFileSync(kallsyms, gunzipSync(readFileSync(join(fixtures, "kallsyms.gz"))));
  process.env.PATCHSAFE_CACHE_DIR = join(work, "kallsyms-cache");
  delete process.env.PATCHSAFE_NO_CACHE;

  const { exports: cli, script, bundleBytes } = loadCli({ cacheFile: null });
  const dump = join(fixtures, "proc-grep.txt");
  const training = [
    ["check", dump, "--kallsyms", kallsyms, "--func", "smpboot_thread_fn", "--func", "do_epoll_wait"],
    ["check", dump, "--kallsyms", kallsyms, "--func", "smpboot_thread_fn", "--func", "do_epoll_wait"],
    ["check", join(fixtures, "capture.json"), "--kallsyms", kallsyms, "--func", "worker_thread", "--json"],
  ];
  for (const argv of training) {
    const r = cli.run(argv);
    // Both fixtures have tasks blocked in these functions: anything else means the bundle is
    // broken, which the build should say rather than cache.
    if (r.status !== cli.EXIT.blocked) {
      throw new Error(`training run \`patchsafe ${argv.join(" ")}\` exited ${r.status}, expected ${cli.EXIT.blocked}:\n${r.stderr}`);
    }
  }

  const tmp = `${cacheFile}.tmp-${process.pid}`;
  writeFileSync(tmp, encodeCodeCache(bundleBytes, script.createCachedData()), { mode: 0o644 });
  renameSync(tmp, cacheFile);

  // A fresh process must accept it; if not (e.g. V8 flags in NODE_OPTIONS here that later runs
  // lack, or the reverse), say so: the CLI still works, it only starts slower.
  const status = execFileSync(process.execPath, ["-e", `process.stdout.write(require(${JSON.stringify(entry)}).loadCli().cache)`], {
    encoding: "utf8",
  });
  if (status !== "used") console.warn(`cli-code-cache: a fresh process did not use ${cacheFile} (${status}); the CLI works without it`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
