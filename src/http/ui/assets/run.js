// #/runs/{id}[?with=a,b&x=time&log=1]: one chart per metric of the run, other runs
// overlaid. Each series is read downsampled by the server to the chart's width
// (`?buckets=` with `bucket_by=` the x axis: buckets of steps or of time that keep
// their lowest and highest point, so spikes survive); dragging across a chart zooms, which reads the visible range again (the
// server cuts the range before it samples, so a narrow range comes back at full
// resolution); double-click or "Reset zoom" returns. New points arrive over each
// run's WebSocket and are appended without a reload.

import { api, h, showError, sleep, streamUrl } from "./api.js";

const COLORS = ["#2f5d8a", "#d08b2c", "#1f7a3a", "#b3261e", "#6b4fa3", "#1b8a8a", "#8a6d1b"];

/** A point as a chart reads it: x (step or ms), y, time in ms. */
function toXY(p, xMode) {
  const t = Date.parse(p.time);
  return { x: xMode === "step" ? p.step : t, y: p.value, t };
}

function fmtX(xMode) {
  return xMode === "time" ? (v) => new Date(v).toLocaleTimeString() : (v) => v;
}

class RunPage {
  constructor(el, signal, route) {
    this.signal = signal;
    this.runs = [route.id, ...(route.query.get("with") || "").split(",").filter(Boolean)];
    this.xMode = route.query.get("x") === "time" ? "time" : "step";
    this.log = route.query.get("log") === "1";
    this.charts = new Map();
    this.err = h("p", { class: "error" });
    this.summary = h("p", { class: "muted" }, "Loading…");
    this.grid = h("div", { class: "grid" });
    el.append(h("h1", {}, "Run ", h("code", {}, route.id)), this.toolbar(route), this.summary, this.err, this.grid);
    this.root = el;
    signal.addEventListener("abort", () => this.charts.forEach((c) => c.chart.destroy()));
  }

  toolbar(route) {
    const go = (changes) => {
      const q = new URLSearchParams(route.query);
      for (const [k, v] of Object.entries(changes)) { if (v) q.set(k, v); else q.delete(k); }
      location.hash = `#/runs/${route.id}?${q}`;
    };
    const x = h("select", { onchange: (ev) => go({ x: ev.target.value === "time" ? "time" : "" }) },
      h("option", { value: "step", selected: this.xMode === "step" || null }, "steps"),
      h("option", { value: "time", selected: this.xMode === "time" || null }, "time"));
    const log = h("input", { type: "checkbox", checked: this.log || null, onchange: (ev) => go({ log: ev.target.checked ? "1" : "" }) });
    const other = h("input", { placeholder: "run id to overlay", size: 38 });
    const add = h("button", { type: "button", onclick: () => {
      const id = other.value.trim();
      if (id) go({ with: [...this.runs.slice(1), id].join(",") });
    } }, "Overlay");
    const reset = h("button", { type: "button", onclick: () => this.charts.forEach((c, m) => { c.zoom = null; this.load(m); }) }, "Reset zoom");
    return h("div", { class: "toolbar" }, h("label", {}, "x axis ", x), h("label", {}, log, " log scale"), reset, other, add);
  }

  async start() {
    const ids = this.runs.join(",");
    const { body } = await api(`/api/v1/runs?run_id=${encodeURIComponent(ids)}`, { signal: this.signal });
    const names = new Set();
    for (const r of body.runs) r.metrics.forEach((m) => names.add(m.metric_name));
    if (!names.size) this.summary.textContent = "No points for this run yet; charts appear as points arrive.";
    const started = performance.now();
    await Promise.all([...names].sort().map((m) => this.chartFor(m) && this.load(m)));
    const ms = Math.round(performance.now() - started);
    this.root.dataset.drawnMs = ms;
    if (names.size) this.summary.textContent = `${names.size} metrics of ${this.runs.length} run(s), drawn in ${ms} ms`;
    this.runs.forEach((r) => this.stream(r));
  }

  /** The card of a metric, made on first use. */
  chartFor(metric) {
    if (this.charts.has(metric)) return this.charts.get(metric);
    const canvas = h("canvas");
    const box = h("div", { class: "chart-box" }, canvas);
    const card = h("div", { class: "card", dataset: { metric, points: 0 } }, h("h2", {}, metric), box);
    this.grid.append(card);
    const datasets = this.runs.map((r, i) => ({
      label: r.slice(0, 8), data: [], parsing: false, pointRadius: 0, borderWidth: 1.5,
      borderColor: COLORS[i % COLORS.length], backgroundColor: COLORS[i % COLORS.length],
    }));
    const chart = new Chart(canvas, {
      type: "line",
      data: { datasets },
      options: {
        animation: false, maintainAspectRatio: false, normalized: true,
        interaction: { mode: "nearest", intersect: false },
        plugins: { legend: { display: this.runs.length > 1 } },
        scales: {
          x: { type: "linear", ticks: { callback: fmtX(this.xMode), maxRotation: 0 } },
          y: { type: this.log ? "logarithmic" : "linear" },
        },
      },
    });
    const c = { card, chart, box, zoom: null, buckets: 400, pending: false, loading: null };
    this.charts.set(metric, c);
    this.zoomable(metric, c, canvas);
    return c;
  }

  /** Drag to zoom, double-click to return. */
  zoomable(metric, c, canvas) {
    let from = null;
    const sel = h("div", { class: "selection", hidden: true });
    c.box.append(sel);
    const px = (ev) => ev.clientX - canvas.getBoundingClientRect().left;
    canvas.addEventListener("mousedown", (ev) => { from = px(ev); sel.hidden = false; sel.style.left = `${from}px`; sel.style.width = "0"; });
    canvas.addEventListener("mousemove", (ev) => {
      if (from === null) return;
      const to = px(ev);
      sel.style.left = `${Math.min(from, to)}px`;
      sel.style.width = `${Math.abs(to - from)}px`;
    });
    canvas.addEventListener("mouseup", (ev) => {
      const to = px(ev);
      sel.hidden = true;
      if (from !== null && Math.abs(to - from) > 4) {
        const sx = c.chart.scales.x;
        const [a, b] = [sx.getValueForPixel(Math.min(from, to)), sx.getValueForPixel(Math.max(from, to))];
        // Steps are whole numbers: so are the edges of a zoom over them.
        c.zoom = this.xMode === "step" ? { lo: Math.floor(a), hi: Math.ceil(b) } : { lo: a, hi: b };
        this.load(metric);
      }
      from = null;
    });
    canvas.addEventListener("dblclick", () => { c.zoom = null; this.load(metric); });
  }

  /** The query of one run's series for a chart's width and zoom: buckets of steps
   * or of time, as the x axis. */
  query(c) {
    const q = new URLSearchParams({ buckets: String(c.buckets), bucket_by: this.xMode });
    if (!c.zoom) return q;
    const { lo, hi } = c.zoom;
    if (this.xMode === "time") {
      q.set("start_time", new Date(Math.floor(lo)).toISOString());
      q.set("end_time", new Date(Math.ceil(hi) + 1).toISOString());
    } else {
      q.set("min_step", String(Math.ceil(lo)));
      q.set("max_step", String(Math.floor(hi)));
    }
    return q;
  }

  /** (Re)reads every run's series of a chart. */
  async load(metric) {
    const c = this.chartFor(metric);
    const started = performance.now();
    c.buckets = Math.max(50, Math.floor((c.box.clientWidth || 800) / 2));
    const reads = this.runs.map(async (run, i) => {
      const ds = c.chart.data.datasets[i];
      const path = `/api/v1/runs/${run}/metrics/${encodeURIComponent(metric)}?${this.query(c)}`;
      try {
        const { body } = await api(path, { signal: this.signal, timeoutMs: 30000 });
        ds.data = body.metrics.map((p) => toXY(p, this.xMode)).filter((p) => p.x !== null);
        ds.data.sort((a, b) => a.x - b.x);
      } catch (e) {
        if (e.status === 404) ds.data = []; else throw e;
      }
    });
    try {
      await Promise.all(reads);
      showError(this.err, null);
    } catch (e) { if (!this.signal.aborted) showError(this.err, e); }
    const x = c.chart.options.scales.x;
    x.min = c.zoom ? c.zoom.lo : undefined;
    x.max = c.zoom ? c.zoom.hi : undefined;
    c.card.dataset.zoomed = c.zoom ? "1" : "";
    this.redraw(c);
    // How long the last read and draw took, for whoever measures the page.
    c.card.dataset.loadMs = Math.round(performance.now() - started);
  }

  redraw(c) {
    c.chart.update("none");
    const data = c.chart.data.datasets.flatMap((d) => d.data);
    c.card.dataset.points = data.length;
    const last = c.chart.data.datasets[0].data.at(-1);
    if (last) c.card.dataset.lastValue = last.y;
  }

  /** Appends streamed points; a chart grown well past its width is read again. */
  append(run, points) {
    const i = this.runs.indexOf(run);
    const touched = new Set();
    for (const p of points) {
      const c = this.charts.get(p.metric_name);
      if (!c) { this.chartFor(p.metric_name); this.load(p.metric_name); continue; }
      const xy = toXY(p, this.xMode);
      if (xy.x === null || (c.zoom && (xy.x < c.zoom.lo || xy.x > c.zoom.hi))) continue;
      const data = c.chart.data.datasets[i].data;
      data.push(xy);
      if (data.length > 1 && data.at(-2).x > xy.x) data.sort((a, b) => a.x - b.x);
      touched.add(p.metric_name);
    }
    for (const m of touched) {
      const c = this.charts.get(m);
      if (c.chart.data.datasets[i].data.length > 4 * c.buckets) { this.load(m); continue; }
      if (c.pending) continue;
      c.pending = true;
      requestAnimationFrame(() => { c.pending = false; this.redraw(c); });
      // Keep the newest value visible to whoever reads the card.
      c.card.dataset.lastValue = c.chart.data.datasets[i].data.at(-1).y;
    }
  }

  /** One run's live points, reconnecting until the page is left. */
  async stream(run) {
    while (!this.signal.aborted) {
      await new Promise((resolve) => {
        const ws = new WebSocket(streamUrl(`/ws/metrics/${run}`));
        const close = () => ws.close();
        this.signal.addEventListener("abort", close, { once: true });
        ws.onmessage = (ev) => {
          const msg = JSON.parse(ev.data);
          if (msg.type === "metric") this.append(run, msg.payload.metrics);
          if (msg.type === "lagged") this.charts.forEach((_, m) => this.load(m));
        };
        ws.onopen = () => this.root.dataset.streams = Number(this.root.dataset.streams || 0) + 1;
        ws.onclose = () => { this.signal.removeEventListener("abort", close); resolve(); };
      });
      await sleep(1000, this.signal);
    }
  }
}

export function mount(el, signal, route) {
  const page = new RunPage(el, signal, route);
  page.start().catch((e) => { if (!signal.aborted) showError(page.err, e); });
}
