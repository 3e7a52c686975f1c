// The output area: one block per run, filled while the cell prints, completed by its result.

import { resource } from "./api.js";

const ANSI = /\x1b\[[0-9;?]*[ -\/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-Z\\-_]/g;
const MAX_SHOWN_CHARS = 200_000; // per run: a cell printing in a loop must not freeze the tab

export const stripAnsi = (text) => text.replace(ANSI, "");

/** Text as a terminal shows it: a carriage return rewrites the current line (progress bars). */
function applyReturns(text) {
  if (!text.includes("\r")) return text;
  return text
    .split("\n")
    .map((line) => {
      const parts = line.split("\r");
      let shown = "";
      for (const part of parts) shown = part + shown.slice(part.length);
      return shown;
    })
    .join("\n");
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

const SAFE_TAGS = new Set([
  "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "colgroup", "col",
  "div", "span", "p", "br", "hr", "b", "i", "em", "strong", "code", "pre", "small", "sub", "sup",
  "ul", "ol", "li", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
]);
const SAFE_ATTRS = new Set(["colspan", "rowspan", "align"]);

/** A copy of HTML (a DataFrame's table) made only of plain elements: no scripts, styles, links,
 *  images or event handlers survive, whatever the cell displayed. */
function sanitizedHtml(html) {
  const doc = new DOMParser().parseFromString(html, "text/html");
  const copy = (source, target) => {
    for (const node of source.childNodes) {
      if (node.nodeType === Node.TEXT_NODE) target.append(node.textContent);
      else if (node.nodeType === Node.ELEMENT_NODE) {
        const tag = node.tagName.toLowerCase();
        if (tag === "script" || tag === "style" || tag === "template") continue;
        if (!SAFE_TAGS.has(tag)) { copy(node, target); continue; }
        const clean = document.createElement(tag);
        for (const attr of node.attributes) {
          if (SAFE_ATTRS.has(attr.name) && /^[\w -]{0,20}$/.test(attr.value)) {
            clean.setAttribute(attr.name, attr.value);
          }
        }
        copy(node, clean);
        target.append(clean);
      }
    }
  };
  const box = el("div", { class: "html-display" });
  copy(doc.body, box);
  return box;
}

const seconds = (ms) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`);

/** One run in the output area. */
export class RunView {
  constructor(container, { sessionId, code, onDownload }) {
    this.onDownload = onDownload;
    this.started = performance.now();
    this.segments = []; // [{stream, text}] as printed, same-stream pieces joined
    this.shown = 0;
    this.status = el("span", { class: "badge", text: "running" });
    this.count = el("span", { class: "count", text: "[…]" });
    this.time = el("span", { class: "time" });
    this.stream = el("pre", { class: "stream", "data-testid": "stream" });
    this.body = el("div", { class: "run-body" });
    const firstLines = code.split("\n").slice(0, 3).join("\n");
    this.node = el(
      "article",
      { class: "run", "data-status": "running", "data-session": sessionId },
      el("div", { class: "run-head" }, this.count, el("span", { class: "sid", text: sessionId }),
        this.status, el("span", { class: "spacer" }), this.time),
      el("pre", { class: "run-code", text: firstLines, title: code }),
      this.body,
    );
    container.querySelector(".empty")?.remove();
    this.container = container;
    container.append(this.node);
    this.follow();
    this.tick = setInterval(() => {
      this.time.textContent = seconds(performance.now() - this.started);
    }, 250);
  }

  /** A piece of output as the cell prints it. */
  output(stream, text) {
    if (this.shown >= MAX_SHOWN_CHARS) return;
    text = stripAnsi(text);
    if (this.shown + text.length > MAX_SHOWN_CHARS) {
      text = text.slice(0, MAX_SHOWN_CHARS - this.shown) + "\n… (more output: the result keeps head and tail)";
    }
    this.shown += text.length;
    const last = this.segments.at(-1);
    if (last && last.stream === stream) last.text += text;
    else this.segments.push({ stream, text });
    if (!this.frame) this.frame = requestAnimationFrame(() => this.paint());
  }

  /** Keep the newest output in view while the reader has not scrolled up. */
  follow() {
    const box = this.container;
    if (box.scrollHeight <= box.clientHeight + 1 && getComputedStyle(box).overflowY !== "auto") {
      // narrow layout: the page scrolls, not the output; bring the run into view once
      if (!this.shownOnce) this.node.scrollIntoView({ block: "nearest" });
      this.shownOnce = true;
    } else if (box.dataset.pinned !== "false") box.scrollTop = box.scrollHeight;
  }

  paint() {
    this.frame = null;
    this.stream.replaceChildren(
      ...this.segments.map(({ stream, text }) => el("span", { class: stream, text: applyReturns(text) })),
    );
    if (!this.stream.isConnected) this.body.prepend(this.stream);
    this.follow();
  }

  end(status) {
    clearInterval(this.tick);
    if (this.frame) { cancelAnimationFrame(this.frame); this.paint(); }
    this.node.dataset.status = status;
    this.status.textContent = status;
  }

  /** The call's structured result: run_python_code's shape. */
  finish(result) {
    if (!this.segments.length && (result.stdout || result.stderr)) {
      if (result.stdout) this.output("stdout", result.stdout);
      if (result.stderr) this.output("stderr", result.stderr);
    }
    this.end(result.status || "ok");
    if (result.execution_count != null) this.count.textContent = `[${result.execution_count}]`;
    if (result.duration_ms != null) this.time.textContent = seconds(result.duration_ms);
    const body = this.body;
    const displays = result.displays || [];
    const htmlResult = displays.some((d) => d.is_result && d.mime_type === "text/html" && !d.truncated);
    // the plain text is kept (hidden) for copying and for tests when the value shows as a table
    if (result.result != null) {
      body.append(el("pre", { class: "result", "data-testid": "result", hidden: htmlResult, text: stripAnsi(result.result) }));
    }
    this.displays(displays);
    for (const image of result.images || []) this.image(image);
    if (result.error) {
      const lines = result.error.traceback?.length
        ? result.error.traceback.join("\n")
        : `${result.error.ename}: ${result.error.evalue}`;
      body.append(el("pre", { class: "traceback", "data-testid": "traceback", text: stripAnsi(lines) }));
    }
    if (result.message) body.append(el("p", { class: "note", text: result.message }));
    if (result.files?.length) {
      const list = el("div", { class: "artifacts" }, "Files written:");
      for (const file of result.files) {
        list.append(" ", el("button", {
          type: "button", class: "ghost small", title: `Download ${file.path}`, text: `↓ ${file.path}`,
          onclick: () => this.onDownload?.(file.path),
        }));
      }
      body.append(list);
    }
    this.follow();
  }

  displays(displays) {
    const byOutput = new Map();
    for (const d of displays) {
      if (!byOutput.has(d.output)) byOutput.set(d.output, []);
      byOutput.get(d.output).push(d);
    }
    for (const formats of byOutput.values()) {
      const pick = (mime) => formats.find((d) => d.mime_type === mime);
      const html = pick("text/html");
      const other = formats.find((d) => d.mime_type !== "text/html");
      if (html && !html.truncated) this.body.append(sanitizedHtml(html.content));
      else if (other) this.body.append(el("pre", { class: "display-text", text: `${other.mime_type}\n${other.content}` }));
      for (const uri of formats.flatMap((d) => d.uris || [])) {
        this.body.append(el("p", { class: "note", text: `Saved in full: ${uri}` }));
      }
    }
  }

  image(info) {
    const alt = `${info.mime_type} ${info.width ?? "?"}×${info.height ?? "?"}`;
    const img = el("img", { alt, "data-testid": "image", width: info.preview_width || info.width, height: info.preview_height || info.height });
    this.body.append(img);
    if (!info.uri) return;
    img.addEventListener("load", () => this.follow(), { once: true });
    resource(info.uri).then(
      (blob) => { img.src = URL.createObjectURL(blob); },
      (error) => img.replaceWith(el("p", { class: "note", text: `Image not shown: ${error.message}` })),
    );
  }

  /** The call failed before a result: the server's message. */
  fail(message) {
    this.end("failed");
    this.body.append(el("pre", { class: "traceback", text: message }));
    this.follow();
  }

  remove() {
    for (const img of this.node.querySelectorAll("img[src^='blob:']")) URL.revokeObjectURL(img.src);
    clearInterval(this.tick);
    this.node.remove();
  }
}
