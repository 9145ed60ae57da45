#!/usr/bin/env node
// The package's bin is bin/patchsafe.cjs: the same CLI as a CommonJS bundle started with a V8
// code cache, ~20 ms faster per run (no ESM loader bootstrap, no compile of the bundle). This ESM
// entry is kept for scripts that run `node bin/patchsafe.js`; it behaves the same
// (test/cli-startup.test.ts).
// Thin shim: the CLI lives in dist/ (built by `npm ci` through the prepare script), bundled
// into one module by `npm run bundle:cli`: loading ~80 ES modules one by one cost ~50 ms of
// every run's start-up. msgpackr is bundled too, as its pure-JS build: its Node entry loads ten
// modules and probes the native msgpackr-extract addon, ~25 ms on every run, snapshot or not
// (the addon speeds up decoding strings; a snapshot's strings are one small table).
// Whitespace and syntax are minified (names are not): V8 pre-parses the whole bundle on every run,
// ~7 ms less at 440 KB than at 610 KB.
import { main } from "../dist/cli/patchsafe.mjs";

main();
