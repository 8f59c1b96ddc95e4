import { defineConfig, mergeConfig } from "vitest/config";
import base from "./vitest.config.js";
import browser from "./vitest.browser.config.js";

// `npm run perf` / `npm run perf:browser`: the timings of test/perf.perf.ts (BENCHMARKS.md's web
// rows), under Node or inside Chromium. Not part of `npm test`: they take a while on a busy machine.
const inBrowser = process.env.SEALDESK_PERF_BROWSER === "1";
const merged = mergeConfig(inBrowser ? browser : base, defineConfig({ test: { testTimeout: 600_000 } }));
// mergeConfig concatenates arrays; the perf file alone is wanted.
merged.test = { ...merged.test, include: ["test/**/*.perf.ts"] };
export default merged;
