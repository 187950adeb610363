// Huabu console: a running run's progress refreshes itself, and stopping
// a canvas asks first. No libraries, nothing loaded from elsewhere.
(function () {
  "use strict";
  function refresh(section) {
    var every = parseInt(section.getAttribute("data-refresh"), 10);
    if (!every) { return; }
    setTimeout(function () {
      fetch(location.href, {credentials: "same-origin", headers: {"Accept": "text/html"}})
        .then(function (res) { if (!res.ok) { throw new Error(res.status); } return res.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("progress");
          if (fresh) {
            section.replaceWith(fresh);
            var state = doc.getElementById("canvas-state");
            var old = document.getElementById("canvas-state");
            if (state && old) { old.replaceWith(state); }
            refresh(fresh);
          }
        })
        .catch(function () { refresh(section); });
    }, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var progress = document.getElementById("progress");
    if (progress) { refresh(progress); }
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (e) {
        if (!window.confirm(f.getAttribute("data-confirm"))) { e.preventDefault(); }
      });
    });
  });
})();
