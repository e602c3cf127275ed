import {
  clientOptions,
  messageItem,
  param,
  publish,
  span,
  statusRenderer,
  subscribe,
  timeOf,
} from "/demo/assets/common.js";

/** Notifications kept in this browser; older ones drop off. */
const MAX_NOTIFICATIONS = 200;
const user = param("user", "alice");
const mailbox = `user:${user}`;
const storageKey = `herald-inbox:${user}`;
const list = document.getElementById("messages");
const unreadBadge = document.getElementById("unread");
const readAllButton = document.getElementById("read-all");
const errorLine = document.getElementById("error");
document.getElementById("user").textContent = user;

/** Where the user has read to, on the server: every message up to this seq is read. Undefined until known. */
let readSeq;

/** [{ message }], newest first; shared by this origin's tabs through localStorage. */
function load() {
  try {
    return JSON.parse(localStorage.getItem(storageKey) ?? "[]");
  } catch {
    return [];
  }
}

function save(entries) {
  localStorage.setItem(storageKey, JSON.stringify(entries.slice(0, MAX_NOTIFICATIONS)));
}

function showError(error) {
  errorLine.textContent = error ? error.message : "";
}

/** Marks read up to `message` (and so everything before it); every browser of this user hears it. */
function markRead(message) {
  subscription.markRead(message).then(() => showError(), showError);
}

function render() {
  const entries = load();
  list.replaceChildren(
    ...entries.map(({ message }) => {
      const item = messageItem(message, span("time", timeOf(message)), span("who", message.title ?? "alert"));
      const unread = readSeq !== undefined && message.seq > readSeq;
      item.classList.toggle("is-unread", unread);
      if (unread) {
        item.title = "Mark read up to here";
        item.addEventListener("click", () => markRead(message));
      }
      return item;
    }),
  );
  renderCount();
}

/** The count is the server's, so every browser of this user shows the same one. */
function renderCount() {
  const unread = subscription.unread(mailbox);
  unreadBadge.textContent = unread === undefined ? "…" : String(unread);
  unreadBadge.classList.toggle("is-zero", unread === 0);
  readAllButton.disabled = !unread;
  document.title = unread > 0 ? `(${unread}) Herald inbox` : "Herald inbox";
}

// The user is the reader: read state lives on the server, per user, whichever browser reads.
// The client saves its cursor in localStorage (the default), so reopening resumes where this browser stopped.
const subscription = subscribe(
  [mailbox],
  {
    onMessage(message) {
      const entries = load();
      if (!entries.some((entry) => entry.message.id === message.id)) {
        entries.unshift({ message });
        save(entries);
      }
      render();
    },
    onRead(event) {
      readSeq = event.seq;
      render();
    },
    onUnread: renderCount,
    onStatus: statusRenderer(document.getElementById("status")),
    onError: showError,
  },
  clientOptions({ reader: user, unread: true }),
);

subscription.readState().then((state) => {
  // A read event that arrived meanwhile is newer: positions only move forward.
  if (readSeq === undefined || state.seq > readSeq) readSeq = state.seq;
  render();
}, showError);

readAllButton.addEventListener("click", () => {
  const newest = load()[0];
  if (newest) markRead(newest.message);
});
document.getElementById("test-alert").addEventListener("click", () => {
  publish(mailbox, { title: "test", body: `Test alert at ${new Date().toLocaleTimeString()}` }).catch(showError);
});
render();
