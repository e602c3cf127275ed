// Shared by the demo pages: query parameters, client options and the status line.
import { publish, subscribe } from "/client.js";

export { publish, subscribe };

const NAME = /^[A-Za-z0-9_\-.@]{1,100}$/;

/** A mailbox-safe query parameter, or the fallback. */
export function param(name, fallback) {
  const value = new URLSearchParams(location.search).get(name);
  return value !== null && NAME.test(value) ? value : fallback;
}

/** Knobs for trying transports by hand and for the browser tests: ?transport=, ?sseDeadlineMs=, ?share=0. */
export function clientOptions(overrides = {}) {
  const query = new URLSearchParams(location.search);
  const options = { ...overrides };
  const transport = query.get("transport");
  if (transport === "sse" || transport === "long-poll" || transport === "websocket" || transport === "auto") {
    options.transport = transport;
  }
  const deadline = Number(query.get("sseDeadlineMs"));
  if (deadline > 0) options.sseDeadlineMs = deadline;
  if (query.get("share") === "0") options.shareAcrossTabs = false;
  return options;
}

/** Renders a subscription's status into `element` (also as data- attributes the tests read). */
export function statusRenderer(element) {
  return (status) => {
    element.textContent = `${status.state} · ${status.transport} · ${status.role}`;
    element.dataset.state = status.state;
    element.dataset.transport = status.transport;
    element.dataset.role = status.role;
  };
}

export function timeOf(message) {
  return new Date(message.time).toLocaleTimeString();
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
