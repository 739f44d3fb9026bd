// The agent panel's desk: the ticket form's committed reply time, repair dispatch and
// satisfaction; my callbacks due (overdue ones marked); click-to-call (a callback due now:
// the agent's own phone rings first); search of customers and tickets. Text only
// (textContent), never HTML.
import { api, el, setText, t } from "./common.js";

const byId = (id) => document.getElementById(id);
const enc = encodeURIComponent;
let form = { complaint_reply_hours: 24 };
let current = null; // the stored ticket on the form, if any

function pad(value) {
  return String(value).padStart(2, "0");
}

// A time as a datetime-local input shows it (the browser's time zone), and back.
function toInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return `${day}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromInput(value) {
  return value ? new Date(value).toISOString() : null;
}

function sameTime(a, b) {
  return (a ? Date.parse(a) : null) === (b ? Date.parse(b) : null);
}

export function when(iso) {
  const lang = document.body.dataset.lang;
  return new Date(iso).toLocaleString(lang, { dateStyle: "short", timeStyle: "short" });
}

// -- the ticket form ------------------------------------------------------------------------

// The committed reply time a complaint gets by the configured rule: opened + N hours.
function defaultDue() {
  const opened = current?.opened_at ? Date.parse(current.opened_at) : Date.now();
  return new Date(opened + form.complaint_reply_hours * 3600 * 1000).toISOString();
}

function showCategory() {
  const category = byId("ticket-category").value;
  byId("ticket-complaint").hidden = category !== "complaint";
  byId("ticket-repair").hidden = category !== "repair";
  const due = byId("ticket-due");
  if (category === "complaint" && !due.value) due.value = toInput(current?.due_at ?? defaultDue());
}

function showDispatched(ticket) {
  const text = ticket?.dispatch_party
    ? t("ticket.dispatched", {
        party: t(`party.${ticket.dispatch_party}`),
        due: ticket.dispatch_due_at ? when(ticket.dispatch_due_at) : "–",
        contact: ticket.dispatch_contact ?? "–",
      })
    : "";
  setText("ticket-dispatched", text);
}

// Fill the form's own fields from a stored ticket (or empty them for a new one).
export function fillForm(ticket) {
  current = ticket ?? null;
  byId("ticket-due").value = toInput(ticket?.due_at);
  byId("dispatch-party").value = ticket?.dispatch_party ?? "";
  byId("dispatch-due").value = toInput(ticket?.dispatch_due_at);
  byId("dispatch-contact").value = ticket?.dispatch_contact ?? "";
  byId("ticket-satisfaction").value = ticket?.satisfaction ? String(ticket.satisfaction) : "";
  showDispatched(ticket);
  showCategory();
}

// The fields the form adds to the ticket's change.
export function extraFields(category) {
  const extra = {};
  const due = fromInput(byId("ticket-due").value);
  if (category === "complaint" && due) extra.due_at = due;
  const satisfaction = byId("ticket-satisfaction").value;
  if (satisfaction) extra.satisfaction = Number(satisfaction);
  return extra;
}

// After the ticket is saved: dispatch the repair when a party is chosen and anything differs.
export async function saveDispatch(ticket) {
  const party = byId("dispatch-party").value;
  if (ticket.category !== "repair" || !party) return ticket;
  const due = fromInput(byId("dispatch-due").value);
  const contact = byId("dispatch-contact").value.trim() || null;
  const same =
    ticket.dispatch_party === party &&
    ticket.dispatch_contact === contact &&
    sameTime(ticket.dispatch_due_at, due);
  if (same) return ticket;
  const body = { party, due_at: due, contact };
  return api("POST", `/api/tickets/${enc(ticket.number)}/dispatch`, body);
}

export async function wireForm(onDirty) {
  form = await api("GET", "/api/panel/form");
  setText("ticket-due-rule", t("ticket.due_rule", { hours: form.complaint_reply_hours }));
  byId("ticket-category").addEventListener("change", showCategory);
  byId("ticket-form").addEventListener("input", onDirty);
  showCategory();
}

// -- click-to-call --------------------------------------------------------------------------

export async function callNow(ticket, phone) {
  try {
    const body = phone ? { ticket, phone } : { ticket };
    const callback = await api("POST", "/api/panel/call", body);
    setText("call-result", t("call.queued", { phone: callback.phone }));
  } catch (error) {
    setText("call-result", t("call.failed", { error: error.message }));
  }
  showCallbacks().catch(() => {});
}

function callButton(ticket, phone) {
  const button = el("button", { type: "button", class: "call" }, t("call.now"));
  button.addEventListener("click", () => callNow(ticket, phone));
  return button;
}

// -- my callbacks due -----------------------------------------------------------------------

function callbackLine(callback) {
  return el(
    "li",
    {
      class: callback.overdue ? "overdue" : "due-soon",
      dataset: { callback: String(callback.id), ticket: callback.ticket_number },
    },
    el("strong", {}, callback.ticket_number),
    " ",
    callback.phone,
    " ",
    el("span", { class: "due" }, t("callbacks.due", { when: when(callback.due_at) })),
    callback.overdue ? el("span", { class: "flag" }, ` ${t("callbacks.overdue")}`) : "",
    callback.note ? ` · ${callback.note}` : "",
    " ",
    callButton(callback.ticket_number, callback.phone),
  );
}

export async function showCallbacks() {
  const data = await api("GET", "/api/callbacks?mine=true");
  byId("callbacks-none").hidden = data.callbacks.length > 0;
  byId("callbacks-due").replaceChildren(...data.callbacks.map(callbackLine));
}

// -- search ---------------------------------------------------------------------------------

function ticketResult(ticket) {
  return el(
    "li",
    { dataset: { number: ticket.number } },
    el("strong", {}, ticket.number),
    " ",
    t(`category.${ticket.category}`),
    " · ",
    t(`status.${ticket.status}`),
    " · ",
    ticket.subject ?? "",
    " ",
    callButton(ticket.number, null),
  );
}

function customerResult(customer, tickets) {
  const facts = [customer.unit, customer.household, customer.phones.join(", ")].filter(Boolean);
  const line = el(
    "li",
    { dataset: { customer: String(customer.id) } },
    el("strong", { class: "name" }, customer.name),
    ` · ${facts.join(" · ")}`,
  );
  const callable = tickets.find((ticket) => ticket.status !== "closed") ?? tickets[0];
  if (callable && customer.phones.length) {
    line.append(" ", callButton(callable.number, customer.phones[0]));
  }
  line.append(el("ul", { class: "their-tickets" }, ...tickets.map(ticketResult)));
  return line;
}

async function search(text) {
  const q = enc(text);
  const [customers, tickets] = await Promise.all([
    api("GET", `/api/customers?q=${q}&limit=10`),
    api("GET", `/api/tickets?q=${q}&limit=20`),
  ]);
  const theirs = await Promise.all(
    customers.map((customer) => api("GET", `/api/tickets?customer=${customer.id}&limit=5`)),
  );
  byId("search-customers").replaceChildren(
    ...customers.map((customer, index) => customerResult(customer, theirs[index].items)),
  );
  byId("search-tickets").replaceChildren(...tickets.items.map(ticketResult));
  byId("search-nothing").hidden = customers.length + tickets.items.length > 0;
}

export function wireSearch() {
  byId("search-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = byId("search-q").value.trim();
    if (!text) return;
    setText("search-error", "");
    try {
      await search(text);
    } catch (error) {
      setText("search-error", error.message);
    }
  });
}

export function wireCallbacks() {
  showCallbacks().catch(() => {});
  setInterval(() => showCallbacks().catch(() => {}), 15000);
}
