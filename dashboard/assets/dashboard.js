// The operator dashboard: a view of the node's /metrics, fed every second
// by /dashboard/feed, and the timeline of an order searched.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const { el, fmt } = oms;
  const statuses = ["order_received", "order_paid", "order_inTransit", "order_completed", "order_cancelled"];
  const history = []; // the last 120 snapshots' rates and latencies
  const palette = ["#4fb3ff", "#3ecf8e", "#f5b942", "#ff6b6b", "#b58cff", "#5ee7df", "#ff9f6b", "#c3e86b"];

  function showError(e) {
    $("error").hidden = !e;
    $("error").textContent = e ? String(e.message || e) : "";
    $("conn").textContent = e ? "disconnected" : "live";
    $("conn").className = e ? "status-bad" : "status-ok";
    if (e && /401|403|token/i.test(String(e.message))) $("login").hidden = false;
  }

  function rows(table, head, data) {
    table.replaceChildren(el("tr", {}, ...head.map((h, i) => el("th", i ? { class: "n" } : {}, h))));
    for (const r of data) table.append(el("tr", {}, ...r.map((c, i) => el("td", i ? { class: "n" } : {}, c))));
  }

  // chart draws lines of series (arrays of numbers or nulls) in an SVG.
  function chart(svg, series, colors) {
    const w = 400, h = 140, pad = 18;
    const all = series.flat().filter((v) => v !== null && v !== undefined);
    const top = Math.max(1, ...all) * 1.1;
    const n = Math.max(2, ...series.map((s) => s.length));
    const x = (i) => pad + (i * (w - pad)) / (n - 1), y = (v) => h - pad - ((h - 2 * pad) * v) / top;
    const ns = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    for (const f of [0, 0.5, 1]) {
      const line = document.createElementNS(ns, "line");
      line.setAttribute("x1", pad); line.setAttribute("x2", w); line.setAttribute("y1", y(top * f / 1.1)); line.setAttribute("y2", y(top * f / 1.1));
      line.setAttribute("class", "grid");
      svg.append(line);
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", 0); label.setAttribute("y", y(top * f / 1.1) + 3);
      label.textContent = fmt(top * f / 1.1, top < 10 ? 1 : 0);
      svg.append(label);
    }
    series.forEach((s, k) => {
      let d = "";
      s.forEach((v, i) => {
        if (v === null || v === undefined) return;
        d += (d && s[i - 1] !== null && s[i - 1] !== undefined ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1);
      });
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", d); path.setAttribute("fill", "none"); path.setAttribute("stroke", colors[k]); path.setAttribute("stroke-width", "1.5");
      svg.append(path);
    });
  }

  function render(s) {
    $("node").textContent = s.node;
    $("updated").textContent = new Date(s.at).toLocaleTimeString();
    $("placed-rate").textContent = fmt(s.placedPerSecond, 1);
    $("completed-rate").textContent = fmt(s.completedPerSecond, 1);
    $("p50").textContent = fmt(s.placeP50Ms, 2);
    $("p99").textContent = fmt(s.placeP99Ms, 2);
    $("placed-total").textContent = fmt(s.placed);
    const stuck = Object.values(s.stuck).reduce((a, b) => a + b, 0);
    $("stuck-total").textContent = fmt(stuck);
    $("stuck-total").className = "v " + (stuck ? "status-warn" : "status-ok");
    const dead = Object.values(s.deadLetters).reduce((a, b) => a + b, 0);
    $("dead-total").textContent = fmt(dead);
    $("dead-total").className = "v " + (dead ? "status-bad" : "status-ok");
    $("lag").textContent = fmt(s.readModelLag);

    history.push(s);
    if (history.length > 120) history.shift();
    chart($("throughput"), [history.map((h) => h.placedPerSecond), history.map((h) => h.completedPerSecond)], ["#4fb3ff", "#3ecf8e"]);
    chart($("latency"), [history.map((h) => h.placeP50Ms), history.map((h) => h.placeP99Ms)], ["#4fb3ff", "#f5b942"]);

    const most = Math.max(1, ...statuses.map((st) => s.orders[st] || 0));
    rows($("statuses"), ["status", "orders", ""], statuses.map((st) => {
      const n = s.orders[st] || 0;
      const v = el("span", { id: "orders-" + st }, fmt(n));
      return [st, v, el("div", { class: "bar", style: "width:" + Math.round((100 * n) / most) + "px" })];
    }));
    rows($("stuck"), ["status", "stuck"], Object.keys(s.stuck).sort().map((st) => [st, el("span", { id: "stuck-" + st }, fmt(s.stuck[st]))]));
    const busy = s.consumers.filter((c, i) => i < 8 || c.pending + c.ackPending > 0).slice(0, 16);
    rows($("consumers"), ["consumer", "pending", "unacked", "redeliv."], busy.map((c) => [el("span", { title: c.stream }, c.name), fmt(c.pending), fmt(c.ackPending), fmt(c.redelivered)]));
    const sources = Object.keys(s.deadLetters).sort();
    rows($("deadletters"), ["source", "stored"], sources.length ? sources.map((k) => [k, el("span", { id: "dead-" + k }, fmt(s.deadLetters[k]))]) : [["none", "0"]]);

    const owner = {}, colors = {};
    (s.cluster.members || []).forEach((m, i) => {
      colors[m.name] = palette[i % palette.length];
      for (const p of m.partitions || []) owner[p] = m.name;
    });
    $("members").replaceChildren(...(s.cluster.members || []).map((m) =>
      el("span", { style: "margin-right:1rem" }, el("i", { style: "display:inline-block;width:.7rem;height:.7rem;background:" + colors[m.name] }), " " + m.name + " (" + (m.partitions || []).length + ")")));
    const cells = [];
    for (let p = 0; p < s.cluster.partitions; p++) {
      cells.push(el("div", { title: "partition " + p + ": " + (owner[p] || "no owner"), style: "background:" + (colors[owner[p]] || "#2a3441") }, p));
    }
    $("partitions").replaceChildren(...cells);
  }

  async function timeline(id) {
    $("timeline-panel").hidden = false;
    $("timeline-id").textContent = id;
    $("timeline").replaceChildren(el("li", {}, "loading…"));
    try {
      const t = await oms.get("/v1/orders/" + encodeURIComponent(id) + "/timeline");
      $("timeline").replaceChildren(...t.entries.map((e) => el("li", { class: "entry" },
        el("div", {}, el("b", {}, "#" + e.sequence + " " + e.type), " → " + e.status + " · " + new Date(e.at).toLocaleString()),
        el("div", {}, "by " + e.by + " · node " + (e.node || "–") + " · caused by " + e.cause.source + " " + e.cause.id),
        el("div", { class: "effects" }, e.effects.length ? "→ " + e.effects.map((f) => f.kind).join(", ") : "no effects"))));
    } catch (e) {
      $("timeline").replaceChildren(el("li", { class: "status-bad" }, String(e.message)));
    }
  }

  $("search").addEventListener("submit", (ev) => { ev.preventDefault(); const id = $("order-id").value.trim(); if (id) timeline(id); });
  $("login").addEventListener("submit", (ev) => { ev.preventDefault(); oms.setToken($("token").value); location.reload(); });
  if (!oms.token()) { $("login").hidden = false; showError(new Error("give a bearer token (oms token issue --role monitor)")); return; }
  oms.follow("/dashboard/feed", (type, data) => { if (type === "snapshot") render(data); }, showError);
})();
