// Shared by the demo pages: query parameters, the token, client options, the status line and the notices
// (server down, token needed) every page shows the same way.
import {
  disablePush as clientDisablePush,
  enablePush as clientEnablePush,
  latest as clientLatest,
  publish as clientPublish,
  pushEnabled as clientPushEnabled,
  vapidPublicKey as clientVapidPublicKey,
  pushSupported,
  subscribe,
} from "/client.js";

export { pushSupported, subscribe };

const NAME = /^[A-Za-z0-9_\-.@]{1,100}$/;
/** A bearer token as it may appear in an address: a JWT or an opaque token, nothing that needs escaping. */
const TOKEN = /^[A-Za-z0-9_\-.~+/=]{1,4096}$/;

/** A mailbox-safe query parameter, or the fallback. */
export function param(name, fallback) {
  const value = new URLSearchParams(location.search).get(name);
  return value !== null && NAME.test(value) ? value : fallback;
}

/** The subscriber token the page was opened with (`?token=`), for servers with auth on. */
export function pageToken() {
  const value = new URLSearchParams(location.search).get("token");
  return value !== null && TOKEN.test(value) ? value : undefined;
}

/** The `sub` of the page's token (who the server takes this reader to be), read without checking it. */
export function tokenSubject() {
  const token = pageToken();
  const payload = token?.split(".")[1];
  if (!payload) return undefined;
  try {
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const sub = JSON.parse(json).sub;
    return typeof sub === "string" ? sub : undefined;
  } catch {
    return undefined;
  }
}

const token = pageToken();
/** The client calls this before every connection attempt and publish. */
const tokenProvider = token === undefined ? undefined : () => token;

/**
 * Options for subscribe(): the page's token, and knobs for trying transports by hand and for the browser
 * tests: ?transport=, ?sseDeadlineMs=, ?share=0.
 */
export function clientOptions(overrides = {}) {
  const query = new URLSearchParams(location.search);
  const options = { ...overrides };
  if (tokenProvider) options.token = tokenProvider;
  const transport = query.get("transport");
  if (transport === "sse" || transport === "long-poll" || transport === "websocket" || transport === "auto") {
    options.transport = transport;
  }
  const deadline = Number(query.get("sseDeadlineMs"));
  if (deadline > 0) options.sseDeadlineMs = deadline;
  if (query.get("share") === "0") options.shareAcrossTabs = false;
  return options;
}

/** The client's publish, with the page's token. */
export function publish(mailbox, message, options = {}) {
  return clientPublish(mailbox, message, tokenProvider ? { token: tokenProvider, ...options } : options);
}

/** The client's latest() (each key's current value, and the cursor to subscribe from), with the page's token. */
export function latest(mailbox, options = {}) {
  return clientLatest(mailbox, tokenProvider ? { token: tokenProvider, ...options } : options);
}

/** Web Push (the client's enablePush, disablePush, pushEnabled, vapidPublicKey), with the page's token. */
export function enablePush(options) {
  return clientEnablePush(tokenProvider ? { token: tokenProvider, ...options } : options);
}

export function disablePush(options = {}) {
  return clientDisablePush(tokenProvider ? { token: tokenProvider, ...options } : options);
}

export function pushEnabled(options = {}) {
  return clientPushEnabled(options);
}

export function vapidPublicKey(options = {}) {
  return clientVapidPublicKey(tokenProvider ? { token: tokenProvider, ...options } : options);
}

// Links between the demos keep the token, so a reader with auth on gives it once.
if (token !== undefined) {
  for (const link of document.querySelectorAll('a[href^="/"]')) {
    const url = new URL(link.href);
    url.searchParams.set("token", token);
    link.href = `${url.pathname}${url.search}`;
  }
}

const TRANSPORT_NAMES = { sse: "Server-Sent Events", "long-poll": "long-polling", websocket: "a WebSocket" };
const ROLES = {
  leader: "this tab holds the connection for every tab of this browser",
  follower: "sharing the connection another tab of this browser holds",
  solo: "this tab's own connection",
};
/** How long "caught up on N" stays in the status line after a reconnect. */
const CAUGHT_UP_SHOW_MS = 5000;
/** Messages arriving this soon after a reconnect are the ones missed meanwhile. */
const CATCH_UP_WINDOW_MS = 1500;

/**
 * What a client error means for someone looking at the page, in a sentence; `auth` when the answer is
 * "this server needs a token" (or refused the one given).
 */
export function describeError(error) {
  const status = error?.status;
  if (typeof status !== "number") return { kind: "other", text: String(error?.message ?? error) };
  if (status === 0) {
    return {
      kind: "down",
      text: `Can't reach the Herald server at ${location.origin}. Is it running? This page keeps trying and catches up on everything published meanwhile.`,
    };
  }
  if (status === 401) return { kind: "auth", text: error.message };
  if (status === 403) return { kind: "forbidden", text: `Not allowed: ${error.message}` };
  if (status === 429) return { kind: "busy", text: `The server asks to slow down: ${error.message}` };
  if (error.code === "draining") {
    return { kind: "down", text: "The server is restarting. This page reconnects and catches up on its own." };
  }
  return { kind: "other", text: error.message };
}

/** The <div id="notice"> of the page, made (after the header) if the page has none. */
function noticeElement() {
  let element = document.getElementById("notice");
  if (!element) {
    element = document.createElement("div");
    element.id = "notice";
    element.className = "notice";
    element.hidden = true;
    const header = document.querySelector("body > header");
    if (header) header.after(element);
    else document.body.prepend(element);
  }
  return element;
}

function paragraph(text, className) {
  const element = document.createElement("p");
  if (className) element.className = className;
  element.textContent = text;
  return element;
}

/** The "this server needs a token" panel: how to get one, and a field to open the page with it. */
function authPanel(element, error, mailboxes) {
  const given = token !== undefined;
  const title = document.createElement("h2");
  title.textContent = given ? "The server refused this page's token" : "This server needs a token";
  const explain = given
    ? `Herald answered: ${error.message}. Open the page with a valid token in its address (?token=…).`
    : `Herald at ${location.origin} has auth on, so reading ${mailboxes.join(", ") || "a mailbox"} needs a subscriber token. Add it to this page's address as ?token=… — every demo page accepts one.`;
  const how = paragraph("Someone with an API key that may mint tokens can make one:", "muted");
  const command = document.createElement("pre");
  const patterns = mailboxes.map((mailbox) => ` --mailbox '${mailbox}'`).join("");
  command.textContent = `HERALD_API_KEY=… npx herald token --sub you${patterns}${
    mailboxes.length ? ` --publish '${mailboxes[0]}'` : ""
  }`;
  const form = document.createElement("form");
  form.className = "token-form";
  const input = document.createElement("input");
  input.type = "password";
  input.name = "token";
  input.placeholder = "Paste a token";
  input.autocomplete = "off";
  input.setAttribute("aria-label", "Token");
  const button = document.createElement("button");
  button.type = "submit";
  button.className = "primary";
  button.textContent = "Open with this token";
  form.append(input, button);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!TOKEN.test(value)) return;
    const url = new URL(location.href);
    url.searchParams.set("token", value);
    location.assign(url);
  });
  element.replaceChildren(title, paragraph(explain), how, command, form);
}

/**
 * The connection, as a person reads it: a status line ("Live", "Reconnecting… (will catch up)",
 * "Offline — missed messages will arrive when back"; the transport in its tooltip) and, when something
 * is wrong, a notice in a sentence (server down, token needed). The status element keeps the client's
 * own words in data-state, data-transport and data-role.
 *
 * Returns handlers for subscribe(): `onStatus`, `onError`, and `onMessage` to call from the page's own
 * (it counts what a reconnect caught up on).
 */
export function liveStatus(element, { mailboxes = [] } = {}) {
  let status;
  let everOpen = false;
  /** Network failures since the connection was last open: the second makes the page "offline". */
  let networkFailures = 0;
  let problem;
  let caughtUp = 0;
  let catchUpUntil = 0;
  let caughtUpTimer;
  /** What the notice shows now, so a retry failing the same way does not rebuild it (and a half-typed token). */
  let shown;
  const notice = noticeElement();

  function words() {
    if (!status) return { text: "Connecting…", tone: "wait" };
    if (status.state === "open") {
      if (caughtUp > 0) {
        return { text: `Live — caught up on ${caughtUp} missed message${caughtUp === 1 ? "" : "s"}`, tone: "live" };
      }
      return { text: "Live", tone: "live" };
    }
    if (status.state === "closed") {
      return { text: problem ? "Stopped" : "Closed", tone: "down" };
    }
    if (problem?.kind === "auth") return { text: "Needs a token", tone: "down" };
    if (problem?.kind === "forbidden") return { text: "Not allowed", tone: "down" };
    const offline = networkFailures >= 2 || navigator.onLine === false;
    if (offline) {
      return {
        text: everOpen ? "Offline — missed messages will arrive when back" : "Offline — waiting for the server",
        tone: "down",
      };
    }
    return { text: everOpen ? "Reconnecting… (will catch up)" : "Connecting…", tone: "wait" };
  }

  function render() {
    const { text, tone } = words();
    element.textContent = text;
    element.dataset.tone = tone;
    if (status) {
      element.dataset.state = status.state;
      element.dataset.transport = status.transport;
      element.dataset.role = status.role;
      element.title = `Over ${TRANSPORT_NAMES[status.transport] ?? status.transport}; ${ROLES[status.role] ?? status.role}`;
    }
    renderNotice();
  }

  function renderNotice() {
    const show = problem !== undefined && (problem.kind !== "down" || networkFailures >= 2 || !everOpen);
    notice.hidden = !show;
    if (!show) {
      delete notice.dataset.problem;
      notice.replaceChildren();
      shown = undefined;
      return;
    }
    const key = `${problem.kind}:${problem.text}`;
    if (shown === key) return;
    shown = key;
    notice.dataset.problem = problem.kind;
    if (problem.kind === "auth") authPanel(notice, problem.error, mailboxes);
    else notice.replaceChildren(paragraph(problem.text));
  }

  addEventListener("online", render);
  addEventListener("offline", render);

  return {
    onStatus(next) {
      const reconnected = next.state === "open" && status?.state !== "open" && everOpen;
      status = next;
      if (next.state === "open") {
        everOpen = true;
        networkFailures = 0;
        problem = undefined;
        if (reconnected) {
          caughtUp = 0;
          catchUpUntil = Date.now() + CATCH_UP_WINDOW_MS;
        }
      } else {
        catchUpUntil = 0;
      }
      render();
    },
    onError(error) {
      problem = { ...describeError(error), error };
      if (problem.kind === "down") networkFailures += 1;
      render();
    },
    onMessage() {
      if (Date.now() > catchUpUntil) return;
      caughtUp += 1;
      clearTimeout(caughtUpTimer);
      caughtUpTimer = setTimeout(() => {
        caughtUp = 0;
        render();
      }, CAUGHT_UP_SHOW_MS);
      render();
    },
  };
}

/** Renders a subscription's status into `element`: the onStatus half of liveStatus(). */
export function statusRenderer(element, options) {
  return liveStatus(element, options).onStatus;
}

export function timeOf(message) {
  return new Date(message.time).toLocaleTimeString();
}

/** Hours and minutes, as a chat or an inbox shows them. */
export function shortTime(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** A list item showing a message's body (always), with optional parts before it. */
export function messageItem(message, ...before) {
  const item = document.createElement("li");
  item.dataset.id = message.id;
  for (const part of before) item.append(part);
  const body = document.createElement("span");
  body.className = "body";
  body.textContent = message.body ?? "";
  item.append(body);
  return item;
}

export function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

/** Fills `element` with a curl command publishing to `mailbox` on this server (with the token header if any). */
export function curlExample(element, mailbox, body = "-d hi") {
  const auth = token === undefined ? "" : `-H "Authorization: Bearer $HERALD_API_KEY" `;
  element.textContent = `curl ${auth}${body} ${location.origin}/v1/mailboxes/${mailbox}/messages`;
}
