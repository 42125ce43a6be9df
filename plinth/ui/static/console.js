// Plinth console: optional enhancements. Every page works without this file.
(function () {
  "use strict";
  // Admin forms ask once more before they change a deployment.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
  // The review screen: 1-9 pick a label, a approves, c corrects, n goes to the note.
  var resolve = document.getElementById("resolve");
  if (resolve) {
    document.addEventListener("keydown", function (event) {
      var tag = (event.target.tagName || "").toLowerCase();
      if (tag === "input" && event.target.type !== "radio" || tag === "textarea" || tag === "select") return;
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      var key = event.key;
      var radio = resolve.querySelector('input[type=radio][data-key="' + key + '"]');
      if (radio) { radio.checked = true; radio.focus(); event.preventDefault(); return; }
      if (key === "n") { var note = resolve.querySelector("[data-key-focus=n]"); if (note) { note.focus(); event.preventDefault(); } return; }
      var button = resolve.querySelector('button[data-key="' + key + '"]');
      if (button) { event.preventDefault(); button.click(); }
    });
  }
  // The lease counts down.
  var lease = document.querySelector("[data-lease-until]");
  var countdown = lease && lease.querySelector(".countdown");
  var until = lease && Date.parse(lease.getAttribute("data-lease-until"));
  if (countdown && until) {
    setInterval(function () {
      var left = Math.max(0, Math.round((until - Date.now()) / 1000));
      countdown.textContent = left >= 60 ? Math.floor(left / 60) + " min " + (left % 60) + " s" : left + " s";
      if (left === 0) lease.classList.add("bad");
    }, 1000);
  }
})();
