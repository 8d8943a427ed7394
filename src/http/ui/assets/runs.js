// #/runs: the tenant's runs, newest first (GET /api/v1/runs), with their metrics; a
// page of 50 refreshed every five seconds, "More" follows the cursor. Ticking runs
// and "Compare" opens the first one's page with the others overlaid.

import { api, every, h, showError, table } from "./api.js";

const PAGE = 50;
const COLUMNS = [
  { title: "" }, { title: "run" }, { title: "metrics" }, { title: "points", num: true }, { title: "last point" },
];

function row(r, picked) {
  const box = h("input", { type: "checkbox", checked: picked.has(r.run_id) || null, onchange: (ev) => {
    if (ev.target.checked) picked.add(r.run_id); else picked.delete(r.run_id);
  } });
  const metrics = r.metrics.map((m) => `${m.metric_name} (${m.count})`).join(", ");
  return h("tr", { dataset: { run: r.run_id } },
    h("td", {}, box),
    h("td", {}, h("a", { href: `#/runs/${r.run_id}` }, h("code", {}, r.run_id))),
    h("td", {}, metrics),
    h("td", { class: "num" }, r.point_count),
    h("td", {}, new Date(r.last_time).toLocaleString()));
}

export function mount(el, signal) {
  const picked = new Set();
  const summary = h("p", { class: "muted" }, "Loading…");
  const err = h("p", { class: "error" });
  const holder = h("div", { class: "card" });
  const more = h("button", { type: "button", hidden: true }, "More");
  const compare = h("button", { type: "button", onclick: () => {
    const [first, ...others] = [...picked];
    if (first) location.hash = `#/runs/${first}${others.length ? `?with=${others.join(",")}` : ""}`;
  } }, "Compare ticked runs");
  el.append(h("h1", {}, "Runs"), h("div", { class: "toolbar" }, compare), summary, err, holder, more);
  let shown = [];
  let next = null;
  const draw = () => {
    holder.replaceChildren(shown.length ? table(COLUMNS, shown.map((r) => row(r, picked)))
      : h("p", { class: "muted" }, "No runs with points for this tenant."));
    more.hidden = !next;
    summary.textContent = `${shown.length} runs shown, newest first`;
  };
  more.addEventListener("click", async () => {
    try {
      const { body } = await api(`/api/v1/runs?limit=${PAGE}&cursor=${encodeURIComponent(next)}`, { signal });
      shown = shown.concat(body.runs);
      next = body.next || null;
      draw();
    } catch (e) { showError(err, e); }
  });
  every(5000, signal, async () => {
    const { body } = await api(`/api/v1/runs?limit=${Math.max(PAGE, shown.length)}`, { signal });
    shown = body.runs;
    next = body.next || null;
    draw();
    showError(err, null);
  }, (e) => showError(err, e));
}
