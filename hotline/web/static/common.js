// Shared by the pages: messages, the JSON API with the session's CSRF token, safe DOM
// building (text only, never HTML), and the live feed with its sequence check.

const messages = JSON.parse(document.getElementById("messages").textContent);

export function t(key, vars = {}) {
  let text = messages[key] ?? key;
  for (const [name, value] of Object.entries(vars)) {
    text = text.replaceAll(`{${name}}`, String(value));
  }
  return text;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

export function setText(id, value) {
  document.getElementById(id).textContent = value ?? "";
}

let me = null;

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["X-CSRF-Token"] = me?.csrf_token ?? "";
    if (body !== undefined) headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(data?.message ?? data?.error ?? String(response.status));
    error.status = response.status;
    throw error;
  }
  return data;
}

export async function whoAmI() {
  try {
    me = await api("GET", "/api/me");
  } catch (error) {
    if (error.status === 401) window.location.assign("/login");
    throw error;
  }
  setText("who", me.name);
  const signout = document.getElementById("signout");
  if (signout) {
    signout.addEventListener("click", async () => {
      await api("POST", "/api/logout");
      window.location.assign("/login");
    });
  }
  return me;
}

// Server time minus local time, from the frames' "at": timers count on the server's clock.
let offset = 0;

export function serverNow() {
  return Date.now() / 1000 + offset;
}

export function duration(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = String(Math.floor((total % 3600) / 60)).padStart(2, "0");
  const rest = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${minutes}:${rest}` : `${minutes}:${rest}`;
}

export function percent(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value * 100)}%`;
}

// A queue as shown after a frame's view of it: a delta's view with "waiting_diff" carries
// only the callers that joined or changed ("waiting") and those that left
// ("waiting_left"); a snapshot's view is the whole list (merge_queue_view in live.py).
export function mergeQueue(shown, view) {
  if (!view.waiting_diff) return view;
  const gone = new Set(view.waiting_left);
  const calls = new Map();
  for (const call of shown ? shown.waiting : []) if (!gone.has(call.call_id)) calls.set(call.call_id, call);
  for (const call of view.waiting) calls.set(call.call_id, call);
  const byWait = (a, b) => a.since - b.since || (a.call_id < b.call_id ? -1 : a.call_id > b.call_id ? 1 : 0);
  return { ...view, waiting: [...calls.values()].sort(byWait) };
}

// One WebSocket per page. onFrame gets every snapshot and delta in order; a gap in
// "seq" asks for a fresh snapshot, a lost connection reconnects (and gets one).
export function connectLive(onFrame, query = "") {
  let expected = 1;
  let retry = 500;
  const status = (key) => setText("live-status", t(key));
  const open = () => {
    status("live.connecting");
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${window.location.host}/api/live${query}`);
    expected = 1;
    ws.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      offset = frame.at - Date.now() / 1000;
      if (frame.type === "snapshot") {
        expected = frame.seq + 1;
        onFrame(frame);
        status("live.live");
        retry = 500;
      } else if (frame.seq !== expected) {
        ws.send(JSON.stringify({ type: "snapshot" }));
        expected = Number.NaN; // ignore deltas until the snapshot arrives
      } else {
        expected = frame.seq + 1;
        onFrame(frame);
      }
    });
    ws.addEventListener("close", () => {
      status("live.lost");
      setTimeout(open, retry);
      retry = Math.min(retry * 2, 10000);
    });
  };
  open();
}
