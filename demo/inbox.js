import {
  clientOptions,
  curlExample,
  describeError,
  disablePush,
  enablePush,
  liveStatus,
  pageToken,
  param,
  publish,
  pushEnabled,
  pushSupported,
  shortTime,
  span,
  subscribe,
  tokenSubject,
  vapidPublicKey,
} from "/demo/assets/common.js";

/** Notifications kept in this browser; older ones drop off. */
const MAX_NOTIFICATIONS = 200;
/** After connecting, how long what was published meanwhile may take to arrive before the inbox shows as empty. */
const EMPTY_AFTER_MS = 250;
const signedIn = pageToken() !== undefined;
const user = param("user", undefined) ?? tokenSubject() ?? "alice";
const mailbox = `user:${user}`;
const storageKey = `herald-inbox:${user}`;
const list = document.getElementById("messages");
const empty = document.getElementById("empty");
const unreadBadge = document.getElementById("unread");
const readAllButton = document.getElementById("read-all");
const actionError = document.getElementById("action-error");
const live = liveStatus(document.getElementById("status"), { mailboxes: [mailbox] });
document.getElementById("user").textContent = user;
document.getElementById("empty-mailbox").textContent = mailbox;
curlExample(document.getElementById("empty-curl"), mailbox, "-d 'Your order has shipped'");

/** Where the user has read to, on the server: every message up to this seq is read. Undefined until known. */
let readSeq;
/** Whether the server had its chance to deliver what this browser has not seen: only then is "empty" true. */
let connected = false;

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

/** A failed click (mark read, test alert) in a sentence beside the buttons; undefined clears it. */
function showActionError(error) {
  actionError.hidden = error === undefined;
  actionError.textContent = error === undefined ? "" : describeError(error).text;
}

/** Marks read up to `message` (and so everything before it); every browser of this user hears it. */
function markRead(message) {
  subscription.markRead(message).then(() => showActionError(undefined), showActionError);
}

function notification(message) {
  const item = document.createElement("li");
  item.dataset.id = message.id;
  const head = document.createElement("div");
  head.className = "meta";
  const stamp = document.createElement("time");
  stamp.className = "time";
  stamp.dateTime = message.time;
  stamp.textContent = shortTime(message.time);
  stamp.title = new Date(message.time).toLocaleString();
  head.append(span("who", message.title ?? "alert"), stamp);
  item.append(head, span("body", message.body ?? ""));
  const unread = readSeq !== undefined && message.seq > readSeq;
  item.classList.toggle("is-unread", unread);
  if (unread) {
    item.title = "Mark read up to here";
    item.tabIndex = 0;
    item.addEventListener("click", () => markRead(message));
    item.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        markRead(message);
      }
    });
  }
  return item;
}

function render() {
  const entries = load();
  list.replaceChildren(...entries.map(({ message }) => notification(message)));
  empty.hidden = !(connected && entries.length === 0);
  renderCount();
}

/** The count is the server's, so every browser of this user shows the same one. */
function renderCount() {
  const unread = subscription.unread(mailbox);
  unreadBadge.textContent = unread === undefined ? "…" : String(unread);
  unreadBadge.title = unread === undefined ? "unread: asking the server" : `${unread} unread`;
  unreadBadge.classList.toggle("is-zero", unread === 0);
  readAllButton.disabled = !unread;
  document.title = unread > 0 ? `(${unread}) Herald inbox` : "Herald inbox";
}

// The user is the reader (or, with a token, its subject): read state lives on the server, per user, whichever
// browser reads. The client saves its cursor in localStorage (the default), so reopening resumes where this
// browser stopped.
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
      live.onMessage();
    },
    onRead(event) {
      readSeq = event.seq;
      render();
    },
    onUnread: renderCount,
    onStatus(status) {
      live.onStatus(status);
      if (status.state === "open" && !connected) {
        setTimeout(() => {
          connected = true;
          render();
        }, EMPTY_AFTER_MS);
      }
    },
    onError: live.onError,
  },
  clientOptions({ unread: true, ...(signedIn ? {} : { reader: user }) }),
);

subscription.readState().then((state) => {
  // A read event that arrived meanwhile is newer: positions only move forward.
  if (readSeq === undefined || state.seq > readSeq) readSeq = state.seq;
  render();
}, live.onError);

readAllButton.addEventListener("click", () => {
  const newest = load()[0];
  if (newest) markRead(newest.message);
});
document.getElementById("test-alert").addEventListener("click", () => {
  publish(mailbox, { title: "test", body: `Test alert at ${new Date().toLocaleTimeString()}` }).then(
    () => showActionError(undefined),
    showActionError,
  );
});

// "Notify me when closed": Web Push through Herald's service worker, which shows an alert as a notification
// while no focused tab shows this inbox (this one answers its question while it is live and in front).
const pushSwitch = document.getElementById("push-switch");
const pushNote = document.getElementById("push-note");
const NO_PUSH_KEYS = "This server has no Web Push keys: see README, Web Push.";

/** The switch stays off and disabled, with why beneath the toolbar. */
function pushUnavailable(text) {
  pushSwitch.checked = false;
  pushSwitch.disabled = true;
  pushNote.textContent = text;
  pushNote.hidden = false;
}

const pushOptions = { mailboxes: [mailbox], openUrl: location.pathname + location.search };

async function showPushState() {
  pushSwitch.checked = await pushEnabled();
  pushSwitch.disabled = false;
}

async function setUpPush() {
  if (!pushSupported()) {
    pushUnavailable("This browser cannot show notifications while the page is closed (it has no Web Push).");
    return;
  }
  if (Notification.permission === "denied") {
    pushUnavailable("Notifications are blocked for this site: allow them in the browser's site settings.");
    return;
  }
  try {
    await vapidPublicKey();
  } catch (error) {
    if (error?.code === "push_unavailable") pushUnavailable(NO_PUSH_KEYS);
    else showActionError(error);
    return;
  }
  // Turned on before: renew it (a subscription nobody renews lapses on the server); permission is granted.
  if (await pushEnabled()) await enablePush(pushOptions);
  await showPushState();
}

pushSwitch.addEventListener("change", async () => {
  const on = pushSwitch.checked;
  pushSwitch.disabled = true;
  pushSwitch.setAttribute("aria-busy", "true");
  try {
    if (on) await enablePush(pushOptions);
    else await disablePush();
    showActionError(undefined);
  } catch (error) {
    if (error?.code === "push_unavailable") {
      pushUnavailable(NO_PUSH_KEYS);
      return;
    }
    showActionError(error);
  } finally {
    pushSwitch.removeAttribute("aria-busy");
  }
  await showPushState();
});

render();
setUpPush().catch(showActionError);
