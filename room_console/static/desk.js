// The registration desk (bàn tiếp nhận): shows what the chip ID card's QR string says while the USB
// scanner types it, and prints the slip. Display only: the server parses the string again and decides.
// The ID number is never shown or kept here beyond the field the scanner filled.
"use strict";

(function () {
  function pad(text) { return text.length === 8 ? text.slice(0, 2) + "/" + text.slice(2, 4) + "/" + text.slice(4) : ""; }

  function parseChip(raw) {
    var text = (raw || "").trim().normalize("NFC");
    var parts = text.split("|");
    if (parts.length !== 7 || !/^[0-9]{12}$/.test(parts[0].trim()) || !/^[0-9]{8}$/.test(parts[3].trim())) {
      return null;
    }
    return { full_name: parts[2].trim(), birth_date: pad(parts[3].trim()), sex: parts[4].trim(), address: parts[5].trim() };
  }

  function showChip(field) {
    var preview = document.getElementById("chip_preview");
    var error = document.getElementById("chip_error");
    if (!preview || !error) { return; }
    var value = field.value;
    if (!value.trim()) { preview.hidden = true; error.hidden = true; return; }
    var card = parseChip(value);
    if (card === null) {
      preview.hidden = true;
      error.textContent = error.getAttribute("data-msg") || "";
      error.hidden = false;
      return;
    }
    preview.querySelectorAll("[data-chip]").forEach(function (cell) {
      cell.textContent = card[cell.getAttribute("data-chip")] || "";
    });
    error.hidden = true;
    preview.hidden = false;
  }

  function filterVenues() {
    var session = document.getElementById("session_id");
    var venue = document.getElementById("venue");
    if (!session || !venue || venue.tagName !== "SELECT") { return; }
    var firstShown = null;
    Array.prototype.forEach.call(venue.options, function (option) {
      var mine = option.getAttribute("data-session") === session.value;
      option.hidden = !mine;
      option.disabled = !mine;
      if (mine && firstShown === null) { firstShown = option; }
    });
    var chosen = venue.options[venue.selectedIndex];
    if ((!chosen || chosen.disabled) && firstShown) { firstShown.selected = true; }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var chip = document.getElementById("chip_qr");
    if (chip) {
      chip.addEventListener("input", function () { showChip(chip); });
      // A scanner ends with Enter: keep it from submitting the form before the officer triages.
      chip.addEventListener("keydown", function (event) { if (event.key === "Enter") { event.preventDefault(); showChip(chip); } });
      showChip(chip);
    }
    var session = document.getElementById("session_id");
    if (session) { session.addEventListener("change", filterVenues); filterVenues(); }
    document.querySelectorAll("[data-print]").forEach(function (button) {
      button.addEventListener("click", function () { window.print(); });
    });
  });
}());
