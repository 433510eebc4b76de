// The customer's tracking page: the order (GET /v1/orders/{id}) and its
// live events (GET /v1/orders/{id}/events), with the customer's token.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const { el, fmt } = oms;
  const id = location.pathname.split("/").pop();
  const words = { order_received: "Received", order_paid: "Paid", order_inTransit: "On its way", order_completed: "Delivered", order_cancelled: "Cancelled" };
  const order = ["order_received", "order_paid", "order_inTransit", "order_completed"];
  let version = 0;

  function showError(e) {
    $("error").hidden = !e;
    $("error").textContent = e ? String(e.message || e) : "";
    if (e && /401|403|token/i.test(String(e.message))) $("login").hidden = false;
  }

  // price writes an amount in minor units in its currency's own digits
  // (JPY has none, EUR two).
  function price(minor, currency) {
    try {
      const f = new Intl.NumberFormat("en-US", { style: "currency", currency });
      return f.format(minor / 10 ** f.resolvedOptions().maximumFractionDigits);
    } catch (e) {
      return fmt(minor) + " " + currency;
    }
  }

  function render(o) {
    version = Math.max(version, o.version);
    $("order-id").textContent = "order " + o.id;
    $("status").textContent = words[o.status] || o.status;
    $("status").dataset.status = o.status;
    const reached = order.indexOf(o.status);
    for (const d of $("steps").children) {
      d.className = o.status === "order_cancelled" ? "cancelled" : order.indexOf(d.dataset.step) <= reached ? "done" : "";
    }
    let detail = "";
    if (o.trackingNumber) detail = "Tracking number " + o.trackingNumber + (o.deliveryProvider ? " (" + o.deliveryProvider + ")" : "") + ". ";
    if (o.cancelReason) detail += "Cancelled: " + o.cancelReason.replaceAll("_", " ") + ". ";
    $("detail").textContent = detail;
    $("items").replaceChildren(el("tr", {}, el("th", {}, "item"), el("th", { class: "n" }, "quantity"), el("th", { class: "n" }, "price")),
      ...o.items.map((it) => el("tr", {}, el("td", {}, it.sku), el("td", { class: "n" }, fmt(it.quantity)), el("td", { class: "n" }, price(it.unitPrice, o.currency)))));
    $("history").replaceChildren(...(o.changeHistory || []).slice().reverse().map((c) =>
      el("li", {}, el("b", {}, c.what.replace("order.", "").replaceAll("_", " ")), " · " + new Date(c.when).toLocaleString())));
  }

  async function load() {
    try {
      render(await oms.get("/v1/orders/" + encodeURIComponent(id) + (version ? "?minVersion=" + version : "")));
      showError(null);
    } catch (e) { showError(e); }
  }

  $("login").addEventListener("submit", (ev) => { ev.preventDefault(); oms.setToken($("token").value); location.reload(); });
  if (!oms.token()) { showError(new Error("give your access token")); return; }
  load().then(() => {
    // Each event moves the order on: read it again at that version.
    oms.follow("/v1/orders/" + encodeURIComponent(id) + "/events", (type, e, seq) => {
      version = Math.max(version, Number(seq) || 0);
      load();
    }, (e) => { if (e) showError(e); }, version);
  });
})();
