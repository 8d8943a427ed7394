// #/search: the tenant's metric catalog through POST /api/v1/metrics/search, with its
// type and label filters; the results are read again every five seconds.

import { api, every, h, showError, table, tenant } from "./api.js";

const TYPES = ["counter", "gauge", "histogram", "summary"];
const PAGE = 50;
const COLUMNS = [{ title: "name" }, { title: "type" }, { title: "help" }, { title: "unit" }, { title: "labels" }, { title: "last seen" }];

/** `a=b, c=d` -> {a: "b", c: "d"}; null for a malformed pair. */
function parseLabels(text) {
  const out = {};
  for (const pair of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const at = pair.indexOf("=");
    if (at <= 0) return null;
    out[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return out;
}

function row(d) {
  const labels = Object.entries(d.labels || {}).map(([k, v]) => `${k}=${[].concat(v).join("|")}`).join(" ");
  return h("tr", { dataset: { metric: d.name } },
    h("td", {}, h("code", {}, d.name)), h("td", {}, d.type || "–"), h("td", {}, d.help || ""),
    h("td", {}, d.unit || ""), h("td", { class: "mono" }, labels), h("td", {}, d.last_seen || "–"));
}

export function mount(el, signal) {
  const query = h("input", { type: "search", placeholder: "words of names, help or labels", size: 36, name: "query" });
  const labels = h("input", { placeholder: "labels: job=api, host=a", size: 28, name: "labels" });
  const boxes = TYPES.map((t) => h("label", {}, h("input", { type: "checkbox", value: t }), ` ${t}`));
  const err = h("p", { class: "error" });
  const summary = h("p", { class: "muted" });
  const holder = h("div", { class: "card" });
  const pager = h("div", { class: "toolbar" });
  let offset = 0;
  const run = async () => {
    const picked = boxes.map((b) => b.firstChild).filter((i) => i.checked).map((i) => i.value);
    const lab = parseLabels(labels.value);
    if (lab === null) { showError(err, new Error("labels must be name=value pairs separated by commas")); return; }
    const body = { query: query.value, tenant_id: tenant(), limit: PAGE, offset };
    if (picked.length) body.types = picked;
    if (Object.keys(lab).length) body.labels = lab;
    const { body: res } = await api("/api/v1/metrics/search", { method: "POST", body, signal });
    summary.textContent = `${res.total} metrics match (took ${Number(res.took).toFixed(1)} ms)`;
    holder.replaceChildren(res.results.length ? table(COLUMNS, res.results.map(row)) : h("p", { class: "muted" }, "Nothing matches."));
    pager.replaceChildren(
      h("button", { type: "button", disabled: offset === 0 || null, onclick: () => { offset = Math.max(0, offset - PAGE); run().catch((e) => showError(err, e)); } }, "Previous"),
      h("button", { type: "button", disabled: offset + PAGE >= res.total || null, onclick: () => { offset += PAGE; run().catch((e) => showError(err, e)); } }, "Next"));
    showError(err, null);
  };
  const form = h("form", { class: "toolbar", onsubmit: (ev) => { ev.preventDefault(); offset = 0; run().catch((e) => showError(err, e)); } },
    query, labels, boxes, h("button", { type: "submit" }, "Search"));
  el.append(h("h1", {}, "Search"), form, summary, err, holder, pager);
  every(5000, signal, run, (e) => showError(err, e));
}
