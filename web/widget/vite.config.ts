import { defineConfig } from "vite";

// Builds web/dist: the widget page at /index.html, its code under /assets/ (content-hashed),
// and /embed.js (a stable name: the one script tag a business puts on its site). No inline
// script anywhere (the relay's Content-Security-Policy forbids it); no module preload polyfill
// (it would be inline).
export default defineConfig({
  base: "./",
  build: {
    outDir: "../dist",
    emptyOutDir: true,
    target: "es2022",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    rollupOptions: {
      input: { index: "index.html", embed: "src/embed.ts" },
      output: {
        entryFileNames: (chunk) => (chunk.name === "embed" ? "embed.js" : "assets/[name]-[hash].js"),
      },
    },
  },
});
