// Channels, team and settings pages: copy a value (an invitation link) with one click.
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("button[data-copy]").forEach((button) => {
      button.addEventListener("click", async () => {
        const field = document.querySelector(button.dataset.copy);
        if (!field) return;
        field.select();
        try {
          await navigator.clipboard.writeText(field.value);
        } catch (error) {
          document.execCommand("copy");
        }
        button.textContent = button.dataset.copied || button.textContent;
      });
    });
  });
})();
