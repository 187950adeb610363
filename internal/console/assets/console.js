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
  // The editor checks the canvas on the server as the operator types
  // (600 ms after the last key), and a problem's line:col selects that line.
  function editing(form) {
    var source = document.getElementById("source");
    var timer = null, seq = 0;
    function check() {
      var body = new URLSearchParams(new FormData(form));
      body.set("action", "check");
      var mine = ++seq;
      fetch("/editor", {method: "POST", credentials: "same-origin", body: body})
        .then(function (res) { return res.text(); })
        .then(function (html) {
          if (mine !== seq) { return; }
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("check");
          var old = document.getElementById("check");
          if (fresh && old) { old.replaceWith(fresh); }
        });
    }
    source.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(check, 600);
    });
    document.addEventListener("click", function (e) {
      var li = e.target.closest ? e.target.closest("li[data-line]") : null;
      if (!li) { return; }
      e.preventDefault();
      var lines = source.value.split("\n"), line = parseInt(li.getAttribute("data-line"), 10), start = 0;
      for (var i = 0; i < line - 1 && i < lines.length; i++) { start += lines[i].length + 1; }
      var end = start + (lines[line - 1] || "").length;
      source.focus();
      source.setSelectionRange(start, end);
      source.scrollTop = Math.max(0, (line - 5) * 19);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var progress = document.getElementById("progress");
    if (progress) { refresh(progress); }
    var editor = document.getElementById("editor");
    if (editor) { editing(editor); }
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (e) {
        if (!window.confirm(f.getAttribute("data-confirm"))) { e.preventDefault(); }
      });
    });
  });
})();
