// crypto-bot dashboard: refresh the page's content from its fragment, and confirm each control before it is sent.
"use strict";

(function () {
  var content = document.getElementById("content");
  var updated = document.getElementById("updated");

  function stamp(text, failed) {
    if (!updated) return;
    updated.textContent = text;
    updated.className = failed ? "failed" : "";
  }

  function refresh() {
    fetch(content.dataset.fragment, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) {
        if (!answer.ok) throw new Error("HTTP " + answer.status);
        return answer.text();
      })
      .then(function (html) {
        // Server-rendered and escaped there: put in place as it came.
        content.innerHTML = html;
        stamp("updated " + new Date().toLocaleTimeString(), false);
      })
      .catch(function (error) {
        stamp("not updated: " + error.message, true);
      });
  }

  if (content && content.dataset.fragment) {
    var every = parseInt(content.dataset.refresh, 10) || 5000;
    window.setInterval(refresh, every);
  }

  // A control is sent only once confirmed; without this script the server asks on a page of its own.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.dataset.confirm) return;
    var button = event.submitter;
    var command = button ? button.value : "";
    var scope = form.elements.strategy.value || "the whole account";
    if (!window.confirm(command.charAt(0).toUpperCase() + command.slice(1) + " " + scope + "?")) {
      event.preventDefault();
      return;
    }
    form.elements.confirmed.value = "yes";
  });
})();
