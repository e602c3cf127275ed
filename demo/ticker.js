import { clientOptions, messageItem, param, span, statusRenderer, subscribe, timeOf } from "/demo/assets/common.js";

/** Rows kept on screen; the oldest scroll away. */
const MAX_ROWS = 200;
const feed = param("feed", "demo");
const list = document.getElementById("messages");
const counter = document.getElementById("count");
const errorLine = document.getElementById("error");
let received = 0;
document.getElementById("feed").textContent = feed;

function values(data) {
  if (data === null || typeof data !== "object") return "";
  return Object.entries(data)
    .filter(([, value]) => typeof value === "number")
    .map(([field, value]) => `${field}=${value}`)
    .join(" ");
}

// Only what arrives from now on: a ticker is a live view, not a history.
subscribe(
  [`feed:${feed}`],
  {
    onMessage(message) {
      received += 1;
      counter.textContent = String(received);
      const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
      list.append(messageItem(message, span("time", timeOf(message)), span("who", values(message.data))));
      while (list.children.length > MAX_ROWS) list.firstElementChild.remove();
      if (stick) list.scrollTop = list.scrollHeight;
    },
    onStatus: statusRenderer(document.getElementById("status")),
    onError(error) {
      errorLine.textContent = error.message;
    },
  },
  clientOptions({ transport: "websocket", cursor: "now", cursorStore: null }),
);
