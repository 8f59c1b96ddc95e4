import { defineConfig } from "vitest/config";

// The browser end-to-end tests: Node drives Debian's Chromium (playwright-core; CHROMIUM_PATH or
// /usr/bin/chromium) against the real relay binary serving web/dist (`npm run test:e2e` at the
// workspace root builds it first).
export default defineConfig({
  test: {
    include: ["test/**/*.e2e.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // `expect.poll` waits for what the page shows; vitest's default (1 s) is a time window a
    // loaded machine misses. This is how long a wait may last before it fails, not a timing.
    expect: { poll: { timeout: 20_000 } },
    pool: "forks",
    // One file at a time: each file starts its own relay, CLI processes and Chromium, and on a
    // two-core machine files run side by side starve each other's event-driven waits.
    fileParallelism: false,
    // A Node agent (the TypeScript `Agent`) in some tests: Node 20 has WebSocket behind this flag.
    execArgv: ["--experimental-websocket"],
  },
});
