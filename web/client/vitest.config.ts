import { defineConfig } from "vitest/config";

// Unit tests, and the end-to-end test against the real relay binary (test/relay.ts finds it).
// Node 20 has WebSocket only behind --experimental-websocket (Node 22 has it by default).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: "forks",
    execArgv: ["--experimental-websocket"],
  },
});
