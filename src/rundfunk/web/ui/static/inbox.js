// Rundfunk console, inbox: keeps the live list and thread pleasant to use, inserts
// canned responses ("/code" or the picker), previews templates, Ctrl+Enter sends.
// Live reloading itself is app.js's [data-live-stream]; this file reacts to rf:updated.
"use strict";
(function () {
  // --- live regions: keep focus and the reading position across reloads ---------
  function keepFocus(region) {
    let focusedId = "";
    region.addEventListener("focusin", (event) => { focusedId = event.target.id || ""; });
    region.addEventListener("rf:updated", () => {
      if (focusedId && (document.activeElement === document.body || !document.activeElement)) {
        const again = document.getElementById(focusedId);
        if (again) again.focus();
      }
    });
  }

  function nearBottom(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  }

  function scrollToEnd(region) {
    const box = region.querySelector(".messages");
    if (box) box.scrollTop = box.scrollHeight;
  }

  function thread(region) {
    let follow = true;
    region.addEventListener("scroll", (event) => {
      if (event.target.classList && event.target.classList.contains("messages")) follow = nearBottom(event.target);
    }, true);
    scrollToEnd(region);
    region.addEventListener("rf:updated", () => {
      if (follow) scrollToEnd(region);
      const body = region.querySelector(".thread-body");
      if (!body) return;
      // The window may have opened (the contact wrote) or closed: show the right form.
      const open = body.dataset.windowOpen === "1";
      const reply = document.getElementById("reply-form");
      const template = document.getElementById("template-form");
      if (reply) reply.hidden = !open;
      if (template) template.hidden = open;
    });
  }

  // --- canned responses -------------------------------------------------------------
  function insertAt(textarea, text, from, to) {
    const value = textarea.value;
    textarea.value = value.slice(0, from) + text + value.slice(to);
    const caret = from + text.length;
    textarea.focus();
    textarea.setSelectionRange(caret, caret);
  }

  function canned(form) {
    const textarea = form.querySelector("[data-canned-input]");
    const picker = form.querySelector("[data-canned-select]");
    const list = form.querySelector(".canned-suggestions");
    if (!textarea) return;
    const items = picker ? Array.from(picker.options).filter((o) => o.value).map((o) => ({
      code: o.dataset.code, text: o.dataset.text,
    })) : [];

    if (picker) {
      picker.addEventListener("change", () => {
        const chosen = picker.selectedOptions[0];
        if (!chosen || !chosen.value) return;
        insertAt(textarea, chosen.dataset.text, textarea.selectionStart, textarea.selectionEnd);
        picker.value = ""; // the text is in the box now; the form sends that
      });
    }

    // "/code" right before the caret, at the start or after a space.
    function typed() {
      const before = textarea.value.slice(0, textarea.selectionStart);
      const match = /(^|\s)\/([\w-]*)$/.exec(before);
      if (!match) return null;
      return { query: match[2].toLowerCase(), from: before.length - match[2].length - 1, to: before.length };
    }

    let matches = [];
    let current = null;

    function hide() { if (list) list.hidden = true; matches = []; current = null; }

    function choose(item) {
      if (!current) return;
      insertAt(textarea, item.text, current.from, current.to);
      hide();
    }

    function show() {
      current = typed();
      matches = current ? items.filter((i) => i.code.startsWith(current.query)).slice(0, 6) : [];
      if (!list || !matches.length) { hide(); return; }
      list.replaceChildren(...matches.map((item, index) => {
        const li = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "link";
        button.setAttribute("role", "option");
        if (index === 0) button.setAttribute("aria-selected", "true");
        const code = document.createElement("code");
        code.textContent = "/" + item.code;
        button.append(code, " " + item.text.slice(0, 80));
        button.addEventListener("click", () => choose(item));
        li.append(button);
        return li;
      }));
      list.hidden = false;
    }

    textarea.addEventListener("input", show);
    textarea.addEventListener("keydown", (event) => {
      if ((event.key === "Enter" || event.key === "Tab") && matches.length && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        choose(matches[0]);
      } else if (event.key === "Escape" && matches.length) {
        event.preventDefault();
        hide();
      }
    });
  }

  // --- Ctrl+Enter sends; template preview -------------------------------------------
  function sendOnCtrlEnter(textarea) {
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && textarea.form) {
        event.preventDefault();
        textarea.form.requestSubmit();
      }
    });
  }

  function templatePreview(select) {
    const preview = document.getElementById("template-preview");
    const update = () => {
      const chosen = select.selectedOptions[0];
      if (!preview) return;
      preview.textContent = chosen && chosen.value ? chosen.dataset.body : "";
    };
    select.addEventListener("change", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const list = document.getElementById("inbox-list");
    if (list) keepFocus(list);
    const region = document.getElementById("thread");
    if (region) thread(region);
    const reply = document.getElementById("reply-form");
    if (reply) canned(reply);
    document.querySelectorAll("#reply-form textarea, .note-box textarea").forEach(sendOnCtrlEnter);
    document.querySelectorAll("[data-template-select]").forEach(templatePreview);
  });
})();
