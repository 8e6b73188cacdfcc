// Rundfunk console: the small amount of script every page shares. No build step.
//  - rf.post(url, data): a same-site POST that carries the session's CSRF token.
//  - [data-live-stream][data-live-fragment]: reloads the element's content from the
//    fragment URL whenever the Server-Sent Events stream reports a change.
//  - form[data-confirm]: asks before submitting (erasure, cancel, ...).
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

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-live-stream][data-live-fragment]").forEach(live);
    document.querySelectorAll("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  });

  window.rf = { post, reload, csrf };
})();
