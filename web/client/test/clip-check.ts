/**
 * The mark of a line with a file, as the console and the widget draw it (issue 23): no emoji in
 * the line (Debian's Chromium has no emoji font: "📎" was an empty box; the client's line text
 * carries none) but a drawn icon named "Attachment", which a screen reader says before the
 * file's name. Shared by the console's and the widget's Chromium suites.
 */
import type { Locator } from "playwright-core";
import { expect } from "vitest";

/** Checks that line `line` (an `li.line` with a file) shows its mark as a named icon, not an emoji. */
export async function expectClipIcon(line: Locator): Promise<void> {
  const text = (await line.locator(".text").textContent()) ?? "";
  expect(text).not.toMatch(/\p{Extended_Pictographic}/u);
  const icon = line.getByRole("img", { name: "Attachment", exact: true });
  expect(await icon.count()).toBe(1);
  // Drawn: a box of its own, beside the file's name.
  const box = await icon.boundingBox();
  expect(box?.width ?? 0).toBeGreaterThan(4);
  expect(box?.height ?? 0).toBeGreaterThan(4);
  // What the accessibility tree holds of the line's text: the icon by its name, then the file.
  const said = await line.locator(".text").ariaSnapshot();
  expect(said).toMatch(/^- paragraph:\n\s+- img "Attachment"\n\s+- text: \S/);
  expect(said).not.toMatch(/\p{Extended_Pictographic}/u);
}
