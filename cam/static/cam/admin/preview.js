"use strict";
// The step preview re-renders for the lead picked in its list at once. A listener rather than an inline
// onchange attribute, which the Content-Security-Policy does not run.
document.addEventListener("DOMContentLoaded", () => {
  const select = document.getElementById("lead");
  if (select && select.form) {
    select.addEventListener("change", () => select.form.submit());
  }
});
