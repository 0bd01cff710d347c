(function () {
  "use strict";
  var form = document.getElementById("filter");
  if (form) {
    var box = document.getElementById("filter-text");
    var count = document.getElementById("filter-count");
    var checks = form.querySelectorAll("input[type=checkbox][data-status]");
    var rows = document.querySelectorAll("tr.flow-row");
    var apply = function () {
      var words = box.value.toLowerCase().split(/\s+/).filter(function (w) { return w.length > 0; });
      var allowed = {};
      for (var i = 0; i < checks.length; i++) {
        allowed[checks[i].getAttribute("data-status")] = checks[i].checked;
      }
      var shown = 0;
      for (var j = 0; j < rows.length; j++) {
        var row = rows[j];
        var hay = row.getAttribute("data-search") || "";
        var ok = allowed[row.getAttribute("data-status")] !== false;
        for (var k = 0; ok && k < words.length; k++) {
          if (hay.indexOf(words[k]) < 0) { ok = false; }
        }
        row.hidden = !ok;
        var section = document.getElementById(row.getAttribute("data-flow"));
        if (section) { section.hidden = !ok; }
        if (ok) { shown++; }
      }
      count.textContent = shown + " / " + rows.length;
    };
    form.hidden = false;
    form.addEventListener("input", apply);
    form.addEventListener("change", apply);
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    document.addEventListener("keydown", function (e) {
      var tag = document.activeElement ? document.activeElement.tagName : "";
      if (e.key === "/" && tag !== "INPUT" && tag !== "TEXTAREA") {
        e.preventDefault();
        box.focus();
      } else if (e.key === "Escape" && document.activeElement === box) {
        box.value = "";
        apply();
        box.blur();
      }
    });
    apply();
  }
  var buttons = document.querySelectorAll("button.copy");
  for (var b = 0; b < buttons.length; b++) {
    var btn = buttons[b];
    btn.hidden = false;
    btn.addEventListener("click", function (e) {
      var button = e.currentTarget;
      var code = button.parentNode.querySelector("pre code");
      if (!code) { return; }
      var done = function () {
        var old = button.textContent;
        button.textContent = button.getAttribute("data-done");
        setTimeout(function () { button.textContent = old; }, 1200);
      };
      var select = function () {
        var range = document.createRange();
        range.selectNodeContents(code);
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
      };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(code.textContent).then(done, select);
      } else {
        select();
      }
    });
  }
})();
