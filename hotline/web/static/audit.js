// The audit-log viewer (admins): filters by user, object, action and day.
import { api, el, setText, whoAmI } from "./common.js";

const FILTERS = {
  actor: "audit-actor",
  object_type: "audit-object-type",
  object_id: "audit-object-id",
  action: "audit-action",
  day: "audit-day",
};

async function search(event) {
  event?.preventDefault();
  const query = new URLSearchParams();
  for (const [name, id] of Object.entries(FILTERS)) {
    const value = document.getElementById(id).value.trim();
    if (value) query.set(name, value);
  }
  setText("audit-error", "");
  try {
    const data = await api("GET", `/api/audit?${query}`);
    const lang = document.body.dataset.lang;
    const rows = data.entries.map((entry) =>
      el(
        "tr",
        { dataset: { action: entry.action } },
        el("td", {}, new Date(entry.at).toLocaleString(lang)),
        el("td", {}, entry.actor),
        el("td", {}, entry.action),
        el("td", {}, `${entry.object_type} ${entry.object_id}`),
        el("td", { class: "detail" }, JSON.stringify(entry.detail)),
      ),
    );
    document.getElementById("audit-rows").replaceChildren(...rows);
  } catch (error) {
    setText("audit-error", error.message);
  }
}

async function main() {
  await whoAmI();
  document.getElementById("audit-filter").addEventListener("submit", search);
  await search();
}

main();
