// Shared by the oms pages: the bearer token, authorised requests, and
// Server-Sent Events read with fetch (EventSource cannot send a token).
"use strict";

const oms = (() => {
  const key = "oms-token";
  // A token given in the URL's fragment (never sent to the server) wins,
  // then the one this tab stored.
  function token() {
    const m = location.hash.match(/token=([^&]+)/);
    if (m) {
      sessionStorage.setItem(key, decodeURIComponent(m[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem(key) || "";
  }
  function setToken(t) { sessionStorage.setItem(key, t.trim()); }
  // A new token in the fragment of the page already open: start again with it.
  window.addEventListener("hashchange", () => { if (/token=/.test(location.hash)) location.reload(); });

  async function get(path) {
    const res = await fetch(path, { headers: { Authorization: "Bearer " + token() } });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      throw new Error(body.detail || body.title || res.status + " " + res.statusText);
    }
    return body;
  }

  // follow reads an event stream, calling onEvent(type, data, id) for each
  // event, and reconnects (after the last id, at first after from) until
  // stop() is called.
  function follow(path, onEvent, onError, from) {
    let stopped = false, last = from ? String(from) : "", controller;
    async function run() {
      let wait = 500;
      while (!stopped) {
        controller = new AbortController();
        try {
          const url = last ? path + (path.includes("?") ? "&" : "?") + "after=" + encodeURIComponent(last) : path;
          const res = await fetch(url, { headers: { Authorization: "Bearer " + token(), Accept: "text/event-stream" }, signal: controller.signal });
          if (!res.ok) {
            const body = await res.json().catch(() => ({}));
            throw new Error(body.detail || res.status + " " + res.statusText);
          }
          onError(null);
          wait = 500;
          const reader = res.body.getReader(), dec = new TextDecoder();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += dec.decode(value, { stream: true });
            let i;
            while ((i = buf.indexOf("\n\n")) >= 0) {
              const chunk = buf.slice(0, i);
              buf = buf.slice(i + 2);
              let type = "message", data = "", id = "";
              for (const line of chunk.split("\n")) {
                if (line.startsWith("event:")) type = line.slice(6).trim();
                else if (line.startsWith("data:")) data += line.slice(5).trim();
                else if (line.startsWith("id:")) id = line.slice(3).trim();
              }
              if (id) last = id;
              if (data) onEvent(type, JSON.parse(data), id);
            }
          }
        } catch (e) {
          if (stopped || e.name === "AbortError") return;
          onError(e);
        }
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, 10000);
      }
    }
    run();
    return () => { stopped = true; if (controller) controller.abort(); };
  }

  // el builds an element: el("td", {class: "n"}, "12").
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  function fmt(n, digits) {
    if (n === null || n === undefined || Number.isNaN(n)) return "–";
    return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits === undefined ? 0 : digits });
  }

  return { token, setToken, get, follow, el, fmt };
})();
