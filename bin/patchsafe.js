#!/usr/bin/env node
// Thin shim: the CLI lives in dist/ (built by `npm ci` through the prepare script), bundled
// into one module by `npm run bundle:cli`: loading ~80 ES modules one by one cost ~50 ms of
// every run's start-up. msgpackr is bundled too, as its pure-JS build: its Node entry loads ten
// modules and probes the native msgpackr-extract addon, ~25 ms on every run, snapshot or not
// (the addon speeds up decoding strings; a snapshot's strings are one small table).
// Whitespace and syntax are minified (names are not): V8 pre-parses the whole bundle on every run,
// ~7 ms less at 440 KB than at 610 KB.
import { main } from "../dist/cli/patchsafe.mjs";

main();
