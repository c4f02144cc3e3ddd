// The leaderboard page's filters and sorting. The state lives in the URL's hash
// (#task=listops&profile=mini&protocol=scratch&sort=test_acc_mean&order=desc), so that a view
// can be linked, and a headless browser can be pointed at one and its DOM checked.
(function () {
  "use strict";
  var FILTERS = ["task", "profile", "protocol"];
  var table = document.getElementById("rows");
  var body = table.tBodies[0];
  var original = Array.prototype.slice.call(body.rows); // the ranked order written by Python

  function readState() {
    var state = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      var pair = part.split("=");
      if (pair[0]) state[decodeURIComponent(pair[0])] = decodeURIComponent(pair[1] || "");
    });
    return state;
  }

  function writeState(state) {
    var parts = [];
    Object.keys(state).forEach(function (key) {
      if (state[key]) parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(state[key]));
    });
    location.hash = parts.join("&");
  }

  function matches(element, state, keys) {
    return keys.every(function (key) {
      var wanted = state[key];
      var own = element.getAttribute("data-" + key);
      return !wanted || own === null || own === wanted;
    });
  }

  // A cell's sort key: its data-value as a number where it is one, else its text; missing
  // values (empty data-value) always sort last.
  function sortKey(row, column) {
    var cell = row.cells[column];
    var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent;
    if (raw === "") return null;
    var number = Number(raw);
    return isNaN(number) ? raw.toLowerCase() : number;
  }

  function sortRows(state) {
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var column = -1;
    headers.forEach(function (th, index) {
      var active = th.getAttribute("data-key") === state.sort;
      if (active) column = index;
      th.setAttribute("aria-sort", active ? (state.order === "asc" ? "ascending" : "descending") : "none");
    });
    var rows = original.slice();
    if (column >= 0) {
      var sign = state.order === "asc" ? 1 : -1;
      rows.sort(function (a, b) {
        var x = sortKey(a, column), y = sortKey(b, column);
        if (x === null || y === null) return (x === null) - (y === null);
        return x < y ? -sign : x > y ? sign : 0;  // ties keep the ranked order (stable sort)
      });
    }
    rows.forEach(function (row) { body.appendChild(row); });
  }

  function apply() {
    var state = readState();
    FILTERS.forEach(function (key) {
      var select = document.getElementById("filter-" + key);
      var known = Array.prototype.some.call(select.options, function (o) { return o.value === state[key]; });
      select.value = known ? state[key] : "";
      if (!known) delete state[key];
    });
    sortRows(state);
    var shown = 0;
    original.forEach(function (row) {
      row.hidden = !matches(row, state, FILTERS);
      if (!row.hidden) shown += 1;
    });
    // Summary tables and plots belong to one profile and protocol.
    document.querySelectorAll(".group").forEach(function (group) {
      group.hidden = !matches(group, state, ["profile", "protocol"]);
    });
    document.getElementById("shown").textContent = shown + " of " + original.length + " rows";
    document.body.setAttribute("data-ready", "yes");
  }

  FILTERS.forEach(function (key) {
    document.getElementById("filter-" + key).addEventListener("change", function (event) {
      var state = readState();
      state[key] = event.target.value;
      writeState(state);
    });
  });
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    th.addEventListener("click", function () {
      var state = readState();
      var key = th.getAttribute("data-key");
      // First click: descending for numbers (best first), ascending for names.
      var first = th.getAttribute("data-type") === "number" ? "desc" : "asc";
      state.order = state.sort === key ? (state.order === "asc" ? "desc" : "asc") : first;
      state.sort = key;
      writeState(state);
    });
  });
  document.getElementById("reset").addEventListener("click", function () { writeState({}); });
  window.addEventListener("hashchange", apply);
  apply();
})();
