// #/services: the registry, kept live by blocking queries (GET /services?index=N&wait=2s
// answers as soon as a service changes, or after two seconds with the statuses read
// again, so one whose heartbeats stopped turns stale on the page).

import { ago, api, badge, h, showError, sleep, table } from "./api.js";

const COLUMNS = [
  { title: "name" }, { title: "status" }, { title: "version" }, { title: "hostname" },
  { title: "api" }, { title: "pid", num: true }, { title: "last heartbeat" }, { title: "capabilities" },
];

function row(s) {
  const status = s.status || "unknown";
  const beat = Date.parse(s.lastHeartbeat);
  return h("tr", { dataset: { service: s.name, status } },
    h("td", {}, h("strong", {}, s.name)),
    h("td", {}, badge(status, status === "stale" ? "stale" : status === "active" || status === "healthy" ? "ok" : "")),
    h("td", {}, s.version ?? "–"), h("td", {}, s.hostname ?? "–"), h("td", {}, h("code", {}, s.api ?? "–")),
    h("td", { class: "num" }, s.pid ?? "–"),
    h("td", { title: s.lastHeartbeat || "" }, ago(Date.now() - beat)),
    h("td", {}, (s.capabilities || []).join(", ")));
}

export async function mount(el, signal) {
  const summary = h("p", { class: "muted" }, "Loading…");
  const err = h("p", { class: "error" });
  const holder = h("div", { class: "card" });
  el.append(h("h1", {}, "Services"), summary, err, holder);
  let index = 0;
  while (!signal.aborted) {
    try {
      const { body, headers } = await api(`/services?index=${index}&wait=2s`, { signal, timeoutMs: 10000 });
      index = Number(headers.get("X-Applied-Index")) || 0;
      const list = body.services || [];
      const stale = list.filter((s) => s.status === "stale").length;
      summary.textContent = `${list.length} services, ${stale} stale; watching from index ${index}`;
      holder.replaceChildren(list.length ? table(COLUMNS, list.map(row)) : h("p", { class: "muted" }, "No services registered."));
      showError(err, null);
    } catch (e) {
      if (signal.aborted) return;
      showError(err, e);
      await sleep(1000, signal);
    }
  }
}
