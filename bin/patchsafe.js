#!/usr/bin/env node
// Thin shim: the CLI lives in dist/ (built by `npm ci` through the prepare script), bundled
// into one module by `npm run bundle:cli`: loading ~80 ES modules one by one cost ~50 ms of
// every run's start-up.
import { main } from "../dist/cli/patchsafe.mjs";

main();
