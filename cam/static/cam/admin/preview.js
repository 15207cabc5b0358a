"use strict";
// Previews of a campaign's steps re-render for the lead picked in a list, at once. Listeners rather than
// inline onchange attributes, which the Content-Security-Policy does not run.
document.addEventListener("DOMContentLoaded", () => {
  // The step's own preview page: the list is in a GET form.
  const select = document.getElementById("lead");
  if (select && select.form) {
    select.addEventListener("change", () => select.form.submit());
  }
  // A campaign's Sequence tab: the page again, for that lead, on the same tab.
  const picker = document.querySelector("select[data-cam-preview-lead]");
  if (picker) {
    picker.addEventListener("change", () => {
      const url = new URL(window.location.href);
      url.searchParams.set("preview_lead", picker.value);
      url.hash = "steps";
      window.location.assign(url.toString());
    });
  }
});
