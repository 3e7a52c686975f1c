// The playground: wires the editor, the output area and the sidebar to the REST API.

import { createEditor } from "./editor.js";
import { ApiError, Unauthorized, call, forgetToken, health, setToken, stream, token } from "./api.js";
import { RunView } from "./output.js";
import { Files, Health, Sessions } from "./panels.js";

const $ = (id) => document.getElementById(id);
const CODE_KEY = "python-mcp-server.code";
const THEME_KEY = "python-mcp-server.theme";
const SAMPLE = `# Shift+Enter runs this. Variables stay in the session between runs.
import numpy as np
import matplotlib.pyplot as plt

x = np.linspace(0, 4 * np.pi, 400)
plt.figure(figsize=(6, 3))
plt.plot(x, np.sin(x) * np.exp(-x / 8))
plt.title("Hello from the playground")
plt.show()
print("mean:", np.sin(x).mean())
`;

// ---------------------------------------------------------------- theme
const THEMES = ["system", "light", "dark"];
function applyTheme(theme) {
  if (theme === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  $("theme").title = `Theme: ${theme === "system" ? "follows the system" : theme}`;
}
applyTheme(localStorage.getItem(THEME_KEY) || "system");
$("theme").addEventListener("click", () => {
  const now = localStorage.getItem(THEME_KEY) || "system";
  const next = THEMES[(THEMES.indexOf(now) + 1) % THEMES.length];
  localStorage.setItem(THEME_KEY, next);
  applyTheme(next);
});

// ---------------------------------------------------------------- connection and token
let version = "";
const conn = (state, text) => { $("conn").dataset.state = state; $("conn-text").textContent = text; };
let asking = null; // the open token prompt, shared by every call that got a 401

function askToken(message) {
  if (asking) return asking;
  const dialog = $("token-dialog");
  const input = $("token-input");
  const error = $("token-error");
  forgetToken();
  conn("locked", "token needed");
  error.hidden = !message;
  error.textContent = message || "";
  asking = new Promise((resolve) => {
    const submit = async (event) => {
      event.preventDefault();
      setToken(input.value.trim());
      try {
        await call("ping");
      } catch (failure) {
        forgetToken();
        error.hidden = false;
        error.textContent = failure instanceof Unauthorized
          ? "The server refused this token. Check it and try again."
          : `Could not check the token: ${failure.message}`;
        input.select();
        return;
      }
      $("token-form").removeEventListener("submit", submit);
      dialog.close();
      conn("ok", version || "connected");
      input.value = "";
      asking = null;
      $("forget-token").hidden = false;
      resolve();
    };
    $("token-form").addEventListener("submit", submit);
  });
  dialog.addEventListener("cancel", (event) => event.preventDefault()); // nothing works without it
  dialog.showModal();
  input.focus();
  return asking;
}

$("forget-token").addEventListener("click", () => { forgetToken(); location.reload(); });

/** Show what failed (in the sidebar); a refused token opens the prompt. Rethrows. */
async function report(promise, what) {
  try {
    const value = await promise;
    $("panel-error").hidden = true;
    return value;
  } catch (error) {
    if (error instanceof Unauthorized) askToken("The server refused the token.").then(refreshAll);
    else {
      $("panel-error").hidden = false;
      $("panel-error").textContent = `${what}: ${error.message}`;
    }
    throw error;
  }
}

// ---------------------------------------------------------------- sidebar
const sessions = new Sessions({
  list: $("session-list"), select: $("session-select"), form: $("new-session"), report,
  onChange: () => editor.focus(),
});
const files = new Files({ list: $("file-list"), crumbs: $("crumbs"), upload: $("upload"), status: $("upload-status"), report });
const healthPanel = new Health({ box: $("health"), stamp: $("health-time") });
const panels = { sessions, files, health: healthPanel };
let tab = "sessions";

for (const button of document.querySelectorAll("[role=tab]")) {
  button.addEventListener("click", () => {
    tab = button.id.replace("tab-", "");
    for (const other of document.querySelectorAll("[role=tab]")) {
      const selected = other === button;
      other.setAttribute("aria-selected", String(selected));
      $(other.getAttribute("aria-controls")).hidden = !selected;
    }
    report(panels[tab].refresh(), `Loading ${tab}`).catch(() => {});
  });
}
$("files-refresh").addEventListener("click", () => report(files.refresh(), "Listing files").catch(() => {}));
$("health-refresh").addEventListener("click", () => report(healthPanel.refresh(), "Reading health").catch(() => {}));

// ---------------------------------------------------------------- editor and runs
const editor = createEditor($("editor"), {
  doc: sessionStorage.getItem(CODE_KEY) ?? SAMPLE,
  run: () => run(),
  attributes: { "data-testid": "code" },
  // the page's policy lets the editor's <style> elements apply with the nonce it was sent with
  nonce: document.querySelector("script[nonce]")?.nonce,
});
editor.view.dom.addEventListener("keyup", () => sessionStorage.setItem(CODE_KEY, editor.getCode()));

let running = 0;
function showRunning(delta) {
  running += delta;
  $("running").hidden = running === 0;
  $("running-text").textContent = running > 1 ? `${running} running` : "running";
}

async function run() {
  const code = editor.getCode();
  if (!code.trim()) return;
  sessionStorage.setItem(CODE_KEY, code);
  const sessionId = sessions.current;
  const view = new RunView($("output"), { sessionId, code, onDownload: (path) => files.download(path).catch(() => {}) });
  showRunning(+1);
  try {
    const result = await stream("run_python_code", { code, session_id: sessionId }, {
      output: (name, text) => view.output(name, text),
    });
    view.finish(result);
  } catch (error) {
    if (error instanceof Unauthorized) {
      view.fail("The server refused the token: enter it, then run again.");
      askToken("The server refused the token.").then(refreshAll);
    } else view.fail(error instanceof ApiError ? error.message : `The request failed: ${error.message}`);
  } finally {
    showRunning(-1);
    sessions.refresh().catch(() => {});
    if (tab !== "sessions") panels[tab].refresh().catch(() => {});
  }
}

$("run").addEventListener("click", () => run());
$("interrupt").addEventListener("click", () =>
  report(call("interrupt_kernel", { session_id: sessions.current }), "Interrupting").catch(() => {}));
// the output follows new runs unless the reader scrolled up to read older ones
$("output").addEventListener("scroll", () => {
  const box = $("output");
  box.dataset.pinned = String(box.scrollHeight - box.scrollTop - box.clientHeight < 48);
});
$("clear-output").addEventListener("click", () => {
  for (const node of $("output").querySelectorAll(".run")) node.remove();
});

// ---------------------------------------------------------------- start
async function refreshAll() {
  await report(sessions.refresh(), "Listing sessions").catch(() => {});
  if (tab !== "sessions") await report(panels[tab].refresh(), `Loading ${tab}`).catch(() => {});
}

async function start() {
  sessions.render();
  try {
    version = `v${(await health()).version}`;
    conn("ok", version);
  } catch {
    conn("down", "server unreachable");
  }
  try {
    await call("ping");
    if (token()) $("forget-token").hidden = false;
  } catch (error) {
    if (!(error instanceof Unauthorized)) {
      conn("down", error.message);
      return;
    }
    await askToken(token() ? "The saved token was refused." : "");
    conn("ok", version || "connected");
  }
  await refreshAll();
  sessions.render();
  editor.focus();
  // keep the visible panel fresh while the tab is in view
  setInterval(() => {
    if (document.visibilityState === "visible" && !asking && tab !== "files") panels[tab].refresh().catch(() => {});
  }, 5000);
}

start();
