// Broadcasts: the compose form's live preview and recipient count, the parts that
// depend on the channel's kind, and confirmations on buttons that arrive live.
//  - #compose[data-preview]: posts the form (debounced) and shows the answer in #preview.
//  - #compose[data-count]: asks for the recipient count when the audience changes.
//  - #live: after each live reload, its new data-confirm forms ask before submitting and
//    the deliveries table (#deliveries[data-fragment]) is fetched again.
"use strict";
(function () {
  function debounce(fn, ms) {
    let timer = 0;
    return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  function composer(form) {
    const preview = document.getElementById("preview");
    const recipients = document.getElementById("recipients");
    const channel = form.elements.channel_id;
    const template = form.elements.template;
    let sequence = 0;

    async function refreshPreview() {
      const mine = ++sequence;
      const response = await window.rf.post(form.dataset.preview, new FormData(form));
      if (response.ok && mine === sequence) preview.innerHTML = await response.text();
    }

    async function refreshCount() {
      const query = new URLSearchParams();
      const data = new FormData(form);
      for (const key of ["channel_id", "audience"]) query.set(key, data.get(key) || "");
      data.getAll("topics").forEach((key) => query.append("topics", key));
      const response = await fetch(form.dataset.count + "?" + query, { credentials: "same-origin" });
      if (response.ok) recipients.innerHTML = await response.text();
    }

    function kindChanged() {
      const option = channel.options[channel.selectedIndex];
      const whatsapp = option && option.dataset.kind === "whatsapp";
      document.getElementById("template-part").hidden = !whatsapp;
      document.getElementById("text-part").hidden = whatsapp;
      if (template) {
        for (const choice of template.options) {
          if (!choice.dataset.channel) continue;
          choice.hidden = choice.dataset.channel !== channel.value;
          if (choice.hidden && choice.selected) template.value = "";
        }
        if (!whatsapp) template.value = "";
      }
    }

    function scheduleChanged() {
      const later = form.querySelector('input[name="when"]:checked');
      const input = form.elements.send_at;
      input.disabled = !(later && later.value === "later");
      input.closest(".field").classList.toggle("is-off", input.disabled);
    }

    function audienceChanged() {
      const chosen = form.querySelector('input[name="audience"]:checked');
      const topics = document.getElementById("topic-checks");
      if (topics) topics.classList.toggle("is-off", !(chosen && chosen.value === "topics"));
    }

    const later = debounce(refreshPreview, 250);
    form.addEventListener("input", (event) => {
      if (["text", "parameters", "media_url"].includes(event.target.name)) later();
    });
    form.addEventListener("change", (event) => {
      const name = event.target.name;
      if (name === "channel_id") { kindChanged(); refreshPreview(); }
      if (name === "template") refreshPreview();
      if (name === "when") scheduleChanged();
      if (name === "audience") audienceChanged();
      if (name === "topics" && !form.querySelector('input[name="audience"][value="topics"]:checked')) {
        const topicsRadio = form.querySelector('input[name="audience"][value="topics"]');
        if (topicsRadio) { topicsRadio.checked = true; audienceChanged(); }
      }
      if (["channel_id", "audience", "topics"].includes(name)) refreshCount();
    });
    kindChanged();
    scheduleChanged();
    audienceChanged();
  }

  function followLive(element) {
    element.addEventListener("rf:updated", async () => {
      element.querySelectorAll("form[data-confirm]").forEach((form) => {
        form.addEventListener("submit", (event) => {
          if (!window.confirm(form.dataset.confirm)) event.preventDefault();
        });
      });
      const table = document.getElementById("deliveries");
      if (!table) return;
      const response = await fetch(table.dataset.fragment, { credentials: "same-origin" });
      if (response.ok) table.innerHTML = await response.text();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("compose");
    if (form) composer(form);
    const live = document.getElementById("live");
    if (live) followLive(live);
  });
})();
