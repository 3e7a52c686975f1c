// The REST API as the page uses it: the token, tool calls, the event stream of a call, resources.
// Every URL is relative to the page, so the playground also works behind a path prefix.

const TOKEN_KEY = "python-mcp-server.token";

/** The server refused the token (or none was given). */
export class Unauthorized extends Error {}

/** The server answered a call with an error: `status`, `type` and the server's message. */
export class ApiError extends Error {
  constructor(message, status, type) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

export const token = () => sessionStorage.getItem(TOKEN_KEY);
export const setToken = (value) => sessionStorage.setItem(TOKEN_KEY, value);
export const forgetToken = () => sessionStorage.removeItem(TOKEN_KEY);

const url = (path) => new URL(path, document.baseURI);

function headers(extra = {}) {
  const h = { ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

async function failure(response) {
  if (response.status === 401) return new Unauthorized("The server refused the token.");
  let message = `${response.status} ${response.statusText}`;
  let type = "http";
  try {
    const body = await response.json();
    if (body && body.error) {
      message = body.error.message || message;
      type = body.error.type || type;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(message, response.status, type);
}

function post(path, name, args, signal, accept) {
  return fetch(url(path), {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: accept }),
    body: JSON.stringify({ name, arguments: args }),
    signal,
  });
}

/** Call a tool; resolves to its structured result. */
export async function call(name, args = {}, { signal } = {}) {
  const response = await post("execute", name, args, signal, "application/json");
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** Server-Sent Events from a fetch response: yields {event, data} with data parsed as JSON. */
async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // keepalive comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = text;
        else if (field === "data") data.push(text);
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

/**
 * Call a tool through the event stream. `on.output(stream, text)` gets output as it is printed,
 * `on.progress(message)` progress; resolves to the structured result, or throws ApiError.
 */
export async function stream(name, args, on = {}, { signal } = {}) {
  const response = await post("execute/stream", name, args, signal, "text/event-stream");
  if (!response.ok) throw await failure(response);
  const type = response.headers.get("content-type") || "";
  if (!type.startsWith("text/event-stream")) return response.json();
  for await (const { event, data } of events(response)) {
    if (event === "output") on.output?.(data.stream, data.text, data.dropped || 0);
    else if (event === "progress") on.progress?.(data.message);
    else if (event === "result") return data;
    else if (event === "error") {
      const error = data.error || {};
      throw new ApiError(error.message || "The call failed.", data.status || 500, error.type);
    }
  }
  throw new ApiError("The server closed the stream before the result came.", 0, "stream");
}

/** A resource (kernel:// or workspace:// URI) as a Blob, fetched with the token. */
export async function resource(uri, { signal } = {}) {
  const response = await fetch(url(`resource?uri=${encodeURIComponent(uri)}`), {
    headers: headers(), signal,
  });
  if (!response.ok) throw await failure(response);
  return response.blob();
}

/** GET /health, which needs no token: {status, version}. */
export async function health() {
  const response = await fetch(url("health"), { headers: { Accept: "application/json" } });
  if (!response.ok) throw await failure(response);
  return response.json();
}
