#!/usr/bin/env node
// Thin shim: the CLI lives in dist/ (built by `npm ci` through the prepare script).
import { main } from "../dist/cli/main.js";

main();
