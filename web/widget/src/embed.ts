/**
 * `embed.js`: the one script tag a business puts on its site —
 * `<script src="https://RELAY/embed.js" data-org="acme" data-fingerprint="12345 …" defer></script>`,
 * with `data-token="…"` for an org that requires an open token (the hex the business's web server
 * issued, PROTOCOL.md §13.14).
 * It adds a "Chat with us" button that opens the widget page in an iframe from the relay's
 * origin (so the keys live in that origin's storage, out of reach of the site's own scripts).
 */
const script = document.currentScript as HTMLScriptElement | null;
if (script !== null) {
  const src = new URL(script.src);
  const org = script.dataset.org ?? "";
  const fp = script.dataset.fingerprint ?? "";
  const page = new URL("./index.html", src);
  page.searchParams.set("org", org);
  page.searchParams.set("fp", fp);
  const token = script.dataset.token ?? "";
  if (token !== "") page.searchParams.set("token", token);
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = `Chat with ${org}`;
  button.setAttribute("aria-expanded", "false");
  button.style.cssText = "position:fixed;right:1rem;bottom:1rem;padding:.7rem 1.1rem;border:0;border-radius:2rem;background:#0b57d0;color:#fff;font:600 1rem system-ui,sans-serif;cursor:pointer;z-index:2147483000";
  const frame = document.createElement("iframe");
  frame.title = `Chat with ${org}`;
  frame.src = page.href;
  frame.hidden = true;
  frame.style.cssText = "position:fixed;right:1rem;bottom:4.5rem;width:min(24rem,calc(100vw - 2rem));height:min(36rem,calc(100vh - 6rem));border:1px solid #c4c7c5;border-radius:.75rem;background:#fff;z-index:2147483000";
  button.addEventListener("click", () => {
    frame.hidden = !frame.hidden;
    button.setAttribute("aria-expanded", String(!frame.hidden));
  });
  document.body.append(frame, button);
}
