import { api, connectLive, duration, el, mergeQueue, percent, serverNow, setText, t, whoAmI } from "./common.js";
import { onDeskFact, showEscalations, wireQuality } from "./desk.js";

// Seconds after which a call is marked long: [panels] long_call, from the page.
const LONG_CALL = Number(document.getElementById("agents").dataset.longCall) || 600;
const queues = new Map();
const agents = new Map();
let alerts = []; // the server's alerts, newest first (pushed over the feed)
const big = document.body.classList.contains("big");
const chosenSite = new URLSearchParams(window.location.search).get("site") || "*";
let homeSite = "";
let siteCount = 1;

// A pause reason in the page's language; a configured reason without a message as is.
function reasonText(reason) {
  const key = `reason.${reason}`;
  const text = t(key);
  return text === key ? reason : text;
}

function stat(label, value, extra = "") {
  return el("div", { class: "stat" }, el("span", { class: "label" }, label), el("b", {}, value), extra);
}

async function onCaller(path, body, label) {
  try {
    await api("POST", path, body);
    setText("action-result", t("wall.done", { action: label }));
  } catch (error) {
    setText("action-result", t("wall.failed", { action: label, error: error.message }));
  }
}

// A waiting caller's controls: raise above every other caller of the queue, move to another.
function callerControls(queue, call) {
  const path = `/api/wallboard/calls/${encodeURIComponent(call.call_id)}`;
  const top = Math.max(...queue.waiting.map((other) => other.priority));
  const raise = el("button", { type: "button", class: "raise" }, t("wall.raise"));
  raise.addEventListener("click", () =>
    onCaller(`${path}/priority`, { priority: Math.min(top + 1, 1000) }, t("wall.raise")),
  );
  const moves = [...queues.values()]
    .filter((other) => !other.site && other.name !== queue.name) // this instance's queues
    .map((other) => other.name)
    .map((name) => {
      const label = t("wall.move_to", { queue: name });
      const button = el("button", { type: "button", class: "move", dataset: { to: name } }, label);
      button.addEventListener("click", () => onCaller(`${path}/move`, { queue: name }, label));
      return button;
    });
  return el("td", { class: "controls" }, raise, ...moves);
}

function queueCard(queue) {
  const longest = queue.longest_since === null ? 0 : serverNow() - queue.longest_since;
  const over = longest > queue.targets.longest_wait;
  const below = queue.today.service_level !== null && queue.today.service_level < queue.targets.service_level;
  // The alerts and the caller controls are this instance's: not on another site's queues.
  const own = !queue.site;
  const flagged = own ? alerts.filter((alert) => alert.queue === queue.name && alert.id.startsWith("queue:")) : [];
  const rows = queue.waiting.map((call) =>
    el(
      "tr",
      { dataset: { call: call.call_id } },
      el("td", { class: "number" }, call.number),
      el("td", {}, duration(serverNow() - call.since)),
      el("td", { class: "priority" }, call.priority),
      ...(big || !own ? [] : [callerControls(queue, call)]),
    ),
  );
  return el(
    "article",
    {
      class: `card queue${over || flagged.length ? " alert" : ""}`,
      dataset: {
        queue: queue.name,
        site: queue.site ?? homeSite,
        alerts: flagged.map((alert) => alert.kind).join(" "),
      },
    },
    el("h2", {}, queue.name, siteLabel(queue.site)),
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
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("th", {}, t("wall.caller")),
          el("th", {}, t("wall.wait")),
          el("th", {}, t("wall.priority")),
          ...(big || !own ? [] : [el("th", {}, "")]),
        ),
      ),
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
  const inState = agent.since === null ? null : serverNow() - agent.since; // null: not known
  const talking = agent.call_since === null ? null : serverNow() - agent.call_since;
  const long = talking !== null && talking > LONG_CALL;
  const tile = el(
    "article",
    { class: `tile ${agent.state}${long ? " long" : ""}`, dataset: { agent: agent.id, state: agent.state } },
    el("h3", {}, agent.name, " ", el("small", {}, agent.id), siteLabel(agent.site)),
    el("p", { class: "state" }, t(`state.${agent.state}`), " ", inState === null ? "" : duration(inState)),
    el("p", { class: "reason" }, agent.pause_reason ? reasonText(agent.pause_reason) : ""),
    el("p", { class: "call" }, talking === null ? "" : duration(talking), long ? ` ${t("wall.long_call")}` : ""),
    el("p", { class: "today" }, t("wall.answered", { n: agent.answered_today }), " · ", t("wall.missed", { n: agent.missed_today })),
  );
  if (!big && !agent.site) {
    // Another site's agent: its own site's instances act on it (open that site's wallboard).
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

// What an alert says, in the page's language; times count on the server's clock.
function alertText(alert) {
  switch (alert.kind) {
    case "service_level":
      return t("alert.service_level", { queue: alert.queue, value: percent(alert.value), target: percent(alert.target) });
    case "long_wait":
      return t("alert.long_wait", { queue: alert.queue, wait: duration(serverNow() - alert.longest_since) });
    case "nobody_available":
      return t("alert.nobody_available", { queue: alert.queue, n: alert.waiting });
    case "complaint_overdue":
      return t("alert.complaint_overdue", { ticket: alert.ticket, late: duration(serverNow() - alert.due_at) });
    case "ask":
      return t("alert.ask", { agent: alert.agent, number: alert.number, ticket: alert.ticket });
    default:
      return alert.kind;
  }
}

async function answer(alert, action) {
  const label = t(`alert.${action}`);
  try {
    await api("POST", `/api/wallboard/alerts/${encodeURIComponent(alert.id)}/${action}`);
    setText("action-result", t("wall.done", { action: label }));
  } catch (error) {
    setText("action-result", t("wall.failed", { action: label, error: error.message }));
  }
}

function alertLine(alert) {
  const line = el(
    "li",
    { class: `alert ${alert.kind}`, dataset: { alert: alert.id, kind: alert.kind } },
    el("span", { class: "since" }, duration(serverNow() - alert.since)),
    " ",
    el("span", { class: "text" }, alertText(alert)),
  );
  if (alert.kind === "ask" && alert.note) line.append(" ", el("q", { class: "note" }, alert.note));
  if (alert.kind === "ask" && !big) {
    for (const action of ["whisper", "barge", "dismiss"]) {
      const button = el("button", { type: "button", class: `answer ${action}`, dataset: { action } }, t(`alert.${action}`));
      button.addEventListener("click", () => answer(alert, action));
      line.append(" ", button);
    }
  }
  return line;
}

function render() {
  document.getElementById("alert-list").replaceChildren(...alerts.map(alertLine));
  document.getElementById("alerts-none").hidden = alerts.length > 0;
  document.getElementById("totals").replaceChildren(consolidated());
  document.getElementById("queues").replaceChildren(...[...queues.values()].map(queueCard));
  document.getElementById("agents").replaceChildren(...[...agents.values()].map(agentTile));
}

// Several sites: a frame with "site" is another site's (through Redis); one without is this
// instance's own. A snapshot replaces that site's queues and agents only.
function applySiteFrame(frame) {
  const site = frame.site ?? null;
  if (frame.type === "snapshot") {
    for (const [key, queue] of queues) if ((queue.site ?? null) === site) queues.delete(key);
    for (const [id, agent] of agents) if ((agent.site ?? null) === site) agents.delete(id);
  }
  for (const queue of frame.queues) {
    const key = `${site ?? ""}/${queue.name}`;
    const merged = mergeQueue(queues.get(key), queue); // a delta's waiting list is a diff
    queues.set(key, site ? { ...merged, site } : merged);
  }
  for (const agent of frame.agents) agents.set(agent.id, site ? { ...agent, site } : agent);
}

function siteLabel(site) {
  return siteCount > 1 ? el("small", { class: "site-label" }, ` · ${site ?? homeSite}`) : "";
}

function siteCard(site) {
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "-");
  const lines =
    site.router === "active"
      ? [t("wall.router_active", { instance: site.instance ?? "?" }), t("wall.epoch", { epoch: site.epoch ?? "-" })]
      : [t("wall.no_router", { since: when(site.since) })];
  lines.push(t("wall.last_takeover", { at: when(site.last_takeover) }));
  return el(
    "article",
    { class: `card site${site.router === "active" ? "" : " alert"}`, dataset: { site: site.pbx_id, router: site.router } },
    el("h3", {}, site.pbx_id, site.pbx_id === homeSite ? ` (${t("wall.home_site")})` : ""),
    ...lines.map((line) => el("p", {}, line)),
  );
}

function siteChoice(sites) {
  const select = document.getElementById("site-select");
  const names = ["*", ...sites.map((site) => site.pbx_id)];
  if (select.dataset.names !== names.join(" ")) {
    select.dataset.names = names.join(" ");
    select.replaceChildren(
      ...names.map((name) => {
        const option = el("option", { value: name }, name === "*" ? t("wall.whole_centre") : name);
        if (name === chosenSite) option.selected = true;
        return option;
      }),
    );
  }
  document.getElementById("site-choice").hidden = sites.length < 2;
}

function showSites(frame) {
  homeSite = frame.home;
  siteCount = chosenSite === "*" ? frame.sites.length : 1;
  const me = frame.instance;
  const section = document.getElementById("sites");
  section.hidden = false;
  section.replaceChildren(
    el(
      "p",
      { class: "instance", id: "this-instance", dataset: { role: me.role } },
      t("wall.this_instance", { instance: me.instance, site: me.pbx_id ?? "-", role: t(`wall.role_${me.role}`) }),
      me.epoch ? ` · ${t("wall.epoch", { epoch: me.epoch })}` : "",
    ),
    frame.database ? "" : el("p", { class: "alert" }, t("wall.sites_unverified")),
    ...frame.sites.map(siteCard),
  );
  siteChoice(frame.sites);
  render();
}

function wireSites() {
  const query = (site) => {
    const params = new URLSearchParams(window.location.search);
    if (site === "*") params.delete("site");
    else params.set("site", site);
    return params.toString() ? `?${params}` : "";
  };
  document.getElementById("site-select").addEventListener("change", (event) => {
    window.location.search = query(event.target.value);
  });
  const bigLink = document.getElementById("big-link");
  if (bigLink && chosenSite !== "*") bigLink.setAttribute("href", `/wallboard?big=1&site=${encodeURIComponent(chosenSite)}`);
  return `?site=${encodeURIComponent(chosenSite)}`;
}

function onFrame(frame) {
  if (frame.type === "alerts") {
    alerts = frame.alerts;
    render();
    return;
  }
  // Escalations come on the feed; a snapshot means fetching them again.
  if (frame.type === "desk") {
    onDeskFact(frame);
    return;
  }
  if (frame.type === "sites") {
    showSites(frame);
    return;
  }
  if (frame.type === "snapshot" && !frame.site) alerts = []; // this instance's come right after
  if (frame.type === "snapshot" && !frame.site && !big) showEscalations("wall-escalations", true).catch(() => {});
  applySiteFrame(frame);
  render();
}

async function main() {
  await whoAmI();
  setInterval(render, 1000);
  connectLive(onFrame, wireSites());
  if (!big) {
    wireQuality().catch((error) => setText("quality-result", error.message));
  }
}

main();
