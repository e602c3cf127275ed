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
const errorLine = document.getElementById("error");
document.getElementById("user").textContent = user;

/** [{ message, read }], newest first; shared by this origin's tabs through localStorage. */
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

function render() {
  const entries = load();
  list.replaceChildren(
    ...entries.map(({ message, read }) => {
      const item = messageItem(message, span("time", timeOf(message)), span("who", message.title ?? "alert"));
      if (!read) item.classList.add("is-unread");
      item.addEventListener("click", () => {
        save(load().map((entry) => (entry.message.id === message.id ? { ...entry, read: true } : entry)));
        render();
      });
      return item;
    }),
  );
  const unread = entries.filter((entry) => !entry.read).length;
  unreadBadge.textContent = String(unread);
  document.title = unread > 0 ? `(${unread}) Herald inbox` : "Herald inbox";
}

// The client saves its cursor in localStorage (the default), so reopening resumes exactly where this browser stopped.
subscribe(
  [mailbox],
  {
    onMessage(message) {
      const entries = load();
      if (!entries.some((entry) => entry.message.id === message.id)) {
        entries.unshift({ message, read: false });
        save(entries);
      }
      render();
    },
    onStatus: statusRenderer(document.getElementById("status")),
    onError(error) {
      errorLine.textContent = error.message;
    },
  },
  clientOptions(),
);

// Another tab marked something read.
addEventListener("storage", (event) => {
  if (event.key === storageKey) render();
});
document.getElementById("read-all").addEventListener("click", () => {
  save(load().map((entry) => ({ ...entry, read: true })));
  render();
});
document.getElementById("test-alert").addEventListener("click", () => {
  publish(mailbox, { title: "test", body: `Test alert at ${new Date().toLocaleTimeString()}` }).catch((error) => {
    errorLine.textContent = error.message;
  });
});
render();
