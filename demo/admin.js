// The admin console: live charts from /v1/admin/stats/events, the busiest mailboxes, a mailbox inspector
// (retained messages, presence, a live tail, a publish form) and the configuration summary. Streams are
// read with fetch, not EventSource, so the admin key travels in the Authorization header, never in a URL.
import { createCharts, formatNumber } from "/demo/assets/admin-charts.js";

const KEY_STORAGE = "herald-admin-key";
const MAILBOXES_REFRESH_MS = 2000;
const RECONNECT_MS = 2000;
const TAIL_KEPT = 50;
const RETAINED_SHOWN = 50;

const $ = (id) => document.getElementById(id);
const charts = createCharts($("charts"));
let key = sessionStorage.getItem(KEY_STORAGE) ?? "";

function headers(extra = {}) {
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

function setStatus(text, tone) {
  const status = $("status");
  status.textContent = text;
  status.dataset.tone = tone;
}

/** 401/403 from the admin API: ask for a key (or a better one). */
function needKey(status, message) {
  const notice = $("notice");
  notice.hidden = false;
  $("notice-title").textContent = status === 401 ? "An admin key is needed" : "Not allowed";
  if (message) $("notice-text").textContent = message;
  setStatus(status === 401 ? "Needs an admin key" : "Refused", "down");
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers) });
  const text = await response.text();
  const json = text ? JSON.parse(text) : {};
  if (!response.ok) throw new HttpError(response.status, json.error?.message ?? response.statusText);
  return json;
}

/**
 * Reads Server-Sent Events from `path` with fetch, calling `onEvent(name, data, id)` for each, until
 * `signal` aborts or the stream ends (resolves) or fails (rejects).
 */
async function readEvents(path, onEvent, signal) {
  const response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new HttpError(response.status, body.error?.message ?? response.statusText);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end = buffer.indexOf("\n\n");
    while (end !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      let id;
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
        else if (line.startsWith("id: ")) id = line.slice(4);
      }
      if (data.length > 0) onEvent(name, data.join("\n"), id);
      end = buffer.indexOf("\n\n");
    }
  }
}

// --- Live stats

let statsAbort;
async function followStats() {
  statsAbort?.abort();
  const abort = new AbortController();
  statsAbort = abort;
  while (!abort.signal.aborted) {
    try {
      setStatus("Connecting…", "wait");
      await readEvents(
        "/v1/admin/stats/events",
        (name, data) => {
          if (name === "history") {
            charts.push(JSON.parse(data).samples);
            setStatus("Live", "live");
            $("notice").hidden = true;
          } else if (name === "sample") {
            const sample = JSON.parse(data);
            charts.push([sample]);
            showTotals(sample);
          }
        },
        abort.signal,
      );
    } catch (error) {
      if (abort.signal.aborted) return;
      if (error.status === 401 || error.status === 403) return needKey(error.status, error.message);
      setStatus("Reconnecting…", "wait");
    }
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

function showTotals(sample) {
  const { store } = sample;
  $("totals").textContent =
    `store: ${formatNumber(store.mailboxes)} mailboxes, ${formatNumber(store.messages)} messages, ` +
    `${formatBytes(store.bytes)} · auth failures ${formatNumber(sample.authFailures)}/s`;
}

function formatBytes(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${bytes} B`;
}

// --- Busiest mailboxes

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function refreshMailboxes() {
  try {
    const query = $("search").value.trim();
    const { mailboxes } = await api(`/v1/admin/mailboxes?limit=20&q=${encodeURIComponent(query)}`);
    const rows = mailboxes.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.mailbox = row.mailbox;
      tr.tabIndex = 0;
      tr.append(
        cell(row.mailbox, "name"),
        cell(String(row.subscribers), "num"),
        cell(formatNumber(row.publishesPerSecond), "num"),
        cell(`${row.retained}${row.retainedAtLeast ? "+" : ""}`, "num"),
        cell(formatBytes(row.bytes), "num"),
      );
      tr.addEventListener("click", () => inspect(row.mailbox));
      tr.addEventListener("keydown", (event) => event.key === "Enter" && inspect(row.mailbox));
      if (row.mailbox === inspected) tr.classList.add("selected");
      return tr;
    });
    $("mailboxes").tBodies[0].replaceChildren(...rows);
    $("mailboxes-empty").hidden = rows.length > 0;
  } catch (error) {
    if (error.status === 401 || error.status === 403) needKey(error.status, error.message);
  }
}

// --- Inspector

let inspected;
let tailAbort;

function messageRow(message) {
  const li = document.createElement("li");
  const meta = document.createElement("span");
  meta.className = "muted";
  meta.textContent = `#${message.seq} ${message.time.slice(11, 19)}`;
  const text = document.createElement("span");
  text.className = "text";
  const fields = { ...message };
  for (const field of ["id", "mailbox", "seq", "time", "expires", "cursor"]) delete fields[field];
  text.textContent = JSON.stringify(fields);
  li.append(meta, text);
  return li;
}

async function loadRetained(mailbox) {
  const path = `/v1/mailboxes/${encodeURIComponent(mailbox)}`;
  const [read, presence] = await Promise.all([
    api(`${path}/messages?limit=1000`),
    api(`${path}/presence`).catch(() => undefined),
  ]);
  if (mailbox !== inspected) return;
  const newest = read.messages.slice(-RETAINED_SHOWN).reverse();
  $("retained").replaceChildren(...newest.map(messageRow));
  $("retained-count").textContent = `${read.messages.length}${read.messages.length >= 1000 ? "+" : ""} (newest first)`;
  if (presence) {
    const names = (presence.members ?? []).map((member) => member.sub);
    $("presence").textContent =
      `present: ${presence.count ?? names.length}${names.length ? ` (${names.slice(0, 10).join(", ")})` : ""}`;
  }
}

async function followTail(mailbox) {
  tailAbort?.abort();
  const abort = new AbortController();
  tailAbort = abort;
  let cursor = "now";
  const status = $("tail-status");
  while (!abort.signal.aborted) {
    try {
      status.textContent = "connecting";
      status.dataset.tone = "wait";
      await readEvents(
        `/v1/mailboxes/${encodeURIComponent(mailbox)}/events?cursor=${encodeURIComponent(cursor)}`,
        (name, data, id) => {
          if (id) cursor = id;
          if (name === "cursor") {
            status.textContent = "tailing";
            status.dataset.tone = "live";
          } else if (name === "message") {
            const tail = $("tail");
            tail.prepend(messageRow(JSON.parse(data)));
            while (tail.children.length > TAIL_KEPT) tail.lastElementChild.remove();
          } else if (name === "gap") {
            const li = document.createElement("li");
            li.className = "gap";
            li.textContent = "gap: some messages were missed";
            $("tail").prepend(li);
          }
        },
        abort.signal,
      );
    } catch (error) {
      if (abort.signal.aborted) return;
      status.textContent = error.status ? `refused (${error.status})` : "reconnecting";
      status.dataset.tone = "down";
      if (error.status === 400 || error.status === 401 || error.status === 403) return;
    }
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

function inspect(mailbox) {
  inspected = mailbox;
  $("inspect-input").value = mailbox;
  $("inspect-name").textContent = mailbox;
  $("inspector").hidden = false;
  $("inspector-empty").hidden = true;
  $("tail").replaceChildren();
  for (const tr of $("mailboxes").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.mailbox === mailbox);
  loadRetained(mailbox).catch((error) => {
    $("retained-count").textContent = `could not read: ${error.message}`;
  });
  followTail(mailbox);
  const url = new URL(location.href);
  url.searchParams.set("mailbox", mailbox);
  history.replaceState(null, "", url);
}

$("inspect-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const mailbox = $("inspect-input").value.trim();
  if (mailbox) inspect(mailbox);
});

$("publish-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const title = $("publish-title").value.trim();
  const body = $("publish-body").value.trim();
  if (!inspected || (!title && !body)) return;
  const message = { ...(title ? { title } : {}), ...(body ? { body } : {}) };
  try {
    await api(`/v1/mailboxes/${encodeURIComponent(inspected)}/messages`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(message),
    });
    $("publish-body").value = "";
    await loadRetained(inspected);
  } catch (error) {
    $("tail-status").textContent = `publish refused: ${error.message}`;
  }
});

// --- Configuration

function renderValue(value) {
  if (value === null || value === undefined) return "—";
  if (Array.isArray(value)) return value.length ? value.map(renderValue).join(", ") : "none";
  if (typeof value === "object") {
    return Object.entries(value)
      .map(([name, inner]) => `${name}: ${renderValue(inner)}`)
      .join("; ");
  }
  return String(value);
}

async function loadConfig() {
  try {
    const config = await api("/v1/admin/config");
    $("where").textContent = `${config.store.kind} store · auth ${config.auth.mode}`;
    const blocks = Object.entries(config).map(([section, value]) => {
      const block = document.createElement("dl");
      const title = document.createElement("h3");
      title.textContent = section;
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        block.append(Object.assign(document.createElement("dd"), { textContent: renderValue(value) }));
      } else {
        for (const [name, inner] of Object.entries(value)) {
          block.append(
            Object.assign(document.createElement("dt"), { textContent: name }),
            Object.assign(document.createElement("dd"), { textContent: renderValue(inner) }),
          );
        }
      }
      const wrap = document.createElement("div");
      wrap.append(title, block);
      return wrap;
    });
    $("config").replaceChildren(...blocks);
  } catch (error) {
    if (error.status === 401 || error.status === 403) needKey(error.status, error.message);
  }
}

// --- Key

function start() {
  followStats();
  loadConfig();
  refreshMailboxes();
  if (inspected) inspect(inspected);
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  key = $("key-input").value.trim();
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  $("key-input").value = "";
  $("notice").hidden = true;
  start();
});
$("key-forget").addEventListener("click", () => {
  key = "";
  sessionStorage.removeItem(KEY_STORAGE);
});
$("key-button").addEventListener("click", () => {
  $("notice").hidden = !$("notice").hidden;
});

let searchTimer;
$("search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(refreshMailboxes, 200);
});
setInterval(() => {
  if (document.visibilityState === "visible") refreshMailboxes();
}, MAILBOXES_REFRESH_MS);

inspected = new URLSearchParams(location.search).get("mailbox") ?? undefined;
start();
