/**
 * The mark of a line with a file: a paperclip drawn as inline SVG, not the "📎" the client's
 * line text starts with — Debian's Chromium has no emoji font, and agents and customers saw an empty box.
 * The icon is named for screen readers ("Attachment"); the text after it is the line's text
 * without the emoji. The widget and the console draw it alike.
 */

const SVG = "http://www.w3.org/2000/svg";

/** The emoji the client's attachment line text starts with (`attachmentLineText`). */
const EMOJI = /^\u{1F4CE}\s*/u;

/** Line text `text` of a file without the client's leading emoji: "receipt.txt, 12 B: caption". */
export function withoutClip(text: string): string {
  return text.replace(EMOJI, "");
}

/** A paperclip icon (the Feather icon's path, MIT) in the text's colour, named "Attachment". */
export function clipIcon(): SVGSVGElement {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "clip");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Attachment");
  svg.setAttribute("fill", "none");
  svg.setAttribute("stroke", "currentColor");
  svg.setAttribute("stroke-width", "2");
  svg.setAttribute("stroke-linecap", "round");
  svg.setAttribute("stroke-linejoin", "round");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", "M21.44 11.05l-9.19 9.19a6 6 0 0 1-8.49-8.49l9.19-9.19a4 4 0 0 1 5.66 5.66l-9.2 9.19a2 2 0 0 1-2.83-2.83l8.49-8.48");
  svg.append(path);
  return svg;
}
