#!/usr/bin/env node
// Thin shim: the CLI lives in dist/ (built by `npm ci` through the prepare script), bundled
// into one module by `npm run bundle:cli`: loading ~80 ES modules one by one cost ~50 ms of
// every run's start-up. msgpackr is bundled too, as its pure-JS build: its Node entry loads ten
// modules and probes the native msgpackr-extract addon, ~25 ms on every run, snapshot or not
// (the addon speeds up decoding strings; a snapshot's strings are one small table).
import { main } from "../dist/cli/patchsafe.mjs";

main();
