import { defineConfig } from "vitest/config";

// The console's logic, under Node (no browser): `npm test`.
export default defineConfig({
  test: {
    include: ["test/**/*.unit.test.ts"],
  },
});
