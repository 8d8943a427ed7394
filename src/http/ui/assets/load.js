// #/load: per load cluster, each engine's queued requests and prompt tokens as bars
// (two axes), from /ui/api/load every second. Charts are updated in place.

import { api, every, h, showError, table } from "./api.js";

/** One cluster's card: its chart and a table of the same numbers. */
function clusterCard(name) {
  const canvas = h("canvas");
  const numbers = h("div");
  const card = h("div", { class: "card", dataset: { cluster: name } },
    h("h2", {}, name), h("div", { class: "chart-box" }, canvas), numbers);
  const chart = new Chart(canvas, {
    type: "bar",
    data: { labels: [], datasets: [
      { label: "queued requests", data: [], yAxisID: "y", backgroundColor: "#2f5d8a" },
      { label: "prompt tokens", data: [], yAxisID: "tokens", backgroundColor: "#d08b2c" },
    ] },
    options: {
      animation: false, maintainAspectRatio: false,
      scales: {
        y: { beginAtZero: true, position: "left", title: { display: true, text: "queued" } },
        tokens: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "tokens" } },
      },
    },
  });
  return { card, chart, numbers };
}

function update(c, engines) {
  c.chart.data.labels = engines.map((e) => e.ip);
  c.chart.data.datasets[0].data = engines.map((e) => e.queued_req_num);
  c.chart.data.datasets[1].data = engines.map((e) => e.prompt_length);
  c.chart.update("none");
  const cols = [{ title: "engine" }, { title: "queued", num: true }, { title: "prompt tokens", num: true }];
  const rows = engines.map((e) => h("tr", { dataset: { engine: e.ip, queued: e.queued_req_num, prompt: e.prompt_length } },
    h("td", {}, h("code", {}, e.ip)), h("td", { class: "num" }, e.queued_req_num), h("td", { class: "num" }, e.prompt_length)));
  c.numbers.replaceChildren(table(cols, rows));
}

export function mount(el, signal) {
  const summary = h("p", { class: "muted" }, "Loading…");
  const err = h("p", { class: "error" });
  const grid = h("div", { class: "grid" });
  el.append(h("h1", {}, "Load"), summary, err, grid);
  const cards = new Map();
  signal.addEventListener("abort", () => cards.forEach((c) => c.chart.destroy()));
  every(1000, signal, async () => {
    const { body } = await api("/ui/api/load", { signal });
    const seen = new Set();
    for (const cl of body.clusters) {
      seen.add(cl.cluster);
      if (!cards.has(cl.cluster)) {
        const c = clusterCard(cl.cluster);
        cards.set(cl.cluster, c);
        grid.append(c.card);
      }
      update(cards.get(cl.cluster), cl.engines);
    }
    for (const [name, c] of cards) {
      if (!seen.has(name)) { c.chart.destroy(); c.card.remove(); cards.delete(name); }
    }
    const engines = body.clusters.reduce((n, c) => n + c.engines.length, 0);
    summary.textContent = body.clusters.length
      ? `${body.clusters.length} clusters, ${engines} engines`
      : "No engine has reported load.";
    showError(err, null);
  }, (e) => showError(err, e));
}
