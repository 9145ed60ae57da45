#!/usr/bin/env node
// The ESM path to the CLI, for scripts that run `node bin/patchsafe.js`: it starts the package's
// bin, bin/patchsafe.cjs (the CommonJS bundle with its build-time V8 code cache; see there), the
// same way. Through this file a run also pays Node's ESM loader bootstrap (~5 ms), so the bin is
// the .cjs one.
import { createRequire } from "node:module";

createRequire(import.meta.url)("./patchsafe.cjs").runMain();
