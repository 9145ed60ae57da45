import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // The kallsyms cache (src/node/symbolCache.ts) of every test and spawned CLI: never ~/.cache.
    env: { PATCHSAFE_CACHE_DIR: `${process.env.TMPDIR ?? "/tmp"}/patchsafe-test-cache-${process.getuid?.() ?? "user"}` },
    reporters: ["default", "./test/summary-reporter.ts"],
  },
});
