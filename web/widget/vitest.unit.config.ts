import { defineConfig } from "vitest/config";

// The widget's logic, under Node (no browser): `npm test`.
export default defineConfig({
  test: {
    include: ["test/**/*.unit.test.ts"],
  },
});
