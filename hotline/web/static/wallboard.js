import { api, connectLive, duration, el, mergeQueue, percent, serverNow, setText, t, whoAmI } from "./common.js";
import { showEscalations, wireQuality } from "./desk.js";

const LONG_CALL = 600; // seconds: a call this long is marked
const queues = new Map();
const agents = new Map();
const big = document.body.classList.contains("big");

function stat(label, value, extra = "") {
  return el("div", { class: "stat" }, el("span", { class: "label" }, label), el("b", {}, value), extra);
}

function queueCard(queue) {
  const longest = queue.longest_since === null ? 0 : serverNow() - queue.longest_since;
  const over = longest > queue.targets.longest_wait;
  const below = queue.today.service_level !== null && queue.today.service_level < queue.targets.service_level;
  const rows = queue.waiting.map((call) =>
    el(
      "tr",
      {},
      el("td", { class: "number" }, call.number),
      el("td", {}, duration(serverNow() - call.since)),
      el("td", {}, call.priority),
    ),
  );
  return el(
    "article",
    { class: `card queue${over ? " alert" : ""}`, dataset: { queue: queue.name } },
    el("h2", {}, queue.name),
    el(
      "div",
      { class: "stats" },
      stat(t("wall.waiting"), queue.waiting.length, ""),
      stat(t("wall.longest"), duration(longest)),
      stat(
        t("wall.service_level"),
        percent(queue.today.service_level),
        el("small", { class: below ? "below" : "" }, t("wall.target", { value: percent(queue.targets.service_level) })),
      ),
      stat(t("wall.within_rings"), percent(queue.today.within_rings)),
      stat(t("wall.abandon_rate"), percent(queue.today.abandon_rate)),
    ),
    el(
      "p",
      { class: "agent-counts" },
      ...Object.entries(queue.agents)
        .filter(([, count]) => count > 0)
        .map(([state, count]) => el("span", { class: `pill ${state}` }, `${t(`state.${state}`)} ${count}`)),
    ),
    el(
      "table",
      { class: "waiting" },
      el("thead", {}, el("tr", {}, el("th", {}, t("wall.caller")), el("th", {}, t("wall.wait")), el("th", {}, t("wall.priority")))),
      el("tbody", {}, ...rows),
    ),
  );
}

function consolidated() {
  const all = [...queues.values()];
  const waiting = all.reduce((sum, queue) => sum + queue.waiting.length, 0);
  const oldest = all.map((queue) => queue.longest_since).filter((since) => since !== null);
  const longest = oldest.length ? serverNow() - Math.min(...oldest) : 0;
  const states = {};
  for (const agent of agents.values()) states[agent.state] = (states[agent.state] ?? 0) + 1;
  return el(
    "article",
    { class: "card all" },
    el("h2", {}, t("wall.all")),
    el(
      "div",
      { class: "stats" },
      stat(t("wall.waiting"), waiting),
      stat(t("wall.longest"), duration(longest)),
      ...Object.entries(states).map(([state, count]) => stat(t(`state.${state}`), count)),
    ),
  );
}

async function act(action, agentId) {
  const path = `/api/supervise/${encodeURIComponent(agentId)}/${action}`;
  const label = t(`wall.${action === "pause" ? "force_pause" : action === "logout" ? "force_logout" : action}`);
  try {
    await api("POST", path, action === "pause" ? { reason: "supervisor" } : undefined);
    setText("action-result", t("wall.done", { action: label }));
  } catch (error) {
    setText("action-result", t("wall.failed", { action: label, error: error.message }));
  }
}

function agentTile(agent) {
  const inState = serverNow() - agent.since;
  const talking = agent.call_since === null ? null : serverNow() - agent.call_since;
  const long = talking !== null && talking > LONG_CALL;
  const tile = el(
    "article",
    { class: `tile ${agent.state}${long ? " long" : ""}`, dataset: { agent: agent.id, state: agent.state } },
    el("h3", {}, agent.name, " ", el("small", {}, agent.id)),
    el("p", { class: "state" }, t(`state.${agent.state}`), " ", duration(inState)),
    el("p", { class: "reason" }, agent.pause_reason ? t(`reason.${agent.pause_reason}`) : ""),
    el("p", { class: "call" }, talking === null ? "" : duration(talking), long ? ` ${t("wall.long_call")}` : ""),
    el("p", { class: "today" }, t("wall.answered", { n: agent.answered_today }), " · ", t("wall.missed", { n: agent.missed_today })),
  );
  if (!big) {
    const buttons = ["listen", "whisper", "barge", "pause", "logout"].map((action) => {
      const key = action === "pause" ? "force_pause" : action === "logout" ? "force_logout" : action;
      const button = el("button", { type: "button", class: `act ${action}`, dataset: { action } }, t(`wall.${key}`));
      button.addEventListener("click", () => act(action, agent.id));
      return button;
    });
    tile.append(el("p", { class: "actions" }, ...buttons));
  }
  return tile;
}

function render() {
  document.getElementById("totals").replaceChildren(consolidated());
  document.getElementById("queues").replaceChildren(...[...queues.values()].map(queueCard));
  document.getElementById("agents").replaceChildren(...[...agents.values()].map(agentTile));
}

function onFrame(frame) {
  if (frame.type === "snapshot") {
    queues.clear();
    agents.clear();
  }
  for (const queue of frame.queues) queues.set(queue.name, mergeQueue(queues.get(queue.name), queue));
  for (const agent of frame.agents) agents.set(agent.id, agent);
  render();
}

async function main() {
  await whoAmI();
  setInterval(render, 1000);
  connectLive(onFrame);
  if (!big) {
    const escalations = () => showEscalations("wall-escalations", true).catch(() => {});
    escalations();
    setInterval(escalations, 5000);
    wireQuality().catch((error) => setText("quality-result", error.message));
  }
}

main();
