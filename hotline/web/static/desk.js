// The desk work shared by the agent panel and the wallboard: escalations and transfers,
// shift handover notes, quality review. Text only (textContent), never HTML.
import { api, el, setText, t } from "./common.js";

function when(iso) {
  const lang = document.body.dataset.lang;
  return new Date(iso).toLocaleString(lang, { dateStyle: "short", timeStyle: "short" });
}

// -- escalations ----------------------------------------------------------------------------

function escalationLine(escalation, canResolve, refresh) {
  const line = el(
    "li",
    { dataset: { ticket: escalation.ticket, kind: escalation.kind } },
    el("strong", {}, escalation.ticket),
    " ",
    el("span", { class: `kind ${escalation.kind}` }, t(`up.kind.${escalation.kind}`)),
    escalation.target_queue ? ` → ${escalation.target_queue}` : "",
    " · ",
    el("span", { class: "reason" }, escalation.reason),
    " ",
    el("small", {}, t("up.by", { name: escalation.raised_by }), " ", when(escalation.raised_at)),
  );
  if (canResolve) {
    const button = el("button", { type: "button", class: "resolve" }, t("up.resolve"));
    button.addEventListener("click", async () => {
      await api("POST", `/api/escalations/${escalation.id}/resolve`);
      await refresh();
    });
    line.append(" ", button);
  }
  return line;
}

export async function showEscalations(listId, canResolve) {
  const refresh = () => showEscalations(listId, canResolve);
  const data = await api("GET", "/api/escalations");
  document
    .getElementById(listId)
    .replaceChildren(...data.escalations.map((e) => escalationLine(e, canResolve, refresh)));
}

// -- handover notes -------------------------------------------------------------------------

function noteLine(note, refresh) {
  const read = el("button", { type: "button", class: "read" }, t("handover.read"));
  read.addEventListener("click", async () => {
    await api("POST", `/api/handover/${note.id}/read`);
    await refresh();
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
  const data = await api("GET", "/api/handover/unread");
  document.getElementById("handover-none").hidden = data.notes.length > 0;
  document
    .getElementById("handover-unread")
    .replaceChildren(...data.notes.map((note) => noteLine(note, showHandover)));
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
    el("td", {}, call.recordings.join(", ")),
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
