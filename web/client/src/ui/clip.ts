/**
 * The mark of a line with a file: a paperclip drawn as inline SVG, named for screen readers
 * ("Attachment"), before the line's text ("receipt.txt, 12 B: caption", `attachmentLineText`,
 * which carries no emoji: Debian's Chromium has none, and agents and customers saw an empty
 * box). The widget and the console draw it alike.
 */

const SVG = "http://www.w3.org/2000/svg";

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
