// The phone simulator: phones send through the console (rf.post carries the CSRF
// token) and reload their thread when the page's event stream says it changed.
//  - #phones[data-stream]: one EventSource; each "change" carries {address: fingerprint}.
//  - .phone[data-address][data-print]: a phone and the fingerprint its thread shows.
//  - .thread[data-thread-url]: the phone's messages, reloaded as list items.
"use strict";
(function () {
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

  function scrollDown(list) { list.scrollTop = list.scrollHeight; }

  function show(phone, html) {
    const list = phone.querySelector(".thread");
    const before = new Set(Array.from(list.children, (li) => li.dataset.key));
    list.innerHTML = html;
    const arrived = Array.from(list.querySelectorAll(".msg.theirs"))
      .filter((li) => !before.has(li.dataset.key));
    if (arrived.length) {
      const text = arrived[arrived.length - 1].querySelector(".msg-text");
      phone.querySelector("[aria-live]").textContent = text ? text.textContent : "";
    }
    scrollDown(list);
    phone.dispatchEvent(new CustomEvent("rf:updated", { bubbles: true }));
  }

  async function reload(phone) {
    const list = phone.querySelector(".thread");
    const response = await fetch(list.dataset.threadUrl, { credentials: "same-origin" });
    if (response.ok) show(phone, await response.text());
  }

  function listen(root) {
    const phones = Array.from(root.querySelectorAll(".phone[data-address]"));
    const shown = new Map(phones.map((p) => [p, JSON.parse(p.dataset.print || "null")]));
    const source = new EventSource(root.dataset.stream);
    source.addEventListener("change", (event) => {
      const prints = JSON.parse(event.data);
      phones.forEach((phone) => {
        const print = prints[phone.dataset.address];
        if (print === undefined || same(print, shown.get(phone))) return;
        shown.set(phone, print);
        reload(phone);
      });
    });
    window.addEventListener("beforeunload", () => source.close());
  }

  async function send(form, event) {
    event.preventDefault();
    const phone = form.closest(".phone");
    const input = form.querySelector('input[name="text"]');
    const error = form.querySelector(".error");
    if (!input.value.trim()) { input.focus(); return; }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const response = await window.rf.post(form.action, new FormData(form));
      const body = await response.text();
      if (response.ok) {
        input.value = "";
        error.hidden = true;
        input.removeAttribute("aria-invalid");
        show(phone, body);
      } else {
        error.textContent = response.status === 422 ? body : response.statusText || String(response.status);
        error.hidden = false;
        input.setAttribute("aria-invalid", "true");
      }
    } finally {
      button.disabled = false;
      input.focus();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("phones");
    if (!root) return;
    root.querySelectorAll(".thread").forEach(scrollDown);
    root.querySelectorAll("form.compose").forEach((form) => {
      form.addEventListener("submit", (event) => send(form, event));
    });
    const pick = document.getElementById("channel-pick");
    if (pick) pick.querySelector("select").addEventListener("change", () => pick.submit());
    listen(root);
  });
})();
