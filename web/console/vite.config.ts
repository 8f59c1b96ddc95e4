import { defineConfig } from "vite";

// Builds web/dist/console (the relay serves it at /console/ under --web-root web/dist): the
// console page at /console/index.html, its code under /console/assets/ (content-hashed). Built
// after the widget, whose build empties web/dist. No inline script anywhere (the relay's
// Content-Security-Policy forbids it); no module preload polyfill (it would be inline).
export default defineConfig({
  base: "./",
  build: {
    outDir: "../dist/console",
    emptyOutDir: true,
    target: "es2022",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
});
