import {
  clientOptions,
  curlExample,
  liveStatus,
  messageItem,
  param,
  span,
  subscribe,
  timeOf,
} from "/demo/assets/common.js";

/** Rows kept on screen; the oldest scroll away. */
const MAX_ROWS = 200;
/** Tiles for the latest value of each numeric field; more fields show only in the rows. */
const MAX_TILES = 6;
const feed = param("feed", "demo");
const mailbox = `feed:${feed}`;
const list = document.getElementById("messages");
const tiles = document.getElementById("latest");
const waiting = document.getElementById("waiting");
const counter = document.getElementById("count");
const live = liveStatus(document.getElementById("status"), { mailboxes: [mailbox] });
const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
let received = 0;
document.getElementById("feed").textContent = feed;
document.getElementById("waiting-mailbox").textContent = mailbox;
curlExample(
  document.getElementById("waiting-curl"),
  mailbox,
  `-H 'Content-Type: application/json' -d '{"body":"ACME 101","data":{"price":101}}'`,
);

function numbers(data) {
  if (data === null || typeof data !== "object") return [];
  return Object.entries(data).filter(([, value]) => typeof value === "number" && Number.isFinite(value));
}

/** The latest value of each field, with which way it moved. */
function showLatest(fields) {
  for (const [field, value] of fields) {
    let tile = tiles.querySelector(`[data-field="${CSS.escape(field)}"]`);
    if (!tile) {
      if (tiles.children.length >= MAX_TILES) continue;
      tile = document.createElement("div");
      tile.className = "tile";
      tile.dataset.field = field;
      tile.append(span("label", field), span("value", ""), span("move", ""));
      tiles.append(tile);
    }
    const before = Number(tile.dataset.value);
    const move = Number.isNaN(before) || value === before ? "same" : value > before ? "up" : "down";
    tile.dataset.value = String(value);
    tile.dataset.move = move;
    tile.querySelector(".value").textContent = number.format(value);
    tile.querySelector(".move").textContent =
      move === "same" ? "" : `${move === "up" ? "▲" : "▼"} ${number.format(Math.abs(value - before))}`;
  }
}

function atBottom() {
  return list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
}

/** Whether the reader was at the newest rows when last seen scrolling: a resize keeps them there. */
let stuck = true;
list.addEventListener("scroll", () => {
  stuck = atBottom();
});
// A resize (a phone turned, a window narrowed) keeps the newest rows in view.
new ResizeObserver(() => {
  if (stuck) list.scrollTop = list.scrollHeight;
}).observe(list);

// Only what arrives from now on: a ticker is a live view, not a history.
subscribe(
  [mailbox],
  {
    onMessage(message) {
      received += 1;
      counter.textContent = number.format(received);
      waiting.hidden = true;
      list.hidden = false;
      const fields = numbers(message.data);
      showLatest(fields);
      const stick = atBottom();
      const values = fields.map(([field, value]) => `${field}=${value}`).join(" ");
      list.append(messageItem(message, span("time", timeOf(message)), span("values", values)));
      while (list.children.length > MAX_ROWS) list.firstElementChild.remove();
      if (stick) {
        stuck = true;
        list.scrollTop = list.scrollHeight;
      }
      live.onMessage();
    },
    onStatus: live.onStatus,
    onError: live.onError,
  },
  clientOptions({ transport: "websocket", cursor: "now", cursorStore: null }),
);
