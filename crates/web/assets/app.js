// Progressive enhancement only: every page works without this script.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // A dialog that is open on load takes the keyboard focus (WCAG 2.4.3).
  var dialog = document.querySelector("[role=dialog][data-autofocus]");
  if (dialog) {
    var first = dialog.querySelector(
      "button:not([disabled]), input:not([type=hidden]):not([disabled]), a[href]");
    if (first) first.focus();
  }
});
