// The desk work shared by the agent panel and the wallboard: escalations and transfers,
// shift handover notes, quality review. Text only (textContent), never HTML.
import { api, el, setText, t } from "./common.js";

function when(iso) {
  const lang = document.body.dataset.lang;
  return new Date(iso).toLocaleString(lang, { dateStyle: "short", timeStyle: "short" });
}

// -- escalations ----------------------------------------------------------------------------
// Each list keeps the escalations it shows by id: fetched on a snapshot of the live feed,
// then changed by the feed's desk facts (no polling). A fact that arrives while the list is
// being fetched is applied again on top of the fetched list.

const escalationLists = new Map(); // list id -> { canResolve, items, pending }

function renderEscalations(listId) {
  const list = escalationLists.get(listId);
  const items = [...list.items.values()].sort((a, b) => b.id - a.id);
  document
    .getElementById(listId)
    .replaceChildren(...items.map((escalation) => escalationLine(escalation, listId)));
}

function applyEscalation(list, escalation) {
  if (escalation.open) list.items.set(escalation.id, escalation);
  else list.items.delete(escalation.id);
}

function escalationLine(escalation, listId) {
  const line = el(
    "li",
    { dataset: { ticket: escalation.ticket, kind: escalation.kind, escalation: String(escalation.id) } },
    el("strong", {}, escalation.ticket),
    " ",
    el("span", { class: `kind ${escalation.kind}` }, t(`up.kind.${escalation.kind}`)),
    escalation.target_queue ? ` → ${escalation.target_queue}` : "",
    " · ",
    el("span", { class: "reason" }, escalation.reason),
    " ",
    el("small", {}, t("up.by", { name: escalation.raised_by }), " ", when(escalation.raised_at)),
  );
  if (escalationLists.get(listId).canResolve) {
    const button = el("button", { type: "button", class: "resolve" }, t("up.resolve"));
    button.addEventListener("click", async () => {
      const resolved = await api("POST", `/api/escalations/${escalation.id}/resolve`);
      applyEscalation(escalationLists.get(listId), resolved);
      renderEscalations(listId);
    });
    line.append(" ", button);
  }
  return line;
}

export async function showEscalations(listId, canResolve) {
  const list = escalationLists.get(listId) ?? { canResolve, items: new Map(), pending: null };
  list.canResolve = canResolve;
  escalationLists.set(listId, list);
  list.pending = [];
  try {
    const data = await api("GET", "/api/escalations");
    list.items = new Map(data.escalations.map((escalation) => [escalation.id, escalation]));
    for (const escalation of list.pending) applyEscalation(list, escalation);
  } finally {
    list.pending = null;
  }
  renderEscalations(listId);
}

// -- handover notes -------------------------------------------------------------------------

const unread = { items: new Map(), pending: null, shown: false };

function renderHandover() {
  const notes = [...unread.items.values()].sort((a, b) => a.id - b.id);
  document.getElementById("handover-none").hidden = notes.length > 0;
  document.getElementById("handover-unread").replaceChildren(...notes.map(noteLine));
}

function noteLine(note) {
  const read = el("button", { type: "button", class: "read" }, t("handover.read"));
  read.addEventListener("click", async () => {
    await api("POST", `/api/handover/${note.id}/read`);
    unread.items.delete(note.id);
    renderHandover();
  });
  return el(
    "li",
    { dataset: { note: String(note.id) } },
    el("small", {}, note.author, " · ", when(note.created_at)),
    el("p", { class: "body" }, note.body),
    note.tickets.length ? el("p", { class: "tickets" }, note.tickets.join(", ")) : "",
    read,
  );
}

export async function showHandover() {
  unread.shown = true;
  unread.pending = [];
  try {
    const data = await api("GET", "/api/handover/unread");
    unread.items = new Map(data.notes.map((note) => [note.id, note]));
    for (const note of unread.pending) unread.items.set(note.id, note);
  } finally {
    unread.pending = null;
  }
  renderHandover();
}

// A desk fact of the live feed: an escalation opened or resolved, a new handover note.
export function onDeskFact(frame) {
  if (frame.kind === "escalation") {
    for (const [listId, list] of escalationLists) {
      applyEscalation(list, frame.escalation);
      list.pending?.push(frame.escalation);
      renderEscalations(listId);
    }
  } else if (frame.kind === "handover" && unread.shown) {
    unread.items.set(frame.note.id, frame.note);
    unread.pending?.push(frame.note);
    renderHandover();
  }
}

export function wireHandover() {
  document.getElementById("handover-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = document.getElementById("handover-body").value;
    const tickets = document
      .getElementById("handover-tickets")
      .value.split(",")
      .map((item) => item.trim())
      .filter(Boolean);
    try {
      await api("POST", "/api/handover", { body, tickets });
      document.getElementById("handover-body").value = "";
      document.getElementById("handover-tickets").value = "";
      setText("handover-result", t("handover.saved"));
    } catch (error) {
      setText("handover-result", t("handover.failed", { error: error.message }));
    }
  });
  showHandover().catch(() => {});
}

// -- recordings ---------------------------------------------------------------------------
// A player per recording; preload="none": nothing is fetched (nor audited as a playback)
// until the user presses play.

function player(recording) {
  return el("audio", {
    controls: "controls",
    preload: "none",
    src: recording.audio_url,
    dataset: { recording: String(recording.id) },
  });
}

export async function showRecordings(listId, noneId, number) {
  const recordings = number
    ? await api("GET", `/api/tickets/${encodeURIComponent(number)}/recordings`)
    : [];
  const playable = recordings.filter((recording) => recording.playable);
  document.getElementById(noneId).hidden = playable.length > 0;
  document.getElementById(listId).replaceChildren(
    ...playable.map((recording) =>
      el(
        "li",
        { dataset: { call: recording.call_id } },
        el("small", {}, when(recording.started_at), " · ", recording.agent_id ?? ""),
        " ",
        player(recording),
      ),
    ),
  );
}

// -- quality review -------------------------------------------------------------------------

let reviewing = null;

function reviewRow(call, options) {
  const button = el("button", { type: "button", class: "score" }, t("quality.score"));
  button.addEventListener("click", () => openForm(call, options));
  return el(
    "tr",
    { dataset: { call: call.call_id } },
    el("td", {}, call.call_id),
    el("td", {}, call.agent_id),
    el("td", {}, call.ticket),
    el("td", { class: "recordings" }, ...call.audio.map(player)),
    el("td", {}, call.scored ? t("quality.scored") : "", " ", button),
  );
}

function openForm(call, options) {
  reviewing = call;
  setText("quality-call", call.call_id);
  const inputs = options.quality_criteria.map((name) =>
    el(
      "label",
      {},
      t(`quality.${name}`),
      el("input", {
        id: `quality-${name}`,
        type: "number",
        min: "0",
        max: String(options.quality_max),
        value: String(options.quality_max),
        required: "required",
      }),
    ),
  );
  document.getElementById("quality-criteria").replaceChildren(...inputs);
  document.getElementById("quality-form").hidden = false;
}

export async function wireQuality() {
  const options = await api("GET", "/api/panel/options");
  const load = async () => {
    const data = await api("GET", "/api/quality/calls?limit=20");
    document
      .getElementById("quality-calls")
      .replaceChildren(...data.calls.map((call) => reviewRow(call, options)));
  };
  document.getElementById("quality-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const scores = options.quality_criteria.map((name) => ({
      criterion: name,
      score: Number(document.getElementById(`quality-${name}`).value),
    }));
    const comments = document.getElementById("quality-comments").value;
    try {
      const saved = await api("POST", `/api/quality/${encodeURIComponent(reviewing.call_id)}`, {
        scores,
        comments,
      });
      setText("quality-result", t("quality.saved", { total: saved.total }));
      document.getElementById("quality-form").hidden = true;
      await load();
    } catch (error) {
      setText("quality-result", t("quality.failed", { error: error.message }));
    }
  });
  await load();
  return load;
}
