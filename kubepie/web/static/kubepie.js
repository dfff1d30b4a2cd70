// KubePie web UI: optional enhancements; every form works without this script.
"use strict";

// Copy buttons (shown only when the script runs).
document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
  button.hidden = false;
  button.addEventListener("click", function () {
    var source = document.getElementById(button.dataset.copy);
    var text = source.value !== undefined ? source.value : source.textContent;
    navigator.clipboard.writeText(text).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    });
  });
});

// Upload progress: send the same form with XMLHttpRequest and show how far it got.
document.querySelectorAll("form[data-upload]").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var bar = form.querySelector("progress");
    var status = form.querySelector(".status");
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    bar.hidden = false;
    request.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        bar.value = Math.round((e.loaded / e.total) * 100);
        status.textContent = "Uploading… " + bar.value + "%";
      }
    });
    request.addEventListener("load", function () {
      if (request.status < 400) {
        window.location.assign(request.responseURL);
      } else {
        document.open();
        document.write(request.responseText);
        document.close();
      }
    });
    request.addEventListener("error", function () {
      status.textContent = "The upload failed: the connection was lost.";
    });
    form.querySelector("button[type=submit]").disabled = true;
    request.send(new FormData(form));
  });
});
