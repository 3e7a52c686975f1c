// The sidebar: sessions, the workspace file browser and the health panel.

import { call } from "./api.js";
import { el } from "./output.js";

const UPLOAD_PIECE_BYTES = 2 * 1024 * 1024; // write_file takes pieces of about 2 MB (base64 adds a third)

export const bytes = (n) => {
  if (n == null) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i ? n.toFixed(n < 10 ? 1 : 0) : n} ${units[i]}`;
};

const SVG = "http://www.w3.org/2000/svg";
const ICONS = {
  folder: "M2 4.5A1.5 1.5 0 0 1 3.5 3h3l1.5 1.5h4.5A1.5 1.5 0 0 1 14 6v5.5a1.5 1.5 0 0 1-1.5 1.5h-9A1.5 1.5 0 0 1 2 11.5z",
  file: "M4 2h5l3 3v8.5a.5.5 0 0 1-.5.5h-7a.5.5 0 0 1-.5-.5v-11A.5.5 0 0 1 4 2zm5 0v3h3",
};

/** A small line icon (built as SVG elements: the page's policy allows no inline markup). */
function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("class", `icon-${name}`);
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

/** A button that asks once more before it acts: the first click arms it for a few seconds. */
function confirming(button, action) {
  const label = button.textContent;
  let timer = null;
  button.addEventListener("click", () => {
    if (!button.classList.contains("armed")) {
      button.classList.add("armed");
      button.textContent = "Sure?";
      timer = setTimeout(() => { button.classList.remove("armed"); button.textContent = label; }, 4000);
      return;
    }
    clearTimeout(timer);
    button.classList.remove("armed");
    button.textContent = label;
    action();
  });
  return button;
}

function base64(buffer) {
  const view = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < view.length; i += 0x8000) binary += String.fromCharCode(...view.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** The session list; the current session is the one the editor runs in. */
export class Sessions {
  constructor({ list, select, form, report, onChange }) {
    this.list = list;
    this.select = select;
    this.report = report;
    this.onChange = onChange;
    this.sessions = [];
    this.current = sessionStorage.getItem("python-mcp-server.session") || "default";
    select.addEventListener("change", () => this.use(select.value));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const name = form.elements.session_id.value.trim();
      this.create(name || null).then(() => form.reset(), () => {});
    });
  }

  use(sessionId) {
    this.current = sessionId;
    sessionStorage.setItem("python-mcp-server.session", sessionId);
    this.render();
    this.onChange?.(sessionId);
  }

  async refresh() {
    const listed = await call("list_sessions");
    this.sessions = listed.sessions || [];
    this.render();
  }

  async create(sessionId) {
    const args = sessionId ? { session_id: sessionId } : {};
    const created = await this.report(call("create_session", args), "Creating the session");
    await this.refresh();
    this.use(created.session_id);
  }

  async act(tool, sessionId, what) {
    await this.report(call(tool, { session_id: sessionId }), what);
    if (tool === "delete_session" && sessionId === this.current) this.use("default");
    await this.refresh();
  }

  render() {
    // 'default' is always there to pick: the first run in it starts it
    const shown = [...new Set([...this.sessions.map((s) => s.session_id), "default", this.current])];
    this.select.replaceChildren(...shown.map((id) => el("option", { value: id, text: id, selected: id === this.current })));
    this.select.value = this.current;
    // a row is rebuilt only when something in it changed, and never under a half-confirmed delete
    const drawn = JSON.stringify([this.current, this.sessions]);
    if (drawn === this.drawn || this.list.querySelector(".armed")) return;
    this.drawn = drawn;
    if (!this.sessions.length) {
      this.list.replaceChildren(el("li", { class: "empty", text: "No kernels yet: the first run starts the 'default' session." }));
      return;
    }
    this.list.replaceChildren(...this.sessions.map((s) => this.row(s)));
  }

  row(s) {
    const id = s.session_id;
    const button = (text, title, onclick, cls = "ghost small") =>
      el("button", { type: "button", class: cls, title, text, "data-action": text.toLowerCase(), onclick });
    const meta = [
      `${s.execution_count ?? 0} cell${s.execution_count === 1 ? "" : "s"}`,
      s.environment && s.environment !== "base" ? `env ${s.environment}` : null,
      s.kernel_pid ? `pid ${s.kernel_pid}` : null,
      s.description || null,
    ].filter(Boolean).join(" · ");
    const remove = confirming(el("button", { type: "button", class: "ghost small danger", title: "Shut this kernel down and forget its variables", text: "Delete", "data-action": "delete" }),
      () => this.act("delete_session", id, `Deleting ${id}`).catch(() => {}));
    return el("li", { class: `session${id === this.current ? " current" : ""}`, "data-session": id, "data-pid": s.kernel_pid },
      el("div", { class: "title" }, el("span", { class: "name", text: id }), el("span", { class: `state ${s.state}`, text: s.state })),
      el("div", { class: "meta", text: meta }),
      el("div", { class: "row-actions" },
        id === this.current ? null : button("Use", "Run the editor's code in this session", () => this.use(id), "small primary"),
        button("Interrupt", "Stop the running code (Ctrl-C); variables are kept", () => this.act("interrupt_kernel", id, `Interrupting ${id}`).catch(() => {})),
        button("Restart", "Start a fresh kernel; variables are lost", () => this.act("restart_kernel", id, `Restarting ${id}`).catch(() => {})),
        remove));
  }
}

/** The workspace file browser: one folder at a time. */
export class Files {
  constructor({ list, crumbs, upload, status, report }) {
    this.list = list;
    this.crumbs = crumbs;
    this.status = status;
    this.report = report;
    this.folder = ".";
    upload.addEventListener("change", () => {
      const files = [...upload.files];
      upload.value = "";
      this.upload(files).catch(() => {});
    });
  }

  async open(folder) {
    this.folder = folder || ".";
    await this.refresh();
  }

  async refresh() {
    let listed;
    try {
      listed = await call("list_files", { path: this.folder });
    } catch (error) {
      if (this.folder === ".") throw error;
      this.folder = "."; // the folder went away
      listed = await call("list_files", { path: "." });
    }
    if (this.list.querySelector(".armed")) return; // a delete waits for its confirmation
    this.renderCrumbs();
    const entries = [...(listed.entries || [])].sort((a, b) =>
      (a.type === "directory" ? 0 : 1) - (b.type === "directory" ? 0 : 1) || a.path.localeCompare(b.path));
    const rows = entries.map((entry) => this.row(entry));
    if (!rows.length) rows.push(el("li", { class: "empty", text: "This folder is empty. Upload files, or write them from code." }));
    if (listed.truncated) rows.push(el("li", { class: "empty", text: listed.message || "More entries than shown." }));
    this.list.replaceChildren(...rows);
  }

  renderCrumbs() {
    const parts = this.folder === "." ? [] : this.folder.split("/");
    const items = [el("button", { type: "button", text: "workspace", onclick: () => this.open(".").catch(() => {}) })];
    parts.forEach((part, i) => {
      const path = parts.slice(0, i + 1).join("/");
      items.push(el("span", { class: "sep", text: "/" }), el("button", { type: "button", text: part, onclick: () => this.open(path).catch(() => {}) }));
    });
    this.crumbs.replaceChildren(...items);
  }

  row(entry) {
    const name = entry.path.split("/").at(-1);
    if (entry.type === "directory") {
      return el("li", { class: "dir", "data-path": entry.path },
        el("button", { type: "button", class: "fname", title: `Open ${entry.path}`, onclick: () => this.open(entry.path).catch(() => {}) },
          icon("folder"), `${name}/`),
        this.deleteButton(entry.path, true));
    }
    return el("li", { class: "file", "data-path": entry.path },
      el("span", { class: "fname", title: entry.modified ? `${entry.path}, changed ${new Date(entry.modified).toLocaleString()}` : entry.path }, icon("file"), name),
      el("span", { class: "size", text: bytes(entry.size) }),
      el("button", { type: "button", class: "ghost small", title: `Download ${name}`, text: "↓", "aria-label": `Download ${name}`, "data-action": "download",
        onclick: () => this.download(entry.path).catch(() => {}) }),
      this.deleteButton(entry.path, false));
  }

  deleteButton(path, folder) {
    return confirming(
      el("button", { type: "button", class: "ghost small danger", title: folder ? "Delete this folder and everything in it" : "Delete this file", text: "✕", "aria-label": `Delete ${path}`, "data-action": "delete" }),
      () => this.report(call("delete_file", { path, recursive: folder }), `Deleting ${path}`).then(() => this.refresh()).catch(() => {}),
    );
  }

  /** Save a workspace file to the user's computer: read in chunks, then handed to the browser. */
  async download(path) {
    const pieces = [];
    let offset = 0;
    for (;;) {
      const chunk = await this.report(call("read_file", { path, offset }), `Downloading ${path}`);
      if (chunk.encoding === "base64") pieces.push(Uint8Array.from(atob(chunk.content), (c) => c.charCodeAt(0)));
      else pieces.push(new TextEncoder().encode(chunk.content));
      if (chunk.next_offset == null) break;
      offset = chunk.next_offset;
    }
    const link = el("a", { href: URL.createObjectURL(new Blob(pieces)), download: path.split("/").at(-1) });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  }

  /** Upload files into the open folder, in pieces that fit a request. */
  async upload(files) {
    for (const file of files) {
      const path = this.folder === "." ? file.name : `${this.folder}/${file.name}`;
      const data = await file.arrayBuffer();
      let sent = 0;
      do {
        const piece = data.slice(sent, sent + UPLOAD_PIECE_BYTES);
        this.status.hidden = false;
        this.status.textContent = `Uploading ${file.name}: ${bytes(sent)} of ${bytes(data.byteLength)}`;
        await this.report(
          call("write_file", { path, content: base64(piece), encoding: "base64", append: sent > 0, overwrite: true }),
          `Uploading ${file.name}`,
        ).catch((error) => { this.status.hidden = true; throw error; });
        sent += piece.byteLength;
      } while (sent < data.byteLength);
    }
    this.status.hidden = true;
    await this.refresh();
  }
}

const percent = (part, whole) => (whole ? Math.max(0, Math.min(100, (100 * part) / whole)) : 0);

function meter(used, total) {
  const p = percent(used, total);
  return el("div", { class: `meter${p > 85 ? " high" : ""}`, role: "meter", "aria-valuenow": Math.round(p), "aria-valuemin": 0, "aria-valuemax": 100 },
    el("span", { "data-width": p.toFixed(1) }));
}

function dl(pairs) {
  const list = el("dl", { class: "kv" });
  for (const [key, value] of pairs) if (value != null && value !== "") list.append(el("dt", { text: key }), el("dd", { text: String(value) }));
  return list;
}

/** The health panel: the server, its host, each kernel and the workspace. */
export class Health {
  constructor({ box, stamp }) {
    this.box = box;
    this.stamp = stamp;
  }

  async refresh() {
    const [ping, health, workspace] = await Promise.all([
      call("ping"), call("get_kernel_health"), call("get_workspace_info"),
    ]);
    const host = health.host || {};
    const memUsed = (host.memory_total_mb ?? 0) - (host.memory_available_mb ?? 0);
    const diskUsed = (host.disk_total_mb ?? 0) - (host.disk_free_mb ?? 0);
    const sections = [];
    sections.push(el("section", { class: "health-section" }, el("h3", { text: "Server" }), dl([
      ["version", ping.server_version], ["sessions", ping.sessions],
      ["sandbox", health.sandbox ? `${health.sandbox.mode}${health.sandbox.enabled ? " (on)" : " (off)"}` : null],
      ["network", health.sandbox?.network],
      ["warm kernels", health.pool ? `${health.pool.ready} ready of ${health.pool.size}` : null],
    ])));
    sections.push(el("section", { class: "health-section" }, el("h3", { text: "Host" }),
      dl([["CPUs", host.cpu_count], ["memory", `${bytes(memUsed * 2 ** 20)} used of ${bytes(host.memory_total_mb * 2 ** 20)}`]]),
      meter(memUsed, host.memory_total_mb),
      dl([["disk", `${bytes(diskUsed * 2 ** 20)} used of ${bytes(host.disk_total_mb * 2 ** 20)}`]]),
      meter(diskUsed, host.disk_total_mb)));
    const kernels = health.kernels || [];
    const table = el("table", { class: "kernels" },
      el("thead", {}, el("tr", {}, el("th", { text: "session" }), el("th", { text: "state" }), el("th", { class: "num", text: "memory" }), el("th", { class: "num", text: "CPU" }))),
      el("tbody", {}, ...kernels.map((k) => el("tr", {},
        el("td", { text: k.session_id }), el("td", { text: k.state }),
        el("td", { class: "num", text: k.rss_mb != null ? `${Math.round(k.rss_mb)} MB` : "" }),
        el("td", { class: "num", text: k.cpu_percent != null ? `${Math.round(k.cpu_percent)}%` : "" })))));
    sections.push(el("section", { class: "health-section" }, el("h3", { text: `Kernels (${kernels.length})` }),
      kernels.length ? table : el("p", { class: "muted", text: "No kernel is running." })));
    sections.push(el("section", { class: "health-section" }, el("h3", { text: "Workspace" }), dl([
      ["used", bytes(workspace.bytes_used)], ["files", workspace.file_count], ["folders", workspace.folder_count],
    ])));
    this.box.replaceChildren(...sections);
    // widths through the CSSOM: the policy allows no inline style attributes
    for (const bar of this.box.querySelectorAll(".meter > span")) bar.style.width = `${bar.dataset.width}%`;
    this.stamp.textContent = `updated ${new Date().toLocaleTimeString()}`;
  }
}
