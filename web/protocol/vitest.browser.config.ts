import { playwright } from "@vitest/browser-playwright";
import { defineConfig } from "vitest/config";

// The same suite as vitest.config.ts, inside Debian's Chromium driven by Playwright (no browser
// is downloaded: CHROMIUM_PATH or /usr/bin/chromium).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    browser: {
      enabled: true,
      headless: true,
      provider: playwright({
        launchOptions: {
          executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
          args: ["--no-sandbox"],
        },
      }),
      instances: [{ browser: "chromium" }],
    },
  },
  server: { fs: { allow: ["../.."] } },
});
