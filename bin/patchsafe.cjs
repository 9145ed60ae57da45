#!/usr/bin/env node
"use strict";
/*
 * The CLI's entry (package.json "bin"). It runs the CommonJS bundle of the CLI
 * (dist/cli/patchsafe.cjs, `npm run bundle:cli`) with the V8 code cache that the build wrote next
 * to it (scripts/cli-code-cache.mjs), because start-up is a fixed cost of every run:
 *
 * - CommonJS, not ESM: an ES module entry costs Node 20 ~5 ms of ESM loader bootstrap on every
 *   run, and a module compiled by the ESM loader cannot be given a code cache (Node 20 has no
 *   module.enableCompileCache).
 * - The code cache: compiling the 440 KB bundle takes ~9 ms, and the functions a check runs are
 *   compiled lazily on top of that; with the cache both are deserialised (~1.5 ms).
 * - One bundle, not ~80 modules: loading them one by one cost ~50 ms of every run. msgpackr is
 *   bundled as its pure-JS build (package.json's --alias): its Node entry loads ten modules and
 *   probes the native msgpackr-extract addon, ~25 ms on every run, snapshot or not. Whitespace
 *   and syntax are minified (names are not).
 *
 * The cache is only ever read here. It is written at build time, never at run time: a live check
 * writes nothing the user did not name (SECURITY.md).
 *
 * Why the cache file carries its own checksums: V8 (11.3 in Node 20, tried) checks a code cache
 * against the V8 version, the V8 flags and the source's *length* only, and does not checksum the
 * payload in release builds. A cache of another bundle of the same length is accepted and runs the
 * other bundle's code (test/cli-startup.test.ts shows the case), and a flipped byte in the payload
 * is accepted too (seen to crash node). So the cache is used only when the length and CRC-32 of the
 * exact compiled text and of the payload all match; anything else (missing, truncated, stale,
 * corrupt, or rejected by V8 for another Node or other flags) falls back to compiling the bundle
 * normally. CRC-32, not a cryptographic digest: what it guards against is a stale or damaged file
 * (a 2^-32 chance to miss one), not an attacker, who could as well rewrite the bundle next to it;
 * and node:zlib is loaded by the bundle anyway, while node:crypto (~3.5 ms to load: its streams)
 * is left to the runs that need it (the symbol cache trusts a file's identity record without it).
 *
 * bin/patchsafe.js (an ESM alias for scripts that name it) loads this file and behaves the same.
 */
const { crc32 } = require("node:zlib");
const { readFileSync } = require("node:fs");
const { createRequire } = require("node:module");
const { dirname, join } = require("node:path");
const { Script } = require("node:vm");

const BUNDLE = join(__dirname, "..", "dist", "cli", "patchsafe.cjs");

/**
 * The bundle is compiled as the body of this function, like Node's own CommonJS wrapper, so the
 * build and every run compile the same text (the code cache belongs to that text). The bundle gets
 * its own URL from __filename (esbuild --inject:scripts/bundle-url.mjs).
 *
 * The build writes the bundle already wrapped (esbuild --banner/--footer, exactly these bytes), so
 * the file's text is compiled as it is read. Wrapped here, the 480 KB source was made twice: the
 * file's string and the joined one V8 compiles, both in V8's large-object space. The first was
 * garbage at once but counted towards the old generation's first limit, and a 100k-task check then
 * ran into a ~5 ms full mark-compact (most runs without it now run none). A bundle without the
 * wrapper (an older build) is still wrapped here.
 */
const WRAP_HEAD = "(function (exports, require, module, __filename, __dirname) {\n";
const WRAP_TAIL = "\n})\n";
const WRAP_HEAD_BYTES = Buffer.from(WRAP_HEAD, "latin1");
const WRAP_TAIL_BYTES = Buffer.from(WRAP_TAIL, "latin1");

/** Whether the bundle's bytes are already the wrapped text. */
function isWrapped(bundleBytes) {
  return (
    bundleBytes.length >= WRAP_HEAD_BYTES.length + WRAP_TAIL_BYTES.length &&
    bundleBytes.subarray(0, WRAP_HEAD_BYTES.length).equals(WRAP_HEAD_BYTES) &&
    bundleBytes.subarray(bundleBytes.length - WRAP_TAIL_BYTES.length).equals(WRAP_TAIL_BYTES)
  );
}

/** The text compiled for a bundle. */
function compiledText(bundleBytes) {
  const text = bundleBytes.toString("utf8");
  return isWrapped(bundleBytes) ? text : `${WRAP_HEAD}${text}${WRAP_TAIL}`;
}

/**
 * Cache file: MAGIC, then (u32 LE) the compiled text's length and CRC-32, the payload's length and
 * CRC-32, then V8's cached data (the payload).
 */
const MAGIC = Buffer.from("patchsafe code cache 2\n", "latin1");
const SOURCE_CHECK = MAGIC.length;
const PAYLOAD_CHECK = SOURCE_CHECK + 8;
const HEADER = PAYLOAD_CHECK + 8;

/** Length and CRC-32 of exactly the text compiled for a bundle (compiledText's bytes). */
function sourceCheck(bundleBytes) {
  const out = Buffer.alloc(8);
  if (isWrapped(bundleBytes)) {
    out.writeUInt32LE(bundleBytes.length, 0);
    out.writeUInt32LE(crc32(bundleBytes), 4);
  } else {
    out.writeUInt32LE(WRAP_HEAD_BYTES.length + bundleBytes.length + WRAP_TAIL_BYTES.length, 0);
    out.writeUInt32LE(crc32(WRAP_TAIL_BYTES, crc32(bundleBytes, crc32(WRAP_HEAD_BYTES))), 4);
  }
  return out;
}

/** Length and CRC-32 of V8's cached data. */
function payloadCheck(cachedData) {
  const out = Buffer.alloc(8);
  out.writeUInt32LE(cachedData.length, 0);
  out.writeUInt32LE(crc32(cachedData), 4);
  return out;
}

/** The cache file's bytes for a bundle and V8's cached data (used by the build only). */
function encodeCodeCache(bundleBytes, cachedData) {
  return Buffer.concat([MAGIC, sourceCheck(bundleBytes), payloadCheck(cachedData), cachedData]);
}

/**
 * V8's cached data from a cache file if the file is intact and belongs to this bundle, else the
 * reason it is not used: "missing", "invalid" (not a cache file, truncated, corrupt payload) or
 * "stale" (the cache of another bundle).
 */
function readCodeCache(cacheFile, bundleBytes) {
  let file;
  try {
    file = readFileSync(cacheFile);
  } catch {
    return { data: undefined, status: "missing" };
  }
  if (file.length <= HEADER || !file.subarray(0, MAGIC.length).equals(MAGIC)) return { data: undefined, status: "invalid" };
  const data = file.subarray(HEADER);
  if (!payloadCheck(data).equals(file.subarray(PAYLOAD_CHECK, HEADER))) return { data: undefined, status: "invalid" };
  if (!sourceCheck(bundleBytes).equals(file.subarray(SOURCE_CHECK, PAYLOAD_CHECK))) return { data: undefined, status: "stale" };
  return { data, status: "used" };
}

/**
 * Compiles and runs the CLI bundle; returns its exports (`main`, `run`, `EXIT`), the compiled
 * script (the build calls createCachedData() on it after a training run), and what became of the
 * code cache: "used", "rejected" (by V8: another Node or other V8 flags), "missing", "invalid",
 * "stale", or "off" (`cacheFile: null`, the build's own compile).
 */
function loadCli({ bundleFile = BUNDLE, cacheFile = `${bundleFile}.cache` } = {}) {
  let bundleBytes;
  try {
    bundleBytes = readFileSync(bundleFile);
  } catch (e) {
    const err = new Error(`cannot read ${bundleFile}: ${e.code ?? e.message} (run npm run build)`);
    err.code = "E_NO_BUNDLE";
    throw err;
  }
  const cache = cacheFile === null ? { data: undefined, status: "off" } : readCodeCache(cacheFile, bundleBytes);
  const script = new Script(compiledText(bundleBytes), {
    filename: bundleFile,
    cachedData: cache.data,
  });
  const status = cache.data !== undefined && script.cachedDataRejected === true ? "rejected" : cache.status;
  const bundleModule = { exports: {} };
  script.runInThisContext()(bundleModule.exports, createRequire(bundleFile), bundleModule, bundleFile, dirname(bundleFile));
  return { exports: bundleModule.exports, script, bundleBytes, cache: status };
}

/** Runs the CLI on process.argv (this file as the bin, or bin/patchsafe.js). */
function runMain() {
  let cli;
  try {
    cli = loadCli().exports;
  } catch (e) {
    if (e.code !== "E_NO_BUNDLE") throw e;
    // The CLI's one-line error form (exit 2, as for any input error), not a stack trace.
    process.stderr.write(`patchsafe: ${e.message}\n`);
    process.exitCode = 2;
  }
  if (cli !== undefined) cli.main();
}

module.exports = { loadCli, encodeCodeCache, runMain, BUNDLE, CODE_CACHE_HEADER_BYTES: HEADER, CODE_CACHE_SOURCE_CHECK_AT: SOURCE_CHECK };

if (require.main === module) runMain();
