import {
  clientOptions,
  curlExample,
  describeError,
  liveStatus,
  pageToken,
  param,
  publish,
  shortTime,
  span,
  subscribe,
  tokenSubject,
} from "/demo/assets/common.js";

const NICK_KEY = "herald-chat:nick";
/** Messages from one person less than this apart share one name and time. */
const GROUP_MS = 5 * 60_000;
/** How close to the bottom still counts as reading the newest messages. */
const BOTTOM_SLACK_PX = 48;
/** After connecting, how long the history may take to arrive before the room is shown as empty. */
const EMPTY_AFTER_MS = 250;
const room = param("room", "lobby");
const signedIn = pageToken() !== undefined;
const nick = param("nick", undefined) ?? tokenSubject() ?? savedNick();
const mailbox = `room:${room}`;
const log = document.getElementById("log");
const list = document.getElementById("messages");
const empty = document.getElementById("empty");
const pill = document.getElementById("new-messages");
const people = document.getElementById("people");
const sendError = document.getElementById("send-error");
const live = liveStatus(document.getElementById("status"), { mailboxes: [mailbox] });
document.getElementById("room").textContent = room;
document.getElementById("nick").textContent = nick;
document.title = `${room} · Herald chat`;
curlExample(document.getElementById("empty-curl"), mailbox);

/** A name this browser keeps across visits unless ?nick= picks another. */
function savedNick() {
  let saved = localStorage.getItem(NICK_KEY);
  if (!saved) {
    saved = `guest-${Math.random().toString(36).slice(2, 6)}`;
    localStorage.setItem(NICK_KEY, saved);
  }
  return saved;
}

/** Where the server has auth on, names that readers give themselves come back marked with this. */
const ANONYMOUS = "anonymous:";

function isMe(member) {
  if (signedIn) return member.sub === tokenSubject();
  return member.sub === nick || member.sub === ANONYMOUS + nick;
}

/** A token's info claim may carry a display name; otherwise the name the reader goes by. */
function displayName(member) {
  if (typeof member.info?.name === "string") return member.info.name;
  return member.sub.startsWith(ANONYMOUS) ? member.sub.slice(ANONYMOUS.length) : member.sub;
}

/** Who is here, as the subscription's presence events have built it: you first, then by arrival. */
function renderPeople(presence) {
  const members = [...(presence?.members ?? [])].sort(
    (a, b) => Number(isMe(b)) - Number(isMe(a)) || a.since.localeCompare(b.since),
  );
  document.getElementById("people-count").textContent = presence ? String(presence.count) : "";
  const listed = document.getElementById("members");
  const here = new Set(members.map((member) => member.sub));
  for (const item of [...listed.children]) if (!here.has(item.dataset.sub)) item.remove();
  // Only newcomers are added (and so animated); those already shown keep their place.
  const shown = new Set([...listed.children].map((item) => item.dataset.sub));
  for (const member of members) {
    if (shown.has(member.sub)) continue;
    const item = document.createElement("li");
    item.dataset.sub = member.sub;
    item.append(span("name", displayName(member)));
    if (member.sub.startsWith(ANONYMOUS)) item.title = "named itself; not signed in";
    if (isMe(member)) {
      item.append(span("you", "you"));
      listed.prepend(item);
    } else listed.append(item);
  }
}

// --- The conversation: grouped by sender, sticking to the newest unless the reader scrolled up.

/** The sender and time of the last message shown, to group the next one with it. */
let previous;
let unseen = 0;
/** Whether the reader was at the newest messages when last seen scrolling: a resize keeps them there. */
let stuck = true;

function atBottom() {
  return log.scrollHeight - log.scrollTop - log.clientHeight < BOTTOM_SLACK_PX;
}

function toBottom(smooth = false) {
  log.scrollTo({ top: log.scrollHeight, behavior: smooth ? "smooth" : "instant" });
}

function renderPill() {
  pill.hidden = unseen === 0;
  pill.textContent = `${unseen} new message${unseen === 1 ? "" : "s"} ↓`;
}

function messageElement(message) {
  const who = message.title ?? "someone";
  const mine = who === nick;
  const time = Date.parse(message.time);
  const grouped = previous !== undefined && previous.who === who && time - previous.time < GROUP_MS;
  previous = { who, time };
  const item = document.createElement("li");
  item.dataset.id = message.id;
  item.className = `msg${mine ? " mine" : ""}${grouped ? " cont" : ""}`;
  item.title = new Date(message.time).toLocaleString();
  if (!grouped) {
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.append(span("who", who));
    if (mine) meta.append(span("you", "you"));
    const stamp = document.createElement("time");
    stamp.className = "time";
    stamp.dateTime = message.time;
    stamp.textContent = shortTime(message.time);
    meta.append(stamp);
    item.append(meta);
  }
  item.append(span("body", message.body ?? ""));
  return { item, mine };
}

function show(item, mine) {
  // Measured now, not taken from the last scroll event: that may not have fired yet.
  const stick = atBottom() || mine;
  list.append(item);
  empty.hidden = true;
  if (stick) {
    stuck = true;
    toBottom();
  } else {
    unseen += 1;
    renderPill();
  }
}

log.addEventListener("scroll", () => {
  stuck = atBottom();
  if (unseen > 0 && stuck) {
    unseen = 0;
    renderPill();
  }
});
pill.addEventListener("click", () => toBottom(true));
// A resize (the phone keyboard opening, a window narrowed) keeps the newest in sight.
new ResizeObserver(() => {
  if (stuck) toBottom();
}).observe(log);

// A room shows its retained history on every visit, so no cursor is saved. The reader (the nick, or the
// token's subject) makes this page present in the room and names it in everyone's list.
const subscription = subscribe(
  [mailbox],
  {
    onMessage(message) {
      const { item, mine } = messageElement(message);
      show(item, mine);
      live.onMessage();
    },
    onGap() {
      const item = document.createElement("li");
      item.className = "system";
      item.append(span("body", "… older messages are no longer kept …"));
      previous = undefined;
      show(item, false);
    },
    onPresence() {
      renderPeople(subscription.present());
    },
    onStatus(status) {
      live.onStatus(status);
      // Until the first connection the room's history is not known; once its replay had a moment, an empty
      // room says so.
      if (status.state === "open") {
        setTimeout(() => {
          empty.hidden = list.children.length > 0;
        }, EMPTY_AFTER_MS);
      }
      // While reconnecting the list may be out of date; the snapshot on reconnecting replaces it.
      people.classList.toggle("is-stale", status.state !== "open");
    },
    onError: live.onError,
  },
  clientOptions({ cursorStore: null, presence: true, ...(signedIn ? {} : { reader: nick }) }),
);

function showSendError(error) {
  sendError.hidden = error === undefined;
  if (error === undefined) return;
  const { kind, text } = describeError(error);
  sendError.textContent =
    kind === "auth"
      ? "Not sent — this server needs a token that may publish here: add ?token=… to the address."
      : `Not sent — ${text}`;
}

document.getElementById("send").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("text");
  const body = input.value.trim();
  if (body === "") return;
  input.value = "";
  try {
    // The key makes a retried send safe: the server stores it once.
    await publish(mailbox, { title: nick, body }, { idempotencyKey: crypto.randomUUID() });
    showSendError(undefined);
  } catch (error) {
    showSendError(error);
    input.value = body;
  }
});
