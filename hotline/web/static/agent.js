import { api, connectLive, duration, el, serverNow, setText, t, whoAmI } from "./common.js";
import { onDeskFact, showEscalations, showHandover, showRecordings, wireHandover } from "./desk.js";
import { wireAsk } from "./ask.js";
import {
  callNow,
  extraFields,
  fillForm,
  saveDispatch,
  wireCallbacks,
  wireForm,
  wireSearch,
} from "./agentdesk.js";

let me = null;
let agent = null;
let pop = null;
let formTicket = null; // the ticket number the form saves to (null: a new ticket)
let formDirty = false; // the agent typed since the form was filled: a late pop keeps it
let popRetry = null;

function showState() {
  if (!agent) return;
  const state = document.getElementById("state");
  state.textContent = t(`state.${agent.state}`);
  state.dataset.state = agent.state;
  setText("pause-reason", agent.pause_reason ? t(`reason.${agent.pause_reason}`) : "");
}

function tick() {
  if (!agent) return;
  setText("state-timer", agent.since ? duration(serverNow() - agent.since) : "");
  const wrap = document.getElementById("wrap-up");
  wrap.hidden = agent.state !== "wrap_up" || !agent.wrap_up_until;
  if (!wrap.hidden) {
    const left = Math.ceil(agent.wrap_up_until - serverNow());
    setText("wrap-up-left", t("agent.wrap_up_left", { seconds: Math.max(0, left) }));
  }
}

function ticketLine(ticket) {
  return el(
    "li",
    { dataset: { number: ticket.number } },
    el("strong", {}, ticket.number),
    " ",
    t(`category.${ticket.category}`),
    " · ",
    ticket.subject ?? "",
  );
}

function fillTicket(number, ticket) {
  formTicket = number ?? null;
  formDirty = false;
  setText("ticket-number", number ?? "");
  recordingsOf(number);
  document.getElementById("ticket-category").value = ticket?.category ?? "consultation";
  document.getElementById("ticket-subject").value = ticket?.subject ?? "";
  document.getElementById("ticket-notes").value = ticket?.description ?? "";
  fillForm(ticket);
  setText("ticket-result", "");
}

function showPop(data) {
  pop = data;
  setText("pop-number", data.number ?? "");
  const file = document.getElementById("pop-file");
  const customer = data.customer;
  document.getElementById("pop-empty").textContent = data.number
    ? t("pop.anonymous")
    : t("pop.none");
  document.getElementById("pop-empty").hidden = Boolean(customer);
  file.hidden = !customer;
  for (const field of ["name", "household", "unit", "address", "notes"]) {
    setText(`pop-${field}`, customer?.[field] ?? "");
  }
  setText("pop-tags", (customer?.tags ?? []).join(", "));
  document.getElementById("pop-open").replaceChildren(...data.open_tickets.map(ticketLine));
  document.getElementById("pop-recent").replaceChildren(...data.recent_tickets.map(ticketLine));
  // The call's ticket, even before the store has written it (pending: the pop asks again).
  const pending = document.getElementById("pop-pending");
  pending.hidden = !data.pending;
  pending.textContent = data.pending ? t("pop.pending", { ticket: data.ticket }) : "";
  const selected = data.open_tickets.find((ticket) => ticket.number === data.preselected);
  if (!formDirty || formTicket !== data.preselected) fillTicket(data.preselected, selected);
}

async function refreshPop() {
  clearTimeout(popRetry);
  const data = await api("GET", "/api/panel/pop");
  showPop(data);
  if (data.pending) popRetry = setTimeout(() => refreshPop().catch(() => {}), 250);
  showEscalations("escalations", false).catch(() => {});
  return data;
}

// The ticket the form saves to, once the store has it (the pop's number may be pending).
async function storedTicket() {
  for (let tries = 0; pop?.pending && formTicket === pop.ticket && tries < 20; tries++) {
    await refreshPop();
  }
  if (pop?.pending && formTicket === pop.ticket) throw new Error(t("ticket.pending"));
  return formTicket;
}

// Difficult calls go up: transfer the caller to another queue, or escalate the ticket.
async function wireUp() {
  const options = await api("GET", "/api/panel/options");
  document
    .getElementById("transfer-queue")
    .replaceChildren(...options.transfer_queues.map((queue) => el("option", { value: queue }, queue)));
  document.getElementById("transfer").addEventListener("click", async () => {
    const body = {
      queue: document.getElementById("transfer-queue").value,
      note: document.getElementById("transfer-note").value,
    };
    try {
      const done = await api("POST", "/api/panel/transfer", body);
      document.getElementById("transfer-note").value = "";
      setText("up-result", t("up.transferred", { queue: done.queue, ticket: done.ticket }));
    } catch (error) {
      setText("up-result", t("up.failed", { error: error.message }));
    }
    showEscalations("escalations", false).catch(() => {});
  });
  document.getElementById("escalate").addEventListener("click", async () => {
    const number = document.getElementById("ticket-number").textContent;
    if (!number) {
      setText("up-result", t("up.no_ticket"));
      return;
    }
    const reason = document.getElementById("escalate-reason").value;
    try {
      await api("POST", `/api/tickets/${encodeURIComponent(number)}/escalate`, { reason });
      document.getElementById("escalate-reason").value = "";
      setText("up-result", t("up.escalated", { ticket: number }));
    } catch (error) {
      setText("up-result", t("up.failed", { error: error.message }));
    }
    showEscalations("escalations", false).catch(() => {});
  });
  showEscalations("escalations", false).catch(() => {});
}

function recordingsOf(number) {
  showRecordings("ticket-recordings", "recordings-none", number).catch(() => {});
}

function onFrame(frame) {
  // Escalations and handover notes come on the feed; a snapshot means fetching them again.
  if (frame.type === "desk") {
    onDeskFact(frame);
    return;
  }
  if (frame.type === "snapshot") {
    showEscalations("escalations", false).catch(() => {});
    showHandover().catch(() => {});
  }
  const mine = frame.agents.find((item) => item.id === me.agent_id);
  if (!mine) return;
  const before = agent?.state;
  agent = mine;
  showState();
  tick();
  // The screen-pop: when the phone starts ringing, or on opening the page mid-call.
  const entered = before !== mine.state;
  const popNow = mine.state === "ringing" || (mine.state === "on_call" && before !== "ringing");
  if (entered && popNow) refreshPop().catch(() => {});
}

// The API's times are RFC 3339 text; the panel's timers count in epoch seconds.
function epoch(text) {
  return text === null || text === undefined ? null : Date.parse(text) / 1000;
}

async function command(path, body) {
  setText("agent-error", "");
  try {
    agent = await api("POST", path, body).then((data) => ({ ...agent, ...data, since: epoch(data.state_since) }));
    showState();
  } catch (error) {
    setText("agent-error", error.message);
  }
}

async function saveTicket(event) {
  event.preventDefault();
  const category = document.getElementById("ticket-category").value;
  const body = {
    category,
    subject: document.getElementById("ticket-subject").value,
    description: document.getElementById("ticket-notes").value,
    ...extraFields(category),
  };
  try {
    const number = await storedTicket();
    let saved;
    if (number) {
      saved = await api("PATCH", `/api/tickets/${encodeURIComponent(number)}`, body);
    } else {
      const { satisfaction, ...create } = body;
      saved = await api("POST", "/api/tickets", {
        ...create,
        ...(pop?.customer ? { customer_id: pop.customer.id } : {}),
      });
      if (satisfaction) {
        saved = await api("PATCH", `/api/tickets/${encodeURIComponent(saved.number)}`, {
          satisfaction,
        });
      }
    }
    saved = await saveDispatch(saved);
    fillTicket(saved.number, saved);
    setText("ticket-result", t("ticket.saved", { number: saved.number }));
    if (pop?.number) {
      const data = await api("GET", "/api/panel/pop");
      pop = data;
      document.getElementById("pop-open").replaceChildren(...data.open_tickets.map(ticketLine));
      document.getElementById("pop-recent").replaceChildren(...data.recent_tickets.map(ticketLine));
    }
  } catch (error) {
    setText("ticket-result", t("ticket.failed", { error: error.message }));
  }
}

async function main() {
  me = await whoAmI();
  wireHandover();
  if (!me.agent_id) {
    setText("agent-error", t("agent.no_agent"));
    return;
  }
  const base = `/api/agents/${encodeURIComponent(me.agent_id)}`;
  document.getElementById("ready").addEventListener("click", async () => {
    await command(`${base}/login`);
    if (agent?.pause_reason) await command(`${base}/unpause`);
  });
  document.getElementById("pause").addEventListener("click", () =>
    command(`${base}/pause`, { reason: document.getElementById("reason").value }),
  );
  document.getElementById("logout").addEventListener("click", () => command(`${base}/logout`));
  document.getElementById("ready-now").addEventListener("click", () => command(`${base}/ready`));
  document.getElementById("ticket-form").addEventListener("submit", saveTicket);
  wireForm(() => {
    formDirty = true;
  }).catch((error) => setText("ticket-result", error.message));
  document.getElementById("ticket-call").addEventListener("click", () => {
    if (formTicket) callNow(formTicket, null);
    else setText("call-result", t("up.no_ticket"));
  });
  wireCallbacks();
  wireSearch();
  wireUp().catch((error) => setText("up-result", error.message));
  wireAsk();
  setInterval(tick, 1000);
  connectLive(onFrame);
}

main();
