// Rundfunk console: the small amount of script every page shares. No build step.
//  - rf.post(url, data): a same-site POST that carries the session's CSRF token.
//  - [data-live-stream][data-live-fragment]: reloads the element's content from the
//    fragment URL whenever the Server-Sent Events stream reports a change.
//  - form[data-confirm]: asks before submitting (erasure, cancel, ...).
//  - .nav-toggle: on narrow screens the main navigation folds behind a Menu button
//    (without script it stays open, wrapped over several lines).
"use strict";
(function () {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  async function post(url, data) {
    const body = data instanceof FormData ? data : new URLSearchParams(data || {});
    return fetch(url, { method: "POST", body, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" });
  }

  async function reload(element) {
    const response = await fetch(element.dataset.liveFragment, { credentials: "same-origin" });
    if (!response.ok) return;
    element.innerHTML = await response.text();
    element.dispatchEvent(new CustomEvent("rf:updated", { bubbles: true }));
  }

  function live(element) {
    const source = new EventSource(element.dataset.liveStream);
    let first = true;
    source.addEventListener("change", () => {
      // The first event states the current fingerprint: the page shows that already.
      if (first && !("liveInitial" in element.dataset)) { first = false; return; }
      first = false;
      reload(element);
    });
    window.addEventListener("beforeunload", () => source.close());
  }

  function navToggle(button) {
    const nav = document.getElementById(button.getAttribute("aria-controls"));
    if (!nav) return;
    document.documentElement.classList.add("nav-folds");
    button.hidden = false;
    button.addEventListener("click", () => {
      const open = button.getAttribute("aria-expanded") !== "true";
      button.setAttribute("aria-expanded", String(open));
      nav.classList.toggle("open", open);
      if (open) { const first = nav.querySelector("a"); if (first) first.focus(); }
    });
    nav.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && nav.classList.contains("open")) { button.click(); button.focus(); }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll(".nav-toggle").forEach(navToggle);
    document.querySelectorAll("[data-live-stream][data-live-fragment]").forEach(live);
    document.querySelectorAll("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  });

  window.rf = { post, reload, csrf };
})();
